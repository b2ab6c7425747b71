"""One attempt over real HTTP on loopback: what comes back for each thing a receiver or network can do."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from tests.support.receiver import Receiver, Reply
from tests.support.servers import free_port, serving

from kiosk.delivery.config import DeliveryConfig, EgressConfig
from kiosk.delivery.http1 import ConnectionPool
from kiosk.delivery.outbox import Delivery, Signing
from kiosk.delivery.sender import create_client, create_transport, send, signed_headers

CONFIG = DeliveryConfig(timeoutSeconds=2)
LOOPBACK = EgressConfig(allowLoopback=True)


def _delivery(url: str, *, body: bytes = b'{"x":1}', signing: Signing | None = None) -> Delivery:
    now = datetime.now(UTC)
    return Delivery(
        id="msg_0123456789abcdef0123456789",
        run_id=None,
        source="action",
        method="POST",
        url=url,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        last_status_code=None,
        last_error=None,
        created_at=now,
        updated_at=now,
        delivered_at=None,
        headers={"Content-Type": "application/json"},
        signing=signing,
        body=body,
    )


@pytest.fixture
def transport() -> Iterator[ConnectionPool]:
    t = create_transport(CONFIG, LOOPBACK)
    yield t
    t.close()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    app = Receiver()
    with serving(app) as url:
        yield app, url


def test_an_answer_is_captured(transport: ConnectionPool, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    app.script(Reply(503, body=b"busy", headers={"Retry-After": "7"}))
    attempt = send(transport, _delivery(url + "/in"), None, timeout=2, max_response_bytes=100)
    assert (attempt.status_code, attempt.response_body, attempt.retry_after, attempt.error) == (503, "busy", "7", None)
    assert not attempt.permanent and not attempt.timed_out
    assert attempt.duration_ms > 0
    [request] = app.requests
    assert request.headers["user-agent"].startswith("kiosk-webhooks/")
    assert request.headers["accept-encoding"] == "identity"
    assert request.headers["content-length"] == "7"


def test_a_large_answer_is_read_only_up_to_the_cap(transport: ConnectionPool, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    app.script(Reply(200, body=b"x" * 5_000_000))
    attempt = send(transport, _delivery(url), None, timeout=2, max_response_bytes=20_000)
    assert attempt.status_code == 200
    assert attempt.response_body == "x" * 20_000
    nothing = send(transport, _delivery(url), None, timeout=2, max_response_bytes=0)
    assert nothing.response_body == ""


def test_the_declared_charset_is_used(transport: ConnectionPool, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    app.script(
        Reply(500, body="Zürich".encode("latin-1"), headers={"Content-Type": "text/plain; charset=iso-8859-1"}),
        Reply(500, body=b"\xff ok", headers={"Content-Type": "text/plain; charset=no-such-charset"}),
    )
    assert send(transport, _delivery(url), None, timeout=2, max_response_bytes=100).response_body == "Zürich"
    assert send(transport, _delivery(url), None, timeout=2, max_response_bytes=100).response_body == "\ufffd ok"


def test_redirects_are_not_followed(transport: ConnectionPool, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    app.script(Reply(307, headers={"Location": url + "/next"}))
    attempt = send(transport, _delivery(url + "/first"), None, timeout=2, max_response_bytes=100)
    assert attempt.status_code == 307
    assert [r.path for r in app.requests] == ["/first"]


def test_connection_refused(transport: ConnectionPool) -> None:
    attempt = send(transport, _delivery(f"http://127.0.0.1:{free_port()}/"), None, timeout=2, max_response_bytes=100)
    assert attempt.status_code is None
    assert attempt.error is not None and attempt.error.startswith("connection failed")
    assert not attempt.permanent and not attempt.timed_out


def test_timeout(transport: ConnectionPool, receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    app.script(Reply(delay=1.0))
    attempt = send(transport, _delivery(url), None, timeout=0.2, max_response_bytes=100)
    assert attempt.timed_out
    assert attempt.error == "timed out after 0.2s waiting for the response"
    assert attempt.duration_ms < 900


@pytest.mark.parametrize(
    ("answer", "timeout", "error", "timed_out"),
    [
        ([b"SSH-2.0-OpenSSH_9.6\r\n\r\n"], 2.0, "the receiver broke the HTTP protocol: BadStatusLine", False),
        (
            [b"HTTP/1.1 200 OK\r\nContent-Len"],
            2.0,
            "the receiver broke the HTTP protocol: the connection closed",
            False,
        ),
        (
            [b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"] + [b"x"] * 40,
            0.3,
            "timed out after 0.3s receiving",
            True,
        ),
    ],
)
def test_a_broken_answer(
    transport: ConnectionPool, answer: list[bytes], timeout: float, error: str, timed_out: bool
) -> None:
    """Garbage, a head cut short, a body trickling in past the attempt's deadline (a raw server)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, contextlib.suppress(OSError):  # the client hangs up on the trickle
            conn.recv(65_536)
            for piece in answer:
                conn.sendall(piece)
                time.sleep(0.02)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        attempt = send(transport, _delivery(url), None, timeout=timeout, max_response_bytes=100_000)
    finally:
        thread.join(5)
        listener.close()
    assert attempt.status_code is None
    assert attempt.error is not None and attempt.error.startswith(error)
    assert (attempt.timed_out, attempt.permanent) == (timed_out, False)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("ftp://example.com/x", "egress refused: scheme 'ftp' is not allowed (only http and https)"),
        ("http:///nohost", "invalid URL"),
        ("http://10.0.0.1/x", "egress refused: 10.0.0.1 is a private address"),
    ],
)
def test_permanent_failures(url: str, error: str) -> None:
    with create_transport(CONFIG, EgressConfig()) as strict:
        attempt = send(strict, _delivery(url), None, timeout=2, max_response_bytes=100)
    assert attempt.permanent
    assert attempt.error is not None and attempt.error.startswith(error)


