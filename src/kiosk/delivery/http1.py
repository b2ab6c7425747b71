"""A small keep-alive HTTP/1.1 client for the delivery hot path, over the standard library.

Why not httpx: on the 2-core machine the throughput target (≥ 1,000 deliveries/s, bench/delivery.py)
is measured on, 4 threads POSTing 3,000 small JSON bodies to the bench's loopback receiver reached
800/s through ``httpx.Client``, 1,160/s through a bare ``httpcore.ConnectionPool`` and 2,700/s
through ``http.client`` with one kept-alive connection per thread. The per-request Python work of
httpx/httpcore/h11, not the network, was the ceiling. Deliveries need very little of what httpx
offers (no redirects, cookies, auth, proxies, HTTP/2 or streaming uploads), so this module does
the few things they need explicitly:

* **Pinned egress.** A new connection resolves the host once with
  :func:`~kiosk.delivery.egress.checked_addresses` (every address must pass the policy) and
  connects to a checked address, trying each in turn. ``Host`` is the URL's ``host[:port]``; TLS
  uses the URL's host as ``server_hostname``, so SNI and the certificate check are against the
  name, never the IP.
* **Keep-alive, per (scheme, host, port).** A connection goes back to the pool only after its
  response was read to the end and the server did not ask to close it. Idle connections live at
  most ``idle_seconds`` (so a DNS change takes effect within that time; a pooled connection was
  checked when it was made, and it stays connected to that address), at most
  ``max_idle_per_key`` are kept per key, and one that turned readable while idle (the server
  closed it) is dropped before use.
* **One retry, for one case only.** A reused connection that fails before a single byte of the
  response arrived (the server closed it while it was idle: broken pipe or reset while sending,
  reset or end of stream on the first read) is retried once on a fresh connection. A timeout, a
  partly read answer or a fresh connection's failure is never retried here: the delivery's retry
  schedule decides.
* **Timeouts per phase.** Connecting (TCP and TLS handshake), sending the request and every read
  each get ``timeout`` seconds; the body is also read against an overall ``deadline``.
* **The request leaves in one ``sendall``** (head and body joined). ``http.client``'s own
  ``request()`` sends the head and the body in two ``send`` calls (CPython 3.11
  ``HTTPConnection._send_output``), which with ``TCP_NODELAY`` means two segments; the old
  httpcore path needed a coalescing stream for the same reason.
* **Bounded answers.** At most ``max_body`` bytes of a body are read; a connection whose body was
  not read to the end is closed, never reused.

Parsing the response is ``http.client.HTTPResponse``'s (status line, headers, chunked and
``Content-Length`` framing, ``Connection: close``).

The pure part (:func:`split_url`, :func:`encode_request`, :func:`charset`, :class:`Response`) has no
IO; :class:`ConnectionPool` does the socket work. The pool is thread safe: several sender threads
share one, a lock guards the idle lists and a connection is used by one thread at a time.
"""

from __future__ import annotations

import codecs
import contextlib
import email.message
import http.client
import io
import ipaddress
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast
from urllib.parse import quote, urlsplit

from kiosk.delivery.egress import EgressPolicy, IPAddress, Unresolvable, checked_addresses, resolve

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "ConnectError",
    "ConnectTimeout",
    "ConnectionPool",
    "InvalidRequest",
    "InvalidURL",
    "ProtocolError",
    "ReadDeadline",
    "ReadError",
    "ReadTimeout",
    "Response",
    "Target",
    "Timeout",
    "TransportError",
    "WriteError",
    "WriteTimeout",
    "charset",
    "encode_request",
    "split_url",
]

DEFAULT_PORTS = {"http": 80, "https": 443}
#: How much of a body one read asks for (the deadline is checked between reads).
READ_CHUNK = 65_536
#: Headers the client sets itself: framing and the target are not the caller's to choose.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
#: RFC 9110 token (a method or a header name).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Control characters a field value must not contain (a line break would start a new header).
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: A host name after IDNA encoding: letters, digits, hyphens, underscores, dots.
_HOST_NAME = re.compile(r"[a-z0-9_.-]+")
#: Characters left as they are in a request target; everything else is percent-encoded (UTF-8).
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


