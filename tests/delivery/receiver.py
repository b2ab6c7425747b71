"""A webhook receiver for the tests: a tiny ASGI app that records every request and answers as told."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float


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

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:  # type: ignore[type-arg]
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        request = Received(
            method=scope["method"],
            path=scope["path"],
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            body=body,
            at=time.monotonic(),
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
