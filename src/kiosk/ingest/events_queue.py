"""Received live events as job rows: stored durably before Azure hears 200, listed and counted.

Each accepted event is one job of kiosk's queue (:mod:`kiosk.store.queue`), of its integration's
kind (:func:`kiosk.ingest.events.event_job_kind`), with the integration and the event's identity as
dedupe key: a redelivery finds the row there and adds nothing. The payload keeps what processing
needs later — the whole envelope, the integration, when it was received and the object it is
about (its ordering key) — so the event can be processed after a restart, in another process,
in order per object.

The job's status is the event's state: ``pending`` (to process, or to retry), ``running``
(being processed), ``done`` (processed) or ``dead`` (failed for good, with its last error).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiosk.ingest.events import ReceivedEvent, event_dedupe_key, event_job_kind
from kiosk.store.engine import Database
from kiosk.store.group_commit import GroupCommit
from kiosk.store.queue import DEAD, DONE, PENDING, RUNNING, aware, enqueue
from kiosk.store.tables import jobs

__all__ = [
    "EVENT_STATES",
    "MAX_EVENTS_PAGE",
    "MAX_JOB_ID",
    "EventState",
    "EventWriter",
    "IncomingEvent",
    "Intake",
    "StoredEvent",
    "event_counts",
    "event_payload",
    "event_writer",
    "recent_events",
    "store_event",
    "store_incoming",
    "stored_event_counts",
]

EventState = Literal["pending", "processing", "processed", "failed"]
#: A job's status as the event's state.
_STATES: Final[dict[str, EventState]] = {
    PENDING: "pending",
    RUNNING: "processing",
    DONE: "processed",
    DEAD: "failed",
}
EVENT_STATES: Final[tuple[EventState, ...]] = ("pending", "processing", "processed", "failed")
#: The most events one page of :func:`recent_events` returns.
MAX_EVENTS_PAGE: Final = 500
#: The largest job id (the column is a 32-bit integer on PostgreSQL): the bound of a page cursor.
MAX_JOB_ID: Final = 2_147_483_647


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_payload(identifier: str, event: ReceivedEvent, received_at: datetime) -> dict[str, Any]:
    """The job payload of ``event``: what processing needs, the whole envelope included."""
    return {
        "integration": identifier,
        "eventId": event.identity,
        "eventType": event.event_type,
        "publisherId": event.publisher_id,
        "objectKey": event.object_key,
        "known": event.known,
        "receivedAt": _iso(received_at),
        "event": event.body,
    }


def store_event(conn: Connection, identifier: str, event: ReceivedEvent, received_at: datetime) -> int | None:
    """Enqueue ``event`` in the caller's transaction: its job id, or None for a redelivery (the
    integration's job for that event identity exists already, whatever its state)."""
    return enqueue(
        conn,
        event_job_kind(identifier),
        event_payload(identifier, event, received_at),
        dedupe_key=event_dedupe_key(identifier, event.identity),
    )


@dataclass(frozen=True)
class IncomingEvent:
    """An event the endpoint accepted, handed to the writer: whose, what, when received."""

    identifier: str
    event: ReceivedEvent
    received_at: datetime


@dataclass(frozen=True)
class Intake:
    """What storing an :class:`IncomingEvent` gave: its job id, or None for a redelivery."""

    identifier: str
    job_id: int | None


def store_incoming(conn: Connection, records: Sequence[IncomingEvent]) -> list[Intake]:
    """Store ``records`` in the caller's transaction, in the order they arrived (job ids grow in that
    order: the order the processor keeps per object). A redelivery — also one of an event earlier
    in the same batch — adds nothing."""
    return [
        Intake(record.identifier, store_event(conn, record.identifier, record.event, record.received_at))
        for record in records
    ]


EventWriter = GroupCommit[IncomingEvent, Intake]


