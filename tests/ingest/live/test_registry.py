"""The handler table: every event type to the kinds it changes, merged from each module's table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from kiosk.ingest.events import KNOWN_EVENT_TYPES
from kiosk.ingest.fetch.base import FetchContext
from kiosk.ingest.fetch.registry import FETCHERS
from kiosk.ingest.live import handlers_pipelines, handlers_pull_requests, handlers_work
from kiosk.ingest.live.model import Refetched
from kiosk.ingest.live.registry import HANDLERS, handlers_for, merge_tables, read_subject
from kiosk.ingest.mapping import ResourceConfig


async def nothing(ctx: FetchContext, resource: ResourceConfig, event: Mapping[str, Any]) -> Refetched:
    return Refetched(resource.kind)


def test_the_work_pull_request_build_and_run_events_reach_their_kinds() -> None:
    for event_type in ("workitem.created", "workitem.updated", "workitem.restored", "workitem.commented"):
        assert handlers_for(event_type) == {"work-item": handlers_work.read_work_item}
    assert handlers_for("workitem.deleted") == {"work-item": handlers_work.read_work_item}
    for event_type in ("git.pullrequest.created", "git.pullrequest.updated", "git.pullrequest.merged"):
        assert handlers_for(event_type)["pull-request"] is handlers_pull_requests.read_pull_request
    assert handlers_for("build.complete")["build"] is handlers_pipelines.read_build
    for event_type in handlers_pipelines.RUN_EVENTS:
        assert handlers_for(event_type)["pipeline-run"] is handlers_pipelines.read_pipeline_run
        assert handlers_for(event_type)["pipeline-stage"] is handlers_pipelines.read_pipeline_stages
    assert handlers_for("ms.vss-unknown.thing") == {}


def test_every_handled_type_is_keyed_and_every_kind_has_a_fetcher() -> None:
    assert set(HANDLERS) <= KNOWN_EVENT_TYPES  # a handled event is ordered by its object
    assert {kind for kinds in HANDLERS.values() for kind in kinds} <= set(FETCHERS)


def test_merging_skips_kinds_without_a_fetcher_and_refuses_two_handlers_of_one_kind() -> None:
    merged = merge_tables({"a": {"build": nothing, "no-such-kind": nothing}}, {"a": {"work-item": nothing}})
    assert merged == {"a": {"build": nothing, "work-item": nothing}}

    async def other(ctx: FetchContext, resource: ResourceConfig, event: Mapping[str, Any]) -> Refetched:
        return Refetched(resource.kind)

    with pytest.raises(ValueError, match="two handlers"):
        merge_tables({"a": {"build": nothing}}, {"a": {"build": other}})


def test_events_that_only_read_their_object_have_a_subject_and_others_none() -> None:
    def envelope(event_type: str, resource: dict[str, Any]) -> dict[str, Any]:
        return {"eventType": event_type, "resource": resource}

    created = read_subject("workitem.created", envelope("workitem.created", {"id": 7}))
    updated = read_subject("workitem.updated", envelope("workitem.updated", {"id": 99, "workItemId": 7}))
    deleted = read_subject("workitem.deleted", envelope("workitem.deleted", {"id": 7}))
    assert created is not None and created == updated == deleted  # the last one read decides
    assert created != read_subject("workitem.updated", envelope("workitem.updated", {"id": 1, "workItemId": 8}))
    first = read_subject("git.pullrequest.updated", envelope("git.pullrequest.updated", {"pullRequestId": 1}))
    second = read_subject("git.pullrequest.merged", envelope("git.pullrequest.merged", {"pullRequestId": 2}))
    assert first is not None and second is not None and first != second  # two PRs of one repository
    run = {"run": {"id": 5, "pipeline": {"id": 3}}}
    stage = read_subject("ms.vss-pipelines.stage-state-changed-event", envelope("x", run))
    assert stage is not None and stage == read_subject("ms.vss-pipelines.run-state-changed-event", envelope("y", run))
    assert stage != read_subject("build.complete", envelope("build.complete", {"id": 5}))  # other handlers
    push = {"repository": {"id": "r"}, "refUpdates": [{"name": "refs/heads/main"}]}
    assert read_subject("git.push", envelope("git.push", push)) is None  # each push names its own commits
    assert read_subject("workitem.created", envelope("workitem.created", {})) is None  # names no object
