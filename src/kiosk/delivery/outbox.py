"""The outbox: outbound webhooks stored with the work that caused them, and their history.

:func:`create_delivery` runs inside the caller's transaction and writes two rows — the delivery
(what to send, where, how to sign it) and its job in the durable queue — so an action run and its
webhook are stored together or not at all (the transactional outbox pattern). The worker then sends
it at least once; every attempt is a ``delivery_attempts`` row.

Signing secrets are never stored: :class:`Signing` names where the secret is configured
(``secret_ref``) and the worker asks for the value at send time.

A body that carries a run's secret inputs is stored **sealed** (``seal`` in :func:`create_delivery`,
the server's :class:`~kiosk.actions.secrets.SecretBox` bound to the delivery id): ``target.sealed``
marks it, the worker opens it in memory just before sending, and nothing else ever reads it in
clear — the API shows neither form. A row without the mark (every body without secrets, and rows
written before sealing existed) holds its body in clear, so the hot path pays nothing.

``target.synchronized`` marks a WEBHOOK action's delivery whose HTTP answer is the run's result
(Port's ``synchronized: true``); the worker finishes the run when it is delivered.

The delivery id (``msg_<26 hex>``) is the Standard Webhooks ``webhook-id``, the same on every
attempt, so receivers can drop duplicates.

Headers given to :func:`create_delivery` are stored as they are: they must not carry credentials
(an ``Authorization`` header belongs in a signing scheme or the target's own configuration).
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from kiosk.errors import BadRequest, Conflict, NotFound
from kiosk.store import queue
from kiosk.store.engine import Database
from kiosk.store.queue import aware, json_time, rows_from_json, utcnow
from kiosk.store.tables import deliveries, delivery_attempts

__all__ = [
    "DELIVERY_JOB",
    "AttemptRecord",
    "BodySealer",
    "Delivery",
    "DeliveryDetail",
    "DeliverySummary",
    "DeliveryUpdate",
    "OutboundRequest",
    "Signing",
    "create_delivery",
    "get_delivery",
    "list_deliveries",
    "load_deliveries",
    "record_attempts",
    "redeliver",
]

#: The job kind of a delivery in the queue; its payload is ``{"delivery": <id>}``, its dedupe key the id.
DELIVERY_JOB = "delivery"
DEFAULT_SIGNATURE_HEADER = "X-Port-Signature"
STATUSES = ("pending", "delivered", "failed", "dead")
MAX_PAGE = 1_000

#: Seals a body for one delivery: ``seal(delivery_id, body) -> sealed bytes``. The outbox stays
#: ignorant of the cryptography; runs pass the server's SecretBox here.
BodySealer = Callable[[str, bytes], bytes]

#: Headers kiosk sets on every delivery; a caller may not set them (they would be overwritten or
#: would contradict the signature).
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-port-timestamp",
        "x-port-signature",
    }
)


@dataclass(frozen=True)
class Signing:
    """How to sign a delivery; the secret itself is looked up by ``secret_ref`` when it is sent.

    ``azure``: HMAC-SHA1 hex of the body in ``header`` (default ``X-Port-Signature``), as Azure
    Pipelines' incoming webhooks verify. ``webhook``: Standard Webhooks and Port's HMAC-SHA256
    headers (``header`` unused). ``secret_ref`` is a name such as ``azureDevOps:myorg`` or ``webhook``.
    """

    scheme: Literal["azure", "webhook"]
    secret_ref: str
    header: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "secretRef": self.secret_ref, "header": self.header}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Signing | None:
        if not data:
            return None
        return cls(scheme=data["scheme"], secret_ref=data["secretRef"], header=data.get("header"))


@dataclass(frozen=True)
class OutboundRequest:
    """One request to deliver, as :func:`create_delivery` queues it (built from an action's
    invocation by :mod:`kiosk.actions.invocation`)."""

    method: str
    url: str
    headers: dict[str, str]
    #: The exact bytes to send (and sign): minified JSON. May carry secret inputs: never in a repr.
    body: bytes = field(repr=False)
    signing: Signing | None = None
    #: A WEBHOOK with ``synchronized: true``: the receiver's HTTP answer is the run's result.
    synchronized: bool = False


@dataclass(frozen=True)
class DeliverySummary:
    """A delivery without its body and headers, for listings."""

    id: str
    run_id: str | None
    source: str
    method: str
    url: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class Delivery(DeliverySummary):
    """Everything needed to send a delivery: the summary plus headers, signing and the exact body.

    ``sealed``: ``body`` is the sealed form (secret inputs inside) and must be opened before it is
    signed or sent. ``body`` is left out of the repr, so a logged delivery never shows it.
    ``synchronized``: its HTTP answer is its run's result.
    """

    headers: dict[str, str]
    signing: Signing | None
    body: bytes = field(repr=False)
    sealed: bool = False
    synchronized: bool = False


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt as recorded: ``status_code`` None means no answer (``error`` says why)."""

    attempt: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None
    response_body: str | None
    worker: str | None


