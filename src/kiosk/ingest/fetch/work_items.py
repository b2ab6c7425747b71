"""Fetcher of the kind work-item: a WIQL query per project, paged by id ranges, then the items read
200 at a time.

Azure answers a WIQL query with ids only, and refuses one matching more than 20,000 items (VS402337)
unless ``$top`` cuts it. So, as the reference does, each project is queried with ``$top`` and
``[System.Id] > <last id> ORDER BY [System.Id]``, again and again while a page comes back full: every
matching item is reached however many there are. Unlike the reference, a user's ``ORDER BY`` in the
selector's ``wiql`` does not switch that paging off (the reference then stops at 19,999 items per
project): ``wiql`` is a WHERE fragment, and an ``ORDER BY`` the user wrote at its end is dropped
(:func:`strip_order_by`) — the order items reach the catalog in carries no meaning.

Each page of ids is read in batches of 200 (``GET {project}/_apis/wit/workitems?ids=…``), several at
once, each batch yielded as it arrives: at most one page of ids (integers) and the batches in flight
are held, never a project's items. Items deleted between the query and the read are left out
(``errorPolicy=omit`` answers null for them) and counted as skipped: they no longer exist, which is
what the catalog should say; any other failure raises.

**Unchanged items.** When the resync can skip items it holds unchanged (``ctx.unchanged``), each
batch of ids is first read cheaply — ``POST {project}/_apis/wit/workitemsbatch`` with the fields
``System.Id`` and ``System.Rev`` only, a read-only POST — and the resync told each item's version
(:func:`work_item_version`: its revision, and a fingerprint of the project stamped on it, since a
renamed project changes what a mapping of ``.__project`` gives without touching the item). Only
the items it does not hold so are read in full. The id list still comes whole from WIQL, so which
items exist stays exact.

**Changed since.** When the resource's marks date from a complete read that began at a known
server time (``ctx.changed_since``, the earliest WIQL ``asOf`` of that read, less a margin the
resync takes), the organisation is first asked which of its items changed since then (one WIQL
with ``[System.ChangedDate] >= …`` and ``timePrecision``, paged the same way). Azure sets
``System.ChangedDate`` with every revision, so an item not in that answer is at the revision its
mark was made from: it is held as marked (``ctx.as_marked``) without even its revision being read.
Only the changed items, and any the marks cannot vouch for, go through the cheap read above.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from kiosk.azure.errors import MalformedResponse
from kiosk.ingest.fetch.base import Batch, FetchContext, Item, merge_batches
from kiosk.ingest.mapping import ResourceConfig

__all__ = [
    "IDS_PER_READ",
    "WIQL_PAGE",
    "changed_since_clause",
    "fetch_changed_work_items",
    "fetch_work_items",
    "parse_azure_time",
    "project_fingerprint",
    "project_suffix",
    "read_work_items",
    "strip_order_by",
    "wiql_string",
    "work_item_mark",
    "work_item_query",
    "work_item_version",
]

WIQL_PAGE: Final = 19_999
"""Ids asked per WIQL call (``$top``): under Azure's 20,000 cap, as the reference asks."""
IDS_PER_READ: Final = 200
"""Work items per ``workitems?ids=`` call: Azure's maximum."""
WIQL_API_VERSION: Final = "7.1-preview.2"
ITEMS_API_VERSION: Final = "7.1-preview.3"
BATCH_API_VERSION: Final = "7.1-preview.1"
REVISION_FIELDS: Final = ("System.Id", "System.Rev")
"""The fields of the cheap read: enough to know an item's revision."""
SKIPPED_GONE: Final = "work-item deleted before it was read"
_log = logging.getLogger("kiosk.ingest.fetch.work_items")


