"""Work item tracking routes (reference 3.8): work items, updates, revisions, comments, recycle bin,
types and states, fields, classification nodes, icons, and WIQL.

Every route reads the org on the event loop (``async def``, awaiting nothing), so it never sees a
half-applied mutation. Routes Azure serves with an optional project (``{org}[/{p}]/_apis/wit/…``)
are registered twice, org-level and project-level; with a project, a work item of another
project is not found there.

A page of work items by ids is on the emulator's list-endpoint speed target, so each item's JSON
is encoded once and kept (bytes, per org) under its id, revision and what else a mutation may
change (links, comments), and a list is assembled from those bytes: a changed item is shaped again.

Errors are Azure's JSON with a work item tracking ``typeName`` (:class:`WitError`); WIQL's
syntax and query errors come from :mod:`kiosk.emulator.wiql.errors`.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from starlette.responses import Response

from kiosk.emulator.bodies import read_json
from kiosk.emulator.errors import AzureError, azure_error_body
from kiosk.emulator.org.model import ClassificationNode, Organisation, Project, WorkItem, WorkItemType
from kiosk.emulator.routes.common import (
    ApiVersion,
    DeclaredResponses,
    SkipPage,
    SkipPaged,
    from_query,
    org_and_project,
    skip_page,
    wrapped,
)
from kiosk.emulator.service import Emulator
from kiosk.emulator.shapes_wit import (
    EXPANDS,
    classification_node_json,
    comment_json,
    comment_list_json,
    deleted_reference_json,
    deleted_shallow_json,
    deleted_work_item_json,
    field_json,
    query_result_json,
    revision_json,
    update_json,
    work_item_json,
    work_item_type_json,
    work_item_type_state_json,
)
from kiosk.emulator.wiql import FIELDS, QueryContext, WiqlError, find_field, parse_wiql, run_query
from kiosk.web.responses import FastJSONResponse

__all__ = ["MAX_IDS", "WitError", "add_wit_routes"]

MAX_IDS: Final = 200
"""Work items per ``workitems?ids=`` or ``workitemsbatch`` call, as Azure allows."""
_CACHE_LIMIT: Final = 20_000
_MAX_BODY: Final = 1024 * 1024
_COMMENTS_PAGE: Final = 200
_HISTORY_PAGE: Final = 200
_WIT_NAMESPACE: Final = "Microsoft.TeamFoundation.WorkItemTracking.Server"


def _any_case(*words: str) -> str:
    """A regular expression matching any of ``words`` in any letter case (OpenAPI patterns take no flags)."""
    alternatives = []
    for word in words:
        alternatives.append(
            "".join(f"[{c.upper()}{c.lower()}]" if c.upper() != c.lower() else ("\\." if c == "." else c) for c in word)
        )
    return "(?:" + "|".join(alternatives) + ")"


# What the query values may be, declared in the OpenAPI description and checked by the routes
# themselves (so the refusals carry Azure's messages): the two always agree.
_ID: Final = "[1-9][0-9]{0,8}"
IDS_PATTERN: Final = f"^{_ID}(?:,{_ID}){{0,{MAX_IDS - 1}}}$"
EXPAND_PATTERN: Final = f"^{_any_case(*EXPANDS)}$"
POLICY_PATTERN: Final = f"^{_any_case('fail', 'omit')}$"
FIELD_NAME_PATTERN: Final = _any_case(*(name for f in FIELDS for name in (f.reference_name, f.name)))
FIELDS_PATTERN: Final = f"^{FIELD_NAME_PATTERN}(?:,{FIELD_NAME_PATTERN})*$"
GROUP_PATTERN: Final = f"^{_any_case('areas', 'iterations')}$"
WIQL_TOP_PATTERN: Final = "^[1-9][0-9]{0,8}$"
_IDS = re.compile(IDS_PATTERN)
_WIQL_TOP = re.compile(WIQL_TOP_PATTERN)

Expand = Annotated[str | None, Query(alias="$expand", json_schema_extra={"pattern": EXPAND_PATTERN})]
Fields = Annotated[str | None, Query(max_length=8000, json_schema_extra={"pattern": FIELDS_PATTERN})]
AsOf = Annotated[str | None, Query(alias="asOf", max_length=64, json_schema_extra={"format": "date-time"})]
ErrorPolicy = Annotated[str | None, Query(alias="errorPolicy", json_schema_extra={"pattern": POLICY_PATTERN})]
Ids = Annotated[str | None, Query(max_length=2000, json_schema_extra={"pattern": IDS_PATTERN})]
Depth = Annotated[int | None, Query(alias="$depth", ge=0, le=1000)]
IgnoredExpand = Annotated[str | None, Query(alias="$expand", max_length=40)]
"""``$expand`` of comments and fields: accepted, and nothing more to show."""
WiqlTop = Annotated[str | None, Query(alias="$top", max_length=20, json_schema_extra={"pattern": WIQL_TOP_PATTERN})]
TimePrecision = Annotated[bool, Query(alias="timePrecision")]
Group = Annotated[str, PathParam(json_schema_extra={"pattern": GROUP_PATTERN})]


@dataclass(frozen=True, slots=True)
class ItemQuery:
    """How a work item is shown: only some ``fields``, or ``$expand``-ed, as it was ``asOf`` a time."""

    fields: Fields = None
    as_of: AsOf = None
    expand: Expand = None


@dataclass(frozen=True, slots=True)
class ItemsQuery:
    """Work items by ``ids``, shown as :class:`ItemQuery` says; ``errorPolicy``: whether a missing one fails."""

    ids: Ids = None
    fields: Fields = None
    as_of: AsOf = None
    expand: Expand = None
    error_policy: ErrorPolicy = None


@dataclass(frozen=True, slots=True)
class RevisionsQuery(SkipPage):
    """A page of a work item's revisions, each ``$expand``-ed."""

    expand: Expand = None


