"""A webhook receiver on loopback for the tests and benchmarks: a tiny ASGI app that records every
request and answers as told, and the ASGI plumbing the other receivers (those that time arrivals or
track requests in flight) share with it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from kiosk.core.signing import verify_standard_webhook


async def answer_lifespan(scope: Mapping[str, Any], receive: Any, send: Any) -> bool:
    """Complete a ``lifespan`` scope (startup, then shutdown) and say so: True means the caller has
    nothing left to do. A bare ASGI app must answer it, since :func:`tests.support.servers.serving`
    runs uvicorn with ``lifespan="on"``."""
    if scope["type"] != "lifespan":
        return False
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return True


async def read_body(receive: Any) -> bytes:
    """The whole request body (every ``http.request`` message)."""
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


def request_headers(scope: Mapping[str, Any]) -> dict[str, str]:
    """The request's headers, names lower-cased."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def signed_by(secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """Whether the Standard Webhooks headers of a delivery verify with ``secret``."""
    return verify_standard_webhook(
        secret,
        body,
        msg_id=headers.get("webhook-id", ""),
        timestamp=headers.get("webhook-timestamp", ""),
        signature=headers.get("webhook-signature", ""),
    )


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float

    def json(self) -> Any:
        """The body, decoded (kiosk's deliveries are JSON)."""
        return orjson.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class Receiver:
    """Answers each request with ``plan(request_number, request)`` (0-based); 200 "ok" by default."""

    def __init__(self, plan: Callable[[int, Received], Reply] | None = None) -> None:
        self.plan = plan or (lambda _n, _r: Reply())
        self.requests: list[Received] = []
        self._lock = threading.Lock()

    def script(self, *replies: Reply) -> None:
        """Answer the first requests with ``replies`` in turn, then 200."""
        self.plan = lambda n, _r: replies[n] if n < len(replies) else Reply()

    def wait(
        self, count: int = 1, where: Callable[[Received], bool] | None = None, timeout: float = 20.0
    ) -> list[Received]:
        """The requests ``where`` selects (all of them by default), once at least ``count`` have arrived."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = [r for r in self.requests if where is None or where(r)]
            if len(found) >= count:
                return found
            assert time.monotonic() < deadline, f"{len(found)} of {count} requests arrived"
            time.sleep(0.02)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await answer_lifespan(scope, receive, send):
            return
        body = await read_body(receive)
        request = Received(
            method=scope["method"], path=scope["path"], headers=request_headers(scope), body=body, at=time.monotonic()
        )
        with self._lock:
            number = len(self.requests)
            self.requests.append(request)
        reply = self.plan(number, request)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        headers = [(b"content-length", str(len(reply.body)).encode())]
        headers += [(k.encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})
