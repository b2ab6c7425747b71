"""Sealed delivery bodies (a run's secret inputs inside), on both engines: stored sealed, opened by
the worker only to send, signed over the clear bytes, masked in what is recorded, redeliverable."""

from __future__ import annotations

import logging

import orjson
import pytest
import sqlalchemy as sa
from tests.delivery.conftest import FAST, LOOPBACK, SECRET, Harness
from tests.support.deliveries import new_delivery
from tests.support.receiver import Received, Receiver, Reply

from kiosk.actions.secrets import SecretBox
from kiosk.core.signing import verify_port_webhook, verify_standard_webhook
from kiosk.delivery.outbox import Signing, load_deliveries, redeliver
from kiosk.delivery.sender import create_transport, send
from kiosk.store import Database
from kiosk.store.tables import deliveries

#: A quote inside, so the value looks different inside a JSON string (masked in both forms).
TOKEN = 'pa55-w0rd-"quoted"-7c1e'
BODY = orjson.dumps({"payload": {"properties": {"token": TOKEN, "note": "hello"}}})

#: The server's sealing key in these tests (kiosk derives it from its master key, kiosk.auth.keys).
SERVER_KEY = bytes(range(32))


def create_sealed(db: Database, url: str, box: SecretBox, *, body: bytes = BODY) -> str:
    with db.begin() as conn:
        return new_delivery(
            conn,
            url,
            body=body,
            signing=Signing("webhook", "webhook"),
            seal=lambda delivery_id, clear: box.seal_body(delivery_id, clear, [TOKEN]),
        )


def raw_row(db: Database, delivery_id: str) -> tuple[bytes, dict[str, object]]:
    with db.connect() as conn:
        row = conn.execute(
            sa.select(deliveries.c.body, deliveries.c.target).where(deliveries.c.id == delivery_id)
        ).one()
    return bytes(row.body), dict(row.target)


def assert_signed(delivery_id: str, request: Received) -> None:
    h = request.headers
    assert verify_standard_webhook(
        SECRET, request.body, msg_id=delivery_id, timestamp=h["webhook-timestamp"], signature=h["webhook-signature"]
    )
    assert verify_port_webhook(SECRET, request.body, timestamp=h["x-port-timestamp"], signature=h["x-port-signature"])


def test_a_sealed_body_is_stored_sealed_and_sent_in_clear_signed(
    db: Database, receiver: tuple[Receiver, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app, url = receiver
    # The receiver echoes what it got, so the answer recorded for the attempt would carry the secret.
    app.plan = lambda n, request: Reply(500 if n == 0 else 200, body=b"you sent " + request.body)
    harness = Harness(db, box=SecretBox(SERVER_KEY))  # the server's box, as create_app gives it
    try:
        delivery_id = create_sealed(db, url, SecretBox(SERVER_KEY))
        raw, target = raw_row(db, delivery_id)
        assert target["sealed"] is True
        assert b"pa55-w0rd" not in raw and b"hello" not in raw and raw.startswith(b"kb2:")

        assert harness.drive(delivery_id) == "delivered"
        assert [r.body for r in app.requests] == [BODY, BODY]  # clear on the wire, byte for byte
        for request in app.requests:
            assert request.headers["webhook-id"] == delivery_id
            assert_signed(delivery_id, request)

        detail = harness.detail(delivery_id)
        assert detail.delivery.sealed and detail.delivery.body == raw  # the stored row never changes
        answers = [a.response_body or "" for a in detail.attempts]
        assert len(answers) == 2 and all("pa55-w0rd" not in a and "****" in a for a in answers)
        assert "pa55-w0rd" not in repr(detail)

        # Redelivered by hand: still sealed at rest, opened again to send, signed again.
        redeliver(db, delivery_id)
        assert harness.drive(delivery_id) == "delivered"
        assert len(app.requests) == 3 and app.requests[2].body == BODY
        assert_signed(delivery_id, app.requests[2])
        assert raw_row(db, delivery_id)[0] == raw
        assert "pa55-w0rd" not in caplog.text
    finally:
        harness.worker.close()


def test_a_sealed_body_that_does_not_open_is_dead_and_never_sent(db: Database, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    harness = Harness(db, box=SecretBox(SERVER_KEY))
    try:
        foreign = create_sealed(db, url, SecretBox(bytes(32)))  # sealed under another key
        moved = create_sealed(db, url, SecretBox(SERVER_KEY))
        donor = create_sealed(db, url, SecretBox(SERVER_KEY))
        with db.begin() as conn:  # a sealed body copied onto another delivery does not open there
            body = conn.execute(sa.select(deliveries.c.body).where(deliveries.c.id == donor)).scalar_one()
            conn.execute(sa.update(deliveries).where(deliveries.c.id == moved).values(body=body))
        for delivery_id in (foreign, moved):
            assert harness.drive(delivery_id) == "dead"
            (attempt,) = harness.detail(delivery_id).attempts
            assert attempt.status_code is None and "does not open with this server's key" in (attempt.error or "")
        assert harness.drive(donor) == "delivered"
        assert [r.body for r in app.requests] == [BODY]  # only the one that opened went out
    finally:
        harness.worker.close()


def test_the_sender_refuses_a_body_still_sealed(db: Database, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    delivery_id = create_sealed(db, url, SecretBox(SERVER_KEY))
    with db.connect() as conn:
        delivery = load_deliveries(conn, [delivery_id])[delivery_id]
    transport = create_transport(FAST, LOOPBACK)
    try:
        attempt = send(transport, delivery, SECRET, timeout=2, max_response_bytes=100)
    finally:
        transport.close()
    assert attempt.permanent and "still sealed" in (attempt.error or "") and app.requests == []


def test_bodies_without_secrets_are_stored_as_they_are(harness: Harness, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    delivery_id = harness.create(url, body=b'{"plain":true}', signing=Signing("webhook", "webhook"))
    raw, target = raw_row(harness.db, delivery_id)
    assert raw == b'{"plain":true}' and "sealed" not in target and "synchronized" not in target
    assert harness.drive(delivery_id) == "delivered" and app.requests[0].body == raw