# ----------------------------------------------------------------------------------- errors


class InvalidURL(ValueError):
    """The URL cannot be sent to (no host, a bad port, a host that is not a host name)."""


class InvalidRequest(ValueError):
    """The request cannot be written (a header value with a line break, a method that is no token)."""


class TransportError(Exception):
    """Something the network or the receiver did; the message says what."""


class ConnectError(TransportError):
    """No connection: refused, unreachable, the name did not resolve, the TLS handshake failed."""


class Timeout(TransportError):
    """A phase took longer than its timeout."""


class ConnectTimeout(Timeout):
    """Connecting (TCP or the TLS handshake) timed out."""


class WriteTimeout(Timeout):
    """Sending the request timed out."""


class ReadTimeout(Timeout):
    """A read of the response (its head or a piece of its body) timed out."""


class ReadDeadline(Timeout):
    """The body was still arriving when the attempt's overall deadline passed."""


class WriteError(TransportError):
    """The connection failed while the request was sent."""


class ReadError(TransportError):
    """The connection failed while the response was read."""


class ProtocolError(TransportError):
    """The receiver's answer is not HTTP/1.1 (garbage, a truncated body, closed without an answer)."""


# -------------------------------------------------------------------------------- pure part


@dataclass(frozen=True)
class Target:
    """Where a request goes: the URL split into what the connection and the request line need."""

    scheme: str  # lower case; http or https for anything sendable
    host: str  # lower case, IDNA-encoded, IPv6 without brackets; "" when the URL has none
    port: int
    target: str  # the request target: path and query, percent-encoded, "/" at least

    @property
    def key(self) -> tuple[str, str, int]:
        """What a kept-alive connection is reused for: only this scheme, host and port."""
        return (self.scheme, self.host, self.port)

    @property
    def host_header(self) -> str:
        """``Host``: the URL's host, with the port unless it is the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if DEFAULT_PORTS.get(self.scheme) == self.port else f"{host}:{self.port}"


def _ascii_host(host: str) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return host
    try:
        encoded = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError as exc:
        raise InvalidURL(f"invalid host {host!r}: {exc}") from None
    if not _HOST_NAME.fullmatch(encoded):
        raise InvalidURL(f"invalid host {host!r}")
    return encoded


def split_url(url: str) -> Target:
    """``url`` as a :class:`Target`; :class:`InvalidURL` if it cannot be one.

    The scheme is not judged here (:func:`~kiosk.delivery.egress.check_scheme` does that, with its
    own message); a missing host comes back as ``""``. User info and the fragment are dropped.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(str(exc)) from None
    scheme = parts.scheme.lower()
    host = _ascii_host(parts.hostname.rstrip(".")) if parts.hostname else ""
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    if not path.startswith("/"):
        path = "/" + path
    target = f"{path}?{quote(parts.query, safe=_QUERY_SAFE)}" if parts.query else path
    return Target(scheme, host, port if port is not None else DEFAULT_PORTS.get(scheme, 0), target)


def encode_request(method: str, target: Target, headers: Mapping[str, str], body: bytes) -> bytes:
    """The whole request, head and body, as the bytes to send; :class:`InvalidRequest` if it cannot be.

    Header names are merged case-insensitively (a later one replaces an earlier one). ``Host``,
    ``Content-Length``, ``Transfer-Encoding`` and ``Connection`` are the client's: ``Host`` is
    always the URL's, the body always goes with a ``Content-Length``, and the connection is kept
    alive. Values must be ASCII without control characters (a line break would inject a header);
    surrounding white space is dropped.
    """
    if not _TOKEN.fullmatch(method):
        raise InvalidRequest(f"invalid method {method!r}")
    merged: dict[str, tuple[str, str]] = {}
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise InvalidRequest(f"invalid header name {name!r}")
        if _BAD_VALUE.search(value):
            raise InvalidRequest(f"the value of header {name!r} contains a control character or a line break")
        if not value.isascii():
            raise InvalidRequest(f"the value of header {name!r} is not ASCII")
        lower = name.lower()
        if lower not in _OWN_HEADERS:
            merged[lower] = (name, value.strip(" \t"))
    lines = [f"{method} {target.target} HTTP/1.1", f"Host: {target.host_header}"]
    lines += [f"{name}: {value}" for name, value in merged.values()]
    if body or method.upper() in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    return head + body if body else head