@dataclass(frozen=True)
class DeliveryDetail:
    delivery: Delivery
    attempts: list[AttemptRecord]


@dataclass(frozen=True)
class DeliveryUpdate:
    """A delivery's state after an attempt (``delivered_at`` None keeps an earlier one)."""

    id: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    updated_at: datetime


def new_delivery_id() -> str:
    return "msg_" + secrets.token_hex(13)


#: RFC 9110 field names (tokens) and values (visible characters, spaces and tabs; no line breaks).
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e\x80-\xff]*$")


def _check_headers(headers: dict[str, str], signing: Signing | None) -> None:
    """Refuse headers that could never be sent, or that would contradict what kiosk sets."""
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise BadRequest(f"header name {name!r} is not a valid HTTP field name", code="invalid_header")
        if not isinstance(value, str) or not _HEADER_VALUE.match(value):
            raise BadRequest(f"the value of header {name!r} is not a valid HTTP field value", code="invalid_header")
    reserved = set(RESERVED_HEADERS)
    if signing is not None and signing.scheme == "azure":
        reserved.add((signing.header or DEFAULT_SIGNATURE_HEADER).lower())
    clashes = sorted(name for name in headers if name.lower() in reserved)
    if clashes:
        raise BadRequest(f"headers set by kiosk cannot be given: {', '.join(clashes)}", code="reserved_header")


#: Built once, values bound per call: an action run's start is latency-bound, and building an
#: insert with ``.values()`` costs more than SQLite takes to run it (the compiled SQL is cached).
_INSERT_DELIVERY = sa.insert(deliveries)


def create_delivery(
    conn: Connection,
    request: OutboundRequest,
    *,
    source: str,
    run_id: str | None,
    seal: BodySealer | None = None,
) -> str:
    """Store a delivery of ``request`` and enqueue its job, in the caller's transaction; returns its
    id (``msg_...``).

    ``seal`` (given when the body carries secrets) stores ``seal(delivery_id, body)`` instead of
    the body and marks the delivery sealed. ``request.synchronized`` marks a delivery whose answer
    is its run's result. Both marks are written only when set, so other rows keep their shape.

    Call the worker's ``notify()`` after the transaction commits to have it sent at once rather
    than at the worker's next poll.
    """
    _check_headers(request.headers, request.signing)
    delivery_id = new_delivery_id()
    now = utcnow()
    target: dict[str, Any] = {
        "method": request.method.upper(),
        "url": request.url,
        "headers": dict(request.headers),
        "signing": None if request.signing is None else request.signing.to_json(),
    }
    if request.synchronized:
        target["synchronized"] = True
    body = request.body
    if seal is not None:
        body = seal(delivery_id, body)
        target["sealed"] = True
    conn.execute(
        _INSERT_DELIVERY,
        {
            "id": delivery_id,
            "run_id": run_id,
            "source": source,
            "target": target,
            "body": body,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        },
    )
    queue.enqueue(conn, DELIVERY_JOB, {"delivery": delivery_id}, run_after=now, dedupe_key=delivery_id)
    return delivery_id


