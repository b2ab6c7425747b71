"""Delivery bodies carrying secret inputs, over real HTTP on both engines: sealed in
``deliveries.body``, clear and validly signed at the receiver (first time and redelivered), and
never shown by the API or the CLI, nor written into attempt records or logs."""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

import orjson
import pytest
import sqlalchemy as sa
from tests.support.kiosk_yaml import kiosk_yaml, self_service_action
from tests.support.live_kiosk import LiveServer, start_configured_server
from tests.support.receiver import Received, Receiver, Reply
from tests.support.servers import serving
from typer.testing import CliRunner

from kiosk.cli.app import app as cli
from kiosk.core.signing import verify_port_webhook, verify_standard_webhook
from kiosk.store.tables import deliveries, delivery_attempts

SIGNING = "web-signing-secret-31c"
TOKEN = "rotate-me-4b9e2f-secret"
#: A value that is not secret: long enough that random ciphertext never holds it by chance (a
#: two-byte one did, once in a few hundred runs).
NOTE = "plain-note-8d2c41e07b"


def config(url: str) -> str:
    """The ``rotate`` action, its ``token`` input a secret, delivering signed to ``url``."""
    return kiosk_yaml(
        egress={"allowLoopback": True},
        delivery={
            "retrySchedule": [0.05, 0.05],
            "timeoutSeconds": 5,
            "signingSecret": {"env": "KIOSK_TEST_HOOK_SECRET"},
        },
        blueprints=[{"identifier": "service"}],
        entities=[{"blueprint": "service", "identifier": "billing"}],
        actions=[
            self_service_action(
                "rotate",
                inputs={"token": {"type": "string", "format": "secret"}, "note": {"type": "string"}},
                invocation={"type": "WEBHOOK", "url": f"{url}/rotate"},
            )
        ],
    )


@pytest.fixture
def stack(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LiveServer, Receiver]]:
    # The receiver echoes what it got: whatever kiosk records of its answer must still hold no secret.
    yield from start_stack(database_url, tmp_path, monkeypatch, lambda body: b"got " + body)


def start_stack(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: Callable[[bytes], bytes]
) -> Iterator[tuple[LiveServer, Receiver]]:
    """kiosk and a receiver whose answer is ``answer(request body)``."""
    receiver = Receiver(lambda _n, request: Reply(200, body=answer(request.body)))
    monkeypatch.setenv("KIOSK_TEST_HOOK_SECRET", SIGNING)
    with serving(receiver) as base:
        for live in start_configured_server(tmp_path, database_url, config(base)):
            monkeypatch.setenv("KIOSK_HOME", str(tmp_path / "home"))
            monkeypatch.setenv("KIOSK_URL", live.base_url)
            monkeypatch.delenv("KIOSK_CLIENT_ID", raising=False)
            yield live, receiver


def wait_delivered(live: LiveServer, delivery_id: str, attempts: int, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        shown = dict(live.admin.get(f"/v1/deliveries/{delivery_id}").json()["delivery"])
        if shown["status"] == "delivered" and shown["attempts"] >= attempts:
            return shown
        assert time.monotonic() < deadline, shown
        time.sleep(0.05)


def assert_clear_and_signed(request: Received, delivery_id: str) -> None:
    assert orjson.loads(request.body)["payload"]["properties"] == {"token": TOKEN, "note": NOTE}
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
        "/v1/actions/rotate/runs", json={"entity": "billing", "properties": {"token": TOKEN, "note": NOTE}}
    )
    assert r.status_code == 201, r.text
    run_id = r.json()["run"]["id"]
    receiver.wait(1)
    listed = live.admin.get("/v1/deliveries", params={"runId": run_id})
    answers.append(listed.text)
    (summary,) = listed.json()["deliveries"]
    delivery_id = summary["id"]
    assert_clear_and_signed(receiver.requests[0], delivery_id)

    # The raw column, read straight from the table, holds no trace of the secret (nor the rest).
    db = live.app.state.db
    with db.connect() as conn:
        raw = bytes(conn.execute(sa.select(deliveries.c.body).where(deliveries.c.id == delivery_id)).scalar_one())
    assert TOKEN.encode() not in raw and NOTE.encode() not in raw and raw.startswith(b"kb2:")

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
    receiver.wait(2)
    wait_delivered(live, delivery_id, 2)
    cli_outputs = []
    redelivered = CliRunner().invoke(cli, ["deliveries", "redeliver", delivery_id])
    assert redelivered.exit_code == 0, redelivered.output
    cli_outputs.append(redelivered.output)
    receiver.wait(3)
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
        assert TOKEN not in text and "kb2:" not in text
    assert TOKEN not in caplog.text


