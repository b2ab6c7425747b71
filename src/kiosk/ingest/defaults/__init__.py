"""Ocean's default blueprints and mapping for Azure DevOps, as kiosk ships them.

The two files beside this module are the reference integration's own (``.port/resources/
blueprints.json`` and ``port-app-config.yaml`` of Ocean's Azure DevOps integration 0.12.2), kept
byte for byte so that what users know from Port is what they get. :func:`ocean_default_mapping`
is that mapping as Ocean ships it; :func:`default_mapping` is the one kiosk installs, with the
reference's two bugs in it fixed, each replacing exactly Ocean's text (a changed file fails
loudly instead of being patched wrongly):

* the work item's ``column`` relation built ``Type-Column-projectId`` (dashes) while column
  entities are identified ``stateType/name/projectId`` (slashes, the work-item type being the
  ``stateMappings`` key a column item carries as ``__stateType``): no work item pointed at a column
  that exists. It now builds the column's own identifier from the work item's fields.
* the work item's ``description`` defaulted with ``// ''``, which is not jq (jq strings take double
  quotes): the program does not compile, so Ocean maps every description to null. It is ``// ""``.
* the ``column`` resource came after ``work-item``, whose ``column`` relation points at column
  entities; a column's ``board`` relation is required, so the missing column could not be made
  empty ahead of time and every work item on a board was refused. Columns now sync right after
  boards, before work items (:data:`COLUMNS_BEFORE`).
* the project's ``revision`` is a number in Azure's answer and a string in the blueprint: every
  project entity was refused. It is mapped ``.revision | tostring``.

and two in the blueprints (:data:`DEFAULT_BLUEPRINT_FIXES`): the work item's ``type`` allowed only
five of Azure's types (no ``Feature``, ``Product Backlog Item``, ``Requirement``, ``Test Case``, nor
any custom type), so those work items were refused — it is a plain string, its colours kept; and
its ``column`` relation was required, though a work item whose type is on no board (a Task) has
no board column — it is optional, and the mapping gives null for such an item.
"""

from __future__ import annotations

import json
from copy import deepcopy
from importlib.resources import files
from typing import Any

import yaml

from kiosk.ingest.mapping import PortAppConfig, parse_port_app_config

__all__ = [
    "COLUMNS_BEFORE",
    "DEFAULT_BLUEPRINT_FIXES",
    "DEFAULT_MAPPING_FIXES",
    "default_blueprints",
    "default_mapping",
    "default_mapping_document",
    "ocean_default_blueprints",
    "ocean_default_mapping",
    "ocean_default_mapping_document",
]

#: ``(kind, section, field) -> (Ocean's program, kiosk's)`` for the fields of the default mapping
#: kiosk corrects (see the module docstring).
DEFAULT_MAPPING_FIXES: dict[tuple[str, str, str], tuple[str, str]] = {
    ("work-item", "relations", "column"): (
        '.fields."System.WorkItemType"+"-"+.fields."System.BoardColumn"+"-"+.__project.id | gsub(" "; "")',
        'if .fields."System.BoardColumn" then .fields."System.WorkItemType" + "/" + .fields."System.BoardColumn"'
        ' + "/" + .__project.id | gsub(" "; "") else null end',
    ),
    ("work-item", "properties", "description"): (
        """.fields."System.Description" // ''""",
        """.fields."System.Description" // \"\"""",
    ),
    ("project", "properties", "revision"): (".revision", ".revision | tostring"),
}

#: ``path in a blueprint document -> (Ocean's value, kiosk's)``; kiosk's ``None`` removes the key.
DEFAULT_BLUEPRINT_FIXES: dict[tuple[str, ...], tuple[Any, Any]] = {
    ("azureDevopsWorkItem", "schema", "properties", "type", "enum"): (
        ["Issue", "Epic", "Task", "Bug", "User Story"],
        None,
    ),
    ("azureDevopsWorkItem", "relations", "column", "required"): (True, False),
}


def _read(name: str) -> str:
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


def ocean_default_mapping_document() -> dict[str, Any]:
    """Ocean's default mapping as plain data, exactly as its file holds it."""
    document = yaml.safe_load(_read("port-app-config.yaml"))
    assert isinstance(document, dict)
    return document


def ocean_default_mapping() -> PortAppConfig:
    """Ocean's default mapping, unchanged (its broken ``description`` program among its warnings)."""
    return parse_port_app_config(ocean_default_mapping_document())


#: The resource the default mapping moves (``column``) and the one it now precedes (``work-item``).
COLUMNS_BEFORE: tuple[str, str] = ("column", "work-item")


def _columns_before_work_items(resources: list[dict[str, Any]]) -> None:
    moved, before = COLUMNS_BEFORE
    kinds = [resource["kind"] for resource in resources]
    if kinds.count(moved) != 1 or kinds.count(before) != 1 or kinds.index(moved) < kinds.index(before):
        raise RuntimeError("the packaged default mapping's resource order is not the one kiosk fixes")
    column = resources.pop(kinds.index(moved))
    resources.insert(kinds.index(before), column)


def default_mapping_document() -> dict[str, Any]:
    """The default mapping kiosk installs, as plain data: Ocean's with :data:`DEFAULT_MAPPING_FIXES`
    applied and columns synced before work items."""
    document = deepcopy(ocean_default_mapping_document())
    _columns_before_work_items(document["resources"])
    for (kind, section, field), (ocean, fixed) in DEFAULT_MAPPING_FIXES.items():
        found = [
            resource["port"]["entity"]["mappings"][section]
            for resource in document["resources"]
            if resource["kind"] == kind and field in resource["port"]["entity"]["mappings"].get(section, {})
        ]
        if len(found) != 1 or found[0][field] != ocean:
            raise RuntimeError(f"the packaged default mapping's {kind} {section}.{field} is not the one kiosk fixes")
        found[0][field] = fixed
    return document


def default_mapping() -> PortAppConfig:
    """The default mapping kiosk installs (and uses for an integration that names none)."""
    return parse_port_app_config(default_mapping_document())


def ocean_default_blueprints() -> list[dict[str, Any]]:
    """Ocean's six default blueprints, exactly as its file holds them."""
    blueprints = json.loads(_read("blueprints.json"))
    assert isinstance(blueprints, list)
    return blueprints


def default_blueprints() -> list[dict[str, Any]]:
    """The default blueprints kiosk creates: Ocean's with :data:`DEFAULT_BLUEPRINT_FIXES` applied."""
    blueprints = ocean_default_blueprints()
    by_id = {blueprint["identifier"]: blueprint for blueprint in blueprints}
    for (identifier, *path, key), (ocean, fixed) in DEFAULT_BLUEPRINT_FIXES.items():
        node = by_id[identifier]
        for part in path:
            node = node[part]
        if node.get(key) != ocean:
            raise RuntimeError(f"the packaged default blueprint's {identifier} {'.'.join([*path, key])} is not Ocean's")
        if fixed is None:
            del node[key]
        else:
            node[key] = fixed
    return blueprints