def record_attempts(
    conn: Connection, attempts: Sequence[tuple[str, AttemptRecord]], updates: Sequence[DeliveryUpdate]
) -> None:
    """Store ``(delivery id, attempt)`` rows and apply ``updates``, in the caller's transaction.

    Two statements whatever the batch size: on PostgreSQL each statement is a round trip.
    """
    if attempts:
        conn.execute(
            sa.insert(delivery_attempts),
            [
                {
                    "delivery_id": delivery_id,
                    "attempt": a.attempt,
                    "started_at": a.started_at,
                    "duration_ms": a.duration_ms,
                    "status_code": a.status_code,
                    "error": a.error,
                    "response_body": a.response_body,
                    "worker": a.worker,
                }
                for delivery_id, a in attempts
            ],
        )
    if not updates:
        return
    dialect = conn.dialect.name

    def stamp(when: datetime | None) -> str | None:
        return None if when is None else json_time(dialect, when)

    rows = [
        {
            "id": u.id,
            "status": u.status,
            "attempts": u.attempts,
            "next_attempt_at": stamp(u.next_attempt_at),
            "status_code": u.last_status_code,
            "error": u.last_error,
            "delivered_at": stamp(u.delivered_at),
            "updated_at": stamp(u.updated_at),
        }
        for u in updates
    ]
    conn.exec_driver_sql(_UPDATE_SQL[dialect], (orjson.dumps(rows).decode(),))