def charset(content_type: str | None) -> str:
    """The charset a ``Content-Type`` declares if Python knows it, else UTF-8.

    Parsed with :mod:`email` as httpx did (quotes, parameters in any order, case).
    """
    if content_type:
        message = email.message.Message()
        message["content-type"] = content_type
        declared = message.get_content_charset(None)
        if declared:
            try:
                codecs.lookup(declared)
            except LookupError:
                return "utf-8"
            return declared
    return "utf-8"


@dataclass(frozen=True)
class Response:
    """A response with its body read (at most the cap asked for)."""

    status: int
    headers: tuple[tuple[str, str], ...]  # as received, in order
    body: bytes
    complete: bool  # the whole body was read (False when the cap cut it short)

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (any case), or None."""
        lower = name.lower()
        return next((value for key, value in self.headers if key.lower() == lower), None)

    def text(self) -> str:
        """The body decoded with its declared charset; what does not decode is replaced."""
        return self.body.decode(charset(self.header("content-type")), errors="replace") if self.body else ""


# ---------------------------------------------------------------------------- socket part


class _CountingReader(io.RawIOBase):
    """The socket as a raw file that remembers whether anything was received.

    A failure on a reused connection is retried only when not one byte of the answer had arrived;
    ``received`` tells that apart exactly (``socket.makefile`` would not).
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self.received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        count = self._sock.recv_into(buffer)
        self.received += count
        return count


class _ResponseFile(io.BufferedReader):
    """The buffered socket ``http.client`` parses the answer from, remembering the last line read.

    ``http.client`` takes a head cut short by the end of the stream (``HTTP/1.1 200 OK\r\nConte``)
    as complete; h11 did not, and neither does this client: the head must end with its blank line.
    """

    last_line = b""

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        self.last_line = line
        return line


class _FileOnly:
    """What ``http.client.HTTPResponse`` takes as its socket: it only ever calls ``makefile("rb")``."""

    def __init__(self, file: _ResponseFile) -> None:
        self._file = file

    def makefile(self, mode: str) -> _ResponseFile:
        return self._file


class _Connection:
    """One socket to one (scheme, host, port); used by one thread at a time."""

    __slots__ = ("idle_since", "key", "sock")

    def __init__(self, sock: socket.socket, key: tuple[str, str, int]) -> None:
        self.sock = sock
        self.key = key
        self.idle_since = 0.0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def looks_closed(self) -> bool:
        """Readable while idle: the server closed it (or sent something nobody asked for)."""
        try:
            if hasattr(select, "poll"):
                poller = select.poll()
                poller.register(self.sock, select.POLLIN)
                return bool(poller.poll(0))
            readable, _, _ = select.select([self.sock], [], [], 0)
            return bool(readable)
        except (OSError, ValueError):
            return True


class _Stale(Exception):
    """A reused connection failed before any of the answer arrived: the server had closed it."""


