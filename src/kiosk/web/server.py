"""kiosk's HTTP server: uvicorn, with deadlines for slow clients, a connection cap and JSON parse errors.

uvicorn on its own waits as long as a client likes for a request's headers and body, and accepts
connections until the process runs out of file descriptors: 5,000 connections that had sent half
a body were all still open 15 s later, and under ``ulimit -n 1024`` 1,100 of them made ``/healthz``
fail (issue 10). It also answers a request it cannot parse (a malformed ``Content-Length``, say)
in plain text. This module keeps uvicorn and the httptools protocol ``uvicorn[standard]`` runs,
and adds in a subclass of that protocol:

- **a header deadline**: a request's headers must be complete ``header_timeout`` seconds after
  its connection opened or its previous response ended;
- **a body deadline**: its body must be complete ``body_timeout`` seconds after its headers.
  A request that misses either is answered 408 (JSON) and its connection closed;
- **idle keep-alive** bounded by ``keepalive_timeout``;
- **a connection cap** below the file-descriptor limit, whose soft value is raised to the hard
  one at start. When a new connection would pass the cap, the connection that has waited longest
  for its request's headers or body is dropped to make room: slow clients make way for quick
  ones, so ``/healthz`` still gets through a slow-loris flood. A connection whose request is
  being handled is never dropped (a newcomer finding only those is the one refused);
- **parse errors answered in the app's JSON error shape**: kiosk's ``{"ok": false, ...}``, or
  Azure's for the emulator (its renderer, :func:`kiosk.emulator.errors.server_error_body`, is passed in).

(A WebSocket upgrade leaves the guard with the connection, as it leaves uvicorn's own bookkeeping;
kiosk serves no WebSockets.)

Deadlines are checked by one sweep per server, a few times a second, over the connections that
are waiting. Per request a connection only stores its deadline and moves in or out of a dict; the
sweep also replaces uvicorn's keep-alive timer (one ``call_later`` per response), so a request
costs about what it did under uvicorn alone (+0.4 µs of CPU measured, on ~12 µs of protocol work).

Every server kiosk starts — ``kiosk serve``, ``kiosk demo``, ``kiosk emulator``, the tests' and the
benchmarks' — is configured by :func:`server_config`. ``python -m kiosk.web.server MODULE:APP``
runs an app (or with ``--factory`` an app factory) under it, as ``uvicorn`` would.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import math
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import httptools
import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from kiosk.settings import HttpLimits

__all__ = [
    "ConnectionGuard",
    "ErrorRenderer",
    "GuardedHttpProtocol",
    "connection_cap",
    "kiosk_error_body",
    "server_config",
]

log = logging.getLogger("kiosk.web.server")

#: Renders the JSON body of an error the server answers itself: ``(status, code, message) -> bytes``.
ErrorRenderer = Callable[[int, str, str], bytes]

#: File descriptors kept free for everything but client connections (database, outbound
#: deliveries, logs): at least this many, and at least a quarter of the limit.
FD_RESERVE_MIN = 128


def kiosk_error_body(status: int, code: str, message: str) -> bytes:
    """kiosk's error JSON, the shape of :func:`kiosk.web.responses.error_response`."""
    return orjson.dumps({"ok": False, "error": code, "message": message})


