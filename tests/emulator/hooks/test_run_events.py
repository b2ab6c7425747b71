"""Events of the runs the emulator executes, delivered through the same path as every org event:
run state, build.complete, and stage and job state from the runner's timeline."""

from __future__ import annotations

from typing import Any

from tests.emulator.conftest import EmulatorFactory, LiveEmulator
from tests.emulator.hooks.conftest import (
    HOOKS_CONFIG,
    PROJECT_ID,
    SUBSCRIPTIONS,
    assert_basic_auth_and_headers,
    subscribe,
    subscribe_with_basic_auth_and_headers,
)
from tests.support.pipelines import SEED_BODY, SEED_CHECKSUM
from tests.support.receiver import Receiver

from kiosk.azure.run_events import parse_run_state_event, run_state_subscription

RUN_STATE = "ms.vss-pipelines.run-state-changed-event"
STAGES = """\
stages:
- stage: Build
  jobs:
  - job: Compile
    steps:
    - script: echo compiling
- stage: Deploy
  jobs:
  - job: Ship
    steps:
    - script: echo shipping
"""


def envelopes(rec: Receiver, event_type: str, count: int) -> list[dict[str, Any]]:
    return [r.json() for r in rec.wait(count, where=lambda r: r.json()["eventType"] == event_type)]


def test_run_state_events_reach_the_subscriber_with_auth_and_headers(
    hooked: LiveEmulator, receiver: tuple[str, Receiver]
) -> None:
    url, rec = receiver
    created = subscribe_with_basic_auth_and_headers(hooked, url, "kiosk", "hook-password", RUN_STATE, "pipelines")
    assert created["consumerInputs"]["basicAuthPassword"] == "********"
    response = hooked.trigger("IncomingWH", SEED_BODY, {"X-WH-Checksum": SEED_CHECKSUM})
    run_id = int(response.headers["X-Kiosk-Queued-Runs"])
    events = envelopes(rec, RUN_STATE, 2)
    states = [(e["resource"]["run"]["state"], e["resource"]["run"].get("result")) for e in events]
    assert states == [("inProgress", None), ("completed", "succeeded")]
    assert_basic_auth_and_headers(rec.requests[-1].headers, "kiosk", "hook-password")
    event = events[-1]
    assert event["publisherId"] == "pipelines" and event["subscriptionId"] == created["id"]
    assert [e["notificationId"] for e in events] == [1, 2]
    resource = event["resource"]
    assert resource["run"]["id"] == run_id == resource["runId"] and resource["run"]["_links"]["web"]["href"]
    assert resource["pipeline"]["name"] == "hello" and resource["projectId"] == PROJECT_ID
    assert resource["runUrl"] == resource["run"]["url"]
    assert (
        event["resourceVersion"] == "5.1-preview.1"
        and event["message"]["text"] == f"Run {resource['run']['name']} succeeded."
    )
    assert event["resourceContainers"]["project"]["id"] == PROJECT_ID


def test_kiosks_own_subscription_is_taken_and_its_events_parse(
    hooked: LiveEmulator, receiver: tuple[str, Receiver]
) -> None:
    """What kiosk sends (http on loopback with a password, completed runs only) keeps working."""
    url, rec = receiver
    response = hooked.client.post(SUBSCRIPTIONS, json=run_state_subscription(url, "kiosk", "pw"))
    assert response.status_code == 200, response.text
    hooked.trigger("IncomingWH", SEED_BODY, {"X-WH-Checksum": SEED_CHECKSUM})
    (event,) = envelopes(rec, RUN_STATE, 1)
    parsed = parse_run_state_event(event)
    assert parsed.state == "completed" and parsed.finished_status == "SUCCESS" and parsed.web_url
    assert event["message"] is None  # messagesToSend: none


def test_publisher_filters_and_build_complete(hooked: LiveEmulator, receiver: tuple[str, Receiver]) -> None:
    url, rec = receiver
    completed = subscribe(
        hooked, url, RUN_STATE, "pipelines", publisher_inputs={"runStateId": "Completed", "pipelineId": "1"}
    )
    never = subscribe(hooked, url, RUN_STATE, "pipelines", publisher_inputs={"pipelineId": "99"})
    builds = subscribe(
        hooked,
        url,
        "build.complete",
        publisher_inputs={"definitionName": "HELLO", "buildStatus": "Succeeded"},
        resourceDetailsToSend="all",
    )
    hooked.trigger("IncomingWH", SEED_BODY, {"X-WH-Checksum": SEED_CHECKSUM})
    (build,) = envelopes(rec, "build.complete", 1)
    envelopes(rec, RUN_STATE, 1)
    assert build["subscriptionId"] == builds["id"] and build["resourceVersion"] == "2.0"
    assert build["resource"]["result"] == "succeeded" and build["resource"]["buildNumber"]
    assert build["resource"]["uri"].startswith("vstfs:///Build/Build/")
    note_count = {
        s["id"]: hooked.client.get(f"/fabrikam/_apis/hooks/subscriptions/{s['id']}/notifications").json()["count"]
        for s in (completed, never)
    }
    assert note_count == {completed["id"]: 1, never["id"]: 0}


def test_stage_and_job_state_events_follow_the_runner(
    start_emulator: EmulatorFactory, receiver: tuple[str, Receiver]
) -> None:
    emulator = start_emulator(config=HOOKS_CONFIG, pipeline=STAGES)
    url, rec = receiver
    stages = subscribe(
        emulator,
        url,
        "ms.vss-pipelines.stage-state-changed-event",
        "pipelines",
        publisher_inputs={"projectId": PROJECT_ID},
    )
    deploy_jobs = subscribe(
        emulator,
        url,
        "ms.vss-pipelines.job-state-changed-event",
        "pipelines",
        publisher_inputs={"projectId": PROJECT_ID, "stageNameId": "Deploy", "jobStateId": "completed"},
    )
    run = emulator.client.post("/fabrikam/web/_apis/pipelines/1/runs?api-version=7.1", json={})
    assert run.status_code == 200, run.text
    emulator.wait_for_run(run.json()["id"])
    stage_events = envelopes(rec, "ms.vss-pipelines.stage-state-changed-event", 4)
    seen = [(e["resource"]["stage"]["name"], e["resource"]["stage"]["state"]) for e in stage_events]
    assert seen == [("Build", "running"), ("Build", "completed"), ("Deploy", "running"), ("Deploy", "completed")]
    done = stage_events[1]["resource"]
    assert done["stage"]["result"] == "succeeded" and done["stageName"] == "Build"
    assert done["runId"] == run.json()["id"] and done["pipeline"]["id"] == 1 and done["projectId"] == PROJECT_ID
    timeline = emulator.client.get(f"/fabrikam/web/_apis/build/builds/{done['runId']}/timeline").json()
    assert done["stage"]["id"] in {r["id"] for r in timeline["records"] if r["type"] == "Stage"}
    (job,) = envelopes(rec, "ms.vss-pipelines.job-state-changed-event", 1)
    assert job["subscriptionId"] == deploy_jobs["id"] and job["subscriptionId"] != stages["id"]
    assert job["resource"]["job"]["name"] == "Ship" and job["resource"]["job"]["state"] == "completed"
    assert job["resource"]["job"]["result"] == "succeeded" and job["resource"]["stage"]["name"] == "Deploy"
