"""The keep-alive HTTP/1.1 client of the delivery path: its pure part, and its socket work against
real servers on loopback (a raw TCP server that counts the connections it accepted and can
misbehave on purpose, and the uvicorn receiver)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.support.polling import wait_for
from tests.support.receiver import Receiver
from tests.support.servers import serving

from kiosk.delivery import http1
from kiosk.delivery.config import EgressConfig
from kiosk.delivery.egress import EgressPolicy, EgressRefused, IPAddress
from kiosk.delivery.http1 import ConnectionPool, Response, Target, charset, encode_request, split_url

LOOPBACK = EgressPolicy.from_config(EgressConfig(allowLoopback=True))
STRICT = EgressPolicy.from_config(EgressConfig())


# ------------------------------------------------------------------------------- pure part


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://Hooks.Example/in", Target("http", "hooks.example", 80, "/in")),
        ("HTTPS://hooks.example", Target("https", "hooks.example", 443, "/")),
        ("http://hooks.example:8080/a/b?x=1&y=%20z#frag", Target("http", "hooks.example", 8080, "/a/b?x=1&y=%20z")),
        ("http://[::1]:9000/x", Target("http", "::1", 9000, "/x")),
        ("http://user:pw@hooks.example/x", Target("http", "hooks.example", 80, "/x")),
        ("http://hooks.example./x", Target("http", "hooks.example", 80, "/x")),
        ("http://bücher.example/a b/ü?q=ä", Target("http", "xn--bcher-kva.example", 80, "/a%20b/%C3%BC?q=%C3%A4")),
        ("http:///nohost", Target("http", "", 80, "/nohost")),
        ("ftp://example.com/x", Target("ftp", "example.com", 0, "/x")),
    ],
)
def test_split_url(url: str, expected: Target) -> None:
    assert split_url(url) == expected


@pytest.mark.parametrize(
    "url", ["http://hooks.example:99999/", "http://hooks.example:x/", "http://[::1/", "http://a b/"]
)
def test_split_url_refuses_what_cannot_be_sent(url: str) -> None:
    with pytest.raises(http1.InvalidURL):
        split_url(url)


def test_host_header_names_the_port_unless_it_is_the_default() -> None:
    assert Target("http", "hooks.example", 80, "/").host_header == "hooks.example"
    assert Target("https", "hooks.example", 443, "/").host_header == "hooks.example"
    assert Target("https", "hooks.example", 80, "/").host_header == "hooks.example:80"
    assert Target("http", "::1", 8080, "/").host_header == "[::1]:8080"
    assert Target("http", "a", 1, "/").key == ("http", "a", 1)


def test_encode_request_is_head_and_body_in_one_piece() -> None:
    target = split_url("http://hooks.example:8080/in?x=1")
    data = encode_request(
        "POST",
        target,
        {
            "Content-Type": "application/json",
            "user-agent": "a",
            "User-Agent": "b ",
            "Host": "evil",
            "content-length": "1",
        },
        b'{"x":1}',
    )
    assert data == (
        b"POST /in?x=1 HTTP/1.1\r\nHost: hooks.example:8080\r\nContent-Type: application/json\r\n"
        b'User-Agent: b\r\nContent-Length: 7\r\n\r\n{"x":1}'
    )
    # No body: a POST still says so; a GET says nothing.
    assert b"Content-Length: 0\r\n" in encode_request("POST", target, {}, b"")
    assert b"Content-Length" not in encode_request("GET", target, {}, b"")


@pytest.mark.parametrize(
    ("method", "headers", "why"),
    [
        ("POST", {"X-Split": "a\r\nInjected: yes"}, "line break"),
        ("POST", {"X-Split": "a\n b"}, "line break"),  # not even an obsolete folded line
        ("POST", {"X-Nul": "a\x00b"}, "control character"),
        ("POST", {"Bad Name": "x"}, "invalid header name"),
        ("POST", {"X-Name": "Zürich"}, "not ASCII"),
        ("PO ST", {}, "invalid method"),
    ],
)
def test_encode_request_refuses_what_would_break_the_request(method: str, headers: dict[str, str], why: str) -> None:
    with pytest.raises(http1.InvalidRequest, match=why):
        encode_request(method, split_url("http://hooks.example/"), headers, b"")


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (None, "utf-8"),
        ("application/json", "utf-8"),
        ("text/plain; charset=ISO-8859-1", "iso-8859-1"),
        ('text/plain; format=flowed; charset="windows-1252"', "windows-1252"),
        ("text/plain; charset=no-such-charset", "utf-8"),
    ],
)
def test_charset(content_type: str | None, expected: str) -> None:
    assert charset(content_type) == expected


def test_response_headers_and_text() -> None:
    response = Response(
        503, (("Content-Type", "text/plain; charset=latin-1"), ("Retry-After", "7")), "Zü".encode("latin-1"), True
    )
    assert response.header("retry-after") == "7"
    assert response.header("x-missing") is None
    assert response.text() == "Zü"
    assert Response(200, (), b"", True).text() == ""


# --------------------------------------------------------------------------- a raw server


@dataclass
class Seen:
    connection: int
    line: str
    headers: dict[str, str]
    body: bytes


@dataclass
class RawServer:
    """A TCP server on 127.0.0.1 that runs ``handle(server, number, sock, file)`` for each
    connection it accepts (each in its own thread); counts connections and records requests."""

    handle: Callable[[RawServer, int, socket.socket, BinaryIO], None]
    tls: ssl.SSLContext | None = None
    accepted: int = 0
    requests: list[Seen] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)  # connections whose client hung up
    port: int = 0

    def read(self, number: int, file: BinaryIO) -> Seen | None:
        """The next request on a connection, recorded; None when the client closed it."""
        line = file.readline()
        if not line:
            self.closed.append(number)
            return None
        headers: dict[str, str] = {}
        while (header := file.readline()) not in (b"\r\n", b""):
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        seen = Seen(number, line.decode("latin-1").strip(), headers, file.read(int(headers.get("content-length", 0))))
        self.requests.append(seen)
        return seen


@contextmanager
def raw_server(
    handle: Callable[[RawServer, int, socket.socket, BinaryIO], None], tls: ssl.SSLContext | None = None
) -> Iterator[RawServer]:
    server = RawServer(handle, tls)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.05)
    server.port = listener.getsockname()[1]
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def serve(number: int, sock: socket.socket) -> None:
        try:
            if tls is not None:
                sock = tls.wrap_socket(sock, server_side=True)
            with sock, sock.makefile("rb") as file:
                handle(server, number, sock, file)
        except OSError:
            pass

    def accept() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            sock.settimeout(10)
            number = server.accepted
            server.accepted += 1
            thread = threading.Thread(target=serve, args=(number, sock), daemon=True)
            thread.start()
            threads.append(thread)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield server
    finally:
        stop.set()
        acceptor.join(5)
        listener.close()


def reply(body: bytes = b"ok", *, status: str = "200 OK", headers: bytes = b"") -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Length: %d\r\n%s\r\n%s" % (status.encode(), len(body), headers, body)


def answer_all(server: RawServer, number: int, sock: socket.socket, file: BinaryIO) -> None:
    """Keep-alive: answer every request with its own body, until the client hangs up."""
    while (seen := server.read(number, file)) is not None:
        sock.sendall(reply(seen.body or b"ok"))


def url(server: RawServer, path: str = "/in", scheme: str = "http", host: str = "127.0.0.1") -> Target:
    return split_url(f"{scheme}://{host}:{server.port}{path}")


def post(
    pool: ConnectionPool, target: Target, body: bytes = b"hi", *, timeout: float = 2, max_body: int = 1000
) -> Response:
    return pool.request(
        "POST",
        target,
        {"Content-Type": "text/plain"},
        body,
        timeout=timeout,
        deadline=time.monotonic() + timeout,
        max_body=max_body,
    )


@pytest.fixture
def pool() -> Iterator[ConnectionPool]:
    with ConnectionPool(LOOPBACK) as p:
        yield p


# ----------------------------------------------------------------------------- keep-alive


def test_sequential_requests_share_one_connection(pool: ConnectionPool) -> None:
    with raw_server(answer_all) as server:
        for n in range(20):
            response = post(pool, url(server), f"body {n}".encode())
            assert (response.status, response.body, response.complete) == (200, f"body {n}".encode(), True)
        assert server.accepted == 1
        assert pool.idle_count() == 1
        first = server.requests[0]
        assert first.line == "POST /in HTTP/1.1"
        assert first.headers["host"] == f"127.0.0.1:{server.port}"
        assert first.headers["content-length"] == "6"


def test_a_uvicorn_receiver_keeps_one_connection_too(pool: ConnectionPool) -> None:
    app = Receiver()
    with serving(app) as base:
        target = split_url(base + "/hook")
        for _ in range(10):
            assert post(pool, target).status == 200
    assert pool.idle_count(target.key) == 1
    assert len(app.requests) == 10


def test_connections_are_kept_per_scheme_host_and_port(pool: ConnectionPool) -> None:
    with raw_server(answer_all) as one, raw_server(answer_all) as two:
        for _ in range(3):
            assert post(pool, url(one)).status == post(pool, url(two)).status == 200
        # "localhost" is another key than "127.0.0.1", even on the same port.
        assert post(pool, url(one, host="localhost")).status == 200
        assert (one.accepted, two.accepted) == (2, 1)
        assert pool.idle_count() == 3


def test_the_server_closing_an_idle_connection_costs_nothing(pool: ConnectionPool) -> None:
    def one_answer_then_close(server: RawServer, number: int, sock: socket.socket, file: BinaryIO) -> None:
        if server.read(number, file) is not None:
            sock.sendall(reply())

    with raw_server(one_answer_then_close) as server:
        assert post(pool, url(server)).status == 200
        time.sleep(0.1)  # the close has arrived: the idle connection is readable and dropped unused
        assert post(pool, url(server)).status == 200
        assert server.accepted == 2
        assert len(server.requests) == 2  # nothing was sent on the closed connection


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_reused_connection_closed_before_answering_is_retried_once(pool: ConnectionPool, how: str) -> None:
    """The race a keep-alive client cannot avoid: the server closes an idle connection just as a
    request goes out on it. Nothing of the answer arrived, so the request is sent again, once."""

    def drop_the_second(server: RawServer, number: int, sock: socket.socket, file: BinaryIO) -> None:
        if number > 0:
            answer_all(server, number, sock, file)
            return
        server.read(number, file)
        sock.sendall(reply())
        server.read(number, file)
        if how == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with raw_server(drop_the_second) as server:
        assert post(pool, url(server), b"one").status == 200
        second = post(pool, url(server), b"two")
        assert (second.status, second.body) == (200, b"two")
        assert server.accepted == 2
        assert [(s.connection, s.body) for s in server.requests] == [(0, b"one"), (0, b"two"), (1, b"two")]


def test_the_retry_is_made_once_only(pool: ConnectionPool) -> None:
    def answer_once_per_server(server: RawServer, number: int, sock: socket.socket, file: BinaryIO) -> None:
        server.read(number, file)
        if number == 0:
            sock.sendall(reply())
            server.read(number, file)

    with raw_server(answer_once_per_server) as server:
        assert post(pool, url(server)).status == 200
        with pytest.raises(http1.ProtocolError, match="without response"):
            post(pool, url(server))
        assert server.accepted == 2


def test_a_fresh_connection_is_not_retried(pool: ConnectionPool) -> None:
    def never_answer(server: RawServer, number: int, sock: socket.socket, file: BinaryIO) -> None:
        server.read(number, file)

    with raw_server(never_answer) as server:
        with pytest.raises(http1.ProtocolError):
            post(pool, url(server))
        assert server.accepted == 1


@pytest.mark.parametrize(
    ("second", "error"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Le", http1.ProtocolError),  # a partial answer, then the close
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", http1.ProtocolError),  # a body cut short
        (b"", http1.ReadTimeout),  # no answer at all, the connection open
    ],
)
def test_a_partial_answer_or_a_timeout_is_not_retried(
    pool: ConnectionPool, second: bytes, error: type[Exception]
) -> None:
    def answer_then_misbehave(server: RawServer, number: int, sock: socket.socket, file: BinaryIO) -> None:
        server.read(number, file)
        sock.sendall(reply())
        server.read(number, file)
        if second:
            sock.sendall(second)
        else:
            time.sleep(0.6)

    with raw_server(answer_then_misbehave) as server:
        assert post(pool, url(server)).status == 200
        with pytest.raises(error):
            post(pool, url(server), timeout=0.3)
        assert server.accepted == 1
        assert pool.idle_count() == 0


@pytest.mark.parametrize(
    ("answer", "max_body", "body", "complete", "kept"),
    [
        (reply(b"x" * 100_000), 10, b"x" * 10, False, False),  # cut at the cap: the rest is never read
        (reply(b"x" * 10), 10, b"x" * 10, True, True),  # exactly the cap: all of it was read
        (reply(b"abc"), 0, b"", False, False),  # nothing wanted, something there
        (reply(b""), 0, b"", True, True),
        (reply(b"bye", headers=b"Connection: close\r\n"), 100, b"bye", True, False),  # the server asked
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            100,
            b"abcde",
            True,
            True,
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", 100, b"", True, True),
    ],
)
def test_only_an_answer_read_to_the_end_gives_its_connection_back(
    pool: ConnectionPool, answer: bytes, max_body: int, body: bytes, complete: bool, kept: bool
) -> None:
    def first_special(server: RawServer, number: int, sock: socket.socket, file: BinaryIO) -> None:
        if server.read(number, file) is None:
            return
        sock.sendall(answer)
        answer_all(server, number, sock, file)

    with raw_server(first_special) as server:
        response = post(pool, url(server), max_body=max_body)
        assert (response.body, response.complete) == (body, complete)
        assert pool.idle_count() == (1 if kept else 0)
        assert post(pool, url(server)).status == 200
        assert server.accepted == (1 if kept else 2)


def test_threads_share_the_pool_without_mixing_answers() -> None:
    with raw_server(answer_all) as server, ConnectionPool(LOOPBACK, max_idle_per_key=8) as pool:

        def run(thread: int) -> tuple[list[bytes], list[bytes]]:
            sent = [f"{thread}-{n}".encode() for n in range(50)]
            return sent, [post(pool, url(server), body).body for body in sent]

        with ThreadPoolExecutor(4) as threads:
            results = list(threads.map(run, range(4)))
        assert all(sent == answers for sent, answers in results)  # the server echoes each body
        assert 1 <= server.accepted <= 4  # a new connection only while all others are in use
        assert len(server.requests) == 200


def test_idle_connections_are_bounded_per_key() -> None:
    barrier = threading.Barrier(4)
    with raw_server(answer_all) as server, ConnectionPool(LOOPBACK, max_idle_per_key=2) as pool:

        def slow_together(_: int) -> int:
            barrier.wait(5)  # all four requests in flight at once: four connections
            return post(pool, url(server)).status

        with ThreadPoolExecutor(4) as threads:
            assert set(threads.map(slow_together, range(4))) == {200}
        assert pool.idle_count() <= 2
        wait_for(lambda: len(server.closed) >= server.accepted - 2, timeout=5)


def test_idle_connections_expire() -> None:
    with raw_server(answer_all) as server, ConnectionPool(LOOPBACK, idle_seconds=0.05) as short:
        assert post(short, url(server)).status == 200
        time.sleep(0.1)
        assert post(short, url(server)).status == 200
        assert server.accepted == 2
        wait_for(lambda: server.closed == [0], timeout=5)


def test_close_closes_the_idle_connections() -> None:
    with raw_server(answer_all) as server:
        pool = ConnectionPool(LOOPBACK)
        assert post(pool, url(server)).status == 200
        pool.close()
        assert pool.idle_count() == 0
        wait_for(lambda: server.closed == [0], timeout=5)
        assert post(pool, url(server)).status == 200  # still usable, but keeps nothing
        assert pool.idle_count() == 0


# ------------------------------------------------------------------------------- timeouts


def test_connect_timeout(pool: ConnectionPool) -> None:
    # A listener whose accept queue is full drops further SYNs: connecting hangs.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.settimeout(0.2)
            fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                break
        started = time.monotonic()
        with pytest.raises(http1.ConnectTimeout):
            post(pool, split_url(f"http://127.0.0.1:{port}/"), timeout=0.3)
        assert time.monotonic() - started < 1.5
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_write_timeout(pool: ConnectionPool) -> None:
    def never_read(server: RawServer, number: int, sock: socket.socket, file: BinaryIO) -> None:
        time.sleep(2)

    with raw_server(never_read) as server, pytest.raises(http1.WriteTimeout):
        post(pool, url(server), b"x" * 64_000_000, timeout=0.3)


@pytest.mark.parametrize(
    "answer",
    [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nstart"],  # no answer; a body that stalls
)
def test_read_timeout(pool: ConnectionPool, answer: bytes) -> None:
    def stall(server: RawServer, number: int, sock: socket.socket, file: BinaryIO) -> None:
        server.read(number, file)
        sock.sendall(answer)
        time.sleep(1)

    with raw_server(stall) as server:
        started = time.monotonic()
        with pytest.raises(http1.ReadTimeout):
            post(pool, url(server), timeout=0.2)
        assert time.monotonic() - started < 0.9


def test_a_trickling_body_hits_the_overall_deadline(pool: ConnectionPool) -> None:
    def trickle(server: RawServer, number: int, sock: socket.socket, file: BinaryIO) -> None:
        server.read(number, file)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(100):
            sock.sendall(b"x")
            time.sleep(0.02)

    with raw_server(trickle) as server:
        started = time.monotonic()
        with pytest.raises(http1.ReadDeadline):
            pool.request("POST", url(server), {}, b"", timeout=1, deadline=time.monotonic() + 0.3, max_body=1000)
        assert time.monotonic() - started < 0.9
        assert pool.idle_count() == 0


def test_garbage_is_a_protocol_error(pool: ConnectionPool) -> None:
    def garbage(server: RawServer, number: int, sock: socket.socket, file: BinaryIO) -> None:
        server.read(number, file)
        sock.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    with raw_server(garbage) as server, pytest.raises(http1.ProtocolError, match="BadStatusLine"):
        post(pool, url(server))


def test_connection_refused(pool: ConnectionPool) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(http1.ConnectError, match="refused"):
        post(pool, split_url(f"http://127.0.0.1:{port}/"))


def test_nothing_is_sent_for_an_invalid_request_or_url(pool: ConnectionPool) -> None:
    with raw_server(answer_all) as server:
        with pytest.raises(http1.InvalidRequest):
            pool.request(
                "POST", url(server), {"X": "a\r\nb: c"}, b"", timeout=1, deadline=time.monotonic() + 1, max_body=0
            )
        with pytest.raises(http1.InvalidURL):
            post(pool, split_url(f"ftp://127.0.0.1:{server.port}/"))
        with pytest.raises(http1.InvalidURL):
            post(pool, split_url("http:///nohost"))
        assert server.accepted == 0


# --------------------------------------------------------------------------- pinned egress


def fixed(answers: dict[str, list[list[str]]]) -> tuple[list[str], Callable[[str, int], Sequence[IPAddress]]]:
    """A resolver answering each name with its next answer (the last one again when they run out);
    an IP literal is itself, as with the real resolver."""
    calls: list[str] = []

    def resolve(host: str, port: int) -> Sequence[IPAddress]:
        if host not in answers:
            return [ipaddress.ip_address(host)]
        calls.append(host)
        queue = answers[host]
        return [ipaddress.ip_address(a) for a in (queue.pop(0) if len(queue) > 1 else queue[0])]

    return calls, resolve


def test_a_name_is_resolved_once_and_its_checked_address_is_used() -> None:
    calls, resolver = fixed({"hooks.example": [["127.0.0.1"]]})
    with raw_server(answer_all) as server, ConnectionPool(LOOPBACK, resolver=resolver) as pool:
        for _ in range(3):
            assert post(pool, url(server, host="hooks.example")).status == 200
        assert calls == ["hooks.example"]  # the kept connection is reused without a new lookup
        assert server.accepted == 1
        assert server.requests[0].headers["host"] == f"hooks.example:{server.port}"


def test_a_refused_address_is_never_connected_to() -> None:
    _calls, resolver = fixed({"hooks.example": [["127.0.0.1"]], "meta.example": [["169.254.169.254"]]})
    with raw_server(answer_all) as server, ConnectionPool(STRICT, resolver=resolver) as pool:
        with pytest.raises(EgressRefused, match=r"hooks\.example resolves to 127\.0\.0\.1 is a loopback address"):
            post(pool, url(server, host="hooks.example"))
        with pytest.raises(EgressRefused, match="link-local"):
            post(pool, split_url("http://meta.example/"))
        with pytest.raises(EgressRefused):
            post(pool, url(server))  # an IP literal is checked the same way
        assert server.accepted == 0


def test_a_dns_change_takes_effect_with_the_next_connection_only() -> None:
    """Rebinding: a later answer naming an internal address is refused, never connected to; the
    connection made to the address checked earlier stays what it was."""
    calls, resolver = fixed({"hooks.example": [["127.0.0.1"], ["10.0.0.1"]]})
    with raw_server(answer_all) as server, ConnectionPool(LOOPBACK, resolver=resolver, idle_seconds=0.1) as pool:
        assert post(pool, url(server, host="hooks.example")).status == 200
        assert post(pool, url(server, host="hooks.example")).status == 200  # kept: no new lookup
        time.sleep(0.15)  # idle too long: closed, the next request resolves again
        with pytest.raises(EgressRefused, match=r"10\.0\.0\.1 is a private address"):
            post(pool, url(server, host="hooks.example"))
        assert calls == ["hooks.example", "hooks.example"]
        assert server.accepted == 1


def test_each_checked_address_is_tried_in_turn() -> None:
    # Nothing listens on ::1 at that port (or there is no IPv6): 127.0.0.1 is used.
    _calls, resolver = fixed({"dual.example": [["::1", "127.0.0.1"]]})
    with raw_server(answer_all) as server, ConnectionPool(LOOPBACK, resolver=resolver) as pool:
        assert post(pool, url(server, host="dual.example")).status == 200


def test_a_name_that_does_not_resolve_is_a_connect_error() -> None:
    def broken(host: str, port: int) -> Sequence[IPAddress]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with ConnectionPool(LOOPBACK, resolver=broken) as pool, pytest.raises(http1.ConnectError, match="cannot resolve"):
        post(pool, split_url("http://nowhere.invalid/"))


# ------------------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class Authority:
    """A throwaway certificate authority and one server certificate it signed, as PEM files."""

    ca_pem: Path
    cert_pem: Path
    key_pem: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_pem))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    """Made with cryptography (a kiosk dependency); the server certificate is for hooks.example."""
    folder = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("kiosk test CA"))
        .issuer_name(_name("kiosk test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("hooks.example"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("hooks.example")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = Authority(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    paths.ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key_pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@contextmanager
def tls_server(test_ca: Authority) -> Iterator[tuple[RawServer, list[str | None]]]:
    """A keep-alive TLS server with the hooks.example certificate; records the SNI names it got."""
    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(test_ca.cert_pem, test_ca.key_pem)
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)  # type: ignore[assignment,func-returns-value]
    with raw_server(answer_all, tls=context) as server:
        yield server, names


def test_tls_checks_the_certificate_against_the_url_name(test_ca: Authority) -> None:
    _calls, resolver = fixed({"hooks.example": [["127.0.0.1"]]})
    with tls_server(test_ca) as (server, names):
        pool = ConnectionPool(LOOPBACK, resolver=resolver, ssl_context=test_ca.client_context())
        with pool:
            for _ in range(3):
                response = post(pool, url(server, scheme="https", host="hooks.example"), b"secret")
                assert (response.status, response.body) == (200, b"secret")
        assert names == ["hooks.example"]  # SNI is the name; one handshake, the connection kept
        assert server.accepted == 1
        assert server.requests[0].headers["host"] == f"hooks.example:{server.port}"


def test_tls_refuses_a_certificate_for_another_name(test_ca: Authority) -> None:
    _calls, resolver = fixed({"other.example": [["127.0.0.1"]]})
    with tls_server(test_ca) as (server, _names):
        with ConnectionPool(LOOPBACK, resolver=resolver, ssl_context=test_ca.client_context()) as pool:
            with pytest.raises(http1.ConnectError, match="certificate verify failed"):
                post(pool, url(server, scheme="https", host="other.example"))
            with pytest.raises(http1.ConnectError, match="certificate verify failed"):
                post(pool, url(server, scheme="https"))  # the IP is not what the certificate names
        assert server.requests == []


def test_tls_by_default_trusts_only_the_system_store(test_ca: Authority) -> None:
    _calls, resolver = fixed({"hooks.example": [["127.0.0.1"]]})
    with tls_server(test_ca) as (server, _names), ConnectionPool(LOOPBACK, resolver=resolver) as pool:
        with pytest.raises(http1.ConnectError, match="certificate verify failed"):
            post(pool, url(server, scheme="https", host="hooks.example"))
        assert server.requests == []


def test_the_default_tls_context_verifies_and_takes_nothing_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SSLKEYLOGFILE", str(tmp_path / "keys.log"))
    with ConnectionPool(STRICT) as pool:
        context = pool._tls()
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert context.keylog_filename is None
