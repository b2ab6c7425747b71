"""kiosk's HTTP server (``kiosk.web.server``) against slow and malformed clients, over raw sockets.

Each test talks to a real server process on loopback (``python -m kiosk.web.server``, as
:class:`~tests.support.kiosk_server.KioskServer` runs it, or the ``kiosk emulator`` command) with
deadlines of a second, and waits generously for what must happen: nothing here measures time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.support.kiosk_server import ROOT, KioskServer, fresh_kiosk
from tests.support.processes import wait_until_answering
from tests.support.servers import free_port, serving

from kiosk.errors import ConfigError
from kiosk.settings import HttpLimits
from kiosk.web.server import FD_RESERVE_MIN, connection_cap

#: Deadlines of a second: each test waits up to WAIT for what a deadline must bring about.
QUICK = {"KIOSK_HTTP_HEADER_TIMEOUT": "1", "KIOSK_HTTP_BODY_TIMEOUT": "1", "KIOSK_HTTP_KEEPALIVE_TIMEOUT": "1"}
WAIT = 30.0


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KioskServer]:
    with fresh_kiosk(tmp_path_factory.mktemp("server"), env=QUICK) as process:
        yield process


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    sock.settimeout(WAIT)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a timeout fails the test)."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one HTTP/1.1 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def json_error(raw: bytes, status: int) -> dict[str, object]:
    got, headers, body = parse(raw)
    assert got == status, raw
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    value = orjson.loads(body)
    assert isinstance(value, dict)
    return value


# -- deadlines ------------------------------------------------------------------------------------


def test_half_sent_headers_are_answered_408_and_closed(kiosk: KioskServer) -> None:
    with connect(kiosk.port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: kiosk\r\nX-Slow: ")
        error = json_error(read_until_closed(sock), 408)
    assert error == {
        "ok": False,
        "error": "request_timeout",
        "message": "the request headers did not arrive within 1 s",
    }


def test_half_sent_body_is_answered_408_and_closed(kiosk: KioskServer) -> None:
    with connect(kiosk.port) as sock:
        head = b"POST /v1/auth/access_token HTTP/1.1\r\nHost: kiosk\r\nContent-Type: application/json\r\n"
        sock.sendall(head + b"Content-Length: 100\r\n\r\n" + b'{"clientId": ')
        error = json_error(read_until_closed(sock), 408)
    assert error == {"ok": False, "error": "request_timeout", "message": "the request body did not arrive within 1 s"}


def test_a_connection_that_sends_nothing_is_closed(kiosk: KioskServer) -> None:
    with connect(kiosk.port) as sock:
        assert read_until_closed(sock) == b""


def test_an_idle_keep_alive_connection_is_closed(kiosk: KioskServer) -> None:
    with connect(kiosk.port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: kiosk\r\n\r\n")
        raw = read_until_closed(sock)  # the answer, then the close once the connection idled
    status, headers, body = parse(raw)
    assert status == 200
    assert "connection" not in headers  # kept alive, then closed for idling
    assert orjson.loads(body)["ok"] is True


def test_quick_requests_on_one_connection_are_unaffected(kiosk: KioskServer) -> None:
    with httpx.Client(base_url=kiosk.base_url, timeout=WAIT) as client:
        for _ in range(20):
            assert client.get("/healthz").status_code == 200
        response = client.post("/v1/auth/access_token", json={"clientId": "kc_nobody", "clientSecret": "x"})
        assert response.status_code == 401
        assert client.get("/healthz").status_code == 200


# -- parse errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [b"abc", b"-1", b"1, 2", b"99999999999999999999999"])
def test_a_malformed_content_length_gets_kiosks_json_400(kiosk: KioskServer, length: bytes) -> None:
    with connect(kiosk.port) as sock:
        sock.sendall(b"POST /v1/auth/access_token HTTP/1.1\r\nHost: kiosk\r\nContent-Length: " + length + b"\r\n\r\n{}")
        error = json_error(read_until_closed(sock), 400)
    assert error["ok"] is False
    assert error["error"] == "bad_request"
    assert str(error["message"]).startswith("malformed HTTP request: ")
    assert "Content-Length" in str(error["message"])


def test_a_malformed_request_line_gets_kiosks_json_400(kiosk: KioskServer) -> None:
    with connect(kiosk.port) as sock:
        sock.sendall(b"GET /healthz HTTP/9\x00\r\n\r\n")
        error = json_error(read_until_closed(sock), 400)
    assert error["error"] == "bad_request"


EMULATOR_CONFIG = """\
orgs:
  - name: demo
    personalAccessTokens: [{env: SERVER_TEST_PAT}]
    projects:
      - name: demo
        connections: [{name: WH, webhookName: WH}]
