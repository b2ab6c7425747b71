"""Outbound deliveries: list, inspect (every attempt) and redeliver. Admins only.

A delivery's body is what was sent to a pipeline or webhook receiver and may carry a run's inputs,
so reading deliveries is an admin's job, like changing config. Signature headers are never
stored, so they cannot be shown.

A body carrying secret inputs is stored sealed (:mod:`kiosk.delivery.outbox`) and never shown, in
either form: not the ciphertext (it says nothing useful and is nobody's business), and the route
never opens it. Rows written before bodies were sealed hold such bodies in clear; they are
recognised by their run's masked inputs and withheld the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool

from kiosk.actions.inputs import MASK
from kiosk.auth.clients import Principal
from kiosk.delivery.outbox import DeliverySummary, get_delivery, list_deliveries, redeliver
from kiosk.errors import NotFound
from kiosk.store import Database
from kiosk.store.tables import action_runs
from kiosk.web.auth import require_admin
from kiosk.web.responses import API_ERRORS, FastJSONResponse, errors

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"], responses={**API_ERRORS, **errors(403)})

#: Run and delivery ids are ``r_``/``msg_`` plus hex; anything else (NUL bytes, control characters)
#: is refused before it reaches the database, which would reject some of it with an error.
ID_PATTERN = r"^[A-Za-z0-9_-]{1,40}$"
DeliveryId = Annotated[str, Path(pattern=ID_PATTERN)]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _summary(d: DeliverySummary) -> dict[str, Any]:
    return {
        "id": d.id,
        "runId": d.run_id,
        "source": d.source,
        "method": d.method,
        "url": d.url,
        "status": d.status,
        "attempts": d.attempts,
        "nextAttemptAt": _iso(d.next_attempt_at),
        "lastStatusCode": d.last_status_code,
        "lastError": d.last_error,
        "createdAt": _iso(d.created_at),
        "updatedAt": _iso(d.updated_at),
        "deliveredAt": _iso(d.delivered_at),
    }


WITHHELD = "[withheld: this delivery carries secret inputs]"


def _has_secret_inputs(conn: Connection, run_id: str) -> bool:
    """Does the run have secret inputs? Stored properties hold :data:`MASK` in their place."""
    properties = conn.execute(sa.select(action_runs.c.properties).where(action_runs.c.id == run_id)).scalar()
    return isinstance(properties, dict) and MASK in properties.values()


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


@router.get("")
async def deliveries(
    request: Request,
    status: Annotated[
        str | None, Query(description="pending, delivered, failed or dead", pattern=r"^[a-z]{1,20}$")
    ] = None,
    run_id: Annotated[str | None, Query(alias="runId", pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(alias="from", max_length=200)] = None,
    _: Principal = Depends(require_admin),
) -> FastJSONResponse:
    def read() -> tuple[list[DeliverySummary], str | None]:
        with _db(request).connect() as conn:
            return list_deliveries(conn, status=status, run_id=run_id, limit=limit, cursor=cursor)

    page, nxt = await run_in_threadpool(read)
    return FastJSONResponse({"ok": True, "deliveries": [_summary(d) for d in page], "next": nxt})


@router.get("/{delivery_id}", responses=errors(404))
async def delivery(
    delivery_id: DeliveryId, request: Request, _: Principal = Depends(require_admin)
) -> FastJSONResponse:
    def read() -> tuple[Any, bool]:
        with _db(request).connect() as conn:
            detail = get_delivery(conn, delivery_id)
            secret = detail is not None and (
                detail.delivery.sealed
                or (detail.delivery.run_id is not None and _has_secret_inputs(conn, detail.delivery.run_id))
            )
            return detail, secret

    detail, carries_secrets = await run_in_threadpool(read)
    if detail is None:
        raise NotFound(f"delivery {delivery_id!r} does not exist", code="delivery_not_found")
    body = _summary(detail.delivery)
    body["headers"] = detail.delivery.headers
    # A body with secret inputs (sealed, or in clear in an older row) is never shown.
    body["body"] = WITHHELD if carries_secrets else detail.delivery.body.decode("utf-8", "replace")
    body["attemptLog"] = [
        {
            "attempt": a.attempt,
            "startedAt": _iso(a.started_at),
            "durationMs": a.duration_ms,
            "statusCode": a.status_code,
            "error": a.error,
            "responseBody": a.response_body,
            "worker": a.worker,
        }
        for a in detail.attempts
    ]
    return FastJSONResponse({"ok": True, "delivery": body})


@router.post("/{delivery_id}/redeliver", responses=errors(404, 409))
async def redeliver_one(
    delivery_id: DeliveryId, request: Request, _: Principal = Depends(require_admin)
) -> FastJSONResponse:
    """Send it again now (same body, same ``webhook-id``); its attempt history is kept.

    A sealed body stays sealed: the worker opens it in memory when it sends it, as the first time;
    the answer is the delivery's summary, never its body.
    """
    again = await run_in_threadpool(redeliver, _db(request), delivery_id)
    worker = getattr(request.app.state, "delivery_worker", None)
    if worker is not None:
        worker.notify()
    return FastJSONResponse({"ok": True, "delivery": _summary(again)})
