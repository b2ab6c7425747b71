"""WEBHOOK actions with ``synchronized: true`` over real HTTP, on both engines: the receiver's
HTTP answer is the run's result. A 2xx finishes the run SUCCESS naming the status; a 410 or a
schedule run out finishes it FAILURE saying the webhook failed; a run the receiver reported on
first is left as it reported; a run without the flag stays IN_PROGRESS after its delivery."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.support.live_kiosk import LiveServer, start_configured_server
from tests.support.receiver import Received, Receiver, Reply
from tests.support.servers import serving

CONFIG = """\
egress: {{allowLoopback: true}}
delivery: {{retrySchedule: [0.05, 0.05], jitter: 0, timeoutSeconds: 5}}
blueprints:
  - identifier: service
entities:
  - {{blueprint: service, identifier: billing}}
actions:
{actions}
"""

ACTION = """\
  - identifier: {name}
    trigger: {{type: self-service, operation: DAY-2, blueprintIdentifier: service}}
    invocationMethod: {{type: WEBHOOK, url: "{url}/{name}", synchronized: {synchronized}}}
"""

#: Action (and receiver path) -> synchronized, and the status the receiver answers with.
ACTIONS = {"ok": (True, 202), "gone": (True, 410), "broken": (True, 500), "reports": (True, 200), "plain": (False, 200)}
#: Where the run automation of the last test posts (answered 200, not an action of its own).
NOTIFIED = "notified"


class Kiosk:
    """Where the receiver reports back to (filled in once the server is up)."""

    client: httpx.Client | None = None


def plan(kiosk: Kiosk) -> Any:
    def answer(_n: int, request: Received) -> Reply:
        name = request.path.strip("/")
        if name == "reports" and kiosk.client is not None:
            # This receiver reports the run itself before it answers (with a 200).
            run_id = orjson.loads(request.body)["context"]["runId"]
            r = kiosk.client.patch(
                f"/v1/actions/runs/{run_id}", json={"status": "FAILURE", "statusLabel": "receiver said no"}
            )
            assert r.status_code == 200, r.text
        return Reply(200 if name == NOTIFIED else ACTIONS[name][1])

    return answer


@dataclass
class Stack:
    server: LiveServer
    receiver: Receiver
    receiver_url: str


@pytest.fixture
def stack(database_url: str, tmp_path: Path) -> Iterator[Stack]:
    kiosk = Kiosk()
    receiver = Receiver(plan(kiosk))
    with serving(receiver) as base:
        actions = "".join(
            ACTION.format(name=name, url=base, synchronized=str(sync).lower()) for name, (sync, _) in ACTIONS.items()
        )
        for server in start_configured_server(tmp_path, database_url, CONFIG.format(actions=actions)):
            kiosk.client = server.admin
            yield Stack(server, receiver, base)


@pytest.fixture
def live(stack: Stack) -> LiveServer:
    return stack.server


def start(live: LiveServer, action: str) -> str:
    r = live.admin.post(f"/v1/actions/{action}/runs", json={"entity": "billing"})
    assert r.status_code == 201, r.text
    assert r.json()["run"]["status"] == "IN_PROGRESS"
    return str(r.json()["run"]["id"])


def delivery_of(live: LiveServer, run_id: str, timeout: float = 20) -> dict[str, Any]:
    """The run's delivery once it reached a final state (delivered or dead)."""
    deadline = time.monotonic() + timeout
    while True:
        found = live.admin.get("/v1/deliveries", params={"runId": run_id}).json()["deliveries"]
        if found and found[0]["status"] in ("delivered", "dead"):
            return dict(found[0])
        assert time.monotonic() < deadline, found
        time.sleep(0.05)


def finished(live: LiveServer, run_id: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = dict(live.admin.get(f"/v1/actions/runs/{run_id}").json()["run"])
        if run["status"] in ("SUCCESS", "FAILURE"):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


def test_the_webhooks_answer_is_the_runs_result(live: LiveServer) -> None:
    ok, gone, broken, plain = (start(live, name) for name in ("ok", "gone", "broken", "plain"))

    done = finished(live, ok)
    assert done["status"] == "SUCCESS" and done["statusLabel"] == "the webhook answered HTTP 202 Accepted"
    assert done["endedAt"] is not None and delivery_of(live, ok)["status"] == "delivered"
    logs = live.admin.get(f"/v1/actions/runs/{ok}/logs").json()["runLogs"]
    assert [(entry["terminationStatus"], "HTTP 202 Accepted" in entry["message"]) for entry in logs] == [
        ("SUCCESS", True)
    ]

    failed = finished(live, gone)
    assert failed["status"] == "FAILURE"
    assert failed["statusLabel"].startswith("the webhook call failed: 410 Gone: the receiver asked to stop")

    exhausted = finished(live, broken)
    assert exhausted["status"] == "FAILURE"
    assert exhausted["statusLabel"].startswith("the webhook call failed: gave up after 3 attempts: HTTP 500")
    assert delivery_of(live, broken)["attempts"] == 3

    # Without the flag the receiver (a pipeline) reports back: delivered, and still in progress.
    assert delivery_of(live, plain)["status"] == "delivered"
    time.sleep(0.3)  # give a wrong finish every chance to happen
    still = live.admin.get(f"/v1/actions/runs/{plain}").json()["run"]
    assert still["status"] == "IN_PROGRESS" and still["statusLabel"] is None


def test_a_run_the_receiver_finished_first_is_left_alone(live: LiveServer) -> None:
    run_id = start(live, "reports")
    assert delivery_of(live, run_id)["status"] == "delivered"  # answered 200 after reporting FAILURE
    run = finished(live, run_id)
    assert run["status"] == "FAILURE" and run["statusLabel"] == "receiver said no"
    logs = live.admin.get(f"/v1/actions/runs/{run_id}/logs").json()["runLogs"]
    assert logs == []  # kiosk wrote nothing over the receiver's report


def test_a_synchronized_success_fires_run_automations(stack: Stack) -> None:
    """The worker finishes the run, not an API call: automations watching the action's runs hear of
    it all the same (the worker carries the run listener)."""
    automation = {
        "identifier": "on_ok_done",
        "trigger": {
            "type": "automation",
            "event": {"type": "RUN_UPDATED", "actionIdentifier": "ok"},
            "condition": {"type": "JQ", "expressions": ['.diff.after.status == "SUCCESS"']},
        },
        "invocationMethod": {
            "type": "WEBHOOK",
            "url": f"{stack.receiver_url}/{NOTIFIED}",
            "body": {"run": "{{ .diff.after.id }}", "label": "{{ .diff.after.statusLabel }}"},
        },
    }
    live, receiver = stack.server, stack.receiver
    r = live.admin.post("/v1/actions", json=automation)
    assert r.status_code == 201, r.text
    run_id = start(live, "ok")
    assert finished(live, run_id)["status"] == "SUCCESS"
    deadline = time.monotonic() + 20
    while not [q for q in receiver.requests if q.path == f"/{NOTIFIED}"]:
        assert time.monotonic() < deadline, [q.path for q in receiver.requests]
        time.sleep(0.05)
    (notified,) = [q for q in receiver.requests if q.path == f"/{NOTIFIED}"]
    assert orjson.loads(notified.body) == {"run": run_id, "label": "the webhook answered HTTP 202 Accepted"}
