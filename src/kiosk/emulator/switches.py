"""Throttling and faults on the wire: the run-time switches, their ASGI middleware and their routes.

Both are off by default and configured under ``settings`` (``throttling: {...}``, ``faults: [...]``);
``GET /_emulator/switches`` shows them and ``PUT /_emulator/switches`` replaces them while the
emulator runs (PAT-protected like every ``/_emulator`` route; usage and fault sequences start
afresh). The emulator's own routes are never throttled nor faulted, so a switch can always be
turned off again.

The routes are in :mod:`kiosk.emulator.app`. The middleware is pure ASGI and sits inside
:class:`~kiosk.emulator.access.RequestGuard` (a request refused for its PAT costs nothing). With both
switches off it costs the trigger's hot path one attribute test.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from kiosk.emulator.errors import azure_error_body
from kiosk.emulator.faults import FaultPlan, FaultSpec
from kiosk.emulator.throttling import RateLimiter, ThrottlingSpec, blocked_body

__all__ = ["SwitchSettings", "Switches", "SwitchesMiddleware"]


class SwitchSettings(BaseModel):
    """The body of ``PUT /_emulator/switches`` (and what GET answers): both switches, whole."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True, populate_by_name=True)

    throttling: ThrottlingSpec | None = None
    faults: list[FaultSpec] = Field(default_factory=list, max_length=1000)


class Switches:
    """The switches in force. ``clock`` (epoch seconds) is what throttling counts with; tests replace it."""

    def __init__(self, settings: SwitchSettings | None = None, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.limiter: RateLimiter | None = None
        self.faults: FaultPlan | None = None
        self.settings = SwitchSettings()
        self.active = False
        self.replace(settings or SwitchSettings())

    def replace(self, settings: SwitchSettings) -> None:
        """Put ``settings`` in force, with fresh usage counts and fault sequences."""
        self.settings = settings
        self.limiter = RateLimiter(settings.throttling) if settings.throttling is not None else None
        self.faults = FaultPlan(settings.faults) if settings.faults else None
        self.active = self.limiter is not None or self.faults is not None

    def describe(self) -> dict[str, Any]:
        return self.settings.model_dump(mode="json", by_alias=True, exclude_none=True)


def _identity(scope: Scope) -> str:
    """Whom a request counts against: its PAT (a PAT is a user's), else the org it addresses."""
    token = scope.get("state", {}).get("pat")
    if token:
        return "pat:" + hashlib.sha256(token.encode()).hexdigest()[:16]
    path: str = scope["path"]
    return "org:" + path.split("/", 2)[1].lower() if path.count("/") >= 1 else "anonymous"


class SwitchesMiddleware:
    """Applies throttling, then faults, to every request outside ``/_emulator``."""

    def __init__(self, app: ASGIApp, *, switches: Switches) -> None:
        self.app = app
        self.switches = switches

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        switches = self.switches
        if not switches.active or scope["type"] != "http" or scope["path"].startswith("/_emulator"):
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        extra: list[tuple[bytes, bytes]] = []
        limiter = switches.limiter
        if limiter is not None:
            verdict = limiter.check(_identity(scope), method, path, switches.clock())
            extra = [(name.lower().encode(), value.encode()) for name, value in verdict.headers]
            if verdict.blocked:
                await _answer(send, 429, blocked_body(limiter.spec.resource), extra)
                return
            if verdict.delay:
                await asyncio.sleep(verdict.delay)
        plan = switches.faults
        if plan is not None:
            fault = plan.decide(method, path, scope.get("query_string", b"").decode("latin-1"))
            if fault.latency:
                await asyncio.sleep(fault.latency)
            if fault.hold is not None:
                await _hold_and_close(receive, fault.hold)
                return
            if fault.status is not None:
                await _answer(send, fault.status, fault.body or azure_error_body("injected", "HttpException"), extra)
                return
        if not extra:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _answer(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    data = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(data)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def _hold_and_close(receive: Receive, seconds: float) -> None:
    """Keep the request unanswered for ``seconds`` (less if the client gives up), then drop the connection.

    ASGI has no message for "close without answering"; uvicorn's request cycle (the object whose bound
    ``receive`` the app is handed) owns the transport, so it is closed there, and the cycle, seeing the
    client gone, sends nothing. Under a server without that transport the app just returns
    unanswered, and the server answers 500 as ASGI servers do.
    """

    async def until_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(until_disconnect(), seconds)
        return  # the client gave up first
    except TimeoutError:
        pass
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is None or not hasattr(transport, "close"):
        return
    transport.close()
    await until_disconnect()
