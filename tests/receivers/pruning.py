"""Stored receiver events for the pruning tests (tests/receivers/test_pruner.py and
tests/runtime/test_retention.py): records received some days ago, stored, processed, counted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from kiosk.receivers.intake import EventRecord
from kiosk.receivers.store import store_events
from kiosk.store import Database
from kiosk.store.queue import JobQueue, JobResult, utcnow
from kiosk.store.tables import jobs, receiver_events
from kiosk.watches.events import EVENT_JOB
from kiosk.watches.store import mark_events


def ago(days: float) -> datetime:
    return utcnow() - timedelta(days=days)


def event(
    days_ago: float,
    *,
    receiver: str = "acr",
    project: str | None = None,
    react: bool = False,
    key: str | None = None,
    outcome: str = "refreshed",
) -> EventRecord:
    """An accepted event (``react``: its watch has reactions, so it waits for the processor)."""
    accepted = outcome in ("refreshed", "no_match")
    return EventRecord(
        receiver=receiver,
        project=project,
        received_at=ago(days_ago),
        outcome=outcome,
        status_code=200 if outcome != "rejected" else 401,
        sender="acr",
        event_type="push",
        delivery_id=key,
        refreshed=1 if outcome == "refreshed" else 0,
        matches=[{"watch": "checkout", "tag": "1.0"}] if outcome == "refreshed" else [],
        payload='{"n": 1}' if outcome != "rejected" else None,
        accepted=accepted,
        react=react and accepted,
        dedupe_key=None if key is None else f"{receiver}:acr:{key}",
    )


def store(db: Database, records: Sequence[EventRecord]) -> list[int]:
    with db.begin() as conn:
        return [s.event_id for s in store_events(conn, records)]


def events_left(db: Database) -> set[int]:
    with db.connect() as conn:
        return {int(r.id) for r in conn.execute(sa.select(receiver_events.c.id))}


def process(db: Database, event_ids: Sequence[int], *, claimed: JobQueue | None = None) -> None:
    """What the event processor does for these events' jobs: claim, settle done, mark processed."""
    queue = claimed or JobQueue(db, "processor")
    if claimed is None:
        queue.claim([EVENT_JOB], limit=100)
    with db.connect() as conn:
        job_of = {int(r.payload["event"]): int(r.id) for r in conn.execute(sa.select(jobs.c.id, jobs.c.payload))}
    with db.begin() as conn:
        held = queue.settle(conn, [JobResult(job_of[e], "done") for e in event_ids])
        assert held == {job_of[e] for e in event_ids}
        mark_events(conn, list(event_ids), "done", utcnow())
