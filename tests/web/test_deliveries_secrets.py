"""Delivery bodies carrying secret inputs, over real HTTP on both engines: sealed in
``deliveries.body``, clear and validly signed at the receiver (first time and redelivered), and
never shown by the API or the CLI, nor written into attempt records or logs."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from tests.delivery.receiver import Received, Receiver, Reply
from tests.servers import serving
from tests.web.live import LiveServer, start_server
from typer.testing import CliRunner

from kiosk.cli import app as cli
from kiosk.core.signing import verify_port_webhook, verify_standard_webhook
from kiosk.settings import Settings
from kiosk.store.tables import deliveries, delivery_attempts

SIGNING = "web-signing-secret-31c"
TOKEN = "rotate-me-4b9e2f-secret"

CONFIG = """\
egress: {{allowLoopback: true}}
delivery: {{retrySchedule: [0.05, 0.05], timeoutSeconds: 5, signingSecret: {{env: KIOSK_TEST_HOOK_SECRET}}}}
blueprints:
  - identifier: service
entities:
  - {{blueprint: service, identifier: billing}}
actions:
  - identifier: rotate
    trigger:
      type: self-service
      operation: DAY-2
      blueprintIdentifier: service
      userInputs:
        properties:
          token: {{type: string, format: secret}}
          note: {{type: string}}
    invocationMethod: {{type: WEBHOOK, url: "{url}/rotate"}}
"""


@pytest.fixture
def stack(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LiveServer, Receiver]]:
    # The receiver echoes what it got: whatever kiosk records of its answer must still hold no secret.
    receiver = Receiver(lambda _n, request: Reply(200, body=b"got " + request.body))
    monkeypatch.setenv("KIOSK_TEST_HOOK_SECRET", SIGNING)
    with serving(receiver) as base:
        (tmp_path / "kiosk.yaml").write_text(CONFIG.format(url=base))
        settings = Settings.from_env(
            {
                "KIOSK_HOME": str(tmp_path / "home"),
                "KIOSK_DATABASE_URL": database_url,
                "KIOSK_CONFIG": str(tmp_path / "kiosk.yaml"),
            }
        )
        for live in start_server(settings):
            monkeypatch.setenv("KIOSK_HOME", str(tmp_path / "home"))
            monkeypatch.setenv("KIOSK_URL", live.base_url)
            monkeypatch.delenv("KIOSK_CLIENT_ID", raising=False)
            yield live, receiver


def wait_for_requests(receiver: Receiver, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.requests) < count:
        assert time.monotonic() < deadline, f"{len(receiver.requests)} of {count} requests arrived"
        time.sleep(0.02)


def wait_delivered(live: LiveServer, delivery_id: str, attempts: int, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        shown = dict(live.admin.get(f"/v1/deliveries/{delivery_id}").json()["delivery"])
        if shown["status"] == "delivered" and shown["attempts"] >= attempts:
            return shown
        assert time.monotonic() < deadline, shown
        time.sleep(0.05)


def assert_clear_and_signed(request: Received, delivery_id: str) -> None:
    assert orjson.loads(request.body)["payload"]["properties"] == {"token": TOKEN, "note": "n1"}
    h = request.headers
    assert h["webhook-id"] == delivery_id
    assert verify_standard_webhook(
        SIGNING, request.body, msg_id=delivery_id, timestamp=h["webhook-timestamp"], signature=h["webhook-signature"]
    )
    assert verify_port_webhook(SIGNING, request.body, timestamp=h["x-port-timestamp"], signature=h["x-port-signature"])


def test_a_secret_input_is_sealed_at_rest_sent_in_clear_and_never_shown(
    stack: tuple[LiveServer, Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    live, receiver = stack
    answers: list[str] = []
    r = live.admin.post(
        "/v1/actions/rotate/runs", json={"entity": "billing", "properties": {"token": TOKEN, "note": "n1"}}
    )
    assert r.status_code == 201, r.text
    run_id = r.json()["run"]["id"]
    wait_for_requests(receiver, 1)
    listed = live.admin.get("/v1/deliveries", params={"runId": run_id})
    answers.append(listed.text)
    (summary,) = listed.json()["deliveries"]
    delivery_id = summary["id"]
    assert_clear_and_signed(receiver.requests[0], delivery_id)

    # The raw column, read straight from the table, holds no trace of the secret (nor the rest).
    db = live.app.state.db
    with db.connect() as conn:
        raw = bytes(conn.execute(sa.select(deliveries.c.body).where(deliveries.c.id == delivery_id)).scalar_one())
    assert TOKEN.encode() not in raw and b"n1" not in raw and raw.startswith(b"kb1:")

    shown = wait_delivered(live, delivery_id, 1)
    answers.append(orjson.dumps(shown).decode())
    assert shown["body"].startswith("[withheld")  # neither the clear body nor the ciphertext
    assert (
        shown["attemptLog"][0]["responseBody"].startswith("got ") and "****" in shown["attemptLog"][0]["responseBody"]
    )

    # Redelivered through the API, then through the CLI: sealed still, clear and signed on the wire.
    again = live.admin.post(f"/v1/deliveries/{delivery_id}/redeliver")
    assert again.status_code == 200, again.text
    answers.append(again.text)
    wait_for_requests(receiver, 2)
    wait_delivered(live, delivery_id, 2)
    cli_outputs = []
    redelivered = CliRunner().invoke(cli, ["deliveries", "redeliver", delivery_id])
    assert redelivered.exit_code == 0, redelivered.output
    cli_outputs.append(redelivered.output)
    wait_for_requests(receiver, 3)
    final = wait_delivered(live, delivery_id, 3)
    answers.append(orjson.dumps(final).decode())
    for request in receiver.requests:
        assert_clear_and_signed(request, delivery_id)
    with db.connect() as conn:
        assert (
            bytes(conn.execute(sa.select(deliveries.c.body).where(deliveries.c.id == delivery_id)).scalar_one()) == raw
        )
        attempt_rows = conn.execute(
            sa.select(delivery_attempts).where(delivery_attempts.c.delivery_id == delivery_id)
        ).all()
    assert len(attempt_rows) == 3 and all(TOKEN not in repr(tuple(row)) for row in attempt_rows)

    for args in (["deliveries", "show", delivery_id], ["deliveries", "list", "--run", run_id]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        cli_outputs.append(result.output)
    assert delivery_id in cli_outputs[1]
    for text in answers + cli_outputs:
        assert TOKEN not in text and "kb1:" not in text
    assert TOKEN not in caplog.text


def test_a_run_without_secrets_keeps_its_body_in_clear_and_shown(stack: tuple[LiveServer, Receiver]) -> None:
    live, receiver = stack
    r = live.admin.post("/v1/actions/rotate/runs", json={"entity": "billing", "properties": {"note": "plain"}})
    run_id = r.json()["run"]["id"]
    wait_for_requests(receiver, 1)
    (summary,) = live.admin.get("/v1/deliveries", params={"runId": run_id}).json()["deliveries"]
    with live.app.state.db.connect() as conn:
        row = conn.execute(sa.select(deliveries).where(deliveries.c.id == summary["id"])).one()
    assert "sealed" not in row.target and bytes(row.body) == receiver.requests[0].body
    shown = wait_delivered(live, summary["id"], 1)
    assert orjson.loads(shown["body"])["payload"]["properties"] == {"note": "plain"}