@dataclass(frozen=True, slots=True)
class WiqlQuery:
    """A WIQL query's ``$top`` and ``timePrecision`` (times compared to the second, not the day)."""

    top: WiqlTop = None
    time_precision: TimePrecision = False


ItemParams = Annotated[ItemQuery, Depends(from_query(ItemQuery))]
ItemsParams = Annotated[ItemsQuery, Depends(from_query(ItemsQuery))]
RevisionsParams = Annotated[RevisionsQuery, Depends(from_query(RevisionsQuery))]
WiqlParams = Annotated[WiqlQuery, Depends(from_query(WiqlQuery))]
_WIQL_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["query"],
    "properties": {"query": {"type": "string", "maxLength": 32_768}},
}
_BATCH_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["ids"],
    "properties": {
        "ids": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1, "maximum": 999_999_999},
            "minItems": 1,
            "maxItems": MAX_IDS,
        },
        "fields": {"type": "array", "items": {"type": "string", "pattern": f"^{FIELD_NAME_PATTERN}$"}},
        "$expand": {"type": "string", "pattern": EXPAND_PATTERN},
        "asOf": {"type": "string", "format": "date-time"},
        "errorPolicy": {"type": "string", "pattern": POLICY_PATTERN},
    },
}


class WitError(AzureError):
    """An error of the work item tracking area: Azure's error JSON with a WIT server ``typeName``."""

    def __init__(self, status: int, type_key: str, message: str, type_name: str | None = None) -> None:
        super().__init__(status, type_key, message)
        self.type_name = type_name or f"{_WIT_NAMESPACE}.{type_key}, {_WIT_NAMESPACE}"

    def body(self) -> dict[str, Any]:
        return azure_error_body(self.message, self.type_key, self.type_name)


def _not_found(item_id: int) -> WitError:
    return WitError(
        404,
        "WorkItemUnauthorizedAccessException",
        f"TF401232: Work item {item_id} does not exist, or you do not have permissions to read it.",
    )


def _bad(message: str, type_key: str = "ArgumentException") -> WitError:
    return WitError(400, type_key, message)


# --- request values -------------------------------------------------------------------------------


def _parse_ids(raw: str | None) -> list[int]:
    if raw is None or not raw:
        raise _bad("ids: a comma-separated list of work item ids is required.")
    count = raw.count(",") + 1
    if count > MAX_IDS:
        _checked_ids(range(1, count + 1))  # Azure's message for too many
    if not _IDS.fullmatch(raw):
        raise _bad(f"ids: {raw[:60]!r} is not a comma-separated list of work item ids.")
    return _checked_ids([int(part) for part in raw.split(",")])


def _checked_ids(ids: Sequence[int]) -> list[int]:
    if not ids:
        raise _bad("ids: a comma-separated list of work item ids is required.")
    if len(ids) > MAX_IDS:
        raise _bad(
            f"VS403474: The number of work items requested ({len(ids)}) exceeds the limit of {MAX_IDS}.",
            "WorkItemTrackingArgumentException",
        )
    if any(item_id < 1 or item_id > 999_999_999 for item_id in ids):
        raise _bad("ids: work item ids are positive integers.")
    return list(ids)


def _parse_fields(names: Sequence[str] | None) -> list[str] | None:
    """Field names asked for → reference names; TF51535 for one that does not exist."""
    if names is None:
        return None
    wanted = []
    for name in names:
        found = find_field(name) if name == name.strip() else None
        if found is None or found.reference_name == "System.Links.LinkType":
            raise _bad(f"TF51535: Cannot find field {name[:200]}.", "WorkItemTrackingFieldDefinitionNotFoundException")
        wanted.append(found.reference_name)
    return wanted


def _parse_expand(raw: str | None, has_fields: bool) -> str:
    expand = "none" if raw is None else raw.lower()
    if expand not in EXPANDS:
        raise _bad(f"$expand: {raw!r} is not one of None, Relations, Fields, Links, All.")
    if has_fields and raw is not None and expand != "none":
        raise _bad("The expand parameter can not be used with the fields parameter.", "ConflictingParametersException")
    return expand


