"""Stored events: writing a batch of them with their jobs, and reading them back newest first.

:func:`store_events` writes any number of records in the caller's transaction with three
statements whatever the batch size (plus one in the rare case of a redelivery): the events, their
jobs (multi-row ``INSERT … VALUES (…), (…) RETURNING`` through the driver), and the refreshes of the
watches they matched (one upsert per watch for the whole batch, see
:func:`kiosk.watches.store.record_refreshes`). Values are prepared here (JSON as text, timestamps in
the column's storage format) rather than by SQLAlchemy's per-row type processing, and not as one JSON array parameter
(the pattern of :mod:`kiosk.store.queue`'s settle), because SQLite's ``json_extract`` re-parses the
whole row for every column: for a batch of 64 events that cost more than the inserts themselves.

Ids: the rows of one ``VALUES`` list are inserted in order and the ids the database assigns grow in
insertion order, so the returned ids sorted ascending line up with the records (the premise of
SQLAlchemy's own "insertmanyvalues" when it returns ids in parameter order).

Duplicates: a record whose ``dedupe_key`` appeared earlier in the batch is marked a duplicate
before anything is written; one whose job insert hits an existing ``(kind, dedupe_key)`` (``ON
CONFLICT DO NOTHING``, so a PostgreSQL transaction stays usable) is marked afterwards.

The jobs are written here rather than through :func:`kiosk.store.queue.enqueue` (one statement per
job, about a millisecond each on SQLite) because this is the intake hot path; the columns and
values are the queue's own (``pending``, no attempts, due now). An event whose watches have no
reactions gets its job already ``done``: there is nothing left to do, and the row keeps the event's
dedupe key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiosk.catalog.service import decode_cursor, encode_cursor
from kiosk.receivers.intake import EventRecord
from kiosk.store.queue import DONE, PENDING, aware, utcnow
from kiosk.store.tables import receiver_event_reactions as reactions_table
from kiosk.store.tables import receiver_events as events_table
from kiosk.watches.events import EVENT_JOB
from kiosk.watches.store import Refresh, record_refreshes

__all__ = ["MAX_EVENTS_PAGE", "Stored", "list_events", "store_events"]

MAX_EVENTS_PAGE = 1000
#: Rows per INSERT statement: 15 parameters each stays far below both engines' parameter limits.
_ROWS_PER_STATEMENT = 500

_EVENT_COLUMNS = (
    "receiver",
    "project",
    "received_at",
    "sender",
    "event_type",
    "delivery_id",
    "outcome",
    "status_code",
    "reason",
    "refreshed",
    "matches",
    "summary",
    "payload",
    "processing",
)
_JSON_COLUMNS = frozenset({"matches", "summary", "payload"})


def _placeholders(dialect: str, columns: Sequence[str]) -> str:
    mark = "%s" if dialect == "postgresql" else "?"
    cast = dialect == "postgresql"
    return "(" + ", ".join(f"CAST({mark} AS jsonb)" if cast and c in _JSON_COLUMNS else mark for c in columns) + ")"


def _insert_events_sql(dialect: str, rows: int) -> str:
    values = ", ".join([_placeholders(dialect, _EVENT_COLUMNS)] * rows)
    return f"INSERT INTO receiver_events ({', '.join(_EVENT_COLUMNS)}) VALUES {values} RETURNING id"  # noqa: S608


def _insert_jobs_sql(dialect: str, rows: int) -> str:
    mark = "%s" if dialect == "postgresql" else "?"
    payload = f"CAST({mark} AS jsonb)" if dialect == "postgresql" else mark
    row = f"({mark}, {payload}, {mark}, 0, {mark}, {mark}, {mark}, {mark})"
    return (
        "INSERT INTO jobs (kind, payload, status, attempts, run_after, dedupe_key, created_at, updated_at) "  # noqa: S608
        f"VALUES {', '.join([row] * rows)} ON CONFLICT (kind, dedupe_key) DO NOTHING RETURNING dedupe_key"
    )


def _time(dialect: str, when: datetime) -> Any:
    """A timestamp as the driver takes it: SQLite stores SQLAlchemy's text format, PostgreSQL a datetime."""
    if dialect == "postgresql":
        return when
    # The format of kiosk.store.queue.db_time (what SQLAlchemy's DateTime writes on SQLite), via
    # isoformat, which is several times faster than strftime on this hot path.
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _event_values(record: EventRecord, dialect: str) -> tuple[Any, ...]:
    return (
        record.receiver,
        record.project or "",
        _time(dialect, record.received_at),
        record.sender,
        record.event_type,
        record.delivery_id,
        record.outcome,
        record.status_code,
        record.reason,
        record.refreshed,
        orjson.dumps(record.matches).decode(),
        _json_text(record.summary),
        record.payload,
        PENDING if record.accepted and record.react else None,
    )


@dataclass(frozen=True)
class Stored:
    """How one record was stored: its event id, whether it turned out to be a redelivery, and
    whether it left a pending job for the event processor."""

    event_id: int
    duplicate: bool
    queued: bool


def _insert_events(conn: Connection, records: Sequence[EventRecord]) -> list[int]:
    dialect = conn.dialect.name
    ids: list[int] = []
    for start in range(0, len(records), _ROWS_PER_STATEMENT):
        chunk = records[start : start + _ROWS_PER_STATEMENT]
        params: list[Any] = []
        for record in chunk:
            params.extend(_event_values(record, dialect))
        found = sorted(
            int(row[0]) for row in conn.exec_driver_sql(_insert_events_sql(dialect, len(chunk)), tuple(params)).all()
        )
        if len(found) != len(chunk):
            raise RuntimeError(f"stored {len(found)} events of {len(chunk)}")
        ids += found
    return ids