def event_writer(db: Database, stored: Callable[[set[str]], None] | None = None) -> EventWriter:
    """The integrations' endpoint's group commit (:class:`~kiosk.store.group_commit.GroupCommit`):
    events arriving together share a transaction — at 200 events/s one transaction each kept the
    endpoint queuing on SQLite's write lock behind the processors' writes. ``stored(identifiers)``
    runs after each commit that stored new events, with the integrations they are for."""

    def committed(outcomes: Sequence[Intake]) -> None:
        fresh = {outcome.identifier for outcome in outcomes if outcome.job_id is not None}
        if fresh and stored is not None:
            stored(fresh)

    return GroupCommit(db, store_incoming, name="integration event writer", committed=committed)


@dataclass(frozen=True)
class StoredEvent:
    """One received event as the API lists it (from its job row)."""

    job_id: int
    event_id: str | None
    event_type: str | None
    publisher_id: str | None
    object_key: str | None
    received_at: datetime
    state: EventState
    attempts: int
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.job_id,
            "eventId": self.event_id,
            "eventType": self.event_type,
            "publisherId": self.publisher_id,
            "objectKey": self.object_key,
            "receivedAt": _iso(self.received_at),
            "state": self.state,
            "attempts": self.attempts,
            "error": self.error,
        }


def _field(name: str) -> sa.Label[str]:
    # Read from the payload in SQL: a page never loads the stored envelopes themselves.
    text: sa.ColumnElement[str] = jobs.c.payload[name].as_string()
    return text.label(name)


def recent_events(
    conn: Connection, identifier: str, *, limit: int = 50, before: int | None = None
) -> tuple[list[StoredEvent], int | None]:
    """``identifier``'s received events, newest first, ``limit`` at most (capped at
    :data:`MAX_EVENTS_PAGE`), older than job ``before`` when given; and the cursor of the next page
    (None on the last)."""
    limit = max(1, min(limit, MAX_EVENTS_PAGE))
    query = (
        sa.select(
            jobs.c.id,
            jobs.c.status,
            jobs.c.attempts,
            jobs.c.last_error,
            jobs.c.created_at,
            _field("eventId"),
            _field("eventType"),
            _field("publisherId"),
            _field("objectKey"),
        )
        .where(jobs.c.kind == event_job_kind(identifier))
        .order_by(jobs.c.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(jobs.c.id < before)
    rows = conn.execute(query).all()
    events = [
        StoredEvent(
            job_id=int(row.id),
            event_id=row.eventId,
            event_type=row.eventType,
            publisher_id=row.publisherId,
            object_key=row.objectKey,
            received_at=aware(row.created_at),
            state=_STATES.get(str(row.status), "pending"),
            attempts=int(row.attempts),
            error=row.last_error,
        )
        for row in rows[:limit]
    ]
    return events, (events[-1].job_id if len(rows) > limit else None)


def event_counts(conn: Connection, identifiers: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per integration, its stored events by state (every state present, 0 when none). One query.

    Processed and failed events are pruned by the queue's retention, so these count the events
    still kept; ``/metrics`` counts every event received since the process started.
    """
    kinds = {event_job_kind(identifier): identifier for identifier in identifiers}
    out: dict[str, dict[str, int]] = {identifier: dict.fromkeys(EVENT_STATES, 0) for identifier in identifiers}
    if not kinds:
        return out
    rows = conn.execute(
        sa.select(jobs.c.kind, jobs.c.status, sa.func.count().label("n"))
        .where(jobs.c.kind.in_(list(kinds)))
        .group_by(jobs.c.kind, jobs.c.status)
    )
    for row in rows:
        state = _STATES.get(str(row.status))
        if state is not None:
            out[kinds[str(row.kind)]][state] += int(row.n)
    return out


def stored_event_counts(db: Database, identifiers: Sequence[str]) -> dict[str, dict[str, int]]:
    """:func:`event_counts` on a connection of its own (``/metrics`` reads it at each scrape)."""
    if not identifiers:
        return {}
    with db.connect() as conn:
        return event_counts(conn, identifiers)
