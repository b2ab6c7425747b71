"""Fetchers of the kinds release, release-definition, release-deployment (classic release management).

All three are per-project lists on the ``vsrm`` host, paged by continuation token, read for many
projects at once. The selectors' fields become the lists' own query parameters, as the reference
sends them: ``expand`` as ``$expand``, ``tagFilter`` comma-separated, the rest by name.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, Final

from kiosk.ingest.fetch.base import Batch, FetchContext, Item, merge_batches
from kiosk.ingest.fetch.work_items import parse_azure_time
from kiosk.ingest.mapping import ResourceConfig

__all__ = [
    "PAGE_SIZE",
    "fetch_changed_releases",
    "fetch_release_definitions",
    "fetch_release_deployments",
    "fetch_releases",
    "selector_params",
]

#: ``$top`` of every list read here: the reference's page size. A module variable so that a test can
#: make lists span many pages.
PAGE_SIZE = 50

#: Selector fields of the release kind sent under their own name (``expand`` and ``tagFilter`` are rewritten).
RELEASE_FILTERS: Final = ("statusFilter", "sourceBranchFilter", "minCreatedTime", "maxCreatedTime")


def selector_params(resource: ResourceConfig, names: tuple[str, ...]) -> dict[str, str]:
    """The query parameters ``names`` of ``resource``'s selector make: unset ones left out, ``expand`` sent as
    ``$expand``, ``tagFilter`` (a list) joined with commas; the reference's ``to_params``."""
    params: dict[str, str] = {}
    for name in names:
        value = resource.selector_value(name)
        if value is None:
            continue
        if name == "expand":
            params["$expand"] = str(value)
        elif name == "tagFilter":
            params["tagFilter"] = ",".join(str(tag) for tag in value)
        else:
            params[name] = str(value)
    return params


async def _per_project(
    ctx: FetchContext, path: str, params: dict[str, str], shape: Callable[[Item, Item], Item]
) -> AsyncIterator[Batch]:
    """``{projectId}/{path}`` on vsrm for every project at once, each item made by ``shape(item, project)``."""

    async def one(project: Item) -> AsyncIterator[Batch]:
        pages = ctx.rest.pages_by_header_token(f"{project['id']}/{path}", host="vsrm", params=params, top=PAGE_SIZE)
        async for page in pages:
            yield [ctx.stamp(shape(item, project)) for item in page]

    projects = await ctx.projects()
    async for batch in merge_batches([functools.partial(one, project) for project in projects], ctx.concurrency):
        yield batch


def _as_is(item: Item, project: Item) -> Item:
    """An item as Azure gives it (it names its project itself: ``projectReference``)."""
    return dict(item)


def _with_project(item: Item, project: Item) -> Item:
    return {**item, "__project": project}


async def fetch_releases(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """Every project's releases (``release/releases``), filtered by the selector's options."""
    params = selector_params(resource, ("expand", "tagFilter", *RELEASE_FILTERS))
    async for batch in _per_project(ctx, "_apis/release/releases", params, _as_is):
        yield batch


async def fetch_release_definitions(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """Every project's release definitions (``release/definitions``, ``$expand=environments`` unless the
    selector says otherwise, ``tagFilter``) with ``__project``."""
    params = selector_params(resource, ("expand", "tagFilter"))
    async for batch in _per_project(ctx, "_apis/release/definitions", params, _with_project):
        yield batch


async def fetch_release_deployments(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """Every project's release deployments (``release/deployments``), as Azure gives them."""
    async for batch in _per_project(ctx, "_apis/release/deployments", {}, _as_is):
        yield batch


#: Release ids per ``releaseIdFilter`` read (they go in the URL).
RELEASE_IDS_PER_READ: Final = 100


async def fetch_changed_releases(ctx: FetchContext, resource: ResourceConfig, since: datetime) -> AsyncIterator[Batch]:
    """The incremental sync's read of the release kind, per project: the releases created since
    ``since`` (the selector's ``minCreatedTime`` when later), then those with a deployment modified
    since ``since`` (``release/deployments?minModifiedTime=``), read from the releases list with
    ``releaseIdFilter`` — so each is read as :func:`fetch_releases` reads it, the selector's
    filters and ``$expand`` included. A release is read once per pass."""
    params = selector_params(resource, ("expand", "tagFilter", *RELEASE_FILTERS))
    instant = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    floor = parse_azure_time(params.get("minCreatedTime"))
    created = dict(params)
    if floor is None or floor < since:
        created["minCreatedTime"] = instant

    async def one(project: Item) -> AsyncIterator[Batch]:
        base = f"{project['id']}/_apis/release"
        seen: set[Any] = set()
        async for page in ctx.rest.pages_by_header_token(
            f"{base}/releases", host="vsrm", params=created, top=PAGE_SIZE
        ):
            seen.update(item.get("id") for item in page)
            yield [ctx.stamp(_as_is(item, project)) for item in page]
        deployed: dict[int, None] = {}
        async for page in ctx.rest.pages_by_header_token(
            f"{base}/deployments", host="vsrm", params={"minModifiedTime": instant}, top=PAGE_SIZE
        ):
            for deployment in page:
                release = deployment.get("release")
                release_id = release.get("id") if isinstance(release, dict) else None
                if isinstance(release_id, int) and release_id not in seen:
                    deployed[release_id] = None
        ids = list(deployed)
        for start in range(0, len(ids), RELEASE_IDS_PER_READ):
            chosen = {**params, "releaseIdFilter": ",".join(str(i) for i in ids[start : start + RELEASE_IDS_PER_READ])}
            async for page in ctx.rest.pages_by_header_token(
                f"{base}/releases", host="vsrm", params=chosen, top=PAGE_SIZE
            ):
                yield [ctx.stamp(_as_is(item, project)) for item in page]

    projects = await ctx.projects()
    async for batch in merge_batches([functools.partial(one, project) for project in projects], ctx.concurrency):
        yield batch
