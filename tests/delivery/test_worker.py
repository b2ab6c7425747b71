"""The delivery worker end to end: real HTTP to a receiver on loopback, both database engines."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from tests.delivery.conftest import AZURE_SECRET, FAST, LOOPBACK, SECRET, Harness
from tests.support.receiver import Receiver, Reply
from tests.support.servers import free_port, serving

from kiosk.delivery.config import DeliveryConfig, EgressConfig
from kiosk.delivery.outbox import Signing, redeliver
from kiosk.store import Database
from kiosk.store.queue import JobQueue, aware
from kiosk.store.tables import deliveries, delivery_attempts, jobs


def test_delivered_the_first_time(harness: Harness, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    app.script(Reply(202, body=b"accepted"))
    delivery_id = harness.create(url + "/hook", run_id="r_abc")
    assert harness.status(delivery_id) == "pending"
    assert harness.drive(delivery_id) == "delivered"
    [request] = app.requests
    assert request.method == "POST"
    assert request.path == "/hook"
    assert request.body == b'{"hello":"world"}'
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == delivery_id
    detail = harness.detail(delivery_id)
    d = detail.delivery
    assert (d.status, d.attempts, d.last_status_code, d.last_error, d.next_attempt_at) == (
        "delivered",
        1,
        202,
        None,
        None,
    )
    assert d.delivered_at is not None
    [attempt] = detail.attempts
    assert (attempt.attempt, attempt.status_code, attempt.error, attempt.response_body) == (1, 202, None, "accepted")
    assert attempt.worker == harness.worker.worker_id
    assert attempt.duration_ms > 0
    [final] = harness.finals
    assert (final.delivery_id, final.run_id, final.status, final.attempts, final.status_code) == (
        delivery_id,
        "r_abc",
        "delivered",
        1,
        202,
    )
    with harness.db.connect() as conn:
        assert conn.execute(sa.select(jobs.c.status)).scalar() == "done"


def test_server_errors_then_success(harness: Harness, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    app.script(Reply(500, body=b"boom"), Reply(502))
    delivery_id = harness.create(url)
    assert harness.drive(delivery_id) == "delivered"
    detail = harness.detail(delivery_id)
    assert [(a.attempt, a.status_code) for a in detail.attempts] == [(1, 500), (2, 502), (3, 200)]
    assert detail.attempts[0].response_body == "boom"
    assert detail.delivery.attempts == 3
    # webhook-id is the idempotency key: the same on every attempt.
    assert {r.headers["webhook-id"] for r in app.requests} == {delivery_id}
    assert len(harness.finals) == 1


def test_target_down_for_a_while_then_back(harness: Harness) -> None:
    port = free_port()
    config = DeliveryConfig(timeoutSeconds=2, retrySchedule=[0.01] * 20, jitter=0)
    h = Harness(harness.db, config)
    delivery_id = h.create(f"http://127.0.0.1:{port}/hook")
    for _ in range(3):  # nobody listens: connection refused, retried
        h.worker.run_once()
        time.sleep(0.02)
    assert h.status(delivery_id) == "failed"
    app = Receiver()
    with serving(app, port=port):
        assert h.drive(delivery_id) == "delivered"
    detail = h.detail(delivery_id)
    attempts = detail.attempts
    assert len(attempts) >= 4
    assert [a.attempt for a in attempts] == list(range(1, len(attempts) + 1))
    assert all(a.status_code is None and "connection failed" in (a.error or "") for a in attempts[:-1])
    assert attempts[-1].status_code == 200
    assert len(app.requests) == 1
    h.worker.close()


def test_failed_delivery_waits_for_its_next_attempt(db: Database, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    app.script(Reply(500))
    h = Harness(db, DeliveryConfig(retrySchedule=[3600], jitter=0))
    delivery_id = h.create(url)
    h.worker.run_once()
    d = h.detail(delivery_id).delivery
    assert (d.status, d.last_status_code, d.last_error) == ("failed", 500, "HTTP 500")
    assert d.next_attempt_at is not None
    assert 3500 < (d.next_attempt_at - d.updated_at).total_seconds() < 3700
    assert h.worker.run_once() == 0  # not due for an hour
    h.worker.close()


def test_retry_after_is_honoured_for_429(db: Database, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    app.script(Reply(429, headers={"Retry-After": "120"}))
    # The schedule says 5 s; the 429 floor says 60 s; Retry-After says 120 s, within the 300 s cap.
    h = Harness(db, DeliveryConfig(retrySchedule=[5, 300], jitter=0))
    delivery_id = h.create(url)
    h.worker.run_once()
    d = h.detail(delivery_id).delivery
    assert (d.status, d.last_status_code) == ("failed", 429)
    assert d.next_attempt_at is not None
    assert 119 < (d.next_attempt_at - d.updated_at).total_seconds() < 121
    h.worker.close()


def test_retry_after_is_waited_for_before_the_next_attempt(db: Database, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    app.script(Reply(503, headers={"Retry-After": "1"}))
    # The schedule says 10 ms; Retry-After says 1 s (within the schedule's 3 s maximum).
    h = Harness(db, DeliveryConfig(timeoutSeconds=2, retrySchedule=[0.01, 3], jitter=0))
    delivery_id = h.create(url)
    assert h.drive(delivery_id) == "delivered"
    first, second = app.requests
    assert 0.95 <= second.at - first.at < 2.5
    h.worker.close()


def test_410_gone_is_dead_at_once(harness: Harness, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    app.script(Reply(410))
    delivery_id = harness.create(url)
    assert harness.drive(delivery_id) == "dead"
    d = harness.detail(delivery_id).delivery
    assert d.last_error == "410 Gone: the receiver asked to stop"
    assert d.attempts == 1
    assert len(app.requests) == 1
    [final] = harness.finals
    assert (final.status, final.error, final.status_code) == ("dead", "410 Gone: the receiver asked to stop", 410)
    with harness.db.connect() as conn:
        assert conn.execute(sa.select(jobs.c.status)).scalar() == "dead"


def test_timeout_is_retried(db: Database, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    app.script(Reply(delay=1.0))
    h = Harness(db, DeliveryConfig(timeoutSeconds=0.3, retrySchedule=[0.01, 0.01], jitter=0))
    delivery_id = h.create(url)
    assert h.drive(delivery_id) == "delivered"
    first, second = h.detail(delivery_id).attempts
    assert first.status_code is None
    assert first.error is not None and "timed out after 0.3s" in first.error
    assert 250 < first.duration_ms < 900
    assert second.status_code == 200
    h.worker.close()


def test_redirect_is_a_failure_and_not_followed(harness: Harness, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    app.plan = lambda n, r: Reply(302, headers={"Location": url + "/elsewhere"}) if r.path == "/hook" else Reply()
    delivery_id = harness.create(url + "/hook")
    assert harness.drive(delivery_id) == "dead"
    assert {r.path for r in app.requests} == {"/hook"}  # /elsewhere never asked for
    detail = harness.detail(delivery_id)
    assert [a.status_code for a in detail.attempts] == [302] * 4
    assert detail.delivery.last_error == "gave up after 4 attempts: HTTP 302: redirects are not followed"


def test_schedule_exhausted_is_dead_and_reported(harness: Harness, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    app.plan = lambda n, r: Reply(503)
    delivery_id = harness.create(url, run_id="r_dead")
    assert harness.drive(delivery_id) == "dead"
    d = harness.detail(delivery_id).delivery
    assert d.attempts == len(FAST.retry_schedule) + 1
    assert d.last_error == "gave up after 4 attempts: HTTP 503"
    assert d.next_attempt_at is None
    [final] = harness.finals
    assert (final.status, final.run_id, final.attempts) == ("dead", "r_dead", 4)


def test_on_final_errors_are_logged_not_raised(
    db: Database, receiver: tuple[Receiver, str], caplog: pytest.LogCaptureFixture
) -> None:
    _app, url = receiver

    def explode(outcome: Any) -> None:
        raise RuntimeError("the callback broke")

    h = Harness(db)
    h.worker._on_final = explode
    delivery_id = h.create(url)
    with caplog.at_level(logging.ERROR, logger="kiosk.delivery.worker"):
        assert h.drive(delivery_id) == "delivered"
    assert any("on_final callback failed" in r.getMessage() for r in caplog.records)
    h.worker.close()


REFUSED = [
    ("http://127.0.0.1:{port}/hook", "127.0.0.1 is a loopback address"),
    ("http://10.1.2.3/hook", "10.1.2.3 is a private address"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://[::1]:{port}/hook", "::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]:{port}/hook", "::ffff:127.0.0.1 is 127.0.0.1, a loopback address"),
    ("http://localhost:{port}/hook", "localhost resolves to"),
    ("ftp://example.com/hook", "scheme 'ftp' is not allowed"),
]


def test_egress_refused_is_dead_at_once(db: Database, receiver: tuple[Receiver, str]) -> None:
    app, base = receiver
    port = base.rsplit(":", 1)[1]
    h = Harness(db, FAST, EgressConfig())
    ids = [h.create(url.format(port=port)) for url, _reason in REFUSED]
    assert h.worker.run_once() == len(REFUSED)
    for delivery_id, (_url, reason) in zip(ids, REFUSED, strict=True):
        d = h.detail(delivery_id).delivery
        assert d.status == "dead"
        assert d.last_error is not None
        assert d.last_error.startswith("egress refused: ")
        assert reason in d.last_error
        assert d.attempts == 1
    assert app.requests == []  # never connected
    assert [f.status for f in h.finals] == ["dead"] * len(REFUSED)
    h.worker.close()


def test_egress_allowed_by_cidr_or_host_name(db: Database, receiver: tuple[Receiver, str]) -> None:
    app, base = receiver
    port = base.rsplit(":", 1)[1]
    for allow, host in [(["127.0.0.0/8"], "127.0.0.1"), (["127.0.0.1"], "127.0.0.1"), (["localhost"], "localhost")]:
        h = Harness(db, FAST, EgressConfig(allow=allow))
        delivery_id = h.create(f"http://{host}:{port}/hook")
        assert h.drive(delivery_id) == "delivered", allow
        # Connected to the checked address; the Host header keeps the name.
        assert app.requests[-1].headers["host"] == f"{host}:{port}"
        h.worker.close()
    assert len(app.requests) == 3


def test_missing_signing_secret_is_dead_with_a_clear_error(harness: Harness, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    delivery_id = harness.create(url, signing=Signing("webhook", "nobody-configured-this"))
    assert harness.drive(delivery_id) == "dead"
    assert harness.detail(delivery_id).delivery.last_error == (
        "no signing secret is configured for 'nobody-configured-this'"
    )
    assert app.requests == []


def test_redeliver(harness: Harness, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    app.script(Reply(410))
    delivery_id = harness.create(url)
    assert harness.drive(delivery_id) == "dead"
    again = redeliver(harness.db, delivery_id)
    assert again.status == "pending"
    assert harness.drive(delivery_id) == "delivered"
    detail = harness.detail(delivery_id)
    assert [(a.attempt, a.status_code) for a in detail.attempts] == [(1, 410), (2, 200)]  # history kept
    assert detail.delivery.attempts == 2
    # A delivered one can be sent again too; the webhook-id stays the same.
    redeliver(harness.db, delivery_id)
    assert harness.drive(delivery_id) == "delivered"
    assert [r.headers["webhook-id"] for r in app.requests] == [delivery_id] * 3
    assert [f.status for f in harness.finals] == ["dead", "delivered", "delivered"]


def test_response_body_is_capped(db: Database, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    app.script(Reply(500, body="é".encode() * 5000))  # 10,000 bytes
    h = Harness(db, DeliveryConfig(maxResponseBytes=1001, retrySchedule=[0.001], jitter=0))
    delivery_id = h.create(url)
    assert h.drive(delivery_id) == "delivered"
    first = h.detail(delivery_id).attempts[0]
    # 1,001 bytes: 500 whole characters and half of one, replaced.
    assert first.response_body == "é" * 500 + "\ufffd"
    h.worker.close()


def _verify_standard_webhooks(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Written from the Standard Webhooks spec, independently of kiosk.core.signing."""
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(secret.encode(), content, hashlib.sha256).digest()).decode()
    fresh = abs(time.time() - int(headers["webhook-timestamp"])) <= 300
    return fresh and any(sig == f"v1,{expected}" for sig in headers["webhook-signature"].split())


