"""Build and pipeline events: ``build.complete`` to the build kind; a pipeline run's, stage's or
job's state change to pipeline-run and pipeline-stage.

Each object is read again and enriched as :mod:`kiosk.ingest.fetch.pipelines` enriches it:

* build: ``GET {project}/_apis/build/builds/{id}`` with ``__projectId``, ``__project`` and, with
  ``enrichWithFirstCommit``, ``__firstCommit`` — unlike the reference, whose build.complete only
  refreshes test runs, so its build entities never change after they are first read;
* pipeline-run: ``GET {project}/_apis/pipelines/{pipeline}/runs/{run}`` with ``__project`` and
  ``__pipeline`` (the pipeline as the project's pipelines list gives it, as the resync stamps it);
* pipeline-stage: the run's build (a run's id is its build's) and its timeline's ``Stage`` records,
  each with ``__project`` and ``__build``.

A 404 on the read again makes the object gone (a run or build deleted by retention); a build in a
project the organisation no longer lists (or excluded by tag) is gone too. Stages are never gone
by an event: a timeline keeps its stages.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, Final

from kiosk.azure.errors import MalformedResponse
from kiosk.azure.errors import NotFound as AzureNotFound
from kiosk.ingest.fetch.base import FetchContext, Item, get_object
from kiosk.ingest.fetch.pipelines import PAGE_SIZE, first_commit
from kiosk.ingest.live.event_fields import MalformedEvent, event_project_id, event_resource, find_project, integer_at
from kiosk.ingest.live.model import EventHandler, Refetched
from kiosk.ingest.mapping import ResourceConfig

__all__ = ["HANDLERS", "build_id", "read_build", "read_pipeline_run", "read_pipeline_stages", "run_ids"]

_BUILD_IN_URL: Final = re.compile(r"/builds/(\d+)", re.IGNORECASE)
_RUN_IN_URL: Final = re.compile(r"/runs/(\d+)", re.IGNORECASE)
_PIPELINE_IN_URL: Final = re.compile(r"/pipelines/(\d+)", re.IGNORECASE)

RUN_EVENTS: Final = (
    "ms.vss-pipelines.run-state-changed-event",
    "ms.vss-pipelines.stage-state-changed-event",
    "ms.vss-pipelines.job-state-changed-event",
)


def build_id(event: Mapping[str, Any]) -> int:
    """The build a ``build.complete`` event is about (its ``id``, else the id in its ``url``: all an
    org-scoped subscription's minimal resource holds)."""
    return integer_at(event_resource(event), ("id",), url_pattern=_BUILD_IN_URL)


def run_ids(event: Mapping[str, Any]) -> tuple[int, int]:
    """(pipeline id, run id) of a pipelines event (a run's id is its build's)."""
    resource = event_resource(event)
    run = integer_at(resource, ("runId",), ("run", "id"), url_pattern=_RUN_IN_URL, url_keys=("runUrl", "url"))
    try:
        pipeline = integer_at(resource, ("pipeline", "id"), ("run", "pipeline", "id"))
    except MalformedEvent:
        url = resource.get("runUrl")
        found = _PIPELINE_IN_URL.search(url) if isinstance(url, str) else None
        if found is None:
            raise
        pipeline = int(found.group(1))
    return pipeline, run


async def _project(ctx: FetchContext, event: Mapping[str, Any]) -> Item | None:
    project_id = event_project_id(event, ("projectId",), ("project", "id"))
    if project_id is None:
        raise MalformedEvent("the event names no project (resourceContainers.project.id)")
    return await find_project(ctx, project_id=project_id)


async def _build(ctx: FetchContext, project: Item, build_id: int) -> Item | None:
    """The build as the builds list gives it, with ``__projectId`` and ``__project``; None: gone."""
    try:
        build = await get_object(ctx.rest, f"{project['id']}/_apis/build/builds/{build_id}")
    except AzureNotFound:
        return None
    return {**build, "__projectId": project["id"], "__project": project}


def _gone(ctx: FetchContext, kind: str, event: Mapping[str, Any], **known: Any) -> Refetched:
    return Refetched(kind, gone=[ctx.stamp({**dict(event_resource(event)), **known})])


async def read_build(ctx: FetchContext, resource: ResourceConfig, event: Mapping[str, Any]) -> Refetched:
    """The build the event names, as the build fetcher gives it."""
    number = build_id(event)
    project = await _project(ctx, event)
    build = None if project is None else await _build(ctx, project, number)
    if project is None or build is None:
        return _gone(ctx, "build", event, id=number)
    if resource.selector_value("enrichWithFirstCommit"):
        commit = await first_commit(ctx, project, build)
        if commit is not None:
            build["__firstCommit"] = commit
    return Refetched("build", items=[ctx.stamp(build)])


async def _pipelines(ctx: FetchContext, project: Item) -> list[Item]:
    """The project's pipelines as listed (the objects the resync stamps as ``__pipeline``)."""
    listed: list[Item] = []
    async for page in ctx.rest.pages_by_header_token(f"{project['id']}/_apis/pipelines", top=PAGE_SIZE):
        listed.extend(page)
    return listed


async def read_pipeline_run(ctx: FetchContext, resource: ResourceConfig, event: Mapping[str, Any]) -> Refetched:
    """The run the event names, as the pipeline-run fetcher gives it."""
    pipeline_id, run_id = run_ids(event)
    project = await _project(ctx, event)
    if project is None:
        return _gone(ctx, "pipeline-run", event, id=run_id)
    try:
        run = await get_object(ctx.rest, f"{project['id']}/_apis/pipelines/{pipeline_id}/runs/{run_id}")
    except AzureNotFound:
        return _gone(ctx, "pipeline-run", event, id=run_id)
    pipelines = await ctx.shared(("live", "pipelines", str(project["id"])), functools.partial(_pipelines, ctx, project))
    pipeline = next((p for p in pipelines if p.get("id") == pipeline_id), None)
    if pipeline is None:  # created since the list was read: as Azure answers it alone
        pipeline = await get_object(ctx.rest, f"{project['id']}/_apis/pipelines/{pipeline_id}")
    return Refetched("pipeline-run", items=[ctx.stamp({**run, "__project": project, "__pipeline": pipeline})])


async def read_pipeline_stages(ctx: FetchContext, resource: ResourceConfig, event: Mapping[str, Any]) -> Refetched:
    """The stages of the run's build (its timeline's ``Stage`` records), as the stage fetcher gives them."""
    _, run_id = run_ids(event)
    project = await _project(ctx, event)
    build = None if project is None else await _build(ctx, project, run_id)
    if project is None or build is None:
        return Refetched("pipeline-stage")
    path = f"{project['id']}/_apis/build/builds/{run_id}/timeline"
    try:
        timeline = await get_object(ctx.rest, path)
    except AzureNotFound:  # no timeline yet: a run not started
        return Refetched("pipeline-stage")
    records = timeline.get("records")
    if not isinstance(records, list):
        raise MalformedResponse("GET", ctx.rest.urls.url("core", path), "the timeline has no records list")
    stages = [
        ctx.stamp({**record, "__project": project, "__build": build})
        for record in records
        if isinstance(record, dict) and record.get("type") == "Stage"
    ]
    return Refetched("pipeline-stage", items=stages)


HANDLERS: dict[str, dict[str, EventHandler]] = {
    "build.complete": {"build": read_build},
    **{
        event_type: {"pipeline-run": read_pipeline_run, "pipeline-stage": read_pipeline_stages}
        for event_type in RUN_EVENTS
    },
}
