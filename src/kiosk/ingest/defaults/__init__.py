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
"""

from __future__ import annotations

import json
from copy import deepcopy
from importlib.resources import files
from typing import Any

import yaml

from kiosk.ingest.mapping import PortAppConfig, parse_port_app_config

__all__ = [
    "DEFAULT_MAPPING_FIXES",
    "default_blueprints",
    "default_mapping",
    "default_mapping_document",
    "ocean_default_mapping",
    "ocean_default_mapping_document",
]

#: ``(kind, section, field) -> (Ocean's program, kiosk's)`` for the fields of the default mapping
#: kiosk corrects (see the module docstring).
DEFAULT_MAPPING_FIXES: dict[tuple[str, str, str], tuple[str, str]] = {
    ("work-item", "relations", "column"): (
        '.fields."System.WorkItemType"+"-"+.fields."System.BoardColumn"+"-"+.__project.id | gsub(" "; "")',
        '.fields."System.WorkItemType" + "/" + .fields."System.BoardColumn" + "/" + .__project.id | gsub(" "; "")',
    ),
    ("work-item", "properties", "description"): (
        """.fields."System.Description" // ''""",
        """.fields."System.Description" // \"\"""",
    ),
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


def default_mapping_document() -> dict[str, Any]:
    """The default mapping kiosk installs, as plain data: Ocean's with :data:`DEFAULT_MAPPING_FIXES` applied."""
    document = deepcopy(ocean_default_mapping_document())
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


def default_blueprints() -> list[dict[str, Any]]:
    """Ocean's six default blueprints, as Port documents (created in relation order by the caller)."""
    blueprints = json.loads(_read("blueprints.json"))
    assert isinstance(blueprints, list)
    return blueprints