_UPDATE_COLUMNS = (
    ("id", "text"),
    ("status", "text"),
    ("attempts", "integer"),
    ("next_attempt_at", "timestamptz"),
    ("status_code", "integer"),
    ("error", "text"),
    ("delivered_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)


def _update_sql(dialect: str) -> str:
    return (
        "UPDATE deliveries SET status = v.status, attempts = v.attempts, next_attempt_at = v.next_attempt_at, "  # noqa: S608
        "last_status_code = v.status_code, last_error = v.error, "
        "delivered_at = COALESCE(v.delivered_at, deliveries.delivered_at), updated_at = v.updated_at "
        f"FROM {rows_from_json(dialect, _UPDATE_COLUMNS)} WHERE deliveries.id = v.id"
    )


_UPDATE_SQL = {dialect: _update_sql(dialect) for dialect in ("sqlite", "postgresql")}


# ------------------------------------------------------------------------------------- reading

_SUMMARY_COLUMNS = (
    deliveries.c.id,
    deliveries.c.run_id,
    deliveries.c.source,
    deliveries.c.target,
    deliveries.c.status,
    deliveries.c.attempts,
    deliveries.c.next_attempt_at,
    deliveries.c.last_status_code,
    deliveries.c.last_error,
    deliveries.c.created_at,
    deliveries.c.updated_at,
    deliveries.c.delivered_at,
)


_LOAD = sa.select(*_SUMMARY_COLUMNS, deliveries.c.body).where(
    deliveries.c.id.in_(sa.bindparam("b_ids", expanding=True))
)


def _maybe(value: datetime | None) -> datetime | None:
    return None if value is None else aware(value)


def _summary_fields(row: Row[*tuple[Any, ...]]) -> dict[str, Any]:
    target = row.target
    return {
        "id": row.id,
        "run_id": row.run_id,
        "source": row.source,
        "method": target["method"],
        "url": target["url"],
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": _maybe(row.next_attempt_at),
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "created_at": aware(row.created_at),
        "updated_at": aware(row.updated_at),
        "delivered_at": _maybe(row.delivered_at),
    }


def _delivery(row: Row[*tuple[Any, ...]]) -> Delivery:
    target = row.target
    return Delivery(
        **_summary_fields(row),
        headers=dict(target.get("headers") or {}),
        signing=Signing.from_json(target.get("signing")),
        body=bytes(row.body),
        sealed=bool(target.get("sealed")),
        synchronized=bool(target.get("synchronized")),
    )


def load_deliveries(conn: Connection, ids: list[str]) -> dict[str, Delivery]:
    """The deliveries with these ids (missing ones are absent), in one query."""
    if not ids:
        return {}
    rows = conn.execute(_LOAD, {"b_ids": ids})
    return {row.id: _delivery(row) for row in rows}


def _encode_cursor(created_at: datetime, delivery_id: str) -> str:
    raw = f"{aware(created_at).isoformat()}|{delivery_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, delivery_id = raw.split("|", 1)
        return datetime.fromisoformat(stamp), delivery_id
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the cursor is not one this server gave out", code="invalid_cursor") from None


def list_deliveries(
    conn: Connection,
    *,
    status: str | None = None,
    run_id: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[DeliverySummary], str | None]:
    """Deliveries newest first, optionally of one status or run; and the cursor of the next page (or None)."""
    if status is not None and status not in STATUSES:
        raise BadRequest(f"unknown delivery status {status!r} (one of {', '.join(STATUSES)})")
    limit = max(1, min(limit, MAX_PAGE))
    query = sa.select(*_SUMMARY_COLUMNS)
    if status is not None:
        query = query.where(deliveries.c.status == status)
    if run_id is not None:
        query = query.where(deliveries.c.run_id == run_id)
    if cursor:
        after_created, after_id = _decode_cursor(cursor)
        query = query.where(
            sa.or_(
                deliveries.c.created_at < after_created,
                sa.and_(deliveries.c.created_at == after_created, deliveries.c.id < after_id),
            )
        )
    rows = conn.execute(query.order_by(deliveries.c.created_at.desc(), deliveries.c.id.desc()).limit(limit + 1)).all()
    page = [DeliverySummary(**_summary_fields(row)) for row in rows[:limit]]
    more = len(rows) > limit
    return page, (_encode_cursor(page[-1].created_at, page[-1].id) if more and page else None)


def get_delivery(conn: Connection, delivery_id: str) -> DeliveryDetail | None:
    """A delivery with every attempt, oldest attempt first; None if there is no such delivery."""
    found = load_deliveries(conn, [delivery_id]).get(delivery_id)
    if found is None:
        return None
    rows = conn.execute(
        sa.select(delivery_attempts)
        .where(delivery_attempts.c.delivery_id == delivery_id)
        .order_by(delivery_attempts.c.id)
    )
    attempts = [
        AttemptRecord(
            attempt=row.attempt,
            started_at=aware(row.started_at),
            duration_ms=row.duration_ms,
            status_code=row.status_code,
            error=row.error,
            response_body=row.response_body,
            worker=row.worker,
        )
        for row in rows
    ]
    return DeliveryDetail(found, attempts)


def redeliver(db: Database, delivery_id: str) -> Delivery:
    """Send a delivered, failed or dead delivery again, now, with a fresh retry schedule.

    The stored body is sent as it is: a sealed one stays sealed here and is opened by the worker,
    in memory, when it sends it. Its attempt history is kept (attempt numbers continue). Its queue
    job is reused — a delivery has exactly one, keyed by the delivery id — and made due now.
    Raises NotFound for an unknown id and Conflict while an attempt is in flight or the delivery
    has not been tried yet. The caller should ``notify()`` the worker afterwards.
    """
    with db.begin() as conn:
        row = conn.execute(
            sa.select(deliveries.c.status).where(deliveries.c.id == delivery_id).with_for_update()
        ).first()
        if row is None:
            raise NotFound(f"delivery {delivery_id!r} does not exist", code="delivery_not_found")
        if row.status == "pending":
            raise Conflict(f"delivery {delivery_id!r} is already waiting to be sent", code="delivery_pending")
        job = queue.find_job(conn, DELIVERY_JOB, delivery_id)
        if job is None:
            queue.enqueue(conn, DELIVERY_JOB, {"delivery": delivery_id}, dedupe_key=delivery_id)
        elif not queue.requeue(conn, job[0]):
            raise Conflict(f"delivery {delivery_id!r} is being sent right now", code="delivery_in_flight")
        now = utcnow()
        conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.id == delivery_id)
            .values(status="pending", next_attempt_at=now, updated_at=now)
        )
        delivered = load_deliveries(conn, [delivery_id])[delivery_id]
    return delivered
