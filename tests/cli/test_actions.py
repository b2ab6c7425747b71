"""``kiosk actions|runs|deliveries``: the API-backed commands against a real server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.support.kiosk_yaml import kiosk_yaml, self_service_action
from tests.support.live_kiosk import LiveServer, start_configured_server
from tests.support.polling import wait_for
from tests.support.receiver import Receiver, Reply
from tests.support.servers import serving
from typer.testing import CliRunner

from kiosk.cli.app import app


def config(url: str) -> str:
    """The ``ping`` action delivering to ``url``."""
    return kiosk_yaml(
        egress={"allowLoopback": True},
        delivery={"retrySchedule": [0.05, 0.05]},
        blueprints=[{"identifier": "service"}],
        entities=[{"blueprint": "service", "identifier": "billing"}],
        actions=[
            self_service_action(
                "ping",
                title="Ping",
                inputs={"count": {"type": "number"}, "note": {"type": "string"}},
                invocation={"type": "WEBHOOK", "url": url},
            )
        ],
    )


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LiveServer, Receiver]]:
    """kiosk on loopback with the ``ping`` action delivering to ``receiver``; the CLI pointed at it."""
    receiver = Receiver()
    with serving(receiver) as base:
        database_url = f"sqlite:///{tmp_path / 'k.db'}"
        for live in start_configured_server(tmp_path, database_url, config(base + "/in")):
            monkeypatch.setenv("KIOSK_HOME", str(tmp_path / "home"))
            monkeypatch.setenv("KIOSK_URL", live.base_url)
            monkeypatch.delenv("KIOSK_CLIENT_ID", raising=False)
            yield live, receiver


def kiosk(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_actions_list_and_run_to_the_end(stack: tuple[LiveServer, Receiver]) -> None:
    live, receiver = stack
    listed = kiosk("actions", "list")
    assert listed.exit_code == 0, listed.output
    assert "ping" in listed.stdout and "WEBHOOK" in listed.stdout
    result = kiosk("actions", "run", "ping", "--entity", "billing", "-i", "count=3", "-i", "note=hi there")
    assert result.exit_code == 0, result.output
    run_id = result.stdout.split()[1].rstrip(":")
    wait_for(lambda: receiver.requests, timeout=10)
    assert orjson.loads(receiver.requests[0].body)["payload"]["properties"] == {"count": 3, "note": "hi there"}
    # The receiver reports back; `runs show --follow` ends with it.
    live.admin.post(f"/v1/actions/runs/{run_id}/logs", json={"message": "step one done"})
    live.admin.patch(f"/v1/actions/runs/{run_id}", json={"status": "SUCCESS", "link": "http://ci/1"})
    followed = kiosk("runs", "show", run_id, "--follow")
    assert followed.exit_code == 0, followed.output
    assert (
        "SUCCESS" in followed.stdout and "link: http://ci/1" in followed.stdout and "step one done" in followed.stdout
    )


def test_a_failed_run_makes_follow_exit_1(stack: tuple[LiveServer, Receiver]) -> None:
    live, _ = stack
    run_id = live.admin.post("/v1/actions/ping/runs", json={"entity": "billing", "properties": {}}).json()["run"]["id"]
    live.admin.patch(f"/v1/actions/runs/{run_id}", json={"status": "FAILURE", "statusLabel": "broke"})
    followed = kiosk("runs", "show", run_id, "--follow")
    assert followed.exit_code == 1 and "FAILURE (broke)" in followed.stdout


def test_deliveries_list_show_and_redeliver(stack: tuple[LiveServer, Receiver]) -> None:
    live, receiver = stack
    receiver.script(Reply(410))  # the receiver says: stop → dead at once (and 200 from then on)
    run = live.admin.post("/v1/actions/ping/runs", json={"entity": "billing", "properties": {}}).json()["run"]
    wait_for(lambda: receiver.requests, timeout=10)
    deliveries: list[dict[str, Any]] = []
    for _ in range(100):
        deliveries = live.admin.get("/v1/deliveries", params={"runId": run["id"]}).json()["deliveries"]
        if deliveries and deliveries[0]["status"] == "dead":
            break
        threading.Event().wait(0.05)
    (delivery,) = deliveries
    listed = kiosk("deliveries", "list", "--status", "dead")
    assert listed.exit_code == 0 and delivery["id"] in listed.stdout
    shown = kiosk("deliveries", "show", delivery["id"])
    assert shown.exit_code == 0 and "dead after 1 attempt(s)" in shown.stdout and ": 410" in shown.stdout
    again = kiosk("deliveries", "redeliver", delivery["id"])
    assert again.exit_code == 0 and "pending" in again.stdout
    for _ in range(100):
        if live.admin.get(f"/v1/deliveries/{delivery['id']}").json()["delivery"]["status"] == "delivered":
            break
        threading.Event().wait(0.05)
    detail = live.admin.get(f"/v1/deliveries/{delivery['id']}").json()["delivery"]
    assert detail["status"] == "delivered" and [a["statusCode"] for a in detail["attemptLog"]] == [410, 200]


def test_errors_are_one_line(stack: tuple[LiveServer, Receiver], monkeypatch: pytest.MonkeyPatch) -> None:
    missing = kiosk("actions", "run", "nope")
    assert missing.exit_code == 1 and missing.stderr.startswith("error: POST /v1/actions/nope/runs: HTTP 404")
    bad = kiosk("actions", "run", "ping", "-i", "novalue")
    assert bad.exit_code == 1 and "must be NAME=VALUE" in bad.stderr
    monkeypatch.setenv("KIOSK_HOME", "/nonexistent")
    creds = kiosk("actions", "list")
    assert creds.exit_code == 1 and "no API credentials" in creds.stderr
    monkeypatch.setenv("KIOSK_CLIENT_ID", "x")
    monkeypatch.setenv("KIOSK_CLIENT_SECRET", "y")
    wrong = kiosk("actions", "list")
    assert wrong.exit_code == 1 and "HTTP 401" in wrong.stderr
