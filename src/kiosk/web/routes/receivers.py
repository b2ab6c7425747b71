"""Receivers over HTTP: the webhook endpoint senders post to, and the ``/v1`` API that shows them.

* ``POST /webhooks/{type}/{digest}`` — where ACR, Azure DevOps and generic senders post. A plain
  ASGI endpoint rather than a FastAPI route: no dependency injection, no Request object, the body
  read straight from ``receive`` (which is also where the 2 MiB limit is enforced on a chunked
  body). Its decisions are :func:`kiosk.receivers.intake.judge`'s; it only does IO. Replies use the
  reference's shapes (``{"error": …}`` / ``{"msg": …}``), not the ``/v1`` API's.
* ``GET /v1/receivers`` (admin) — each receiver with its current URL (which holds the secret).
* ``GET /v1/receivers/{name}/events`` (admin; ``?project=`` for a receiver in a project) — recent
  events newest first, cursor pages (``from``), with outcome, reason and what reactions did. Older
  ones are pruned as ``retention.receiverEvents`` says (:mod:`kiosk.receivers.pruner`); a cursor
  keeps working across a pruning (it pages on into what is left).
* ``GET /v1/watches`` (member) — each watch with its subscriptions and ``lastRefreshedAt``, which
  pruning never removes (``lastEventId`` may then name an event no longer listed).

:func:`install_receivers` is the one entry point: the app factory calls it once.
"""

from __future__ import annotations

import os
import secrets as secrets_module
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from kiosk.actions.runs import Runs
from kiosk.auth.clients import Principal
from kiosk.catalog.service import Catalog
from kiosk.config.model import KioskConfig
from kiosk.config.resolved import ResolvedSecrets
from kiosk.errors import NotFound
from kiosk.receivers.intake import MAX_BODY_BYTES, IncomingRequest, duplicate_reply, judge
from kiosk.receivers.registry import ReceiverRegistry
from kiosk.receivers.store import MAX_EVENTS_PAGE, list_events
from kiosk.receivers.urls import PATH_PREFIX
from kiosk.receivers.writer import EventWriter
from kiosk.store.engine import Database
from kiosk.store.queue import utcnow
from kiosk.watches.config import WatchSpec
from kiosk.watches.matching import WatchIndex
from kiosk.watches.processor import EventProcessor
from kiosk.watches.reactions import Reactor
from kiosk.watches.store import load_states
from kiosk.web.auth import require_admin, require_member
from kiosk.web.lane import WebhookLane
from kiosk.web.responses import API_ERRORS, FastJSONResponse, errors

__all__ = ["ReceiverEndpoint", "install_receivers"]

router = APIRouter(tags=["receivers"], responses=API_ERRORS)

_JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass(frozen=True)
class InstalledReceivers:
    """What :func:`install_receivers` hands back to the app factory."""

    start: Callable[[], None]
    stop: Callable[[], None]


@dataclass(frozen=True)
class ReceiverRuntime:
    """What the API routes read (``app.state.receivers``)."""

    db: Database
    registry: ReceiverRegistry
    watches: tuple[WatchSpec, ...]


# ------------------------------------------------------------------------------------ the endpoint


class _ClientGone(Exception):
    pass


async def _send_json(
    send: Send, status: int, body: dict[str, str], extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = orjson.dumps(body)
    headers = [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _read_body(receive: Receive, declared: str | None) -> bytes | None:
    """The body, or None as soon as it is known to pass the limit (announced, or counted as it streams)."""
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None  # nothing past the limit is buffered
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks) if len(chunks) != 1 else chunks[0]


class ReceiverEndpoint:
    """``/webhooks/{type}/{digest}``, every method (a known receiver answers 405 to all but POST)."""

    def __init__(self, registry: ReceiverRegistry, index: WatchIndex, writer: EventWriter) -> None:
        self.registry = registry
        self.index = index
        self.writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = scope["path_params"]
        receiver = self.registry.resolve(params["type"], params["digest"])
        if receiver is None:
            # Unknown path: nothing is read or recorded, and the answer is the same for every method.
            await _send_json(send, 404, {"error": "not found"})
            return
        received_at = utcnow()
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        method = scope["method"]
        try:
            body = await _read_body(receive, headers.get("content-length")) if method == "POST" else b""
        except _ClientGone:
            return
        incoming = IncomingRequest(method, headers, body, received_at)
        if receiver.reader is None:
            verdict = judge(receiver, incoming, self.index)
        else:  # a generic receiver's jq mapping waits on a jq worker: not in the event loop
            verdict = await run_in_threadpool(judge, receiver, incoming, self.index)
        status, reply = verdict.status, verdict.reply
        try:
            stored = await self.writer.store(verdict.record)
            if stored.duplicate:
                reply = duplicate_reply(verdict.record.delivery_id)
        except Exception:
            # An accepted event that is not stored must not be acknowledged: the sender retries.
            # (A ping is answered 200 regardless; a rejection keeps its own answer.) Logged by the writer.
            if verdict.record.accepted:
                status, reply = 500, {"error": "internal server error"}
        extra = [(b"allow", b"POST")] if status == 405 else []
        await _send_json(send, status, reply, extra)


# ------------------------------------------------------------------------------------------- API


def _runtime(request: Request) -> ReceiverRuntime:
    runtime: ReceiverRuntime = request.app.state.receivers
    return runtime


@router.get("/v1/receivers", responses=errors(403))
async def receivers(request: Request, _: Principal = Depends(require_admin)) -> FastJSONResponse:
    """Every receiver with the URL to give its sender (the URL holds the secret: admins only)."""
    runtime = _runtime(request)
    base = str(request.base_url).rstrip("/")
    out = []
    for r in await run_in_threadpool(runtime.registry.current):
        out.append(
            {
                "name": r.name,
                "project": r.project,
                "type": r.type,
                "path": r.path,
                "url": f"{base}{r.path}" if r.path is not None else None,
                "enabled": r.path is not None,
                "auth": {
                    "basic": r.spec.auth is not None and r.spec.auth.basic is not None,
                    "header": r.spec.auth.header.name if r.spec.auth is not None and r.spec.auth.header else None,
                },
            }
        )
    return FastJSONResponse({"ok": True, "receivers": out})


@router.get("/v1/receivers/{name}/events", responses=errors(403, 404))
async def receiver_events(
    name: str,
    request: Request,
    project: Annotated[str | None, Query(max_length=100, description="the receiver's project, if it has one")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS_PAGE)] = 100,
    cursor: Annotated[str | None, Query(alias="from", max_length=200, description="cursor of the next page")] = None,
    _: Principal = Depends(require_admin),
) -> FastJSONResponse:
    """A receiver's recent events, newest first: outcome, why, and what the reactions did."""
    runtime = _runtime(request)
    if runtime.registry.find(name, project) is None:
        elsewhere = sorted(r.project or "(none)" for r in runtime.registry.current() if r.name == name)
        hint = f"; there is one in project(s) {', '.join(elsewhere)} (add ?project=)" if elsewhere else ""
        where = f" in project {project!r}" if project else " without a project"
        raise NotFound(f"no receiver {name!r}{where}{hint}", code="receiver_not_found")

    def read() -> tuple[list[dict[str, Any]], str | None]:
        with runtime.db.connect() as conn:
            return list_events(conn, name, project, limit=limit, cursor=cursor)

    events, nxt = await run_in_threadpool(read)
    return FastJSONResponse({"ok": True, "receiver": name, "project": project, "events": events, "next": nxt})


