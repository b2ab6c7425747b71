"""Fetchers of the kinds release, release-definition, release-deployment (classic release management).

All three are per-project lists on the ``vsrm`` host, paged by continuation token, read for many
projects at once. The selectors' fields become the lists' own query parameters, as the reference
sends them: ``expand`` as ``$expand``, ``tagFilter`` comma-separated, the rest by name.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from typing import Final

from kiosk.ingest.fetch.base import Batch, FetchContext, Item, merge_batches
from kiosk.ingest.mapping import ResourceConfig

__all__ = [
    "PAGE_SIZE",
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