def project_fingerprint(project: Item) -> str:
    """A short hash of the project as stamped on its work items (``__project``)."""
    return hashlib.blake2b(orjson.dumps(project, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()


def work_item_version(rev: int, fingerprint: str) -> str:
    """A work item's version as the resync compares it: revision and project fingerprint."""
    return f"{rev}{project_suffix(fingerprint)}"


def project_suffix(fingerprint: str) -> str:
    """How every version of an item stamped with this project ends (:func:`work_item_version`)."""
    return f"/{fingerprint}"


def work_item_mark(item: Item) -> tuple[str, str] | None:
    """(key, version) of a work item read in full, as :func:`work_item_version` gives them for the
    cheap read; None for an item without an integer ``rev`` (never skipped then)."""
    rev = item.get("rev")
    project = item.get("__project")
    if not isinstance(rev, int) or isinstance(rev, bool) or not isinstance(project, dict):
        return None
    return str(item["id"]), work_item_version(rev, project_fingerprint(project))


def wiql_string(value: str) -> str:
    """``value`` as a WIQL string literal: single quotes, a quote inside doubled."""
    return "'" + value.replace("'", "''") + "'"


def strip_order_by(fragment: str | None) -> str | None:
    """The WHERE fragment ``fragment`` without a trailing ``ORDER BY …`` (None when nothing is left).

    ``ORDER BY`` is found as two words outside string literals (``'…'``, ``"…"``) and field names
    (``[…]``), in any letter case, so ``[System.Title] = 'order by'`` is kept whole.
    """
    if fragment is None:
        return None
    text = fragment.strip()
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        if char in "'\"":
            index += 1
            while index < length:
                if text[index] == char:
                    if index + 1 < length and text[index + 1] == char:  # a doubled quote: still inside
                        index += 2
                        continue
                    break
                index += 1
            index += 1
            continue
        if char == "[":
            closing = text.find("]", index + 1)
            index = length if closing < 0 else closing + 1
            continue
        if (char in "oO") and (index == 0 or not _word_char(text[index - 1])) and _order_by_at(text, index):
            text = text[:index].strip()
            break
        index += 1
    return text or None


def _word_char(char: str) -> bool:
    return char.isalnum() or char in "_@"


def _order_by_at(text: str, index: int) -> bool:
    """Whether the words ``ORDER`` and ``BY`` (any case, any blank between) start at ``index``."""
    if text[index : index + 5].upper() != "ORDER":
        return False
    after = index + 5
    if after >= len(text) or not text[after].isspace():
        return False
    while after < len(text) and text[after].isspace():
        after += 1
    end = after + 2
    return text[after:end].upper() == "BY" and (end == len(text) or not _word_char(text[end]))


def work_item_query(project_name: str | None, fragment: str | None, after_id: int) -> str:
    """The WIQL of one page: the project's items (every project's: None) matching ``fragment``
    with an id above ``after_id``."""
    # WIQL, not SQL: the name is a quoted literal, and the fragment is the mapping author's own query.
    terms = [] if project_name is None else [f"[System.TeamProject] = {wiql_string(project_name)}"]
    if fragment:
        terms.append(f"({fragment})")
    terms.append(f"[System.Id] > {after_id}")
    return f"SELECT [System.Id] FROM WorkItems WHERE {' AND '.join(terms)} ORDER BY [System.Id] ASC"  # noqa: S608


def changed_since_clause(since: datetime) -> str:
    """The WIQL condition "changed at or after ``since``", to the second (asked with
    ``timePrecision=true``: without it Azure compares dates by day)."""
    return f"[System.ChangedDate] >= '{since.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}'"


def parse_azure_time(value: Any) -> datetime | None:
    """A time as Azure writes it (``2026-12-06T18:02:20.8125870Z``: up to seven decimals) in UTC,
    to the microsecond; None for anything else."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    whole, dot, rest = text.partition(".")
    if dot:  # keep at most six decimals; the zone after them stays
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{whole}.{rest[: min(digits, 6)]}{rest[digits:]}" if digits else whole + rest
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


async def fetch_work_items(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """Every project's work items matching the selector's ``wiql``, with ``$expand`` = ``expand``."""
    async for batch in read_work_items(ctx, resource):
        yield batch


async def read_work_items(
    ctx: FetchContext, resource: ResourceConfig, *, wiql_page: int = WIQL_PAGE, ids_per_read: int = IDS_PER_READ
) -> AsyncIterator[Batch]:
    """:func:`fetch_work_items` with the page sizes open (tests walk many pages with few items)."""
    if not 1 <= wiql_page <= 20_000 or not 1 <= ids_per_read <= IDS_PER_READ:
        raise ValueError("wiql_page must be 1..20000 and ids_per_read 1..200")
    written = resource.selector_value("wiql")
    fragment = strip_order_by(written)
    if written is not None and (fragment or "") != str(written).strip():
        _log.warning("work-item: the ORDER BY at the end of the selector's wiql is ignored (items are read by id)")
    expand = str(resource.selector_value("expand") or "All")
    projects = await ctx.projects()
    # Projects are read ``ctx.concurrency`` at once, each project's batch reads by this many at
    # once: about ``ctx.concurrency`` reads in flight in all, as many as the client runs. Each
    # merge holds up to twice its limit of batches for a slow consumer, so more reads per
    # project would hold many more ``$expand=All`` items (memory) without reading faster; with
    # many projects each reads its batches in turn, holding none ahead.
    reads_at_once = max(1, ctx.concurrency // max(1, min(len(projects), ctx.concurrency)))
    producers: list[Callable[[], AsyncIterator[Batch]]] = [
        functools.partial(_project_work_items, ctx, project, fragment, expand, wiql_page, ids_per_read, reads_at_once)
        for project in projects
    ]
    async for batch in merge_batches(producers, ctx.concurrency):
        yield batch


async def _project_work_items(
    ctx: FetchContext,
    project: Item,
    fragment: str | None,
    expand: str,
    wiql_page: int,
    ids_per_read: int,
    reads_at_once: int,
) -> AsyncIterator[Batch]:
    """One project's items: WIQL pages by id range, each page's ids read ``ids_per_read`` at a time
    (those a changed-since query and their marks vouch for are not read at all)."""
    last = 0
    fingerprint = project_fingerprint(project)
    changed = await _changed_ids(ctx, wiql_page)
    while True:
        full_page = await _page_of_ids(ctx, project, fragment, last, wiql_page)
        ids = full_page
        if changed is not None and ctx.as_marked is not None:
            suffix = project_suffix(fingerprint)
            stable = {str(item_id): suffix for item_id in ids if item_id not in changed}
            held = await ctx.as_marked(stable) if stable else set()
            ids = [item_id for item_id in ids if str(item_id) not in held]
        reads: list[Callable[[], AsyncIterator[Batch]]] = [
            functools.partial(_read_items, ctx, project, ids[start : start + ids_per_read], expand, fingerprint)
            for start in range(0, len(ids), ids_per_read)
        ]
        if reads_at_once == 1:  # one at a time: read in turn, nothing buffered ahead
            for read in reads:
                async for batch in read():
                    yield batch
        else:
            async for batch in merge_batches(reads, reads_at_once):
                yield batch
        if len(full_page) < wiql_page:
            return
        last = full_page[-1]


async def _changed_ids(ctx: FetchContext, wiql_page: int) -> set[int] | None:
    """The ids of the organisation's work items changed since ``ctx.changed_since``; None when the
    resync gave no such time (nothing to vouch for).

    One query for the whole organisation, read once and shared by every project's read: an item
    changed anywhere is read again wherever it is listed, so neither the user's ``wiql`` (which
    may name ``@project``) nor the project is needed to narrow it."""
    since = ctx.changed_since
    if ctx.unchanged is None or ctx.as_marked is None or since is None:
        return None

    async def read() -> set[int]:
        query = changed_since_clause(since)
        changed: set[int] = set()
        last = 0
        while True:
            ids = await _page_of_ids(ctx, None, query, last, wiql_page, time_precision=True)
            changed.update(ids)
            if len(ids) < wiql_page:
                return changed
            last = ids[-1]

    return await ctx.shared(("work-item", "changed-since", since.isoformat(), str(wiql_page)), read)


async def _page_of_ids(
    ctx: FetchContext,
    project: Item | None,
    fragment: str | None,
    after_id: int,
    top: int,
    *,
    time_precision: bool = False,
) -> list[int]:
    """One page of ids of ``project``'s (None: the organisation's) items matching ``fragment``."""
    path = "_apis/wit/wiql" if project is None else f"{project['id']}/_apis/wit/wiql"
    query = work_item_query(None if project is None else str(project["name"]), fragment, after_id)
    params = {"api-version": WIQL_API_VERSION, "$top": str(top)}
    if time_precision:
        params["timePrecision"] = "true"
    answer = await ctx.rest.post(path, {"query": query}, idempotent=True, params=params)
    references = answer.get("workItems") if isinstance(answer, dict) else None
    if not isinstance(references, list):
        raise MalformedResponse("POST", ctx.rest.urls.url("core", path), "a WIQL answer without workItems")
    as_of = parse_azure_time(answer.get("asOf"))
    if as_of is not None:  # the items listed are read after this: it bounds when the read began
        ctx.server_time(as_of)
    ids = [int(reference["id"]) for reference in references]
    # Paging rests on ascending ids above ``after_id``; an answer breaking that would loop or skip.
    if any(item_id <= after_id for item_id in ids) or ids != sorted(set(ids)) or len(ids) > top:
        raise MalformedResponse("POST", ctx.rest.urls.url("core", path), "WIQL ids not ascending above the last page")
    return ids


async def _revisions(ctx: FetchContext, project: Item, ids: list[int]) -> dict[int, int]:
    """The revision of each of ``ids`` that still exists (the cheap read: two fields)."""
    path = f"{project['id']}/_apis/wit/workitemsbatch"
    answer = await ctx.rest.post(
        path,
        {"ids": ids, "fields": list(REVISION_FIELDS), "errorPolicy": "omit"},
        idempotent=True,
        params={"api-version": BATCH_API_VERSION},
    )
    listed = answer.get("value") if isinstance(answer, dict) else None
    if not isinstance(listed, list):
        raise MalformedResponse("POST", ctx.rest.urls.url("core", path), "a work-item batch answer without value")
    asked = set(ids)
    out: dict[int, int] = {}
    for item in listed:
        if item is None:
            continue
        item_id, rev = item.get("id"), item.get("rev")
        if not isinstance(item_id, int) or not isinstance(rev, int) or item_id not in asked:
            raise MalformedResponse("POST", ctx.rest.urls.url("core", path), "a work item without its id or rev")
        out[item_id] = rev
    return out


async def _read_items(
    ctx: FetchContext, project: Item, ids: list[int], expand: str, fingerprint: str
) -> AsyncIterator[Batch]:
    if ctx.unchanged is not None:
        revisions = await _revisions(ctx, project, ids)
        for _ in range(len(ids) - len(revisions)):
            ctx.skip(SKIPPED_GONE)
        versions = {str(item_id): work_item_version(rev, fingerprint) for item_id, rev in revisions.items()}
        held = await ctx.unchanged(versions)
        ids = [item_id for item_id in ids if item_id in revisions and str(item_id) not in held]
        if not ids:
            return
    answer = await ctx.rest.get(
        f"{project['id']}/_apis/wit/workitems",
        params={
            "ids": ",".join(str(item_id) for item_id in ids),
            "$expand": expand,
            "errorPolicy": "omit",
            "api-version": ITEMS_API_VERSION,
        },
    )
    listed = answer.get("value") if isinstance(answer, dict) else None
    if not isinstance(listed, list) or len(listed) != len(ids):
        shown = ctx.rest.urls.url("core", f"{project['id']}/_apis/wit/workitems")
        raise MalformedResponse("GET", shown, f"asked for {len(ids)} work items, the answer lists another number")
    items: Batch = []
    for item in listed:
        if item is None:
            ctx.skip(SKIPPED_GONE)
            continue
        item["__projectId"] = project["id"]
        item["__project"] = project
        items.append(ctx.stamp(item))
    yield items


async def fetch_changed_work_items(
    ctx: FetchContext,
    resource: ResourceConfig,
    since: datetime,
    *,
    wiql_page: int = WIQL_PAGE,
    ids_per_read: int = IDS_PER_READ,
) -> AsyncIterator[Batch]:
    """The incremental sync's read: every project's work items matching the selector's ``wiql``
    whose ``System.ChangedDate`` is ``since`` or later (to the second: ``timePrecision``), read in
    full as :func:`read_work_items` reads them (same ``$expand``, batches, stamps).

    The changed-since condition is ANDed with the user's fragment, so an item that changed and no
    longer matches is not read here: the full resync, which lists ids whole, removes it."""
    if not 1 <= wiql_page <= 20_000 or not 1 <= ids_per_read <= IDS_PER_READ:
        raise ValueError("wiql_page must be 1..20000 and ids_per_read 1..200")
    fragment = strip_order_by(resource.selector_value("wiql"))
    clause = changed_since_clause(since)
    query = clause if fragment is None else f"({fragment}) AND {clause}"
    expand = str(resource.selector_value("expand") or "All")
    projects = await ctx.projects()

    async def project_changes(project: Item) -> AsyncIterator[Batch]:
        fingerprint = project_fingerprint(project)
        last = 0
        while True:
            ids = await _page_of_ids(ctx, project, query, last, wiql_page, time_precision=True)
            for start in range(0, len(ids), ids_per_read):
                async for batch in _read_items(ctx, project, ids[start : start + ids_per_read], expand, fingerprint):
                    yield batch
            if len(ids) < wiql_page:
                return
            last = ids[-1]

    producers = [functools.partial(project_changes, project) for project in projects]
    async for batch in merge_batches(producers, ctx.concurrency):
        yield batch