"""


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``kiosk emulator`` as a user starts it (its server answers in Azure's error shape)."""
    port = free_port()
    directory = tmp_path_factory.mktemp("emulator")
    log_path, config = directory / "emulator.log", directory / "emulator.yaml"
    config.write_text(EMULATOR_CONFIG)
    command = [sys.executable, "-m", "kiosk", "emulator", "--config", str(config), "--port", str(port), "--no-execute"]
    env = {**os.environ, **QUICK, "SERVER_TEST_PAT": "server-test-personal-access-token"}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(f"{base}/_emulator/healthz", process, timeout=60, log=log_path.read_text)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def post_to_emulator(emulator: str, content_length: bytes, body: bytes, status: int) -> dict[str, object]:
    """POST to the emulator's webhook with the given ``Content-Length`` header and body; the JSON
    error of the answer, which must have ``status``, read until the emulator closes."""
    port = int(emulator.rsplit(":", 1)[1])
    with connect(port) as sock:
        path = b"/demo/_apis/public/distributedtask/webhooks/WH?api-version=6.0-preview"
        head = b"POST " + path + b" HTTP/1.1\r\nHost: emulator\r\nContent-Length: " + content_length + b"\r\n\r\n"
        sock.sendall(head + body)
        return json_error(read_until_closed(sock), status)


def test_the_emulator_answers_a_malformed_content_length_in_azures_shape(emulator: str) -> None:
    error = post_to_emulator(emulator, b"12x", b"{}", 400)
    assert list(error) == ["$id", "innerException", "message", "typeName", "typeKey", "errorCode", "eventId"]
    assert error["typeKey"] == "BadHttpRequestException"
    assert "Content-Length" in str(error["message"])
    assert (error["$id"], error["innerException"], error["errorCode"], error["eventId"]) == ("1", None, 0, 3000)


def test_the_emulator_answers_a_half_sent_body_408_in_azures_shape(emulator: str) -> None:
    error = post_to_emulator(emulator, b"50", b"{", 408)
    assert error["typeKey"] == "RequestTimeoutException"
    assert error["message"] == "the request body did not arrive within 1 s"


# -- the connection cap ---------------------------------------------------------------------------


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