def connection_cap(configured: int) -> int:
    """How many connections a server may hold: ``configured``, and fewer than the process's
    file-descriptor limit minus a reserve (a server at its limit cannot even accept() to shed load).

    Raises the soft ``RLIMIT_NOFILE`` to the hard limit first, as servers commonly do, since the
    soft default (often 1,024) is a compatibility value rather than a resource bound.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # an infinite hard limit above the kernel's nr_open
            pass
    if soft == resource.RLIM_INFINITY:
        return configured
    reserve = max(FD_RESERVE_MIN, soft // 4)
    return max(1, min(configured, soft - reserve))


class ConnectionGuard:
    """One server's deadlines and connection cap, shared by its connections (one event loop)."""

    def __init__(self, limits: HttpLimits, max_connections: int, error_body: ErrorRenderer) -> None:
        self.limits = limits
        self.max_connections = max_connections
        self.error_body = error_body
        #: Connections waiting for a request's headers or body, the longest-waiting first (a dict
        #: keeps insertion order; cheaper per request than an OrderedDict).
        self.waiting: dict[GuardedHttpProtocol, None] = {}
        #: Connections dropped whose ``connection_lost`` has not run yet (still in uvicorn's set).
        self.dropping: set[GuardedHttpProtocol] = set()
        #: How often the sweep looks for missed deadlines: a deadline is enforced within this.
        shortest = min(limits.header_timeout, limits.body_timeout, limits.keepalive_timeout)
        self.tick = min(1.0, max(0.05, shortest / 4))
        self._sweep: asyncio.TimerHandle | None = None
        self._dropped: dict[str, int] = {}
        self._reported_at = -math.inf

    # -- called by the protocol ---------------------------------------------------------------

    def admit(self, conn: GuardedHttpProtocol) -> bool:
        """A new connection: make room for it if the server is full. False if it was refused."""
        if len(conn.connections) - len(self.dropping) > self.max_connections:
            victim = next(iter(self.waiting), None)
            if victim is None:  # every other connection has a request being handled
                self._drop(conn, "refused (all connections busy)")
                return False
            self._drop(victim, "evicted (server full)")
        conn.idle_since = conn.loop.time()
        self.wait(conn, conn.idle_since + self.limits.header_timeout)
        return True

    def wait(self, conn: GuardedHttpProtocol, deadline: float) -> None:
        """``conn`` waits (again) for a request, from now, until ``deadline``: last in line for eviction."""
        conn.deadline = deadline
        waiting = self.waiting
        waiting.pop(conn, None)
        waiting[conn] = None
        if self._sweep is None:
            self._sweep = conn.loop.call_later(self.tick, self._sweep_once, conn.loop)

    def forget(self, conn: GuardedHttpProtocol) -> None:
        self.waiting.pop(conn, None)
        self.dropping.discard(conn)

    # -- the sweep ------------------------------------------------------------------------------

    def _sweep_once(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweep = None
        now = loop.time()
        for conn in [c for c in self.waiting if c.deadline <= now]:
            self.waiting.pop(conn, None)
            conn.expire()
        if self.waiting:
            self._sweep = loop.call_later(self.tick, self._sweep_once, loop)

    def _drop(self, conn: GuardedHttpProtocol, reason: str) -> None:
        self.waiting.pop(conn, None)
        self.dropping.add(conn)
        conn.transport.abort()  # frees the descriptor now; nothing useful is owed to this client
        self.count(reason)

    def count(self, reason: str) -> None:
        """Tally a dropped connection; log the tally at most once a minute (a flood must not flood the log)."""
        self._dropped[reason] = self._dropped.get(reason, 0) + 1
        now = time.monotonic()
        if now - self._reported_at >= 60:
            self._reported_at = now
            tally = ", ".join(f"{n} {why}" for why, n in sorted(self._dropped.items()))
            self._dropped = {}
            log.warning("slow or excess HTTP connections dropped (since the last such line): %s", tally)


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :class:`ConnectionGuard`'s deadlines, cap and JSON errors."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        guard = getattr(config, "connection_guard", None)
        if not isinstance(guard, ConnectionGuard):
            raise TypeError("GuardedHttpProtocol needs a config made by kiosk.web.server.server_config")
        self.guard = guard
        self.waiting = guard.waiting
        self.header_timeout = guard.limits.header_timeout
        self.body_timeout = guard.limits.body_timeout
        self.keepalive_timeout = guard.limits.keepalive_timeout
        #: When the connection last started waiting for a request (opened, or answered the last one).
        self.idle_since = 0.0
        #: When the current wait (for a request, its headers or its body) ends, on the loop's clock.
        self.deadline = math.inf
        #: The parser is inside a request (its headers have begun).
        self.request_begun = False
        #: The request now being parsed has all its headers; its body is still arriving.
        self.reading_body = False

    # -- connection life ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.guard.admit(self)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.guard.forget(self)

    def data_received(self, data: bytes) -> None:
        # uvicorn's, with the parser's reason in a JSON 400 instead of a fixed plain-text line (and
        # no keep-alive timer to cancel: the guard's deadline replaces it).
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            log.info("malformed HTTP request from %s: %s", self._peer(), exc)
            self.answer_error(400, "bad_request", f"malformed HTTP request: {exc}")
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def send_400_response(self, msg: str) -> None:
        self.answer_error(400, "bad_request", msg)

    def handle_websocket_upgrade(self) -> None:
        self.guard.forget(self)  # the connection is the WebSocket protocol's now (uvicorn forgets it too)
        super().handle_websocket_upgrade()

    # -- where each wait starts and ends ----------------------------------------------------------
    #
    # These run for every request: they store a number and move the connection in or out of the
    # guard's dict, no more. uvicorn's keep-alive timer (one call_later per response) is replaced
    # by the same deadline, so a request costs about what it did under uvicorn alone.

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.request_begun = True
        self.deadline = self.idle_since + self.header_timeout  # keep-alive is over; the headers' clock runs

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self.reading_body = True
        self.deadline = self.loop.time() + self.body_timeout

    def on_message_complete(self) -> None:
        cycle = self.cycle  # None until a first request's headers are in (an upgrade skips them)
        answered = cycle is not None and cycle.response_complete  # the app answered before the body ended
        super().on_message_complete()
        self.reading_body = self.request_begun = False
        if not answered:
            self.waiting.pop(self, None)  # being handled: no deadline, never evicted

    def on_response_complete(self) -> None:
        # uvicorn's, with the guard's deadline in place of its keep-alive timer.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        now = self.loop.time()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            if cycle.more_body:  # a pipelined request whose body is still to come
                self.guard.wait(self, now + self.body_timeout)
        else:
            self.idle_since = now
            # Idle until the next request begins (or still reading the body of one answered early).
            self.guard.wait(self, now + (self.header_timeout if self.request_begun else self.keepalive_timeout))

    # -- deadlines and errors ---------------------------------------------------------------------

    def expire(self) -> None:
        """The sweep found this connection's wait past its deadline."""
        limits = self.guard.limits
        if self.reading_body and self.cycle is not None and not self.cycle.response_started:
            self.guard.count("body timeout")
            message = f"the request body did not arrive within {limits.body_timeout:g} s"
            self.answer_error(408, "request_timeout", message)
        elif self.request_begun and not self.reading_body:
            self.guard.count("header timeout")
            self.answer_error(
                408, "request_timeout", f"the request headers did not arrive within {limits.header_timeout:g} s"
            )
        else:
            self.transport.close()  # idle, or still sending the body of a request already answered

    def answer_error(self, status: int, code: str, message: str) -> None:
        """Answer ``status`` with the app's JSON error and close, unless a response has begun (then just close).

        A request whose app is still waiting for its body is told the client is gone, so the app
        stops reading and its own answer, if any, goes nowhere.
        """
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            started = cycle.response_started
            cycle.disconnected = True
            cycle.message_event.set()
            if started:
                self.transport.close()
                return
        body = self.guard.error_body(status, code, message)
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "unknown client"


class KioskServerConfig(uvicorn.Config):
    """A uvicorn config carrying its server's :class:`ConnectionGuard` (read by the protocol)."""

    def __init__(self, app: Any, *, connection_guard: ConnectionGuard, **options: Any) -> None:
        super().__init__(app, **options)
        self.connection_guard = connection_guard


def server_config(
    app: Any,
    host: str,
    port: int,
    limits: HttpLimits | None = None,
    *,
    error_body: ErrorRenderer = kiosk_error_body,
    **options: Any,
) -> uvicorn.Config:
    """The uvicorn config every kiosk server runs with: ``app`` on ``host:port`` under ``limits``.

    ``error_body`` shapes the errors the server answers itself (parse errors, timeouts);
    ``options`` are passed to :class:`uvicorn.Config` (``log_config``, ``log_level``, ...).
    """
    limits = limits or HttpLimits()
    guard = ConnectionGuard(limits, connection_cap(limits.max_connections), error_body)
    options.setdefault("server_header", False)
    return KioskServerConfig(
        app,
        host=host,
        port=port,
        http=GuardedHttpProtocol,
        # Not used by GuardedHttpProtocol (the guard's deadline replaces uvicorn's timer); kept truthful.
        timeout_keep_alive=max(1, math.ceil(limits.keepalive_timeout)),
        connection_guard=guard,
        **options,
    )


def _import_attribute(spec: str) -> Any:
    """``MODULE:ATTRIBUTE``, imported (as uvicorn resolves its app string)."""
    module, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module), attribute)


def main(argv: list[str] | None = None) -> None:
    """``python -m kiosk.web.server MODULE:APP [--factory]``: what ``uvicorn`` does, with this server."""
    parser = argparse.ArgumentParser(prog="python -m kiosk.web.server", description=main.__doc__)
    parser.add_argument("app", help="MODULE:ATTRIBUTE of the ASGI app (or of a factory with --factory)")
    parser.add_argument("--factory", action="store_true", help="APP is a function returning the app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--app-dir", default="", help="put this directory first on sys.path")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument(
        "--error-body",
        default="",
        help="MODULE:FUNCTION rendering the server's own errors (default kiosk's JSON error)",
    )
    args = parser.parse_args(argv)
    if args.app_dir:
        sys.path.insert(0, args.app_dir)
    config = server_config(
        args.app,
        args.host,
        args.port,
        HttpLimits.from_env(),
        error_body=_import_attribute(args.error_body) if args.error_body else kiosk_error_body,
        factory=args.factory,
        log_level=args.log_level,
        access_log=False,
    )
    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C (or SIGINT) during shutdown, as uvicorn's CLI
        uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
