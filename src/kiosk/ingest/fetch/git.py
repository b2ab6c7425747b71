"""Fetchers of the kinds repository, repository-policy, branch, pull-request.

Each follows the reference's calls and item shapes (azure-devops-ingestion.md §1.2):

- ``repository``: every repository of every project, disabled ones included, as Azure lists them;
  ``includedFiles`` adds ``__includedFiles`` read from the default branch.
- ``repository-policy``: per healthy repository, the policies of its default branch
  (``git/policy/configurations?repositoryId=&refName=``), each with ``__repository``.
- ``branch``: per healthy repository, its ``refs/heads/*`` reshaped to
  ``{name, refName, objectId, __repository}``.
- ``pull-request``: per well-formed project, the active pull requests of its healthy repositories,
  then the abandoned and the completed ones *closed* within ``minTimeInDays``
  (``queryTimeRangeType=closed``, the fix of OCEAN #2425), at most ``maxResults`` per repository
  and status, most recently closed first. Read from Azure's project-level list
  (``{project}/_apis/git/pullrequests``) rather than the reference's three lists per repository:
  an organisation of 2,000 repositories in 50 projects costs a few hundred requests instead of 6,000,
  which is most of a resync's requests and of its share of the rate limit. The per-repository cap
  is applied to the project's list, which comes most recently closed first.

Repositories are read many at a time (:func:`merge_batches` with ``ctx.concurrency``) and their
items stream out as each page arrives. A repository whose list answers Azure's "no data" 404 (a
repository disabled after it was listed, OCEAN #412) is skipped and counted before it gave any
item; every other error raises.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from kiosk.azure.errors import NoDataNotFound
from kiosk.ingest.fetch.base import (
    UNHEALTHY_PROJECT_STATES,
    Batch,
    FetchContext,
    Item,
    gather_bounded,
    merge_batches,
)
from kiosk.ingest.fetch.included_files import IncludedFiles, branch_name, repository_path
from kiosk.ingest.mapping import ResourceConfig

__all__ = [
    "PAGE_SIZE",
    "all_repositories",
    "branch_item",
    "fetch_branches",
    "fetch_changed_pull_requests",
    "fetch_pull_requests",
    "fetch_repositories",
    "fetch_repository_policies",
    "healthy_repositories",
]

#: ``$top`` of the paged lists read here (refs, policies, pull requests).
PAGE_SIZE: Final = 100
#: Repositories per batch of the repository kind.
REPOSITORY_BATCH: Final = 100
#: The statuses read for closed pull requests, in the reference's order.
CLOSED_STATUSES: Final = ("abandoned", "completed")


async def all_repositories(ctx: FetchContext) -> list[Item]:
    """Every repository of every project (disabled ones and those of unhealthy projects included)."""
    projects = await ctx.projects()
    lists = await gather_bounded([functools.partial(ctx.repositories, p) for p in projects], ctx.concurrency)
    return [repo for repos in lists for repo in repos]


async def healthy_repositories(ctx: FetchContext) -> list[Item]:
    """The repositories child kinds read: enabled, in a well-formed project."""
    projects = await ctx.projects()
    lists = await gather_bounded([functools.partial(ctx.healthy_repositories, p) for p in projects], ctx.concurrency)
    return [repo for repos in lists for repo in repos]


def _per_repository(
    ctx: FetchContext,
    repositories: list[Item],
    read: Callable[[FetchContext, Item], AsyncIterator[Batch]],
) -> AsyncIterator[Batch]:
    """``read`` over each repository, ``ctx.concurrency`` at a time, batches yielded as they come."""
    return merge_batches([functools.partial(read, ctx, repo) for repo in repositories], ctx.concurrency)


async def _no_data_tolerant(
    ctx: FetchContext, repository: Item, what: str, pages: AsyncIterator[Batch]
) -> AsyncIterator[Batch]:
    """``pages``, except that a "no data" 404 before any page skips the repository (counted as ``what``).

    Once a page was yielded the repository was readable, so a later 404 is a failure and raises.
    """
    started = False
    try:
        async for page in pages:
            started = True
            yield page
    except NoDataNotFound:
        if started:
            raise
        ctx.skip(what, unread=True)


# ---------------------------------------------------------------------------------------------- repository


async def fetch_repositories(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """The repository kind: each project's repositories, with ``__includedFiles`` when asked."""
    requested: list[str] = list(resource.selector_value("includedFiles") or [])

    async def project_repositories(project: Item) -> AsyncIterator[Batch]:
        repositories = await ctx.repositories(project)
        for start in range(0, len(repositories), REPOSITORY_BATCH):
            batch = [ctx.stamp(dict(repo)) for repo in repositories[start : start + REPOSITORY_BATCH]]
            if requested:
                await _attach_included_files(ctx, batch, requested)
            yield batch

    projects = await ctx.projects()
    async for batch in merge_batches([functools.partial(project_repositories, p) for p in projects], ctx.concurrency):
        yield batch


async def _attach_included_files(ctx: FetchContext, repositories: list[Item], requested: list[str]) -> None:
    """``__includedFiles`` of each repository, read from its default branch, repositories at once."""

    async def one(repository: Item) -> None:
        await IncludedFiles(ctx, requested).attach(
            [repository], repository, branch_name(repository.get("defaultBranch"))
        )

    await gather_bounded([functools.partial(one, repo) for repo in repositories], ctx.concurrency)