def _parse_policy(raw: str | None) -> bool:
    """``errorPolicy``: True for ``omit`` (missing items are null), False for ``fail`` (the default)."""
    policy = "fail" if raw is None else raw.lower()
    if policy not in ("fail", "omit"):
        raise _bad(f"errorPolicy: {raw!r} is not Fail or Omit.")
    return policy == "omit"


def _parse_as_of(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise _bad(f"asOf: {raw[:64]!r} is not a date and time (ISO 8601).") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _revision_at(item: WorkItem, as_of: datetime) -> int | None:
    """The revision ``item`` had at ``as_of`` (None: it did not exist yet)."""
    found = None
    for revision in item.revisions:
        if revision.revised_date <= as_of:
            found = revision.rev
    if found is None and not item.revisions:
        created = item.fields.get("System.CreatedDate")
        return item.rev if isinstance(created, datetime) and created <= as_of else None
    return found


# --- the shaped-item cache ------------------------------------------------------------------------


_ShapeKey = tuple[int, int, int, int, int, str, bool]


class _ShapedItems:
    """Each work item's JSON bytes per org, keyed so that a change to the item misses.

    Azure gives every change of a work item a new revision; the key also holds what a mutation
    might change without one — the number of links (a child added to a parent), the number of
    comments and the last one's version — so a stale shape is never served. Bounded: past
    :data:`_CACHE_LIMIT` entries the org's cache starts afresh.
    """

    def __init__(self) -> None:
        self._by_org: weakref.WeakKeyDictionary[Organisation, dict[_ShapeKey, bytes]] = weakref.WeakKeyDictionary()

    def get(self, org: Organisation, item: WorkItem, expand: str, links: bool) -> bytes:
        cache = self._by_org.get(org)
        if cache is None:
            cache = self._by_org[org] = {}
        comments = item.comments
        last_version = comments[-1].version * (-1 if comments[-1].is_deleted else 1) if comments else 0
        key = (item.id, item.rev, len(item.relations), len(comments), last_version, expand, links)
        shaped = cache.get(key)
        if shaped is None:
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            shaped = cache[key] = orjson.dumps(work_item_json(org, item, expand=expand, links=links))
        return shaped


def _list_bytes(parts: Sequence[bytes]) -> Response:
    body = b'{"count":%d,"value":[%b]}' % (len(parts), b",".join(parts))
    return Response(body, media_type="application/json")


# --- lookups --------------------------------------------------------------------------------------


def _live_item(data: Organisation, project: Project | None, item_id: int) -> WorkItem:
    item = data.work_items.get(item_id)
    if item is None or item.is_deleted or (project is not None and item.project_id != project.id):
        raise _not_found(item_id)
    return item


def _type(data: Organisation, project: Project, name: str) -> WorkItemType:
    for kind in data.work_item_types.get(project.id, []):
        if kind.name.casefold() == name.casefold() or kind.reference_name.casefold() == name.casefold():
            return kind
    raise WitError(
        404, "WorkItemTypeNotFoundException", f"VS402323: Work item type {name[:200]} does not exist in this project."
    )


def _node(root: ClassificationNode, path: str) -> ClassificationNode:
    node = root
    for part in path.replace("\\", "/").split("/"):
        if not part:
            continue
        child = next((c for c in node.children if c.name.casefold() == part.casefold()), None)
        if child is None:
            raise WitError(
                404,
                "ClassificationNodeNotFoundException",
                f"VS402485: The node {path[:200]} does not exist under {root.path}.",
            )
        node = child
    return node


def _roots(data: Organisation, project: Project) -> list[ClassificationNode]:
    return [root for root in (data.areas.get(project.id), data.iterations.get(project.id)) if root is not None]


# --- the routes -----------------------------------------------------------------------------------


def add_wit_routes(app: FastAPI, emulator: Emulator, read: DeclaredResponses, write: DeclaredResponses) -> None:
    """Add the work item tracking routes over each org's :class:`~kiosk.emulator.org.model.Organisation`."""
    shaped = _ShapedItems()

    def items_response(
        data: Organisation,
        project: Project | None,
        ids: list[int],
        fields: list[str] | None,
        expand: str,
        as_of: datetime | None,
        omit: bool,
    ) -> Response:
        """The ``{count, value}`` list of work items ``ids``, in the order asked (null entries when omitted)."""
        parts: list[bytes] = []
        for item_id in ids:
            item = data.work_items.get(item_id)
            rev = None
            if item is not None and not item.is_deleted and (project is None or item.project_id == project.id):
                rev = _revision_at(item, as_of) if as_of is not None else item.rev
            if item is None or rev is None:
                if not omit:
                    raise _not_found(item_id)
                parts.append(b"null")
            elif fields is None and as_of is None:
                parts.append(shaped.get(data, item, expand, expand in ("links", "all")))
            else:
                parts.append(orjson.dumps(work_item_json(data, item, expand=expand, fields=fields, rev=rev)))
        return _list_bytes(parts)

    def one_item(data: Organisation, project: Project | None, item_id: int, query: ItemQuery) -> Response:
        wanted = _parse_fields(query.fields.split(",") if query.fields is not None else None)
        how = _parse_expand(query.expand, wanted is not None)
        when = _parse_as_of(query.as_of)
        item = _live_item(data, project, item_id)
        rev = _revision_at(item, when) if when is not None else None
        if when is not None and rev is None:
            raise _not_found(item_id)
        if wanted is None and rev is None:
            return Response(shaped.get(data, item, how, True), media_type="application/json")
        return FastJSONResponse(work_item_json(data, item, expand=how, fields=wanted, rev=rev, links=True))

    def list_items(data: Organisation, project: Project | None, query: ItemsQuery) -> Response:
        wanted = _parse_fields(query.fields.split(",") if query.fields is not None else None)
        how = _parse_expand(query.expand, wanted is not None)
        ids, as_of, omit = _parse_ids(query.ids), _parse_as_of(query.as_of), _parse_policy(query.error_policy)
        return items_response(data, project, ids, wanted, how, as_of, omit)

    async def batch(data: Organisation, project: Project | None, request: Request) -> Response:
        body = await read_json(request, _MAX_BODY)
        if not isinstance(body, dict):
            raise _bad("The body must be a WorkItemBatchGetRequest object.")
        ids = body.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise _bad("ids: a list of work item ids is required.")
        fields = body.get("fields")
        if fields is not None and (not isinstance(fields, list) or not all(isinstance(f, str) for f in fields)):
            raise _bad("fields: a list of field reference names is expected.")
        expand, as_of, policy = body.get("$expand"), body.get("asOf"), body.get("errorPolicy")
        for name, value in (("$expand", expand), ("asOf", as_of), ("errorPolicy", policy)):
            if value is not None and not isinstance(value, str):
                raise _bad(f"{name}: a string is expected.")
        wanted = _parse_fields(fields)
        how = _parse_expand(expand, wanted is not None)
        return items_response(data, project, _checked_ids(ids), wanted, how, _parse_as_of(as_of), _parse_policy(policy))

    def updates(data: Organisation, project: Project | None, item_id: int, paging: SkipPage) -> Any:
        item = _live_item(data, project, item_id)
        revs = skip_page(range(1, item.rev + 1), paging.top, paging.skip, default=_HISTORY_PAGE)
        return wrapped([update_json(data, item, rev) for rev in revs])

    def update(data: Organisation, project: Project | None, item_id: int, number: int) -> Response:
        item = _live_item(data, project, item_id)
        if not 1 <= number <= item.rev:
            raise WitError(
                404, "WorkItemUpdateNotFoundException", f"Update {number} of work item {item_id} does not exist."
            )
        return FastJSONResponse(update_json(data, item, number))

    def revisions(data: Organisation, project: Project | None, item_id: int, query: RevisionsQuery) -> Response:
        item = _live_item(data, project, item_id)
        how = _parse_expand(query.expand, False)
        revs = skip_page(range(1, item.rev + 1), query.top, query.skip, default=_HISTORY_PAGE)
        return wrapped([revision_json(data, item, rev, expand=how) for rev in revs])

    def revision(
        data: Organisation, project: Project | None, item_id: int, number: int, expand: str | None
    ) -> Response:
        item = _live_item(data, project, item_id)
        if not 1 <= number <= item.rev:
            raise WitError(
                404,
                "WorkItemRevisionNotFoundException",
                f"TF401232: Work item {item_id} revision {number} does not exist, or you do not have permissions "
                "to read it.",
            )
        return FastJSONResponse(revision_json(data, item, number, expand=_parse_expand(expand, False)))

    def recycle_bin(data: Organisation, project: Project | None, ids: str | None) -> Response:
        deleted = [
            item
            for item in data.work_items.values()
            if item.is_deleted and (project is None or item.project_id == project.id)
        ]
        if ids is None:
            return wrapped([deleted_shallow_json(data, item) for item in deleted])
        wanted = set(_parse_ids(ids))
        return wrapped([deleted_reference_json(data, item) for item in deleted if item.id in wanted])

    def recycled(data: Organisation, project: Project | None, item_id: int) -> Response:
        item = data.work_items.get(item_id)
        if item is None or not item.is_deleted or (project is not None and item.project_id != project.id):
            raise WitError(
                404,
                "WorkItemNotFoundException",
                f"TF401232: Work item {item_id} does not exist in the recycle bin, or you do not have permissions "
                "to read it.",
            )
        return FastJSONResponse(deleted_work_item_json(data, item))

    def fields_list(data: Organisation) -> Response:
        return wrapped([field_json(data, field) for field in FIELDS])

    def one_field(data: Organisation, name: str) -> Response:
        found = find_field(name)
        if found is None or found.reference_name == "System.Links.LinkType":
            raise WitError(
                404, "WorkItemTrackingFieldDefinitionNotFoundException", f"TF51535: Cannot find field {name[:200]}."
            )
        return FastJSONResponse(field_json(data, found))

    async def wiql(
        data: Organisation,
        project: Project | None,
        team_name: str | None,
        request: Request,
        query: WiqlQuery,
    ) -> Response:
        limit: int | None = None
        top = query.top
        if top is not None:
            if not _WIQL_TOP.fullmatch(top):
                raise _bad(
                    f"The value {top[:20]} of the parameter $top is outside the permissible range: "
                    "it must be between 1 and 999999999.",
                    "ArgumentOutOfRangeException",
                )
            limit = int(top)
        team = None
        if team_name is not None and project is not None:
            team = data.team(project.id, team_name)
            if team is None:
                raise AzureError(
                    404, "TeamNotFoundException", f"The team with id or name {team_name[:200]} does not exist."
                )
        body = await read_json(request, _MAX_BODY)
        text = body.get("query") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise _bad("query: the WIQL text of the query is required.")
        context = QueryContext(
            data,
            datetime.now(UTC),
            project=project,
            team=team,
            me=next(iter(data.users.values()), None),
            time_precision=query.time_precision,
        )
        try:
            result = run_query(parse_wiql(text), context, top=limit)
        except WiqlError as exc:
            raise WitError(400, exc.type_key, exc.message, exc.type_name) from None
        return FastJSONResponse(query_result_json(data, result))

    # ---- work items, org- and project-level

    @app.get("/{org}/_apis/wit/workitems", responses=read)
    async def org_work_items(org: str, query: ItemsParams, api_version: ApiVersion) -> Response:
        """Up to 200 ``WorkItem``s by id, in the order asked."""
        data, _ = org_and_project(emulator, org, None)
        return list_items(data, None, query)

    @app.get("/{org}/{project}/_apis/wit/workitems", responses=read)
    async def project_work_items(org: str, project: str, query: ItemsParams, api_version: ApiVersion) -> Response:
        """Up to 200 ``WorkItem``s of the project by id."""
        data, found = org_and_project(emulator, org, project)
        return list_items(data, found, query)

    @app.get("/{org}/_apis/wit/workitems/{item_id}", responses=read)
    async def org_work_item(org: str, item_id: int, query: ItemParams, api_version: ApiVersion) -> Response:
        data, _ = org_and_project(emulator, org, None)
        return one_item(data, None, item_id, query)

    @app.get("/{org}/{project}/_apis/wit/workitems/{item_id}", responses=read)
    async def project_work_item(
        org: str, project: str, item_id: int, query: ItemParams, api_version: ApiVersion
    ) -> Response:
        data, found = org_and_project(emulator, org, project)
        return one_item(data, found, item_id, query)

    batch_body = {"requestBody": {"required": True, "content": {"application/json": {"schema": _BATCH_SCHEMA}}}}

    @app.post("/{org}/_apis/wit/workitemsbatch", responses=write, openapi_extra=batch_body)
    async def org_work_items_batch(org: str, request: Request, api_version: ApiVersion) -> Response:
        """``workItemsBatch``: the ids and options in the body."""
        data, _ = org_and_project(emulator, org, None)
        return await batch(data, None, request)

    @app.post("/{org}/{project}/_apis/wit/workitemsbatch", responses=write, openapi_extra=batch_body)
    async def project_work_items_batch(org: str, project: str, request: Request, api_version: ApiVersion) -> Response:
        data, found = org_and_project(emulator, org, project)
        return await batch(data, found, request)

    # ---- updates and revisions

    @app.get("/{org}/_apis/wit/workitems/{item_id}/updates", responses=read)
    async def org_updates(org: str, item_id: int, paging: SkipPaged, api_version: ApiVersion) -> Any:
        """``WorkItemUpdate``s, oldest first (``$top``/``$skip``)."""
        data, _ = org_and_project(emulator, org, None)
        return updates(data, None, item_id, paging)

    @app.get("/{org}/{project}/_apis/wit/workitems/{item_id}/updates", responses=read)
    async def project_updates(org: str, project: str, item_id: int, paging: SkipPaged, api_version: ApiVersion) -> Any:
        data, found = org_and_project(emulator, org, project)
        return updates(data, found, item_id, paging)

    @app.get("/{org}/_apis/wit/workitems/{item_id}/updates/{number}", responses=read)
    async def org_update(org: str, item_id: int, number: int, api_version: ApiVersion) -> Response:
        data, _ = org_and_project(emulator, org, None)
        return update(data, None, item_id, number)

    @app.get("/{org}/{project}/_apis/wit/workitems/{item_id}/updates/{number}", responses=read)
    async def project_update(org: str, project: str, item_id: int, number: int, api_version: ApiVersion) -> Response:
        data, found = org_and_project(emulator, org, project)
        return update(data, found, item_id, number)

    @app.get("/{org}/_apis/wit/workitems/{item_id}/revisions", responses=read)
    async def org_revisions(org: str, item_id: int, query: RevisionsParams, api_version: ApiVersion) -> Response:
        """Every revision as a whole ``WorkItem``, oldest first (``$top``/``$skip``)."""
        data, _ = org_and_project(emulator, org, None)
        return revisions(data, None, item_id, query)

    @app.get("/{org}/{project}/_apis/wit/workitems/{item_id}/revisions", responses=read)
    async def project_revisions(
        org: str, project: str, item_id: int, query: RevisionsParams, api_version: ApiVersion
    ) -> Response:
        data, found = org_and_project(emulator, org, project)
        return revisions(data, found, item_id, query)

    @app.get("/{org}/_apis/wit/workitems/{item_id}/revisions/{number}", responses=read)
    async def org_revision(
        org: str, item_id: int, number: int, api_version: ApiVersion, expand: Expand = None
    ) -> Response:
        data, _ = org_and_project(emulator, org, None)
        return revision(data, None, item_id, number, expand)

    @app.get("/{org}/{project}/_apis/wit/workitems/{item_id}/revisions/{number}", responses=read)
    async def project_revision(
        org: str, project: str, item_id: int, number: int, api_version: ApiVersion, expand: Expand = None
    ) -> Response:
        data, found = org_and_project(emulator, org, project)
        return revision(data, found, item_id, number, expand)

    # ---- comments (project-scoped only, as Azure's)

    @app.get("/{org}/{project}/_apis/wit/workitems/{item_id}/comments", responses=read)
    async def comments(
        org: str,
        project: str,
        item_id: int,
        api_version: ApiVersion,
        top: Annotated[int | None, Query(alias="$top", ge=1, le=_COMMENTS_PAGE)] = None,
        token: Annotated[str | None, Query(alias="continuationToken", pattern=r"^[0-9]{1,9}$")] = None,
        include_deleted: Annotated[bool, Query(alias="includeDeleted")] = False,
        expand: IgnoredExpand = None,
        order: Annotated[str | None, Query(pattern=f"^{_any_case('asc', 'desc')}$")] = None,
    ) -> Response:
        """A ``CommentList``, newest first unless ``order=asc``, paged by ``continuationToken``."""
        data, found = org_and_project(emulator, org, project)
        item = _live_item(data, found, item_id)
        listed = [c for c in item.comments if include_deleted or not c.is_deleted]
        if (order or "desc").lower() == "desc":
            listed.reverse()
        start = int(token or 0)
        end = start + (top or _COMMENTS_PAGE)
        next_token = str(end) if end < len(listed) else None
        return FastJSONResponse(
            comment_list_json(data, item, listed[start:end], total=len(listed), next_token=next_token)
        )

    def _comment(data: Organisation, item: WorkItem, comment_id: int, include_deleted: bool) -> Any:
        for comment in item.comments:
            if comment.id == comment_id and (include_deleted or not comment.is_deleted):
                return comment
        raise WitError(
            404,
            "WorkItemCommentNotFoundException",
            f"VS402625: Comment {comment_id} of work item {item.id} does not exist.",
        )

    @app.get("/{org}/{project}/_apis/wit/workitems/{item_id}/comments/{comment_id}", responses=read)
    async def comment(
        org: str,
        project: str,
        item_id: int,
        comment_id: int,
        api_version: ApiVersion,
        include_deleted: Annotated[bool, Query(alias="includeDeleted")] = False,
        expand: IgnoredExpand = None,
    ) -> Response:
        data, found = org_and_project(emulator, org, project)
        item = _live_item(data, found, item_id)
        return FastJSONResponse(comment_json(data, item, _comment(data, item, comment_id, include_deleted)))

    def _version_json(data: Organisation, item: WorkItem, found: Any) -> dict[str, Any]:
        body = comment_json(data, item, found)
        body["url"] = f"{body['url']}/versions/{found.version}"
        return body

    @app.get("/{org}/{project}/_apis/wit/workitems/{item_id}/comments/{comment_id}/versions", responses=read)
    async def comment_versions(org: str, project: str, item_id: int, comment_id: int, api_version: ApiVersion) -> Any:
        """The versions of a comment the emulator keeps: its current one."""
        data, found = org_and_project(emulator, org, project)
        item = _live_item(data, found, item_id)
        return wrapped([_version_json(data, item, _comment(data, item, comment_id, True))])

    @app.get("/{org}/{project}/_apis/wit/workitems/{item_id}/comments/{comment_id}/versions/{version}", responses=read)
    async def comment_version(
        org: str, project: str, item_id: int, comment_id: int, version: int, api_version: ApiVersion
    ) -> Response:
        data, found = org_and_project(emulator, org, project)
        item = _live_item(data, found, item_id)
        current = _comment(data, item, comment_id, True)
        if version != current.version:
            raise WitError(
                404,
                "WorkItemCommentVersionNotFoundException",
                f"Version {version} of comment {comment_id} of work item {item_id} does not exist.",
            )
        return FastJSONResponse(_version_json(data, item, current))

    # ---- recycle bin

    @app.get("/{org}/_apis/wit/recyclebin", responses=read)
    async def org_recycle_bin(org: str, api_version: ApiVersion, ids: Ids = None) -> Response:
        """Deleted work items: ``{id, url}`` each, or ``WorkItemDeleteReference``s for ``ids``."""
        data, _ = org_and_project(emulator, org, None)
        return recycle_bin(data, None, ids)

    @app.get("/{org}/{project}/_apis/wit/recyclebin", responses=read)
    async def project_recycle_bin(org: str, project: str, api_version: ApiVersion, ids: Ids = None) -> Response:
        data, found = org_and_project(emulator, org, project)
        return recycle_bin(data, found, ids)

    @app.get("/{org}/_apis/wit/recyclebin/{item_id}", responses=read)
    async def org_recycled(org: str, item_id: int, api_version: ApiVersion) -> Response:
        data, _ = org_and_project(emulator, org, None)
        return recycled(data, None, item_id)

    @app.get("/{org}/{project}/_apis/wit/recyclebin/{item_id}", responses=read)
    async def project_recycled(org: str, project: str, item_id: int, api_version: ApiVersion) -> Response:
        """A ``WorkItemDelete``: who deleted the item, when, and the item itself (``resource``)."""
        data, found = org_and_project(emulator, org, project)
        return recycled(data, found, item_id)

    # ---- work item types and states

    @app.get("/{org}/{project}/_apis/wit/workitemtypes", responses=read)
    async def work_item_types(org: str, project: str, api_version: ApiVersion) -> Response:
        data, found = org_and_project(emulator, org, project)
        assert found is not None
        return wrapped([work_item_type_json(data, found, kind) for kind in data.work_item_types.get(found.id, [])])

    @app.get("/{org}/{project}/_apis/wit/workitemtypes/{type_name}", responses=read)
    async def work_item_type(org: str, project: str, type_name: str, api_version: ApiVersion) -> Response:
        data, found = org_and_project(emulator, org, project)
        assert found is not None
        return FastJSONResponse(work_item_type_json(data, found, _type(data, found, type_name)))

    @app.get("/{org}/{project}/_apis/wit/workitemtypes/{type_name}/states", responses=read)
    async def work_item_type_states(org: str, project: str, type_name: str, api_version: ApiVersion) -> Response:
        """``WorkItemStateColor``s of a type, in workflow order."""
        data, found = org_and_project(emulator, org, project)
        assert found is not None
        kind = _type(data, found, type_name)
        return wrapped([work_item_type_state_json(s.name, s.color, s.category) for s in kind.states])

    @app.get("/{org}/_apis/wit/workitemicons", responses=read)
    async def work_item_icons(org: str, api_version: ApiVersion) -> Response:
        data = emulator.organisation(org)
        return wrapped([_icon_json(data, icon) for icon in _icons(data)])

    @app.get("/{org}/_apis/wit/workitemicons/{icon}", responses=read)
    async def work_item_icon(
        org: str, icon: str, api_version: ApiVersion, color: Annotated[str | None, Query(max_length=8)] = None
    ) -> Response:
        """A ``WorkItemIcon`` (the JSON form; the emulator serves no SVG)."""
        data = emulator.organisation(org)
        if icon not in _icons(data):
            raise WitError(404, "WorkItemIconNotFoundException", f"The icon {icon[:80]} does not exist.")
        return FastJSONResponse(_icon_json(data, icon))

    # ---- fields

    @app.get("/{org}/_apis/wit/fields", responses=read)
    async def org_fields(org: str, api_version: ApiVersion, expand: IgnoredExpand = None) -> Response:
        """Every ``WorkItemField2`` of the process."""
        return fields_list(emulator.organisation(org))

    @app.get("/{org}/{project}/_apis/wit/fields", responses=read)
    async def project_fields(org: str, project: str, api_version: ApiVersion, expand: IgnoredExpand = None) -> Response:
        data, _ = org_and_project(emulator, org, project)
        return fields_list(data)

    @app.get("/{org}/_apis/wit/fields/{name}", responses=read)
    async def org_field(org: str, name: str, api_version: ApiVersion) -> Response:
        """A field by reference name or name."""
        return one_field(emulator.organisation(org), name)

    @app.get("/{org}/{project}/_apis/wit/fields/{name}", responses=read)
    async def project_field(org: str, project: str, name: str, api_version: ApiVersion) -> Response:
        data, _ = org_and_project(emulator, org, project)
        return one_field(data, name)

    # ---- classification nodes

    @app.get("/{org}/{project}/_apis/wit/classificationnodes", responses=read)
    async def classification_nodes(
        org: str,
        project: str,
        api_version: ApiVersion,
        depth: Depth = None,
        ids: Ids = None,
        error_policy: ErrorPolicy = None,
    ) -> Response:
        """The area and iteration roots, or the nodes ``ids`` (``$depth`` levels of children)."""
        data, found = org_and_project(emulator, org, project)
        assert found is not None
        roots = _roots(data, found)
        omit = _parse_policy(error_policy)
        if ids is None:
            return wrapped([classification_node_json(data, found, root, depth or 0) for root in roots])
        by_id = {node.id: (node, parent) for root in roots for node, parent in _with_parents(root)}
        listed = []
        for node_id in _parse_ids(ids):
            if node_id not in by_id:
                if omit:
                    continue
                raise WitError(
                    404, "ClassificationNodeNotFoundException", f"VS402485: The node with id {node_id} does not exist."
                )
            node, parent = by_id[node_id]
            listed.append(classification_node_json(data, found, node, depth or 0, parent))
        return wrapped(listed)

    def node_response(data: Organisation, found: Project, group: str, path: str, depth: int | None) -> Response:
        key = group.casefold()
        if key not in ("areas", "iterations"):
            raise _bad(f"structureGroup: {group[:40]!r} is not Areas or Iterations.")
        root = (data.areas if key == "areas" else data.iterations).get(found.id)
        if root is None:
            raise WitError(404, "ClassificationNodeNotFoundException", f"The project {found.name} has no {group}.")
        node = _node(root, path)
        parent = next((p for n, p in _with_parents(root) if n is node), None)
        return FastJSONResponse(classification_node_json(data, found, node, depth or 0, parent))

    @app.get("/{org}/{project}/_apis/wit/classificationnodes/{group}", responses=read)
    async def classification_root(
        org: str, project: str, group: Group, api_version: ApiVersion, depth: Depth = None
    ) -> Response:
        """The ``Areas`` or ``Iterations`` root (``$depth`` levels of children; none by default)."""
        data, found = org_and_project(emulator, org, project)
        assert found is not None
        return node_response(data, found, group, "", depth)

    @app.get("/{org}/{project}/_apis/wit/classificationnodes/{group}/{path}", responses=read)
    async def classification_node(
        org: str, project: str, group: Group, path: str, api_version: ApiVersion, depth: Depth = None
    ) -> Response:
        """A node by its path below the root (``Web``, ``Sprint 1``; ``\\`` between levels)."""
        data, found = org_and_project(emulator, org, project)
        assert found is not None
        return node_response(data, found, group, path, depth)

    # Microsoft's client sends a nested path as one segment with ``%2F`` inside, which arrives here
    # decoded (``Web/Checkout``): the same route over several segments, left out of the description
    # since OpenAPI has no multi-segment parameter.
    app.get(
        "/{org}/{project}/_apis/wit/classificationnodes/{group}/{path:path}", responses=read, include_in_schema=False
    )(classification_node)

    # ---- WIQL, org-, project- and team-level

    wiql_body = {"requestBody": {"required": True, "content": {"application/json": {"schema": _WIQL_SCHEMA}}}}

    @app.post("/{org}/_apis/wit/wiql", responses=write, openapi_extra=wiql_body)
    async def org_wiql(org: str, request: Request, query: WiqlParams, api_version: ApiVersion) -> Response:
        """Run a WIQL query: a ``WorkItemQueryResult`` (ids or link rows only)."""
        data, _ = org_and_project(emulator, org, None)
        return await wiql(data, None, None, request, query)

    @app.post("/{org}/{project}/_apis/wit/wiql", responses=write, openapi_extra=wiql_body)
    async def project_wiql(
        org: str, project: str, request: Request, query: WiqlParams, api_version: ApiVersion
    ) -> Response:
        """WIQL with ``@Project`` (and the project's default team for ``@CurrentIteration``)."""
        data, found = org_and_project(emulator, org, project)
        return await wiql(data, found, None, request, query)

    @app.post("/{org}/{project}/{team}/_apis/wit/wiql", responses=write, openapi_extra=wiql_body)
    async def team_wiql(
        org: str, project: str, team: str, request: Request, query: WiqlParams, api_version: ApiVersion
    ) -> Response:
        """WIQL in a team's context (``@CurrentIteration`` is that team's)."""
        data, found = org_and_project(emulator, org, project)
        return await wiql(data, found, team, request, query)


def _with_parents(root: ClassificationNode) -> list[tuple[ClassificationNode, ClassificationNode | None]]:
    pairs: list[tuple[ClassificationNode, ClassificationNode | None]] = [(root, None)]
    index = 0
    while index < len(pairs):
        node = pairs[index][0]
        pairs.extend((child, node) for child in node.children)
        index += 1
    return pairs


def _icons(data: Organisation) -> list[str]:
    seen: dict[str, None] = {}
    for kinds in data.work_item_types.values():
        for kind in kinds:
            seen.setdefault(kind.icon)
    return list(seen)


def _icon_json(data: Organisation, icon: str) -> dict[str, Any]:
    return {"id": icon, "url": f"{data.url}/_apis/wit/workItemIcons/{icon}?v=2"}
