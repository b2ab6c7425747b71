"""Work-item events: created, updated, restored, commented and deleted, to the work-item kind.

Each is read again (``GET {project}/_apis/wit/workitems/{id}`` with the resource's ``expand``) and
enriched as :mod:`kiosk.ingest.fetch.work_items` enriches it (``__projectId``, ``__project``: the
project as the projects list gives it, so the item's mark is the resync's). The resource's
selector ``wiql`` applies as in the resync: one WIQL ``[System.TeamProject] = … AND (wiql) AND
[System.Id] = N`` says whether the item still matches; one that does not is *gone* for that
resource, as is one Azure answers 404 for, one in a project excluded by tag, and every deleted one.
Unlike the reference, the selector's ``expand`` and ``wiql`` are applied, and a deleted item's
entities are found by its mark (keyed by id), whatever identifier the mapping gave them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from kiosk.azure.errors import MalformedResponse
from kiosk.azure.errors import NotFound as AzureNotFound
from kiosk.ingest.fetch.base import FetchContext, Item, get_object
from kiosk.ingest.fetch.work_items import WIQL_API_VERSION, strip_order_by, wiql_string
from kiosk.ingest.live.event_fields import event_project_id, event_resource, find_project, integer_at
from kiosk.ingest.live.model import EventHandler, Refetched
from kiosk.ingest.mapping import ResourceConfig

__all__ = ["HANDLERS", "KIND", "read_work_item", "still_matches", "work_item_id"]

KIND: Final = "work-item"
ITEM_API_VERSION: Final = "7.1"
_IN_URL: Final = re.compile(r"/(?:workItems|recyclebin)/(\d+)", re.IGNORECASE)


def work_item_id(event: Mapping[str, Any]) -> int:
    """The work item an event is about: a ``workitem.updated`` resource is the update (its own
    ``id`` is the update's number), every other one the item (or its minimal form)."""
    resource = event_resource(event)
    if event.get("eventType") == "workitem.updated":
        return integer_at(resource, ("workItemId",), ("revision", "id"), url_pattern=_IN_URL)
    return integer_at(resource, ("id",), url_pattern=_IN_URL)


def _gone(ctx: FetchContext, item_id: int, event: Mapping[str, Any]) -> Refetched:
    """The item as far as the event knows it (the payload, if the subscription sent it whole):
    only used to find its entities when no mark names them."""
    resource = dict(event_resource(event))
    revision = resource.get("revision")
    known: Item = dict(revision) if isinstance(revision, dict) else resource
    known["id"] = item_id
    return Refetched(KIND, gone=[ctx.stamp(known)])


async def still_matches(ctx: FetchContext, project: Item, item_id: int, fragment: str) -> bool:
    """Whether item ``item_id`` of ``project`` matches the WIQL WHERE ``fragment`` now (one query)."""
    query = (
        "SELECT [System.Id] FROM WorkItems WHERE "  # noqa: S608 - WIQL, the mapping author's own fragment
        f"[System.TeamProject] = {wiql_string(str(project['name']))} AND ({fragment}) AND [System.Id] = {item_id}"
    )
    path = f"{project['id']}/_apis/wit/wiql"
    answer = await ctx.rest.post(path, {"query": query}, idempotent=True, params={"api-version": WIQL_API_VERSION})
    references = answer.get("workItems") if isinstance(answer, dict) else None
    if not isinstance(references, list):
        raise MalformedResponse("POST", ctx.rest.urls.url("core", path), "a WIQL answer without workItems")
    return any(isinstance(r, dict) and r.get("id") == item_id for r in references)


async def read_work_item(ctx: FetchContext, resource: ResourceConfig, event: Mapping[str, Any]) -> Refetched:
    """The work item the event names, as the work-item fetcher would give it for ``resource``."""
    item_id = work_item_id(event)
    if event.get("eventType") == "workitem.deleted":
        return _gone(ctx, item_id, event)
    project_id = event_project_id(event, ("fields", "System.TeamProjectId"))
    path = f"{project_id}/_apis/wit/workitems/{item_id}" if project_id else f"_apis/wit/workitems/{item_id}"
    expand = str(resource.selector_value("expand") or "All")
    try:
        item = await get_object(ctx.rest, path, params={"$expand": expand, "api-version": ITEM_API_VERSION})
    except AzureNotFound:
        return _gone(ctx, item_id, event)
    fields = item.get("fields") if isinstance(item.get("fields"), dict) else {}
    name = fields.get("System.TeamProject") if isinstance(fields, dict) else None
    project = await find_project(ctx, name=str(name)) if isinstance(name, str) else None
    if project is None and project_id is not None:
        project = await find_project(ctx, project_id=project_id)
    if project is None:  # a project excluded by tag, or one the list no longer has
        return _gone(ctx, item_id, event)
    fragment = strip_order_by(resource.selector_value("wiql"))
    if fragment and not await still_matches(ctx, project, item_id, fragment):
        return _gone(ctx, item_id, event)
    item["__projectId"] = project["id"]
    item["__project"] = project
    return Refetched(KIND, items=[ctx.stamp(item)])


HANDLERS: dict[str, dict[str, EventHandler]] = {
    event_type: {KIND: read_work_item}
    for event_type in (
        "workitem.created",
        "workitem.updated",
        "workitem.restored",
        "workitem.commented",
        "workitem.deleted",
    )
}
