"""Live event handlers of the classic release kinds: ``ms.vss-release.*`` → release,
release-definition, release-deployment.

Each object the event names is read again on the ``vsrm`` host through the same list the kind's
fetcher (:mod:`kiosk.ingest.fetch.releases`) reads, narrowed to that object and sent with the
resource's selector options, so the item is exactly the one a resync lists — and an object the
list no longer gives (deleted, or outside the selector's ``statusFilter``/``tagFilter``/… now) is
*gone*:

- **release** (release-created, release-abandoned, deployment-started, deployment-completed):
  ``release/releases?releaseIdFilter=<id>`` with the selector's parameters. An abandoned release
  stays an item (status ``abandoned``): Azure keeps it, and so does the resync.
- **release-definition** (release-created, release-abandoned): the release's definition,
  ``release/definitions?definitionIdFilter=<id>`` with ``$expand``/``tagFilter``, with ``__project``.
- **release-deployment** (deployment-started, deployment-completed): the deployments of the
  release's stage (``release/deployments`` by definition, stage and release; every attempt, each
  one as listed); the event's own deployment, when the list no longer has it, is gone.

A release of a project the organisation no longer lists (deleted, or carrying an excluded tag) is
gone for every kind, as the resync reads none there. Any other failed read raises.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from kiosk.azure.errors import NotFound
from kiosk.ingest.fetch.base import FetchContext, Item
from kiosk.ingest.fetch.releases import PAGE_SIZE, RELEASE_FILTERS, selector_params
from kiosk.ingest.live.event_fields import MalformedEvent
from kiosk.ingest.live.model import EventHandler, Refetched
from kiosk.ingest.mapping import ResourceConfig

__all__ = [
    "DEPLOYMENT_EVENTS",
    "HANDLERS",
    "RELEASE_EVENTS",
    "ReleaseRef",
    "handle_deployment",
    "handle_release",
    "handle_release_definition",
    "release_in_event",
]

#: The events of a release as a whole (its creation, its abandonment).
RELEASE_EVENTS: Final = ("ms.vss-release.release-created-event", "ms.vss-release.release-abandoned-event")
#: The events of one deployment of a release's stage.
DEPLOYMENT_EVENTS: Final = ("ms.vss-release.deployment-started-event", "ms.vss-release.deployment-completed-event")
_RELEASE_IN_URL: Final = re.compile(r"/releases/(\d+)", re.IGNORECASE)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: Any) -> int | None:
    """An Azure id as a number: a positive integer, or its text; None otherwise (0 is Azure's "none")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return _number(int(value.strip()))
    return None


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


class ReleaseRef:
    """What an ``ms.vss-release.*`` event names: the project, the release, its definition, and for a
    deployment event the stage (``definitionEnvironmentId``) and the deployment, as far as given."""

    def __init__(self, event: Mapping[str, Any]) -> None:
        resource = _mapping(event.get("resource"))
        release = _mapping(resource.get("release"))
        environment = _mapping(resource.get("environment"))
        deployment = _mapping(resource.get("deployment"))
        self.event_type = str(event.get("eventType", ""))
        self.release = dict(release)
        url = resource.get("url")
        in_url = _RELEASE_IN_URL.search(url) if isinstance(url, str) else None
        self.release_id = (
            _number(release.get("id"))
            or _number(environment.get("releaseId"))
            or _number(_mapping(deployment.get("release")).get("id"))
            or (_number(resource.get("id")) if self.event_type in RELEASE_EVENTS else None)
            or (_number(in_url.group(1)) if in_url else None)
        )
        self.project_id = (
            _text(_mapping(_mapping(event.get("resourceContainers")).get("project")).get("id"))
            or _text(_mapping(resource.get("project")).get("id"))
            or _text(_mapping(release.get("projectReference")).get("id"))
            or _text(_mapping(deployment.get("projectReference")).get("id"))
        )
        self.definition_id = _number(_mapping(release.get("releaseDefinition")).get("id")) or _number(
            _mapping(deployment.get("releaseDefinition")).get("id")
        )
        self.definition_environment_id = _number(environment.get("definitionEnvironmentId")) or _number(
            deployment.get("definitionEnvironmentId")
        )
        self.deployment = dict(deployment)
        self.deployment_id = _number(deployment.get("id"))

    def require(self) -> tuple[str, int]:
        """The project id and the release id, which every handler needs."""
        if self.project_id is None or self.release_id is None:
            raise MalformedEvent(f"the {self.event_type or 'release'} event names no project and release")
        return self.project_id, self.release_id

    def gone_release(self) -> Item:
        """The release as the event knows it (the default mapping's identifier reads
        ``projectReference.id`` and ``id``)."""
        project_id, release_id = self.require()
        reference = {**_mapping(self.release.get("projectReference")), "id": project_id}
        return {**self.release, "id": release_id, "projectReference": reference}


def release_in_event(event: Mapping[str, Any]) -> ReleaseRef:
    """What the event names (:class:`ReleaseRef`)."""
    return ReleaseRef(event)


async def _project(ctx: FetchContext, project_id: str) -> Item | None:
    """The project as the organisation lists it (the fetchers' ``__project``), or None when it is not
    listed (deleted, or carrying an excluded tag)."""
    wanted = project_id.casefold()
    for project in await ctx.projects():
        if str(project.get("id", "")).casefold() == wanted or str(project.get("name", "")).casefold() == wanted:
            return project
    return None


async def _list(ctx: FetchContext, path: str, params: dict[str, str]) -> list[Item]:
    """Every item of a vsrm list (all pages); an empty list when Azure answers 404 (the project is
    gone)."""
    items: list[Item] = []
    try:
        async for page in ctx.rest.pages_by_header_token(path, host="vsrm", params=params, top=PAGE_SIZE):
            items += [item for item in page if isinstance(item, dict)]
    except NotFound:
        return []
    return items


async def _read_releases(ctx: FetchContext, resource: ResourceConfig, project_id: str, release_id: int) -> list[Item]:
    params = selector_params(resource, ("expand", "tagFilter", *RELEASE_FILTERS))
    params["releaseIdFilter"] = str(release_id)
    listed = await _list(ctx, f"{project_id}/_apis/release/releases", params)
    return [ctx.stamp(dict(item)) for item in listed if _number(item.get("id")) == release_id]


async def handle_release(ctx: FetchContext, resource: ResourceConfig, event: Mapping[str, Any]) -> Refetched:
    """Any release event → release: the release as the selector lists it now, else gone."""
    result = Refetched("release")
    ref = release_in_event(event)
    project_id, release_id = ref.require()
    project = await _project(ctx, project_id)
    items = await _read_releases(ctx, resource, str(project["id"]), release_id) if project is not None else []
    if items:
        result.items = items
    else:
        result.gone.append(ctx.stamp(ref.gone_release()))
    return result


async def handle_release_definition(ctx: FetchContext, resource: ResourceConfig, event: Mapping[str, Any]) -> Refetched:
    """release-created/abandoned → release-definition: the release's definition as listed now
    (``__project`` added), else gone."""
    result = Refetched("release-definition")
    ref = release_in_event(event)
    project_id, release_id = ref.require()
    project = await _project(ctx, project_id)
    definition_id = ref.definition_id
    if definition_id is None and project is not None:
        # A trimmed payload: the release read again names its definition.
        found = await _list(ctx, f"{project['id']}/_apis/release/releases", {"releaseIdFilter": str(release_id)})
        definitions = [_number(_mapping(item.get("releaseDefinition")).get("id")) for item in found]
        definition_id = next((found_id for found_id in definitions if found_id is not None), None)
    if definition_id is None:
        return result  # the release is gone with nothing naming its definition; the resync decides
    listed: list[Item] = []
    if project is not None:
        params = selector_params(resource, ("expand", "tagFilter"))
        params["definitionIdFilter"] = str(definition_id)
        listed = await _list(ctx, f"{project['id']}/_apis/release/definitions", params)
    items = [item for item in listed if _number(item.get("id")) == definition_id]
    if items and project is not None:
        result.items = [ctx.stamp({**item, "__project": project}) for item in items]
    else:
        known = {**_mapping(ref.release.get("releaseDefinition")), "id": definition_id}
        result.gone.append(ctx.stamp({**known, "__project": project or {"id": project_id}}))
    return result


async def handle_deployment(ctx: FetchContext, resource: ResourceConfig, event: Mapping[str, Any]) -> Refetched:
    """deployment-started/completed → release-deployment: every deployment (attempt) of the
    release's stage as listed now; the event's deployment, if no longer listed, gone."""
    result = Refetched("release-deployment")
    ref = release_in_event(event)
    project_id, release_id = ref.require()
    project = await _project(ctx, project_id)
    listed: list[Item] = []
    if project is not None:
        params = {"releaseId": str(release_id)}
        if ref.definition_id is not None:
            params["definitionId"] = str(ref.definition_id)
        if ref.definition_environment_id is not None:
            params["definitionEnvironmentId"] = str(ref.definition_environment_id)
        listed = await _list(ctx, f"{project['id']}/_apis/release/deployments", params)
    stage = ref.definition_environment_id
    result.items = [
        ctx.stamp(dict(item))
        for item in listed
        if _number(_mapping(item.get("release")).get("id")) == release_id
        and (stage is None or _number(item.get("definitionEnvironmentId")) == stage)
    ]
    if ref.deployment_id is not None and all(_number(i.get("id")) != ref.deployment_id for i in result.items):
        reference = {**_mapping(ref.deployment.get("projectReference")), "id": project_id}
        result.gone.append(ctx.stamp({**ref.deployment, "projectReference": reference}))
    return result


#: Event type → kind → handler, for the processor's registry.
HANDLERS: Final[dict[str, dict[str, EventHandler]]] = {
    **{
        event_type: {"release": handle_release, "release-definition": handle_release_definition}
        for event_type in RELEASE_EVENTS
    },
    **{
        event_type: {"release": handle_release, "release-deployment": handle_deployment}
        for event_type in DEPLOYMENT_EVENTS
    },
}