def test_a_run_without_secrets_keeps_its_body_in_clear_and_shown(stack: tuple[LiveServer, Receiver]) -> None:
    live, receiver = stack
    r = live.admin.post("/v1/actions/rotate/runs", json={"entity": "billing", "properties": {"note": "plain"}})
    run_id = r.json()["run"]["id"]
    receiver.wait(1)
    (summary,) = live.admin.get("/v1/deliveries", params={"runId": run_id}).json()["deliveries"]
    with live.app.state.db.connect() as conn:
        row = conn.execute(sa.select(deliveries).where(deliveries.c.id == summary["id"])).one()
    # as sent, but for the run's report token, which only the sent body holds (filled in at send time)
    token = live.app.state.report_tokens.token_for(run_id).encode()
    assert b"krt_****" in bytes(row.body) and token in receiver.requests[0].body
    assert "sealed" not in row.target and bytes(row.body).replace(b"krt_****", token) == receiver.requests[0].body
    shown = wait_delivered(live, summary["id"], 1)
    assert orjson.loads(shown["body"])["payload"]["properties"] == {"note": "plain"}


def transformed(body: bytes) -> bytes:
    """What a careless receiver answers: the request back under simple transforms. The secret
    sits inside the body, so each base64 form is a larger base64 string around it, at whatever
    byte alignment the body gives it; the prefixes add the other two alignments."""
    text = body.decode()
    lines = [
        "upper " + text.upper(),
        "lower " + text.lower(),
        "url " + quote(text, safe=""),
        "urlplus " + quote_plus(text),
        "json " + orjson.dumps(text).decode(),
        "hex " + body.hex(),
        "HEX " + body.hex().upper(),
        *(f"b64/{p} " + base64.b64encode(b"x" * p + body).decode() for p in range(3)),
        *(f"b64url/{p} " + base64.urlsafe_b64encode(b"x" * p + body).decode().rstrip("=") for p in range(3)),
        "alone " + base64.b64encode(TOKEN.encode()).decode().rstrip("="),
    ]
    return "\n".join(lines).encode()


@pytest.fixture
def echoing_stack(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[LiveServer, Receiver]]:
    yield from start_stack(database_url, tmp_path, monkeypatch, transformed)


def test_transformed_echoes_of_a_secret_are_masked_in_attempts(echoing_stack: tuple[LiveServer, Receiver]) -> None:
    live, receiver = echoing_stack
    r = live.admin.post(
        "/v1/actions/rotate/runs", json={"entity": "billing", "properties": {"token": TOKEN, "note": NOTE}}
    )
    assert r.status_code == 201, r.text
    receiver.wait(1)
    (summary,) = live.admin.get("/v1/deliveries", params={"runId": r.json()["run"]["id"]}).json()["deliveries"]
    shown = wait_delivered(live, summary["id"], 1)
    recorded = shown["attemptLog"][0]["responseBody"]
    assert recorded.startswith("upper ") and recorded.count("****") >= 13, recorded
    assert NOTE in recorded  # what is not secret is kept: the answer stays useful
    assert not secret_in(recorded, TOKEN), recorded
    with live.app.state.db.connect() as conn:
        rows = conn.execute(sa.select(delivery_attempts.c.response_body)).scalars().all()
    assert rows and all(not secret_in(row, TOKEN) for row in rows)


def secret_in(text: str, secret: str) -> bool:
    """Whether ``secret`` can be read back from ``text`` by undoing any of the transforms above."""
    raw = secret.encode()
    if secret.lower() in text.lower() or raw.hex() in text.lower():
        return True
    if secret.lower() in unquote_plus(text).lower():
        return True
    for run in re.findall(r"[A-Za-z0-9+/_-]{8,}", text):
        run = run.replace("-", "+").replace("_", "/")
        for start in range(4):
            chunk = run[start:]
            chunk = chunk[:-1] if len(chunk) % 4 == 1 else chunk  # one spare character decodes to nothing
            if raw in base64.b64decode(chunk + "=" * (-len(chunk) % 4)):
                return True
    return False