@contextlib.contextmanager
def own_fd_limit(at_least: int) -> Iterator[None]:
    """Let this (client) process open ``at_least`` sockets, within its hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = at_least if hard == resource.RLIM_INFINITY else min(at_least, hard)
    if wanted < at_least:
        pytest.fail(f"the test needs {at_least} file descriptors; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_slow_loris_flood_past_the_fd_limit_does_not_starve_healthz(tmp_path: Path) -> None:
    # Deadlines far away: what keeps /healthz answering is the cap and its eviction of the
    # longest-waiting connections, not timeouts.
    env = {"KIOSK_HTTP_HEADER_TIMEOUT": "300", "KIOSK_HTTP_BODY_TIMEOUT": "300"}
    slow: list[socket.socket] = []
    flood = 700  # well past the server's 256 file descriptors
    with own_fd_limit(flood + 200), fresh_kiosk(tmp_path, env=env, preexec_fn=_low_fd_limit) as server:
        try:
            with httpx.Client(timeout=WAIT) as client:
                for n in range(flood):
                    sock = connect(server.port)
                    slow.append(sock)
                    if n % 2:  # half of them stall in their headers, half in their body
                        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: kiosk\r\nX-Slow: ")
                    else:
                        sock.sendall(b"POST /v1/auth/access_token HTTP/1.1\r\nHost: k\r\nContent-Length: 99\r\n\r\n{")
                    if n % 50 == 49:
                        # A new connection each time (no keep-alive): it must get in past the flood.
                        response = client.get(f"{server.base_url}/healthz", headers={"Connection": "close"})
                        assert response.status_code == 200, n
            # The first slow connections were dropped to make room; the latest still wait.
            slow[0].settimeout(WAIT)
            assert read_until_closed(slow[0]) == b""
            assert httpx.get(f"{server.base_url}/healthz", timeout=WAIT).status_code == 200
        finally:
            for sock in slow:
                sock.close()
        assert "Traceback" not in server.output()
        assert "Too many open files" not in server.output()


def test_eviction_spares_connections_whose_request_is_being_handled() -> None:
    release = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": message["type"] + ".complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/slow":
            while not release.is_set():
                await asyncio.sleep(0.01)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    limits = HttpLimits(header_timeout=300, body_timeout=300, keepalive_timeout=300, max_connections=3)
    request = b"GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    with serving(app, limits=limits) as base:
        port = int(base.rsplit(":", 1)[1])
        busy = [connect(port) for _ in range(2)]
        for sock in busy:
            sock.sendall(request % b"/slow")
        slow = [connect(port) for _ in range(5)]
        for sock in slow:
            sock.sendall(b"GET /fast HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        with connect(port) as quick:
            quick.sendall(request % b"/fast")
            assert parse(read_until_closed(quick))[0] == 200
        assert read_until_closed(slow[0]) == b""  # the longest-waiting made room
        release.set()
        for sock in busy:  # never dropped: answered once their app finished
            assert parse(read_until_closed(sock))[0] == 200

        # A server whose connections all have a request being handled refuses the newcomer.
        release.clear()
        busy = [connect(port) for _ in range(3)]
        for sock in busy:
            sock.sendall(request % b"/slow")
        with connect(port) as newcomer:
            newcomer.sendall(request % b"/fast")
            assert read_until_closed(newcomer) == b""
        release.set()
        for sock in busy:
            assert parse(read_until_closed(sock))[0] == 200
        for sock in slow + busy:
            sock.close()


# -- settings and the cap's arithmetic ------------------------------------------------------------


def test_http_limits_come_from_the_environment() -> None:
    env = {
        "KIOSK_HTTP_HEADER_TIMEOUT": "2.5",
        "KIOSK_HTTP_BODY_TIMEOUT": "60",
        "KIOSK_HTTP_KEEPALIVE_TIMEOUT": "0.5",
        "KIOSK_HTTP_MAX_CONNECTIONS": "100",
    }
    assert HttpLimits.from_env(env) == HttpLimits(2.5, 60.0, 0.5, 100)
    assert HttpLimits.from_env({}) == HttpLimits(10.0, 30.0, 5.0, 4096)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KIOSK_HTTP_HEADER_TIMEOUT", "soon"),
        ("KIOSK_HTTP_BODY_TIMEOUT", "0"),
        ("KIOSK_HTTP_KEEPALIVE_TIMEOUT", "inf"),
        ("KIOSK_HTTP_MAX_CONNECTIONS", "-5"),
        ("KIOSK_HTTP_MAX_CONNECTIONS", "many"),
    ],
)
def test_bad_http_limits_are_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        HttpLimits.from_env({name: value})


def test_the_cap_stays_below_the_file_descriptor_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        cap = connection_cap(1_000_000)
        raised, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert raised == hard  # the soft limit was raised to the hard one
        if hard != resource.RLIM_INFINITY:
            assert cap == hard - max(FD_RESERVE_MIN, hard // 4)
        assert connection_cap(50) == 50
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