# ---------------------------------------------------------------------------------------------- repository-policy


async def fetch_repository_policies(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """The repository-policy kind: each healthy repository's policies of its default branch."""
    async for batch in _per_repository(ctx, await healthy_repositories(ctx), _repository_policies):
        yield batch


async def _repository_policies(ctx: FetchContext, repository: Item) -> AsyncIterator[Batch]:
    params = {"repositoryId": str(repository["id"])}
    if repository.get("defaultBranch"):
        params["refName"] = str(repository["defaultBranch"])
    path = f"{repository['project']['id']}/_apis/git/policy/configurations"
    async for page in ctx.rest.pages_by_header_token(path, params=params, top=PAGE_SIZE):
        yield [ctx.stamp({**policy, "__repository": repository}) for policy in page]


# ---------------------------------------------------------------------------------------------- branch


async def fetch_branches(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """The branch kind: each healthy repository's ``refs/heads/*``, reshaped as the reference does."""
    async for batch in _per_repository(ctx, await healthy_repositories(ctx), _branches):
        yield batch


async def _branches(ctx: FetchContext, repository: Item) -> AsyncIterator[Batch]:
    pages = ctx.rest.pages_by_header_token(
        repository_path(repository, "refs"), params={"filter": "heads/"}, top=PAGE_SIZE
    )
    async for page in _no_data_tolerant(ctx, repository, "branch: repository without data (404)", pages):
        yield [
            branch_item(ctx, repository, ref["name"], ref["objectId"])
            for ref in page
            if str(ref.get("name", "")).startswith("refs/heads/")
        ]


def branch_item(ctx: FetchContext, repository: Item, ref_name: str, object_id: Any) -> Item:
    """The branch kind's item for the ref ``refs/heads/<name>`` of ``repository``: the reference's
    reshaped ``{name, refName, objectId, __repository}``, stamped (live events make the same item)."""
    return ctx.stamp(
        {
            "name": ref_name.removeprefix("refs/heads/"),
            "refName": ref_name,
            "objectId": object_id,
            "__repository": repository,
        }
    )


# ---------------------------------------------------------------------------------------------- pull-request


async def fetch_pull_requests(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """The pull-request kind: active ones, then those abandoned or completed within ``minTimeInDays``."""
    async for batch in _pull_requests(ctx, resource, None):
        yield batch


async def _pull_requests(ctx: FetchContext, resource: ResourceConfig, since: datetime | None) -> AsyncIterator[Batch]:
    """Every healthy project's pull requests: the active ones, then the closed ones from
    ``minTimeInDays`` ago — or from ``since`` when that is later (the changed-since read) — at most
    ``maxResults`` per repository and status."""
    min_days = int(resource.selector_value("minTimeInDays"))
    max_results = int(resource.selector_value("maxResults"))
    start = ctx.clock().astimezone(UTC) - timedelta(days=min_days)
    if since is not None:
        start = max(start, since.astimezone(UTC))
    closed_since = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    projects = [p for p in await ctx.projects() if str(p.get("state", "wellFormed")) not in UNHEALTHY_PROJECT_STATES]
    producers = [
        functools.partial(_project_pull_requests, ctx, project, since=closed_since, max_results=max_results)
        for project in projects
    ]
    async for batch in merge_batches(producers, ctx.concurrency):
        yield batch


async def _project_pull_requests(
    ctx: FetchContext, project: Item, *, since: str, max_results: int
) -> AsyncIterator[Batch]:
    """One project's pull requests of its healthy repositories: every active one, then per closed
    status the latest ``max_results`` closed of each repository."""
    healthy = {str(repo["id"]) for repo in await ctx.healthy_repositories(project)}
    if not healthy:
        return
    path = f"{project['id']}/_apis/git/pullrequests"

    def of_healthy(page: Batch) -> Batch:
        return [ctx.stamp(pr) for pr in page if str(pr.get("repository", {}).get("id")) in healthy]

    async for page in ctx.rest.pages_by_skip(path, params={"searchCriteria.status": "active"}, top=PAGE_SIZE):
        yield of_healthy(page)
    for status in CLOSED_STATUSES:
        params = {
            "searchCriteria.status": status,
            "searchCriteria.queryTimeRangeType": "closed",
            "searchCriteria.minTime": since,
        }
        taken: Counter[str] = Counter()
        async for page in ctx.rest.pages_by_skip(path, params=params, top=PAGE_SIZE):
            kept = []
            for pr in of_healthy(page):
                repository = str(pr["repository"]["id"])
                if taken[repository] < max_results:
                    taken[repository] += 1
                    kept.append(pr)
            yield kept


async def fetch_changed_pull_requests(
    ctx: FetchContext, resource: ResourceConfig, since: datetime
) -> AsyncIterator[Batch]:
    """The incremental sync's read of the pull-request kind: every active pull request (an update
    to one changes no time Azure filters on), then those abandoned or completed since ``since`` —
    or since ``minTimeInDays`` ago when that is later, so the selector's window holds — at most
    ``maxResults`` per repository and status, read and stamped as :func:`fetch_pull_requests` does."""
    async for batch in _pull_requests(ctx, resource, since):
        yield batch
