"""kiosk.yaml loading: every error names the file, the 1-based line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.config_files import config_error, write_config

from kiosk.config import KioskConfig, load_config, parse_config
from kiosk.errors import ConfigError

DEMO = Path(__file__).resolve().parents[2] / "src" / "kiosk" / "demo" / "kiosk.yaml"


def test_demo_config_loads() -> None:
    config = load_config(DEMO)
    assert {bp.identifier for bp in config.blueprints} == {"project", "service", "environment"}
    assert len(config.entities) >= 8
    service = next(bp for bp in config.blueprints if bp.identifier == "service")
    props = service.document()["schema"]["properties"]
    assert props["lifecycle"]["x-kiosk-index"] is True
    assert {p.get("format") for p in props.values()} >= {"url", "email", "date-time", "markdown"}
    assert service.relation_targets() == ["project", "service", "environment"]


def test_valid_config_keeps_documents_whole(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        """
        blueprints:
          - identifier: service
            title: Service
            schema: {properties: {tier: {type: number}}, required: []}
            relations: {owner: {target: team, many: false}}
        entities:
          - blueprint: service
            identifier: svc-a
            team: platform
            properties: {tier: 1.5, at: 2025-01-02T03:04:05Z, day: 2025-01-02}
            relations: {owner: platform}
        """,
    )
    config = load_config(path)
    assert config.blueprints[0].document() == {
        "identifier": "service",
        "title": "Service",
        "schema": {"properties": {"tier": {"type": "number"}}, "required": []},
        "relations": {"owner": {"target": "team", "many": False}},
    }
    entity = config.entities[0]
    assert entity.key == ("service", "svc-a")
    doc = entity.entity_document()
    assert "blueprint" not in doc
    # ruamel's own scalar types are gone: timestamps are ISO strings, numbers plain.
    assert doc["properties"] == {"tier": 1.5, "at": "2025-01-02T03:04:05Z", "day": "2025-01-02"}
    assert type(doc["properties"]["tier"]) is float
    assert config.source is not None and config.source.path == path


def test_bad_field_names_file_line_and_field(tmp_path: Path) -> None:
    exc = config_error(
        tmp_path,
        """
        blueprints:
          - identifier: service
            title: Service
          - identifier: "bad id!"
            title: Broken
        """,
    )
    assert exc.message.startswith(f"{tmp_path / 'kiosk.yaml'}:4: blueprints[1].identifier: ")
    assert "pattern" in exc.message


def test_missing_field_points_at_the_item(tmp_path: Path) -> None:
    exc = config_error(
        tmp_path,
        """
        blueprints:
          - identifier: service
        entities:
          - blueprint: service
            identifier: a
          - blueprint: service
            title: no identifier here
        """,
    )
    assert exc.message == f"{tmp_path / 'kiosk.yaml'}:6: entities[1].identifier: field required"


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    exc = config_error(
        tmp_path,
        """
        blueprints:
          - identifier: service
          - just a string
        """,
    )
    assert exc.message.endswith(":3: blueprints[1]: expected a mapping, got a string")


def test_several_errors_report_the_first_line_and_count_the_rest(tmp_path: Path) -> None:
    exc = config_error(
        tmp_path,
        """
        entities:
          - identifier: a
          - identifier: 5
            blueprint: x
        """,
    )
    assert ":2: entities[0].blueprint: field required (and 1 more error)" in exc.message
    assert [d["line"] for d in exc.details] == [2, 3]


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    exc = config_error(
        tmp_path,
        """
        blueprints:
          - identifier: service
            title: [unclosed
        entities: []
        """,
    )
    assert exc.message.startswith(f"{tmp_path / 'kiosk.yaml'}:")
    assert "YAML syntax error" in exc.message
    line = int(exc.message.split(":")[1])
    assert 3 <= line <= 5


def test_bad_indentation_is_a_syntax_error_with_line(tmp_path: Path) -> None:
    exc = config_error(tmp_path, "blueprints:\n  - identifier: a\n title: b\n")
    assert exc.message.startswith(f"{tmp_path / 'kiosk.yaml'}:3: YAML syntax error")


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    exc = config_error(
        tmp_path,
        """
        blueprints:
          - identifier: service
            title: One
            title: Two
        """,
    )
    assert exc.message.startswith(f"{tmp_path / 'kiosk.yaml'}:4: duplicate key 'title'")
    # The values are not echoed (a duplicated key could hold anything).
    assert "One" not in exc.message and "Two" not in exc.message


def test_unknown_top_level_key_lists_the_known_ones(tmp_path: Path) -> None:
    exc = config_error(
        tmp_path,
        """
        blueprints: []
        entitites: []
        """,
    )
    assert exc.message == (
        f"{tmp_path / 'kiosk.yaml'}:2: entitites: unknown top-level key 'entitites' "
        "(known keys: blueprints, entities, actions, azureDevOps, egress, delivery, runs, receivers, watches, "
        "integrations, retention, jq, signIn)"
    )


def test_duplicate_identifiers_are_errors(tmp_path: Path) -> None:
    exc = config_error(
        tmp_path,
        """
        blueprints:
          - identifier: service
          - identifier: team
          - identifier: service
        """,
    )
    assert exc.message.endswith(
        ":4: blueprints[2].identifier: duplicate blueprint identifier 'service' (also blueprints[0])"
    )
    exc = config_error(
        tmp_path,
        """
        entities:
          - {blueprint: service, identifier: a}
          - {blueprint: team, identifier: a}
          - {blueprint: service, identifier: a}
        """,
    )
    assert ":4: entities[2].identifier: duplicate entity 'a' of blueprint 'service'" in exc.message


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config(missing)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "blueprints:\nentities:\n"])
def test_empty_config_and_empty_sections_are_fine(text: str) -> None:
    config = parse_config(text, Path("kiosk.yaml"))
    assert config.blueprints == [] and config.entities == []


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"^kiosk\.yaml:1: the top level must be a mapping"):
        parse_config("- a\n- b\n", Path("kiosk.yaml"))


def test_config_built_in_code_describes_fields_without_a_file() -> None:
    config = KioskConfig.model_validate({"blueprints": [{"identifier": "a"}]})
    assert config.source is None
    assert config.describe(("blueprints", 0, "relations")) == "blueprints[0].relations"


def test_flow_style_positions_are_found(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        """
        blueprints: [{identifier: a}, {identifier: b,
          relations: {owner: {target: a}}}]
        """,
    )
    config = load_config(path)
    assert config.describe(("blueprints", 1, "relations", "owner", "target")).endswith(
        ":2: blueprints[1].relations.owner.target"
    )
    # A field that does not exist points at the deepest node that does.
    assert config.describe(("blueprints", 1, "schema", "properties")).endswith(":1: blueprints[1].schema.properties")