def _verify_port(secret: str, headers: dict[str, str], body: bytes) -> bool:
    content = f"{headers['x-port-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(secret.encode(), content, hashlib.sha256).digest()).decode()
    return headers["x-port-signature"] == f"v1,{expected}"


def test_signatures_verify_on_the_receiver(harness: Harness, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    app.script(Reply(500))
    body = '{"action":"deploy","inputs":{"région":"eu"}}'.encode()
    webhook = harness.create(url + "/webhook", body=body, signing=Signing("webhook", "webhook"))
    azure = harness.create(url + "/azure", body=body, signing=Signing("azure", "azureDevOps:myorg"))
    custom = harness.create(url + "/custom", body=body, signing=Signing("azure", "azureDevOps:myorg", "X-Hub-Sig"))
    for delivery_id in (webhook, azure, custom):
        assert harness.drive(delivery_id) == "delivered"
    by_path: dict[str, list[dict[str, str]]] = {}
    for request in app.requests:
        assert request.body == body
        by_path.setdefault(request.path, []).append(request.headers)
    assert len(by_path["/webhook"]) == 2  # a 500, then a retry: each attempt signed afresh
    for headers in by_path["/webhook"]:
        assert headers["webhook-id"] == webhook
        assert _verify_standard_webhooks(SECRET, headers, body)
        assert _verify_port(SECRET, headers, body)
        assert headers["webhook-timestamp"] == headers["x-port-timestamp"]
    expected_sha1 = hmac.new(AZURE_SECRET.encode(), body, hashlib.sha1).hexdigest().upper()
    [azure_headers] = by_path["/azure"]
    assert azure_headers["x-port-signature"] == expected_sha1
    assert azure_headers["webhook-id"] == azure
    assert "webhook-signature" not in azure_headers
    [custom_headers] = by_path["/custom"]
    assert custom_headers["x-hub-sig"] == expected_sha1
    assert "x-port-signature" not in custom_headers


def _every_stored_value(db: Database) -> str:
    with db.connect() as conn:
        text = [str(row) for table in (deliveries, delivery_attempts, jobs) for row in conn.execute(sa.select(table))]
    return "\n".join(text)


def test_no_secret_or_signature_in_stored_rows_or_logs(
    harness: Harness, receiver: tuple[Receiver, str], caplog: pytest.LogCaptureFixture
) -> None:
    app, url = receiver
    app.script(Reply(500), Reply(410))
    caplog.set_level(logging.DEBUG)
    first = harness.create(url, signing=Signing("webhook", "webhook"))
    second = harness.create(url, signing=Signing("azure", "azureDevOps:myorg"))
    for delivery_id in (first, second):
        assert harness.drive(delivery_id) in ("delivered", "dead")
    signatures = {
        value
        for request in app.requests
        for name, value in request.headers.items()
        if name in ("webhook-signature", "x-port-signature")
    }
    assert len(signatures) >= 3
    stored = _every_stored_value(harness.db)
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert caplog.records  # the worker did log (at least the dead delivery)
    for forbidden in (SECRET, AZURE_SECRET, *signatures):
        assert forbidden not in stored
        assert forbidden not in logged


def test_a_worker_killed_mid_attempt_is_retried_after_its_lease(
    harness: Harness, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    delivery_id = harness.create(url)
    crashed = JobQueue(harness.db, "crashed-worker", lease_seconds=0.3)
    [job] = crashed.claim(["delivery"])  # ... and the process dies before finishing it
    assert harness.worker.run_once() == 0  # leased: not touched
    time.sleep(0.35)
    assert harness.drive(delivery_id) == "delivered"
    assert len(app.requests) == 1
    assert not crashed.complete(job.id)  # too late for the crashed worker
    with harness.db.connect() as conn:
        assert conn.execute(sa.select(jobs.c.attempts, jobs.c.status)).one() == (2, "done")


def test_started_worker_sends_at_once_when_notified(db: Database, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    app.script(Reply(500), Reply(500))
    # A poll of a minute: only notify() and the worker's own retry timer can make this quick.
    h = Harness(db, FAST, LOOPBACK, poll_seconds=60)
    h.worker.start()
    try:
        time.sleep(0.1)  # the first poll has happened and found nothing
        started = time.monotonic()
        ids = [h.create(url + f"/{n}") for n in range(5)]
        h.worker.notify()
        deadline = time.monotonic() + 10
        while any(h.status(i) != "delivered" for i in ids) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert all(h.status(i) == "delivered" for i in ids)
        assert time.monotonic() - started < 5
    finally:
        assert h.worker.stop(10)
    assert len(app.requests) == 7
    assert sorted(f.delivery_id for f in h.finals) == sorted(ids)


def test_stop_finishes_attempts_in_flight(db: Database, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    app.plan = lambda n, r: Reply(delay=0.4)
    h = Harness(db, DeliveryConfig(workers=1, timeoutSeconds=5, retrySchedule=[0.01], jitter=0), poll_seconds=60)
    first = h.create(url + "/1")
    second = h.create(url + "/2")
    h.worker.start()
    h.worker.notify()
    deadline = time.monotonic() + 5
    while not app.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert h.worker.stop(10)
    # The attempt in flight finished and was recorded; the one waiting for a thread went back to the queue.
    assert h.status(first) == "delivered"
    assert h.status(second) == "pending"
    with db.connect() as conn:
        rows = conn.execute(sa.select(jobs.c.status, jobs.c.attempts, jobs.c.locked_by).order_by(jobs.c.id)).all()
    assert [tuple(r) for r in rows] == [("done", 1, None), ("pending", 0, None)]


def test_a_bug_while_sending_is_a_failed_attempt_not_a_stuck_job(
    db: Database, receiver: tuple[Receiver, str], caplog: pytest.LogCaptureFixture
) -> None:
    _app, url = receiver
    h = Harness(db)
    h.worker._secrets = lambda ref: 12345  # type: ignore[assignment,return-value]  # an embedder's bug
    delivery_id = h.create(url, signing=Signing("webhook", "webhook"))
    with caplog.at_level(logging.ERROR, logger="kiosk.delivery.worker"):
        assert h.drive(delivery_id) == "dead"
    detail = h.detail(delivery_id)
    assert len(detail.attempts) == len(FAST.retry_schedule) + 1
    assert all(a.error == "internal error: TypeError" for a in detail.attempts)
    assert detail.delivery.last_error == "gave up after 4 attempts: internal error: TypeError"
    assert any("failed inside kiosk" in r.getMessage() for r in caplog.records)
    h.worker.close()


def test_a_lease_lost_mid_attempt_does_not_duplicate_attempt_numbers(
    db: Database, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    app.script(Reply(200, delay=0.6))
    slow = Harness(db, FAST, LOOPBACK, worker_id="slow", lease_seconds=0.3)
    fast = Harness(db, FAST, LOOPBACK, worker_id="fast", lease_seconds=0.3)
    slow.create(url)
    first = threading.Thread(target=slow.worker.run_once)
    first.start()
    time.sleep(0.4)  # the slow worker's lease has run out while its request is still in flight
    fast.worker.run_once()
    first.join(10)
    with db.connect() as conn:
        numbers = conn.execute(
            sa.select(delivery_attempts.c.attempt, delivery_attempts.c.worker).order_by(delivery_attempts.c.id)
        ).all()
    assert sorted(n for n, _ in numbers) == [1, 2]  # both requests happened; each has its own number
    assert {w for _, w in numbers} == {"slow", "fast"}


def test_claims_that_were_never_sent_do_not_use_up_the_retry_schedule(
    db: Database, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    app.script(Reply(500))
    # A wrong count would pick the 30 s step instead of the first one.
    harness = Harness(db, DeliveryConfig(timeoutSeconds=2, retrySchedule=[0.01, 30, 60], jitter=0, workers=1))
    delivery_id = harness.create(url)
    crashed = JobQueue(harness.db, "crashed-worker", lease_seconds=0.2)
    crashed.claim(["delivery"])  # claimed, never sent: the job's claim count is now 1
    time.sleep(0.25)
    harness.worker.run_once()  # the first real attempt fails
    with harness.db.connect() as conn:
        row = conn.execute(sa.select(deliveries.c.attempts, deliveries.c.next_attempt_at)).one()
        created = conn.execute(sa.select(delivery_attempts.c.started_at)).scalar_one()
    assert row.attempts == 1
    assert (aware(row.next_attempt_at) - aware(created)).total_seconds() < 5
    assert delivery_id
