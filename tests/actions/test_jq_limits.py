"""User jq in actions and automations is bounded, over HTTP on a live server (both engines).

The issue's reproduction: an action body ``{"x": "{{ [range(1e8)] | length }}"}`` blocked every
request, ``/healthz`` included, for 45 s (libjq held the GIL in the server). Now the run is refused
with the program and the limit named, while the server keeps answering; an automation whose
condition hits a limit records a FAILURE run with the reason, and the write that fired it stands.
The server runs in this process (uvicorn in a thread), so a GIL held by jq would stall the test's
own requests too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from tests.support.live_kiosk import LiveServer, start_configured_server

from kiosk.core import jq_engine
from kiosk.store.tables import action_runs, deliveries

SLOW = "[range(1e8)] | length"
HUNGRY = '"x" | until(length > 1e9; . + .) | length'

ACTIONS = """\
egress: {allowLoopback: true}   # the targets refuse connections: started runs stay in progress
blueprints:
  - identifier: service
    schema: {properties: {tier: {type: string}}}
actions:
  - identifier: hog
    trigger: {type: self-service, operation: CREATE, blueprintIdentifier: service, userInputs: {properties: {}}}
    invocationMethod:
      type: WEBHOOK
      url: "http://127.0.0.1:9/hook"
      body: {run: "{{ .run.id }}", x: '{{ PROGRAM }}'}
  - identifier: fine
    trigger:
      type: self-service
      operation: CREATE
      blueprintIdentifier: service
      userInputs: {properties: {tier: {type: string}}}
    invocationMethod:
      type: WEBHOOK
      url: "http://127.0.0.1:9/hook"
      body: {tier: "{{ .inputs.tier }}", note: "tier {{ .inputs.tier | ascii_upcase }}"}
  - identifier: on_service
    trigger:
      type: automation
      event: {type: ENTITY_CREATED, blueprintIdentifier: service}
      condition: {type: JQ, expressions: ['.entity.identifier != ""', 'PROGRAM > 0']}
    invocationMethod: {type: WEBHOOK, url: "http://127.0.0.1:9/automation"}
"""


def server(tmp_path: Path, database_url: str, program: str, jq: str) -> Iterator[LiveServer]:
    config = f"jq: {jq}\n" + ACTIONS.replace("PROGRAM", program)
    yield from start_configured_server(tmp_path, database_url, config)


@pytest.fixture
def slow_server(tmp_path: Path, database_url: str) -> Iterator[LiveServer]:
    """The time limit at 2 s, and memory enough that time is what stops the program."""
    yield from server(tmp_path, database_url, SLOW, "{timeoutSeconds: 2, memoryMiB: 4096}")


@pytest.fixture
def hungry_server(tmp_path: Path, database_url: str) -> Iterator[LiveServer]:
    """The memory limit at 64 MiB, and time enough that memory is what stops the program."""
    yield from server(tmp_path, database_url, HUNGRY, "{timeoutSeconds: 60, memoryMiB: 64}")


def start(live: LiveServer, action: str, properties: dict[str, Any] | None = None) -> httpx.Response:
    return live.admin.post(f"/v1/actions/{action}/runs", json={"properties": properties or {}})


def wait_until_a_worker_is_busy() -> None:
    deadline = time.monotonic() + 30
    pool = jq_engine.engine()
    while pool.idle() == pool.limits.workers:
        assert time.monotonic() < deadline, "the jq program never started"
        time.sleep(0.005)


def stored_runs(live: LiveServer, action: str) -> list[Any]:
    with live.app.state.db.connect() as conn:
        return list(conn.execute(sa.select(action_runs).where(action_runs.c.action == action)))


def test_a_body_template_over_the_time_limit_fails_the_run_while_the_server_answers(slow_server: LiveServer) -> None:
    live = slow_server
    answer: list[httpx.Response] = []
    post = threading.Thread(target=lambda: answer.append(start(live, "hog")))
    post.start()
    wait_until_a_worker_is_busy()
    with httpx.Client(base_url=live.base_url, timeout=30) as other:
        health = [other.get("/healthz").status_code for _ in range(5)]
    jq_still_running = post.is_alive()
    post.join()

    assert health == [200] * 5
    assert jq_still_running  # /healthz answered while the program ran, before its run was refused
    response = answer[0]
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "template_failed"
    assert body["message"] == (
        "invocationMethod.body.x: the template '{{ [range(1e8)] | length }}' failed: "
        "jq program '[range(1e8)] | length' exceeded the time limit of 2 s (jq.timeoutSeconds)"
    )
    assert body["details"] == {"field": "invocationMethod.body.x", "limit": "time"}
    assert stored_runs(live, "hog") == []  # refused: nothing stored, nothing sent

    # The engine recovered: the next template is evaluated by a fresh worker.
    fine = start(live, "fine", {"tier": "gold"})
    assert fine.status_code == 201, fine.text
    with live.app.state.db.connect() as conn:
        delivery = conn.execute(sa.select(deliveries).where(deliveries.c.run_id == fine.json()["run"]["id"])).one()
    assert b'"tier":"gold"' in delivery.body and b'"note":"tier GOLD"' in delivery.body


def test_a_body_template_over_the_memory_limit_fails_the_run_and_the_server_stays_up(
    hungry_server: LiveServer,
) -> None:
    live = hungry_server
    response = start(live, "hog")
    assert response.status_code == 422, response.text
    assert response.json()["message"].endswith(
        f"jq program {HUNGRY!r} exceeded the memory limit of 64 MiB (jq.memoryMiB)"
    )
    assert response.json()["details"]["limit"] == "memory"
    assert live.admin.get("/healthz").status_code == 200
    assert start(live, "fine", {"tier": "silver"}).status_code == 201


def test_an_automation_condition_over_the_limit_records_a_failed_run_and_the_write_stands(
    slow_server: LiveServer,
) -> None:
    live = slow_server
    created = live.admin.post("/v1/blueprints/service/entities", json={"identifier": "billing", "properties": {}})
    assert created.status_code == 201, created.text  # the write that fired the automation stands
    assert live.admin.get("/v1/blueprints/service/entities/billing").status_code == 200
    runs = stored_runs(live, "on_service")
    assert len(runs) == 1
    run = runs[0]
    assert run.status == "FAILURE" and run.origin == "AUTOMATION"
    assert run.status_label == (
        "not sent: trigger.condition.expressions[1]: the condition failed: "
        f"jq program '{SLOW} > 0' exceeded the time limit of 2 s (jq.timeoutSeconds)"
    )
    with live.app.state.db.connect() as conn:  # nothing queued, so nothing retries it
        assert conn.execute(sa.select(deliveries).where(deliveries.c.run_id == run.id)).all() == []
    shown = live.admin.get(f"/v1/actions/runs/{run.id}").json()["run"]
    assert shown["status"] == "FAILURE" and "time limit" in shown["statusLabel"]
