"""Fetchers of the kinds pipeline, pipeline-run, pipeline-stage, build, environment, pipeline-deployment.

Each reads its lists per project (many projects, pipelines or environments at once, bounded by
``ctx.concurrency``), paged by continuation token, and adds the fields the reference's mappings
read: ``__projectId`` (pipeline, build), ``__project`` (the project as the projects list gives it;
for a pipeline deployment, its environment's project reference, as the reference takes it),
``__pipeline`` (a run's pipeline), ``__build`` (a stage's build), ``__repository`` (a pipeline's
build-definition repository, with ``includeRepo``) and ``__firstCommit`` (with
``enrichWithFirstCommit``).

Unlike the reference, a definition, timeline or changes list that cannot be read fails the kind:
a pipeline without its repository, or a build without its stages, is never passed on as if it had none.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, Final

from kiosk.azure.errors import MalformedResponse, NoDataNotFound
from kiosk.ingest.fetch.base import Batch, FetchContext, Item, gather_bounded, get_object, merge_batches
from kiosk.ingest.mapping import ResourceConfig

__all__ = [
    "OPEN_BUILD_STATUSES",
    "PAGE_SIZE",
    "azure_instant",
    "fetch_builds",
    "fetch_changed_builds",
    "fetch_changed_pipeline_runs",
    "fetch_environments",
    "fetch_pipeline_deployments",
    "fetch_pipeline_runs",
    "fetch_pipeline_stages",
    "fetch_pipelines",
    "first_commit",
]

#: ``$top`` of every list read here: the reference's page size. A module variable so that a test can
#: make lists span many pages.
PAGE_SIZE = 50

#: The builds list's order, as the reference asks for it (newest queued first).
BUILDS_ORDER: Final = {"queryOrder": "queueTimeDescending"}


def _pages(ctx: FetchContext, path: str, params: dict[str, str] | None = None) -> AsyncIterator[list[Any]]:
    return ctx.rest.pages_by_header_token(path, params=params, top=PAGE_SIZE)


def _each_project(
    ctx: FetchContext, projects: list[Item], read: Callable[[FetchContext, Item], AsyncIterator[Batch]]
) -> list[Callable[[], AsyncIterator[Batch]]]:
    """One producer per project: ``read(ctx, project)`` yielding that project's batches."""
    return [functools.partial(read, ctx, project) for project in projects]


# ---------------------------------------------------------------------------------------------- pipeline


