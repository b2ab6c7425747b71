"""Stored events: writing a batch of them with their jobs, reading them back newest first, and
the statements the retention pruner deletes old ones with.

:func:`store_events` writes any number of records in the caller's transaction with three
statements whatever the batch size (plus one in the rare case of a redelivery): the events, their
jobs (:func:`kiosk.store.queue.enqueue_many`, a multi-row ``INSERT … RETURNING``), and the
refreshes of the watches they matched (one upsert per watch for the whole batch, see
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

An event whose watches have no reactions gets its job already ``done``: there is nothing left to
do, and the row keeps the event's dedupe key.

Pruning (:func:`old_events`, :func:`capped_events`, :func:`receiver_counts`, :func:`cap_floor`,
:func:`delete_events`): each reads or deletes one bounded batch through an index — the primary key
(ids grow with arrival, so the oldest events come first), or ``(project, receiver, id)`` — and
none ever returns or deletes an event whose processing is still ``pending``. Which of the events
read are deleted is decided by :mod:`kiosk.receivers.retention`; the round itself is
:mod:`kiosk.receivers.pruner`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiosk.catalog.paging import decode_cursor, encode_cursor
from kiosk.receivers.intake import EventRecord
from kiosk.store.queue import PENDING, NewJob, aware, driver_time, enqueue_many, utcnow
from kiosk.store.tables import receiver_event_reactions as reactions_table
from kiosk.store.tables import receiver_events as events_table
from kiosk.watches.events import EVENT_JOB
from kiosk.watches.store import Refresh, record_refreshes

__all__ = [
    "MAX_EVENTS_PAGE",
    "Stored",
    "cap_floor",
    "capped_events",
    "delete_events",
    "list_events",
    "old_events",
    "receiver_counts",
    "store_events",
]

MAX_EVENTS_PAGE = 1000
#: Rows per INSERT statement: 14 parameters each stays far below both engines' parameter limits.
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


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _event_values(record: EventRecord, dialect: str) -> tuple[Any, ...]:
    return (
        record.receiver,
        record.project or "",
        driver_time(dialect, record.received_at),
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
    new = [NewJob(EVENT_JOB, {"event": event_id}, dedupe_key=key, done=not pending) for event_id, key, pending in jobs]
    return {
        job.dedupe_key for job, job_id in zip(new, enqueue_many(conn, new), strict=True) if job_id and job.dedupe_key
    }


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
    # enqueue_many inserts them in dedupe-key order (no deadlock between two processes storing the
    # same redelivered events at once).
    taken = _insert_jobs(conn, [(e, r.dedupe_key, r.react) for e, r in pairs if r.accepted])
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


# ------------------------------------------------------------------------------------- pruning

#: An event is finished with when its processing is not pending (null: there was nothing to do).
#: Written by the intake (pending, with its job, in one transaction) and by the event processor
#: (done / failed, when it settles the job, in one transaction), so it is pending exactly while the
#: event's job is pending or leased.
_PROCESSED = sa.or_(events_table.c.processing.is_(None), events_table.c.processing != PENDING)


def old_events(conn: Connection, *, after: int, limit: int) -> list[tuple[int, datetime]]:
    """``(id, received at)`` of up to ``limit`` processed events with ids above ``after``, oldest first.

    Through the primary key: ids grow with arrival, so a walk from the lowest id meets the oldest
    events first and can stop at the first young one (:func:`kiosk.receivers.retention.old_batch`).
    On PostgreSQL the rows are locked ``SKIP LOCKED`` until the caller's transaction ends: a
    second kiosk process pruning at the same moment takes other rows instead of waiting.
    """
    rows = conn.execute(
        sa.select(events_table.c.id, events_table.c.received_at)
        .where(events_table.c.id > after, _PROCESSED)
        .order_by(events_table.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [(int(r.id), aware(r.received_at)) for r in rows]


def receiver_counts(conn: Connection) -> dict[tuple[str, str], int]:
    """How many events each ``(project, receiver)`` holds (project "" for none): read from the
    listing index, and including receivers no longer configured, whose events count all the same."""
    rows = conn.execute(
        sa.select(events_table.c.project, events_table.c.receiver, sa.func.count()).group_by(
            events_table.c.project, events_table.c.receiver
        )
    )
    return {(str(r[0]), str(r[1])): int(r[2]) for r in rows}


def cap_floor(conn: Connection, project: str, receiver: str, keep: int) -> int | None:
    """The id of the receiver's ``keep``-th newest event (the oldest one the cap keeps), or None
    when it holds no more than ``keep``. Walks ``keep`` entries of the listing index, no rows."""
    row = conn.execute(
        sa.select(events_table.c.id)
        .where(events_table.c.project == project, events_table.c.receiver == receiver)
        .order_by(events_table.c.id.desc())
        .limit(1)
        .offset(keep - 1)
    ).first()
    return None if row is None else int(row.id)


def capped_events(conn: Connection, project: str, receiver: str, *, below: int, after: int, limit: int) -> list[int]:
    """Ids of up to ``limit`` processed events of one receiver with ``after < id < below``, oldest
    first (locked ``SKIP LOCKED`` on PostgreSQL, as :func:`old_events`)."""
    rows = conn.execute(
        sa.select(events_table.c.id)
        .where(
            events_table.c.project == project,
            events_table.c.receiver == receiver,
            events_table.c.id < below,
            events_table.c.id > after,
            _PROCESSED,
        )
        .order_by(events_table.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [int(r.id) for r in rows]


def delete_events(conn: Connection, event_ids: Sequence[int]) -> int:
    """Delete these events with their reaction records; how many were deleted.

    The reaction records go by the foreign key's ``ON DELETE CASCADE`` (on for SQLite too, see
    :mod:`kiosk.store.engine`). The DELETE checks again that each event is processed, so an event
    still pending is kept whatever the caller chose. ``watch_states`` is not touched: a watch's last
    refresh outlives the event that caused it (its ``last_event_id`` may then name a pruned event).

    The newest event is always kept, whatever its age: SQLite gives a new row the largest id plus
    one, so deleting the newest rows would hand their ids out again, and an event id must name one
    event forever (``watch_states.last_event_id``, the jobs' payloads and the reactions' idempotency
    keys refer to events by id).
    """
    if not event_ids:
        return 0
    newest = events_table.alias("newest")
    result = conn.execute(
        sa.delete(events_table).where(
            events_table.c.id.in_(list(event_ids)),
            _PROCESSED,
            events_table.c.id < sa.select(sa.func.max(newest.c.id)).scalar_subquery(),
        )
    )
    return int(result.rowcount or 0)