def _subscription(sub: Any) -> dict[str, Any]:
    return {
        "kind": sub.kind,
        "url": sub.url,
        "key": sub.key(),
        "branches": sub.branches,
        "tags": sub.tags,
        "versions": sub.versions,
        "events": list(sub.changes()) if sub.kind == "git" else None,
    }


@router.get("/v1/watches")
async def watches(request: Request, _: Principal = Depends(require_member)) -> FastJSONResponse:
    """Every watch, what it follows, and when an event last refreshed it."""
    runtime = _runtime(request)

    def read() -> dict[str, Any]:
        with runtime.db.connect() as conn:
            return load_states(conn)

    states = await run_in_threadpool(read)
    out = []
    for watch in runtime.watches:
        state = states.get(watch.name)
        out.append(
            {
                "name": watch.name,
                "project": watch.project,
                "title": watch.title,
                "subscriptions": [_subscription(s) for s in watch.subscriptions],
                "reactions": [r.kind for r in watch.reactions],
                "lastRefreshedAt": state.last_refreshed_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
                if state
                else None,
                "lastEventId": state.last_event_id if state else None,
                "refreshes": state.refreshes if state else 0,
            }
        )
    return FastJSONResponse({"ok": True, "watches": out})


# ---------------------------------------------------------------------------------- installation


def _worker_id() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets_module.token_hex(4)}"


def install_receivers(
    app: FastAPI,
    *,
    db: Database,
    config: KioskConfig,
    secrets: ResolvedSecrets,
    runs: Runs,
    catalog: Catalog,
) -> InstalledReceivers:
    """Add the receiver endpoint (as the outermost middleware) and API to ``app``; returns
    ``start``/``stop`` for the event writer and processor threads. ``app.state.metrics`` must exist.

    Call ``start`` when the server starts (the app's lifespan), not here: an app that is built and
    never served (a config check, a test) must not leave threads polling a database that is about
    to go away. Call ``stop`` at shutdown *before* the database is disposed (it stores the events
    already handed to the writer and lets the processor finish its batch). ``secrets`` supplies the
    directory relative ``{file: PATH}`` references resolve from; the receiver registry re-reads
    each reference itself so that a rotated secret retires the old URL at once.
    """
    base_dir = secrets.base_dir or (config.source.path.resolve().parent if config.source else Path.cwd())
    registry = ReceiverRegistry(config.receivers, base_dir=base_dir, env=os.environ)
    index = WatchIndex(config.watches)
    processor = EventProcessor(db, Reactor(config.watches, runs, catalog), worker_id=_worker_id())
    writer = EventWriter(db, on_queued=processor.notify)
    endpoint = ReceiverEndpoint(registry, index, writer)
    # Not a route: a lane in front of the app's middleware stack (kiosk.web.lane), which would cost
    # a quarter of the intake's budget. Added last, so it is the outermost middleware: the caller
    # adds its own middlewares before calling this.
    app.add_middleware(WebhookLane, prefix=PATH_PREFIX, endpoint=endpoint, metrics=app.state.metrics)
    app.include_router(router)
    app.state.receivers = ReceiverRuntime(db, registry, tuple(config.watches))

    def start() -> None:
        writer.start()
        processor.start()

    def stop() -> None:
        writer.stop()
        processor.stop()

    return InstalledReceivers(start, stop)
