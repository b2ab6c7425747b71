"""Fetcher of the kind wiki: every page of every wiki of every project.

As the reference reads them (azure-devops-ingestion.md §1.2): per project its wikis
(``{project}/_apis/wiki/wikis``), then per wiki its pages through ``pagesbatch`` (a read-only POST,
``{top, continuationToken}`` in the body, the next token in the answer's header). Each page is
stamped with ``__wiki`` (the wiki, with its ``__project``) and ``__project``. Selector options:

- ``wikiType``: only ``projectWiki`` or only ``codeWiki`` wikis (both when absent);
- ``includeContent``: each page is replaced by ``GET …/pages/{id}?includeContent=true`` (the page with
  its ``content``, ``gitItemPath``, ``url``…), at most :data:`CONTENT_CONCURRENCY` at a time per batch;
- ``apiVersion``: the ``api-version`` of the three calls (7.1 when absent).

Wikis are read many at a time and their pages stream out batch by batch. Unlike the reference, a
page whose content cannot be read is an error, not a page silently left without content.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Final

from kiosk.ingest.fetch.base import Batch, FetchContext, Item, gather_bounded, get_object, merge_batches
from kiosk.ingest.mapping import ResourceConfig

__all__ = ["CONTENT_CONCURRENCY", "DEFAULT_API_VERSION", "PAGE_SIZE", "fetch_wiki_pages"]

#: ``top`` of each ``pagesbatch`` call: the reference's page size. A module variable so that a test can
#: make a wiki span many batches.
PAGE_SIZE = 50
#: Pages whose content is read at once (the reference's limit for wiki pages).
CONTENT_CONCURRENCY: Final = 10
#: The api-version of the wiki calls when the selector gives none.
DEFAULT_API_VERSION: Final = "7.1"


async def _project_wikis(ctx: FetchContext, project: Item, params: dict[str, str]) -> list[tuple[Item, Item]]:
    """(wiki, project) for each wiki of ``project``; the wiki carries ``__project`` as the reference's does."""
    wikis: list[tuple[Item, Item]] = []
    async for page in ctx.rest.whole_list(f"{project['id']}/_apis/wiki/wikis", params=params):
        wikis.extend(({**wiki, "__project": project}, project) for wiki in page)
    return wikis


async def _with_content(ctx: FetchContext, wiki: Item, project: Item, page: Item, params: dict[str, str]) -> Item:
    """The page read by id with its content (what the reference puts in place of the batch's page)."""
    path = f"{project['id']}/_apis/wiki/wikis/{wiki['id']}/pages/{page['id']}"
    return await get_object(ctx.rest, path, params={**params, "includeContent": "true"})


async def _wiki_pages(
    ctx: FetchContext, wiki: Item, project: Item, params: dict[str, str], include_content: bool
) -> AsyncIterator[Batch]:
    path = f"{project['id']}/_apis/wiki/wikis/{wiki['id']}/pagesbatch"
    async for pages in ctx.rest.wiki_pages_batch(path, top=PAGE_SIZE, params=params):
        if include_content:
            pages = await gather_bounded(
                [functools.partial(_with_content, ctx, wiki, project, page, params) for page in pages],
                CONTENT_CONCURRENCY,
            )
        yield [ctx.stamp({**page, "__wiki": wiki, "__project": project}) for page in pages]


async def fetch_wiki_pages(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """The wiki kind: every page of the projects' wikis (of ``wikiType`` when given)."""
    wiki_type: str | None = resource.selector_value("wikiType")
    include_content = bool(resource.selector_value("includeContent"))
    params = {"api-version": str(resource.selector_value("apiVersion") or DEFAULT_API_VERSION)}
    projects = await ctx.projects()
    per_project = await gather_bounded(
        [functools.partial(_project_wikis, ctx, project, params) for project in projects], ctx.concurrency
    )
    wikis = [pair for pairs in per_project for pair in pairs if wiki_type is None or pair[0].get("type") == wiki_type]
    producers = [functools.partial(_wiki_pages, ctx, wiki, project, params, include_content) for wiki, project in wikis]
    async for batch in merge_batches(producers, ctx.concurrency):
        yield batch