async def fetch_pipelines(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """Every project's pipelines (``_apis/pipelines``) with ``__projectId``; with ``includeRepo``, each
    pipeline's build definition's repository (and the definition's project) as ``__repository``."""
    include_repo = bool(resource.selector_value("includeRepo"))

    async def project_pipelines(ctx: FetchContext, project: Item) -> AsyncIterator[Batch]:
        async for page in _pages(ctx, f"{project['id']}/_apis/pipelines"):
            items = [{**pipeline, "__projectId": project["id"]} for pipeline in page]
            if include_repo and items:
                definitions = await gather_bounded(
                    [functools.partial(_definition, ctx, project, item) for item in items], ctx.concurrency
                )
                for item, definition in zip(items, definitions, strict=True):
                    item["__repository"] = _definition_repository(ctx, definition)
            yield [ctx.stamp(item) for item in items]

    projects = await ctx.projects()
    async for batch in merge_batches(_each_project(ctx, projects, project_pipelines), ctx.concurrency):
        yield batch


async def _definition(ctx: FetchContext, project: Item, pipeline: Item) -> Item:
    return await get_object(ctx.rest, f"{project['id']}/_apis/build/definitions/{pipeline['id']}")


def _definition_repository(ctx: FetchContext, definition: Item) -> Item:
    """``{**definition.repository, "project": definition.project}``, the reference's ``__repository``."""
    repository = definition.get("repository")
    if not isinstance(repository, dict):
        url = ctx.rest.urls.url("core", str(definition.get("url") or "_apis/build/definitions"))
        raise MalformedResponse("GET", url, f"build definition {definition.get('id')} has no repository")
    return {**repository, "project": definition.get("project")}


# ---------------------------------------------------------------------------------------------- pipeline-run


async def fetch_pipeline_runs(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """Every pipeline's runs (``_apis/pipelines/{id}/runs``) with ``__project`` and ``__pipeline``: the
    pipelines of all projects are listed first (a few per project), then their runs read many at once."""
    projects = await ctx.projects()
    listed = await gather_bounded([functools.partial(_all_pipelines, ctx, p) for p in projects], ctx.concurrency)
    producers = [
        functools.partial(_pipeline_runs, ctx, project, pipeline)
        for project, pipelines in zip(projects, listed, strict=True)
        for pipeline in pipelines
    ]
    async for batch in merge_batches(producers, ctx.concurrency):
        yield batch


async def _all_pipelines(ctx: FetchContext, project: Item) -> list[Item]:
    pipelines: list[Item] = []
    async for page in _pages(ctx, f"{project['id']}/_apis/pipelines"):
        pipelines.extend(page)
    return pipelines


async def _pipeline_runs(ctx: FetchContext, project: Item, pipeline: Item) -> AsyncIterator[Batch]:
    async for page in _pages(ctx, f"{project['id']}/_apis/pipelines/{pipeline['id']}/runs"):
        yield [ctx.stamp({**run, "__project": project, "__pipeline": pipeline}) for run in page]


# ---------------------------------------------------------------------------------------------- build


async def fetch_builds(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """Every build of every project, newest queued first, with ``__projectId`` and ``__project``; with
    ``enrichWithFirstCommit``, the earliest commit each build shipped as ``__firstCommit``."""
    async for batch in _enriched_builds(ctx, resource, _project_builds):
        yield batch


#: One project's builds, page by page, as :func:`_project_builds` shapes them.
_ProjectBuilds = Callable[[FetchContext, Item], AsyncIterator[list[Item]]]


async def _enriched_builds(ctx: FetchContext, resource: ResourceConfig, builds: _ProjectBuilds) -> AsyncIterator[Batch]:
    """Every project's ``builds`` (the full read's or the changed-since read's), with the
    resource's ``enrichWithFirstCommit`` applied: the one enrichment of both reads of the kind."""
    enrich = bool(resource.selector_value("enrichWithFirstCommit"))

    async def project_builds(ctx: FetchContext, project: Item) -> AsyncIterator[Batch]:
        async for page in builds(ctx, project):
            if enrich and page:
                commits = await gather_bounded(
                    [functools.partial(first_commit, ctx, project, build) for build in page], ctx.concurrency
                )
                for build, commit in zip(page, commits, strict=True):
                    if commit is not None:
                        build["__firstCommit"] = commit
            yield [ctx.stamp(build) for build in page]

    projects = await ctx.projects()
    async for batch in merge_batches(_each_project(ctx, projects, project_builds), ctx.concurrency):
        yield batch


async def _project_builds(ctx: FetchContext, project: Item) -> AsyncIterator[list[Item]]:
    """The project's builds page by page, each a new dict with ``__projectId`` and ``__project``."""
    async for page in _pages(ctx, f"{project['id']}/_apis/build/builds", dict(BUILDS_ORDER)):
        yield [{**build, "__projectId": project["id"], "__project": project} for build in page]


async def first_commit(ctx: FetchContext, project: Item, build: Item) -> Item | None:
    """The reference's ``__firstCommit``: of the build's changes (every page), the one with the earliest
    timestamp, with ``__sha``, ``__timestamp`` and ``__commitCount`` (how many changes); when no change
    has a timestamp, the build's source commit (``git/repositories/{repo}/commits/{sha}``) with a count
    of 1; None when neither is there (no changes and no source commit: a build of a configured
    pipeline without a repository), or when the build's repository is gone or disabled (Azure's "no
    data" 404 below it; counted): builds outlive their repository, and one deleted repository must
    not fail every later resync of the organisation. Any other error raises."""
    changes: list[Item] = []
    async for page in _pages(ctx, f"{project['id']}/_apis/build/builds/{build['id']}/changes"):
        changes.extend(page)
    timestamped = [change for change in changes if change.get("timestamp")]
    if timestamped:
        earliest = min(timestamped, key=lambda change: _instant(str(change["timestamp"])))
        return {
            **earliest,
            "__sha": earliest.get("id"),
            "__timestamp": earliest["timestamp"],
            "__commitCount": len(changes),
        }
    source_version = build.get("sourceVersion")
    repository_id = (build.get("repository") or {}).get("id")
    if not (source_version and repository_id):
        return None
    try:
        commit = await get_object(
            ctx.rest,
            f"{project['id']}/_apis/git/repositories/{repository_id}/commits/{source_version}",
            params={"api-version": "7.1"},
        )
    except NoDataNotFound:
        ctx.skip("build: first commit in a repository that is gone or disabled")
        return None
    committed = (commit.get("committer") or {}).get("date")
    if not committed:
        return None
    return {**commit, "__sha": commit.get("commitId") or source_version, "__timestamp": committed, "__commitCount": 1}


def _instant(timestamp: str) -> datetime:
    """A change's timestamp as a UTC instant; one that does not parse sorts last (as the reference's does)."""
    try:
        value = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------------------- pipeline-stage


async def fetch_pipeline_stages(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """Every build's stages: the builds of each project (as the build kind reads them), then each build's
    timeline, keeping its records of type ``Stage`` with ``__project`` and ``__build``."""

    async def project_stages(ctx: FetchContext, project: Item) -> AsyncIterator[Batch]:
        async for page in _project_builds(ctx, project):
            timelines = await gather_bounded(
                [functools.partial(_timeline, ctx, project, build) for build in page], ctx.concurrency
            )
            stages = [
                ctx.stamp({**record, "__project": project, "__build": build})
                for build, records in zip(page, timelines, strict=True)
                for record in records
                if record.get("type") == "Stage"
            ]
            if stages:
                yield stages

    projects = await ctx.projects()
    async for batch in merge_batches(_each_project(ctx, projects, project_stages), ctx.concurrency):
        yield batch


async def _timeline(ctx: FetchContext, project: Item, build: Item) -> list[Item]:
    path = f"{project['id']}/_apis/build/builds/{build['id']}/timeline"
    timeline = await get_object(ctx.rest, path)
    records = timeline.get("records")
    if not isinstance(records, list):
        raise MalformedResponse("GET", ctx.rest.urls.url("core", path), "the timeline has no records list")
    return [record for record in records if isinstance(record, dict)]


# ---------------------------------------------------------------------------------------------- environment


async def fetch_environments(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """Every project's environments (``distributedtask/environments``), as Azure gives them."""

    async def project_environments(ctx: FetchContext, project: Item) -> AsyncIterator[Batch]:
        async for page in _pages(ctx, f"{project['id']}/_apis/distributedtask/environments"):
            yield [ctx.stamp(dict(environment)) for environment in page]

    projects = await ctx.projects()
    async for batch in merge_batches(_each_project(ctx, projects, project_environments), ctx.concurrency):
        yield batch


async def fetch_pipeline_deployments(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """Every environment's deployment records (``environmentdeploymentrecords``) with ``__project``: the
    environment's ``project`` reference, as the reference sets it (the listed project if it has none)."""

    async def environment_records(ctx: FetchContext, project: Item, environment: Item) -> AsyncIterator[Batch]:
        owner = environment.get("project") or project
        path = f"{project['id']}/_apis/distributedtask/environments/{environment['id']}/environmentdeploymentrecords"
        async for page in _pages(ctx, path):
            yield [ctx.stamp({**record, "__project": owner}) for record in page]

    async def project_records(ctx: FetchContext, project: Item) -> AsyncIterator[Batch]:
        async for page in _pages(ctx, f"{project['id']}/_apis/distributedtask/environments"):
            producers = [functools.partial(environment_records, ctx, project, environment) for environment in page]
            async for batch in merge_batches(producers, ctx.concurrency):
                yield batch

    projects = await ctx.projects()
    async for batch in merge_batches(_each_project(ctx, projects, project_records), ctx.concurrency):
        yield batch


# ---------------------------------------------------------------------------------------------- changed since

#: The builds not completed yet, as one ``statusFilter``: Azure's ``BuildStatus`` is a flags enum,
#: so its names combine with commas.
OPEN_BUILD_STATUSES: Final = "notStarted,inProgress,cancelling,postponed"


def azure_instant(moment: datetime) -> str:
    """``moment`` as the time parameters of Azure's lists take it (UTC, to the second)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _changed_project_builds(ctx: FetchContext, project: Item, since: datetime) -> AsyncIterator[list[Item]]:
    """The project's builds that may have changed since ``since``: every one not completed, then
    the completed ones finished at or after ``since`` (oldest finished first), each once, shaped
    as :func:`_project_builds` shapes them. The open ones are read first: a build that completes
    between the two lists is then met again, completed, and that later copy is the one kept."""
    path = f"{project['id']}/_apis/build/builds"
    seen: set[Any] = set()
    lists = (
        {"statusFilter": OPEN_BUILD_STATUSES, **BUILDS_ORDER},
        {"statusFilter": "completed", "queryOrder": "finishTimeAscending", "minTime": azure_instant(since)},
    )
    for params in lists:
        async for page in _pages(ctx, path, params):
            fresh = []
            for build in page:
                if params["statusFilter"] == "completed" or build.get("id") not in seen:
                    seen.add(build.get("id"))
                    fresh.append({**build, "__projectId": project["id"], "__project": project})
            if fresh:
                yield fresh


async def fetch_changed_builds(ctx: FetchContext, resource: ResourceConfig, since: datetime) -> AsyncIterator[Batch]:
    """The incremental sync's read of the build kind: the builds of every project not completed
    or finished since ``since``, enriched as :func:`fetch_builds` enriches them."""

    def changed(ctx: FetchContext, project: Item) -> AsyncIterator[list[Item]]:
        return _changed_project_builds(ctx, project, since)

    async for batch in _enriched_builds(ctx, resource, changed):
        yield batch


async def fetch_changed_pipeline_runs(
    ctx: FetchContext, resource: ResourceConfig, since: datetime
) -> AsyncIterator[Batch]:
    """The incremental sync's read of the pipeline-run kind: a pipeline's run is its build, so the
    builds changed since ``since`` (as :func:`fetch_changed_builds` finds them) name (pipeline, run);
    each run is read (``_apis/pipelines/{pipeline}/runs/{run}``) with ``__project`` and
    ``__pipeline`` as :func:`fetch_pipeline_runs` gives them. A build whose pipeline is no longer
    listed has no run to read (the full resync removes its run)."""

    async def project_runs(ctx: FetchContext, project: Item) -> AsyncIterator[Batch]:
        changed: list[tuple[int, int]] = []
        async for page in _changed_project_builds(ctx, project, since):
            for build in page:
                definition = build.get("definition")
                if isinstance(definition, dict) and isinstance(definition.get("id"), int):
                    changed.append((int(definition["id"]), int(build["id"])))
        if not changed:
            return
        pipelines = {pipeline.get("id"): pipeline for pipeline in await _all_pipelines(ctx, project)}
        wanted = [(pipelines[pid], run_id) for pid, run_id in dict.fromkeys(changed) if pid in pipelines]

        async def read(pipeline: Item, run_id: int) -> Item:
            path = f"{project['id']}/_apis/pipelines/{pipeline['id']}/runs/{run_id}"
            run = await get_object(ctx.rest, path)
            return ctx.stamp({**run, "__project": project, "__pipeline": pipeline})

        for start in range(0, len(wanted), PAGE_SIZE):
            chunk = wanted[start : start + PAGE_SIZE]
            yield await gather_bounded([functools.partial(read, p, r) for p, r in chunk], ctx.concurrency)

    projects = await ctx.projects()
    async for batch in merge_batches(_each_project(ctx, projects, project_runs), ctx.concurrency):
        yield batch
