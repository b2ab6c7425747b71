"""Azure DevOps integrations as the tests and benchmarks declare them.

One declaration serves every layer: :func:`mapping_resource` is a mapping resource in Port's
format (the dict a ``port-app-config:`` lists), :func:`azure_devops_integration` the loaded
:class:`~kiosk.ingest.config.Integration` the engine and the runner take, :func:`integrations_yaml`
a kiosk.yaml holding one such integration (for a kiosk server or the CLI), and
:func:`create_blueprints` the blueprints the mapping writes into, created up front
(:data:`OCEAN_BLUEPRINT_IDENTIFIERS`: those kiosk creates itself).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from kiosk.catalog.service import Catalog
from kiosk.config.secrets import Secret
from kiosk.ingest.config import Integration, IntegrationSpec
from kiosk.ingest.mapping import PortAppConfig, parse_port_app_config

__all__ = [
    "OCEAN_BLUEPRINT_IDENTIFIERS",
    "OCEAN_PROJECTS_AND_REPOSITORIES",
    "all_entities",
    "azure_devops_integration",
    "by_id_resource",
    "create_blueprints",
    "integrations_yaml",
    "mapping_resource",
    "merged_mapping",
    "pull_request_resource",
    "repository_resource",
    "work_item_resource",
]


#: The identifiers of Ocean's default blueprints (the reference's ``.port/resources/blueprints.json``):
#: what ``initializePortResources`` creates.
OCEAN_BLUEPRINT_IDENTIFIERS = (
    "azureDevopsProject",
    "azureDevopsRepository",
    "azureDevopsWorkItem",
    "azureDevopsBoard",
    "azureDevopsColumn",
    "azureDevopsRelease",
)


def mapping_resource(
    kind: str,
    blueprint: str,
    *,
    identifier: str = ".id",
    title: str = ".name",
    properties: Mapping[str, str] | None = None,
    relations: Mapping[str, str] | None = None,
    **selector: Any,
) -> dict[str, Any]:
    """One ``resources:`` entry: ``kind`` selected with ``query: 'true'`` and ``selector``'s other
    options, mapped into the literal ``blueprint``; ``properties`` and ``relations`` (jq per
    field) only when given, as a hand-written mapping leaves them out."""
    mappings: dict[str, Any] = {"identifier": identifier, "title": title, "blueprint": json.dumps(blueprint)}
    if properties is not None:
        mappings["properties"] = dict(properties)
    if relations is not None:
        mappings["relations"] = dict(relations)
    return {"kind": kind, "selector": {"query": "true", **selector}, "port": {"entity": {"mappings": mappings}}}


def merged_mapping(*resources: dict[str, Any]) -> dict[str, Any]:
    """A mapping of ``resources`` that merges entities, creates no missing relation target and lets
    a complete resync delete whatever it no longer produces (threshold 1)."""
    return {
        "createMissingRelatedEntities": False,
        "enableMergeEntity": True,
        "entityDeletionThreshold": 1,
        "resources": list(resources),
    }


def by_id_resource(
    kind: str, blueprint: str, title: str, properties: Mapping[str, str], **options: Any
) -> dict[str, Any]:
    """A :func:`mapping_resource` whose entities are identified by the item's numeric ``id`` as text
    (work items, builds, runs, pull requests' ``pullRequestId`` aside)."""
    return mapping_resource(kind, blueprint, identifier=".id | tostring", title=title, properties=properties, **options)


def work_item_resource(blueprint: str, **options: Any) -> dict[str, Any]:
    """The work-item kind into ``blueprint``: by id, titled by ``System.Title``, its state as
    ``state`` (``options``: relations and selector options, as :func:`mapping_resource` takes them)."""
    return by_id_resource(
        "work-item", blueprint, '.fields."System.Title"', {"state": '.fields."System.State"'}, **options
    )


def repository_resource(blueprint: str) -> dict[str, Any]:
    """The repository kind into ``blueprint``: its URL and default branch, related to its project."""
    return mapping_resource(
        "repository",
        blueprint,
        properties={"url": ".remoteUrl", "defaultBranch": ".defaultBranch"},
        relations={"project": ".project.id"},
    )


def pull_request_resource(blueprint: str, properties: Mapping[str, str]) -> dict[str, Any]:
    """The pull-request kind into ``blueprint``: keyed ``repository id/pull request id``, related to
    its repository, every one of ten years (up to 1,000 a repository) selected."""
    return mapping_resource(
        "pull-request",
        blueprint,
        identifier='.repository.id + "/" + (.pullRequestId | tostring)',
        title=".title",
        properties=properties,
        relations={"repository": ".repository.id"},
        minTimeInDays=3650,
        maxResults=1000,
    )


#: Projects and their repositories into Ocean's default blueprints (what ``initializePortResources``
#: creates), with a few properties and the repository's project relation.
OCEAN_PROJECTS_AND_REPOSITORIES: list[dict[str, Any]] = [
    mapping_resource("project", "azureDevopsProject", properties={"state": ".state", "visibility": ".visibility"}),
    mapping_resource(
        "repository",
        "azureDevopsRepository",
        properties={"url": ".remoteUrl"},
        relations={"project": ".project.id"},
    ),
]


def azure_devops_integration(
    organizations: str | Sequence[str],
    mapping: PortAppConfig | Mapping[str, Any],
    *,
    pat: str,
    identifier: str = "ado",
    listener: str | None = None,
    interval: int | None = None,
    initialize: bool | None = None,
    mapping_source: str = "test",
) -> Integration:
    """An azure-devops integration reading ``organizations`` (one URL: ``organizationUrl``, a list:
    ``organizationUrls``) with ``mapping`` (a PortAppConfig, or its document, validated here) and
    ``pat`` as its token. ``listener``, ``interval`` and ``initialize`` set ``eventListener.type``,
    ``scheduledResyncInterval`` and ``initializePortResources``; left None, the spec's defaults."""
    if isinstance(organizations, str):
        config: dict[str, Any] = {"organizationUrl": organizations}
    else:
        config = {"organizationUrls": list(organizations)}
    document: dict[str, Any] = {
        "identifier": identifier,
        "type": "azure-devops",
        "config": {**config, "personalAccessToken": {"env": "UNUSED"}},
    }
    if listener is not None:
        document["eventListener"] = {"type": listener}
    if interval is not None:
        document["scheduledResyncInterval"] = interval
    if initialize is not None:
        document["initializePortResources"] = initialize
    parsed = mapping if isinstance(mapping, PortAppConfig) else parse_port_app_config(mapping)
    return Integration(
        spec=IntegrationSpec.model_validate(document),
        mapping=parsed,
        mapping_source=mapping_source,
        personal_access_token=Secret(pat),
    )


def integrations_yaml(
    organization_url: str,
    *,
    resources: Sequence[Mapping[str, Any]] = OCEAN_PROJECTS_AND_REPOSITORIES,
    listener: str = "WEBHOOKS_ONLY",
    pat_variable: str = "TEST_EMULATOR_PAT",
    webhook_secret_variable: str | None = None,
) -> str:
    """A kiosk.yaml with one integration, ``ado``, reading ``organization_url`` with ``resources``
    as its mapping, its token (and webhook secret, when a variable is named) from the environment,
    Ocean's default blueprints created at start. Its ``port-app-config:`` stands on line 9 (10 with
    a webhook secret): the mapping source kiosk reports."""
    secret = f"      webhookSecret: {{env: {webhook_secret_variable}}}\n" if webhook_secret_variable else ""
    header = (
        "integrations:\n"
        "  - identifier: ado\n"
        "    type: azure-devops\n"
        "    config:\n"
        f"      organizationUrl: {organization_url}\n"
        f"      personalAccessToken: {{env: {pat_variable}}}\n"
        f"{secret}"
        f"    eventListener: {{type: {listener}}}\n"
        "    initializePortResources: true\n"
        "    port-app-config:\n"
    )
    body = yaml.safe_dump({"resources": [dict(r) for r in resources]}, sort_keys=False)
    return header + "".join(f"      {line}\n" for line in body.splitlines())


def create_blueprints(catalog: Catalog, blueprints: Iterable[Mapping[str, Any]], actor: str | None = None) -> None:
    """Create ``blueprints`` in order (a relation's target first), as ``actor``."""
    for blueprint in blueprints:
        catalog.create_blueprint(dict(blueprint), actor=actor)


def all_entities(catalog: Catalog, blueprint: str) -> list[dict[str, Any]]:
    """Every entity of ``blueprint``, reading the catalog's pages to the end."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page, cursor = catalog.list_entities(blueprint, limit=1000, cursor=cursor)
        out.extend(page)
        if cursor is None:
            return out
