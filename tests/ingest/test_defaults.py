"""Ocean's default blueprints and mapping as kiosk ships them, with the reference's bugs fixed."""

from __future__ import annotations

from typing import Any

import jq
from tests.config.conftest import catalog
from tests.support.integrations import OCEAN_BLUEPRINT_IDENTIFIERS

from kiosk.catalog.service import Catalog
from kiosk.config import KioskConfig, apply_config
from kiosk.config.model import BlueprintSpec
from kiosk.ingest.defaults import (
    DEFAULT_BLUEPRINT_FIXES,
    DEFAULT_MAPPING_FIXES,
    default_blueprints,
    default_mapping,
    default_mapping_document,
    ocean_default_blueprints,
    ocean_default_mapping_document,
)

__all__ = ["catalog"]  # the config tests' fixture: a migrated SQLite catalog of the test's own

#: A work item as Azure returns it with ``$expand=All``, enriched as the reference does.
WORK_ITEM = {
    "id": 42,
    "url": "https://dev.azure.com/contoso/_apis/wit/workItems/42",
    "fields": {
        "System.WorkItemType": "User Story",
        "System.BoardColumn": "In Progress",
        "System.State": "Active",
        "System.Title": "Pay by card",
    },
    "__projectId": "p-1",
    "__project": {"id": "p-1", "name": "Payments"},
}
#: The board the work item is on, and one of its columns as the column kind yields it: one item per
#: ``stateMappings`` entry, the work-item type under ``__stateType``.
BOARD = {"id": "b-1", "name": "Stories", "__project": {"id": "p-1"}}
COLUMNS = [
    {
        "id": "c-2",
        "name": "In Progress",
        "stateMappings": {"User Story": "Active", "Bug": "Active"},
        "__board": BOARD,
        "__stateType": state_type,
        "__stateName": "Active",
    }
    for state_type in ("User Story", "Bug")
]


def first(program: str, item: dict[str, Any]) -> Any:
    return jq.compile(program).input_value(item).first()


def mapping_of(document: dict[str, Any], kind: str) -> dict[str, Any]:
    [found] = [r for r in document["resources"] if r["kind"] == kind]
    mappings: dict[str, Any] = found["port"]["entity"]["mappings"]
    return mappings


def test_the_default_mapping_is_oceans_with_only_the_fixed_fields_changed() -> None:
    ocean, kiosk = ocean_default_mapping_document(), default_mapping_document()
    for (kind, section, field), (before, after) in DEFAULT_MAPPING_FIXES.items():
        assert mapping_of(ocean, kind)[section][field] == before
        assert mapping_of(kiosk, kind)[section][field] == after
        mapping_of(kiosk, kind)[section][field] = before
    kinds = [resource["kind"] for resource in kiosk["resources"]]
    # Columns sync before the work items that point at them; nothing else moved.
    assert kinds.index("column") == kinds.index("work-item") - 1
    assert sorted(kiosk["resources"], key=str) == sorted(ocean["resources"], key=str)
    ocean_kinds = [resource["kind"] for resource in ocean["resources"]]
    assert [k for k in kinds if k != "column"] == [k for k in ocean_kinds if k != "column"]
    assert {k: v for k, v in kiosk.items() if k != "resources"} == {k: v for k, v in ocean.items() if k != "resources"}
    assert default_mapping().warnings == []


def test_work_items_point_at_the_identifier_their_column_entity_gets() -> None:
    column_identifier = mapping_of(ocean_default_mapping_document(), "column")["identifier"]
    column_entities = {first(column_identifier, column) for column in COLUMNS}
    assert column_entities == {"UserStory/InProgress/p-1", "Bug/InProgress/p-1"}

    fixed = mapping_of(default_mapping_document(), "work-item")["relations"]["column"]
    assert first(fixed, WORK_ITEM) == "UserStory/InProgress/p-1"
    # The reference's own program points at a column entity that does not exist.
    ocean = mapping_of(ocean_default_mapping_document(), "work-item")["relations"]["column"]
    assert first(ocean, WORK_ITEM) == "UserStory-InProgress-p-1"
    assert first(ocean, WORK_ITEM) not in column_entities


def test_the_description_default_is_an_empty_string() -> None:
    [work_items] = [r for r in default_mapping().resources if r.kind == "work-item"]
    description = work_items.port.entity.mappings.properties["description"]
    assert first(description, WORK_ITEM) == ""
    assert first(description, {"fields": {"System.Description": "<p>x</p>"}}) == "<p>x</p>"


def test_the_default_blueprints_are_valid_port_blueprints_kiosk_creates(catalog: Catalog) -> None:
    blueprints = default_blueprints()
    identifiers = [bp["identifier"] for bp in blueprints]
    assert sorted(identifiers) == sorted(OCEAN_BLUEPRINT_IDENTIFIERS)
    for bp in blueprints:
        for relation in bp.get("relations", {}).values():
            assert relation["target"] in identifiers
    config = KioskConfig(blueprints=[BlueprintSpec.model_validate(bp) for bp in blueprints])
    apply_config(catalog, config)
    stored = {bp["identifier"]: bp for bp in (catalog.get_blueprint(i) for i in identifiers)}
    assert stored["azureDevopsWorkItem"]["relations"]["column"]["target"] == "azureDevopsColumn"
    assert stored["azureDevopsRepository"]["mirrorProperties"]["defaultTeam"]["path"] == "project.defaultTeam"


def test_every_blueprint_the_default_mapping_writes_is_a_default_blueprint() -> None:
    identifiers = {bp["identifier"] for bp in default_blueprints()}
    for resource in default_mapping().resources:
        assert first(resource.port.entity.mappings.blueprint, {}) in identifiers


def test_the_default_blueprints_are_oceans_with_only_the_fixed_keys_changed() -> None:
    ocean = {b["identifier"]: b for b in ocean_default_blueprints()}
    kiosk = {b["identifier"]: b for b in default_blueprints()}
    work_item = kiosk["azureDevopsWorkItem"]
    assert "enum" not in work_item["schema"]["properties"]["type"]
    assert work_item["relations"]["column"]["required"] is False
    for (identifier, *path, key), (before, after) in DEFAULT_BLUEPRINT_FIXES.items():
        node = kiosk[identifier]
        for part in path:
            node = node[part]
        assert node.get(key) == after
        node[key] = before
    assert kiosk == ocean


def test_a_work_item_on_no_board_has_no_column() -> None:
    fixed = mapping_of(default_mapping_document(), "work-item")["relations"]["column"]
    task = {"fields": {"System.WorkItemType": "Task"}, "__project": {"id": "p-1"}}
    assert first(fixed, task) is None