def _unanswered(exc: BaseException) -> bool:
    """The server closed the connection instead of answering (reset, broken pipe, end of stream)."""
    return isinstance(exc, ConnectionError | ssl.SSLEOFError)


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections, pinned by the egress policy; see the module docstring.

    ``resolver`` and ``ssl_context`` are for tests (a name mapped to loopback, a test CA). The
    default TLS context is :func:`ssl.create_default_context` (certificate and host name checks on,
    TLS 1.2 at least, the system's trust store), made on first use.
    """

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        max_idle_per_key: int = 8,
        idle_seconds: float = 30.0,
        resolver: Callable[[str, int], Sequence[IPAddress]] = resolve,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy
        self.max_idle_per_key = max_idle_per_key
        self.idle_seconds = idle_seconds
        self._resolver = resolver
        self._ssl_context = ssl_context
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}  # oldest first
        self._next_sweep = 0.0
        self._closed = False

    def __enter__(self) -> ConnectionPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --------------------------------------------------------------------------- public

    def request(
        self,
        method: str,
        target: Target,
        headers: Mapping[str, str],
        body: bytes,
        *,
        timeout: float,
        deadline: float,
        max_body: int,
    ) -> Response:
        """Send one request and read its answer (at most ``max_body`` bytes of body).

        Raises :class:`InvalidURL` / :class:`InvalidRequest` before anything is sent,
        :class:`~kiosk.delivery.egress.EgressRefused` for a target the policy refuses, and a
        :class:`TransportError` for what the network or the receiver did.
        """
        if target.scheme not in DEFAULT_PORTS:
            raise InvalidURL(f"scheme {target.scheme!r} is not http or https")
        if not target.host:
            raise InvalidURL("no host")
        data = encode_request(method, target, headers, body)
        head_only = method.upper() == "HEAD"
        conn = self._checkout(target.key)
        if conn is not None:
            try:
                return self._exchange(conn, data, head_only, timeout, deadline, max_body, reused=True)
            except _Stale:
                pass  # closed by the server while idle: once more, on a fresh connection
        conn = self._connect(target, timeout)
        return self._exchange(conn, data, head_only, timeout, deadline, max_body, reused=False)

    def close(self) -> None:
        """Close every idle connection; connections in use are closed when their request ends."""
        with self._lock:
            self._closed = True
            idle = [conn for conns in self._idle.values() for conn in conns]
            self._idle.clear()
        for conn in idle:
            conn.close()

    def idle_count(self, key: tuple[str, str, int] | None = None) -> int:
        """Idle connections kept for ``key`` (all keys when None)."""
        with self._lock:
            if key is not None:
                return len(self._idle.get(key, ()))
            return sum(len(conns) for conns in self._idle.values())

    # ------------------------------------------------------------------------ the pool

    def _checkout(self, key: tuple[str, str, int]) -> _Connection | None:
        """The most recently used live idle connection for ``key``, or None."""
        while True:
            expired: list[_Connection] = []
            with self._lock:
                conns = self._idle.get(key)
                if not conns:
                    return None
                conn = conns.pop()
                if time.monotonic() - conn.idle_since > self.idle_seconds:
                    expired = [conn, *conns]  # the rest went idle even earlier
                    conns.clear()
                if not conns:
                    del self._idle[key]
            if expired:
                for old in expired:
                    old.close()
                return None
            if not conn.looks_closed():
                return conn
            conn.close()

    def _checkin(self, conn: _Connection) -> None:
        now = time.monotonic()
        conn.idle_since = now
        dropped: list[_Connection] = []
        with self._lock:
            if self._closed:
                dropped.append(conn)
            else:
                conns = self._idle.setdefault(conn.key, [])
                conns.append(conn)
                if len(conns) > self.max_idle_per_key:
                    dropped.append(conns.pop(0))
                if now >= self._next_sweep:
                    dropped += self._sweep(now)
        for old in dropped:
            old.close()

    def _sweep(self, now: float) -> list[_Connection]:
        """Take out connections idle too long under every key (the lock is held)."""
        self._next_sweep = now + min(self.idle_seconds, 5.0)
        expired: list[_Connection] = []
        for key in list(self._idle):
            conns = self._idle[key]
            keep = [c for c in conns if now - c.idle_since <= self.idle_seconds]
            expired += [c for c in conns if now - c.idle_since > self.idle_seconds]
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]
        return expired

    def _tls(self) -> ssl.SSLContext:
        with self._lock:
            if self._ssl_context is None:
                context = ssl.create_default_context()
                # create_default_context honours SSLKEYLOGFILE, which would write every session's
                # keys to a file: not something the environment gets to switch on here.
                context.keylog_filename = None  # type: ignore[assignment]
                context.set_alpn_protocols(["http/1.1"])
                self._ssl_context = context
            return self._ssl_context

    # ------------------------------------------------------------------------ socket IO

    def _connect(self, target: Target, timeout: float) -> _Connection:
        """A new connection to a checked address of ``target``'s host (each tried in turn)."""
        try:
            addresses = checked_addresses(target.host, target.port, self.policy, self._resolver)
        except Unresolvable as exc:
            raise ConnectError(str(exc)) from None
        last: OSError | None = None
        sock: socket.socket | None = None
        for address in addresses:
            family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            candidate = socket.socket(family, socket.SOCK_STREAM)
            try:
                candidate.settimeout(timeout)
                candidate.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                candidate.connect((str(address), target.port))
            except OSError as exc:
                candidate.close()
                last = exc
                continue
            sock = candidate
            break
        if sock is None:
            if isinstance(last, TimeoutError):
                raise ConnectTimeout(str(last))
            raise ConnectError(str(last))
        if target.scheme == "https":
            try:
                sock = self._tls().wrap_socket(sock, server_hostname=target.host)
            except TimeoutError as exc:
                sock.close()
                raise ConnectTimeout(str(exc)) from None
            except OSError as exc:  # ssl.SSLError, the certificate check, a reset during the handshake
                sock.close()
                raise ConnectError(str(exc)) from None
        return _Connection(sock, target.key)

    def _exchange(
        self,
        conn: _Connection,
        data: bytes,
        head_only: bool,
        timeout: float,
        deadline: float,
        max_body: int,
        *,
        reused: bool,
    ) -> Response:
        """Send ``data`` on ``conn`` and read the answer; ``conn`` goes back to the pool or is closed.

        Raises :class:`_Stale` (only when ``reused``) if the server closed the connection before
        any of the answer arrived.
        """
        keep = False
        try:
            conn.sock.settimeout(timeout)
            try:
                conn.sock.sendall(data)
            except TimeoutError as exc:
                raise WriteTimeout(str(exc)) from None
            except OSError as exc:
                if reused and _unanswered(exc):
                    raise _Stale(str(exc)) from None
                raise WriteError(str(exc)) from None
            reader = _CountingReader(conn.sock)
            file = _ResponseFile(reader)
            method = "HEAD" if head_only else "POST"  # only HEAD changes how http.client reads the body
            response = http.client.HTTPResponse(cast(socket.socket, _FileOnly(file)), method=method)
            try:
                response.begin()
                if file.last_line not in (b"\r\n", b"\n"):
                    raise ProtocolError("the connection closed in the middle of the response head")
            except TimeoutError as exc:
                raise ReadTimeout(str(exc)) from None
            except (http.client.HTTPException, OSError) as exc:
                error = _read_failure(exc)
                if reused and reader.received == 0 and _unanswered(exc):
                    raise _Stale(str(error)) from None
                raise error from None
            try:
                body, complete = _read_capped(response, max_body, deadline)
            except TimeoutError as exc:
                raise ReadTimeout(str(exc)) from None
            except (http.client.HTTPException, OSError) as exc:
                raise _read_failure(exc) from None
            keep = complete and not response.will_close
            return Response(response.status, tuple(response.getheaders()), body, complete)
        finally:
            if keep:
                self._checkin(conn)
            else:
                conn.close()


def _read_failure(exc: BaseException) -> TransportError:
    """What a failed read of the answer becomes: a protocol error, or a read error for the socket's own."""
    if isinstance(exc, http.client.RemoteDisconnected):
        return ProtocolError(str(exc) or "the connection closed without an answer")
    if isinstance(exc, http.client.IncompleteRead):
        return ProtocolError(f"the body ended early ({len(exc.partial)} bytes read, {exc.expected} more expected)")
    if isinstance(exc, http.client.HTTPException):
        return ProtocolError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    return ReadError(str(exc))


def _read_capped(response: http.client.HTTPResponse, cap: int, deadline: float) -> tuple[bytes, bool]:
    """At most ``cap`` bytes of the body, and whether that was all of it.

    Stops reading at the cap (the rest is never downloaded). ``read1`` returns what one receive
    brings, so the deadline is checked while a slow body trickles in. A body shorter than its
    ``Content-Length`` is a protocol error (``http.client`` itself would return it short).
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        if response.isclosed() or response.length == 0:
            return b"".join(chunks), True
        if size >= cap:
            return b"".join(chunks), False
        expected = response.length
        chunk = response.read1(min(cap - size, READ_CHUNK))
        if not chunk:
            if expected:
                raise http.client.IncompleteRead(b"".join(chunks), expected)
            return b"".join(chunks), True  # the end of a chunked body, or of one read until close
        chunks.append(chunk)
        size += len(chunk)
        if time.monotonic() > deadline:
            raise ReadDeadline("the overall deadline passed while the body was read")