def _insert_jobs(conn: Connection, jobs: Sequence[tuple[int, str | None, bool]]) -> set[str]:
    """Write ``(event id, dedupe key, pending)`` jobs; the dedupe keys that were new (inserted)."""
    dialect = conn.dialect.name
    now = _time(dialect, utcnow())
    taken: set[str] = set()
    for start in range(0, len(jobs), _ROWS_PER_STATEMENT):
        chunk = jobs[start : start + _ROWS_PER_STATEMENT]
        params = tuple(
            value
            for event_id, key, pending in chunk
            for value in (EVENT_JOB, f'{{"event": {event_id}}}', PENDING if pending else DONE, now, key, now, now)
        )
        taken.update(
            row[0] for row in conn.exec_driver_sql(_insert_jobs_sql(dialect, len(chunk)), params).all() if row[0]
        )
    return taken


def store_events(conn: Connection, records: Sequence[EventRecord]) -> list[Stored]:
    """Write ``records`` (and the jobs of those to process) in ``conn``'s transaction."""
    if not records:
        return []
    seen: set[str] = set()
    prepared: list[EventRecord] = []
    for record in records:
        key = record.dedupe_key if record.accepted else None
        if key is not None:
            if key in seen:
                record = record.as_duplicate()
            seen.add(key)
        prepared.append(record)
    ids = _insert_events(conn, prepared)
    pairs = list(zip(ids, prepared, strict=True))
    # Jobs in dedupe-key order: two kiosk processes storing the same redelivered events at once then
    # take the unique index's locks in the same order (PostgreSQL), instead of deadlocking.
    jobs = sorted(
        ((e, r.dedupe_key, r.react) for e, r in pairs if r.accepted), key=lambda j: (j[1] is None, j[1] or "")
    )
    taken = _insert_jobs(conn, jobs)
    out: list[Stored] = []
    redelivered: list[tuple[int, EventRecord]] = []
    refreshes: dict[str, Refresh] = {}
    for event_id, record in pairs:
        duplicate = record.outcome == "duplicate"
        if record.accepted and record.dedupe_key is not None and record.dedupe_key not in taken:
            redelivered.append((event_id, record.as_duplicate()))
            duplicate = True
        if record.accepted and not duplicate:
            for match in record.matches:
                before = refreshes.get(match["watch"], Refresh(0, 0))
                refreshes[match["watch"]] = Refresh(before.count + 1, max(before.last_event_id, event_id))
        out.append(Stored(event_id, duplicate, record.accepted and record.react and not duplicate))
    if redelivered:
        _mark_duplicates(conn, redelivered)
    record_refreshes(conn, refreshes, utcnow())
    return out


def _mark_duplicates(conn: Connection, redelivered: Sequence[tuple[int, EventRecord]]) -> None:
    conn.execute(
        sa.update(events_table)
        .where(events_table.c.id == sa.bindparam("b_id"))
        .values(outcome="duplicate", refreshed=0, matches=[], reason=sa.bindparam("b_reason"), processing=None),
        [{"b_id": event_id, "b_reason": record.reason} for event_id, record in redelivered],
    )


# ------------------------------------------------------------------------------------- reading


def _iso(value: datetime | None) -> str | None:
    return None if value is None else aware(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _render(row: Any, reactions: list[dict[str, Any]]) -> dict[str, Any]:
    matches = row.matches or []
    return {
        "id": row.id,
        "receivedAt": _iso(row.received_at),
        "outcome": row.outcome,
        "statusCode": row.status_code,
        "reason": row.reason,
        "sender": row.sender,
        "eventType": row.event_type,
        "deliveryId": row.delivery_id,
        "refreshed": row.refreshed,
        "watches": [m.get("watch") for m in matches if isinstance(m, dict)],
        "matches": matches,
        "summary": row.summary,
        "processing": row.processing,
        "processedAt": _iso(row.processed_at),
        "reactions": reactions,
    }


def _reactions(conn: Connection, event_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    if not event_ids:
        return out
    rows = conn.execute(
        sa.select(reactions_table)
        .where(reactions_table.c.event_id.in_(event_ids))
        .order_by(reactions_table.c.event_id, reactions_table.c.watch, reactions_table.c.position)
    )
    for r in rows:
        out.setdefault(r.event_id, []).append(
            {
                "watch": r.watch,
                "position": r.position,
                "kind": r.kind,
                "status": r.status,
                "runId": r.run_id,
                "entity": r.entity,
                "error": r.error,
                "at": _iso(r.created_at),
            }
        )
    return out


_LIST_COLUMNS = [c for c in events_table.c if c.name != "payload"]


def list_events(
    conn: Connection, receiver: str, project: str | None, *, limit: int = 100, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """A receiver's events newest first (without their bodies), and the next page's cursor or None."""
    limit = max(1, min(limit, MAX_EVENTS_PAGE))
    query = sa.select(*_LIST_COLUMNS).where(
        events_table.c.project == (project or ""), events_table.c.receiver == receiver
    )
    before = decode_cursor(cursor)
    if before:
        query = query.where(events_table.c.id < before)
    rows = conn.execute(query.order_by(events_table.c.id.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    reactions = _reactions(conn, [r.id for r in page])
    events = [_render(r, reactions.get(r.id, [])) for r in page]
    return events, (encode_cursor(page[-1].id) if len(rows) > limit and page else None)
