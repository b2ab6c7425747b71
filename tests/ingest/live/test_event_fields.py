"""What the handlers and the processor read from an envelope: object ids (whole and minimal
resources), the project, the organisation; and the retry backoff."""

from __future__ import annotations

from typing import Any

import pytest

from kiosk.ingest.live.event_fields import MalformedEvent
from kiosk.ingest.live.handlers_pipelines import build_id, run_ids
from kiosk.ingest.live.handlers_pull_requests import pull_request_id
from kiosk.ingest.live.handlers_work import work_item_id
from kiosk.ingest.live.processor import backoff_delay, event_organization

ORG = "https://dev.azure.com/acme"


def envelope(event_type: str, resource: dict[str, Any], **containers: Any) -> dict[str, Any]:
    return {"eventType": event_type, "resource": resource, "resourceContainers": containers}


def test_work_item_ids_from_whole_updates_and_minimal_resources() -> None:
    assert work_item_id(envelope("workitem.created", {"id": 42})) == 42
    # An update's own id is the update's number: the item is workItemId (or revision.id).
    assert work_item_id(envelope("workitem.updated", {"id": 3, "workItemId": 42})) == 42
    assert work_item_id(envelope("workitem.updated", {"id": 3, "revision": {"id": 42}})) == 42
    minimal = {"url": f"{ORG}/_apis/wit/workItems/77"}
    assert work_item_id(envelope("workitem.deleted", minimal)) == 77
    with pytest.raises(MalformedEvent):
        work_item_id(envelope("workitem.created", {"id": "not a number"}))
    with pytest.raises(MalformedEvent):
        work_item_id({"eventType": "workitem.created"})


def test_pull_request_build_and_run_ids() -> None:
    assert pull_request_id(envelope("git.pullrequest.updated", {"pullRequestId": 9})) == 9
    url = f"{ORG}/p/_apis/git/repositories/r/pullRequests/12"
    assert pull_request_id(envelope("git.pullrequest.updated", {"url": url})) == 12
    assert build_id(envelope("build.complete", {"id": 5})) == 5
    assert build_id(envelope("build.complete", {"url": f"{ORG}/p/_apis/build/Builds/6"})) == 6
    run = {"runId": 8, "pipeline": {"id": 2}}
    assert run_ids(envelope("ms.vss-pipelines.run-state-changed-event", run)) == (2, 8)
    by_url = {"runUrl": f"{ORG}/p/_apis/pipelines/3/runs/11"}
    assert run_ids(envelope("ms.vss-pipelines.stage-state-changed-event", by_url)) == (3, 11)
    with pytest.raises(MalformedEvent):
        run_ids(envelope("ms.vss-pipelines.run-state-changed-event", {"runId": 8}))


def test_the_organisation_is_the_one_the_containers_name() -> None:
    orgs = [ORG, "https://dev.azure.com/other"]
    named = {"collection": {"id": "c", "baseUrl": "https://dev.azure.com/Other/"}}
    assert event_organization({"resourceContainers": named}, orgs) == "https://dev.azure.com/other"
    assert event_organization({}, [ORG]) == ORG  # one organisation: nothing to choose
    with pytest.raises(MalformedEvent, match="does not read"):
        event_organization({}, orgs)
    with pytest.raises(MalformedEvent, match="does not read"):
        event_organization({"resourceContainers": {"account": {"baseUrl": "https://x/"}}}, [ORG])


def test_backoff_doubles_up_to_its_ceiling() -> None:
    assert [backoff_delay(n, 2.0, 10.0) for n in (1, 2, 3, 4, 5)] == [2.0, 4.0, 8.0, 10.0, 10.0]