def test_a_signed_delivery_without_its_secret_is_not_sent(
    transport: ConnectionPool, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    attempt = send(
        transport, _delivery(url, signing=Signing("webhook", "webhook")), None, timeout=2, max_response_bytes=1
    )
    assert attempt.permanent
    assert attempt.error == "no signing secret is configured for 'webhook'"
    assert app.requests == []


def test_signed_headers() -> None:
    body = b'{"x":1}'
    unsigned = signed_headers(_delivery("https://x.example", body=body), None)
    assert unsigned == {"Content-Type": "application/json", "webhook-id": "msg_0123456789abcdef0123456789"}
    azure = signed_headers(_delivery("https://x.example", signing=Signing("azure", "ref")), "s")
    assert azure["X-Port-Signature"] == hmac.new(b"s", body, hashlib.sha1).hexdigest().upper()
    webhook = signed_headers(
        _delivery("https://x.example", signing=Signing("webhook", "ref")), "s", timestamp=1700000000
    )
    content = b"msg_0123456789abcdef0123456789.1700000000." + body
    assert (
        webhook["webhook-signature"]
        == "v1," + base64.b64encode(hmac.new(b"s", content, hashlib.sha256).digest()).decode()
    )
    assert webhook["webhook-timestamp"] == webhook["X-Port-Timestamp"] == "1700000000"
    with pytest.raises(ValueError):
        signed_headers(_delivery("https://x.example", signing=Signing("webhook", "ref")), None)


def test_the_client_for_other_calls_has_the_same_rules(receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    app.script(
        Reply(302, headers={"Location": url + "/next", "Set-Cookie": "session=abc; Path=/"}),
    )
    with create_client(CONFIG, LOOPBACK) as client:
        first = client.get(url + "/first")
        assert first.status_code == 302  # not followed
        client.get(url + "/second")
    assert "cookie" not in app.requests[1].headers  # nothing carried from one receiver answer to the next
    with create_client(CONFIG, EgressConfig()) as strict, pytest.raises(Exception, match="loopback"):
        strict.get(url)


def test_a_request_that_cannot_be_sent_is_a_permanent_failure(
    transport: ConnectionPool, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    delivery = _delivery(url)
    broken = Delivery(**{**delivery.__dict__, "headers": {"X-Split": "a\r\nInjected: yes"}})
    attempt = send(transport, broken, None, timeout=2, max_response_bytes=100)
    assert attempt.permanent
    assert attempt.error is not None and attempt.error.startswith("invalid request")
    assert app.requests == []
