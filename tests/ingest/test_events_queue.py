"""Received events as job rows, on both engines: stored with what processing needs, a redelivery
recognised, listed newest first with their state, counted per integration."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from kiosk.ingest.events import event_job_kind, parse_event
from kiosk.ingest.events_queue import (
    IncomingEvent,
    Intake,
    event_counts,
    event_writer,
    recent_events,
    store_event,
    store_incoming,
    stored_event_counts,
)
from kiosk.store import Database
from kiosk.store.queue import JobQueue

WHEN = datetime(2026, 12, 6, 12, 30, 5, 250_000, tzinfo=UTC)


def event(event_id: str, work_item: int = 42, event_type: str = "workitem.created") -> dict[str, object]:
    return {
        "id": event_id,
        "subscriptionId": "sub-1",
        "notificationId": 1,
        "eventType": event_type,
        "publisherId": "tfs",
        "resource": {"id": work_item, "fields": {"System.Title": "café"}},
        "resourceContainers": {"collection": {"id": "coll"}},
    }


def test_an_event_is_stored_whole_with_its_keys_and_a_redelivery_adds_nothing(db: Database) -> None:
    body = event("e-1")
    with db.begin() as conn:
        job_id = store_event(conn, "ado", parse_event(body), WHEN)
    assert job_id is not None
    with db.begin() as conn:
        assert store_event(conn, "ado", parse_event(body), WHEN) is None
        # The same event id in another integration is another event.
        assert store_event(conn, "other", parse_event(body), WHEN) is not None
    (job,) = JobQueue(db, "test-worker").claim([event_job_kind("ado")], 10)
    assert job.id == job_id and job.dedupe_key == "ado:e-1"
    assert job.payload == {
        "integration": "ado",
        "eventId": "e-1",
        "eventType": "workitem.created",
        "publisherId": "tfs",
        "objectKey": "work-item:42@coll",
        "known": True,
        "receivedAt": "2026-12-06T12:30:05.250000Z",
        "event": body,
    }


def test_recent_events_newest_first_with_state_and_pages(db: Database) -> None:
    with db.begin() as conn:
        ids = [store_event(conn, "ado", parse_event(event(f"e-{n}", work_item=n)), WHEN) for n in range(1, 6)]
        store_event(conn, "other", parse_event(event("x-1")), WHEN)
        store_event(conn, "ado", parse_event(event("u-1", event_type="tfvc.checkin")), WHEN)
    queue = JobQueue(db, "test-worker")
    claimed = queue.claim([event_job_kind("ado")], 3)  # e-1, e-2, e-3: now processing
    assert [j.payload["eventId"] for j in claimed] == ["e-1", "e-2", "e-3"]
    queue.complete(claimed[0].id)
    queue.dead(claimed[1].id, "work item 2 could not be read: 500")
    with db.connect() as conn:
        first, after = recent_events(conn, "ado", limit=4)
        rest, end = recent_events(conn, "ado", limit=4, before=after)
    assert [e.event_id for e in first] == ["u-1", "e-5", "e-4", "e-3"]
    assert [e.event_id for e in rest] == ["e-2", "e-1"] and end is None
    assert after == first[-1].job_id == ids[2]
    by_id = {e.event_id: e for e in first + rest}
    assert [by_id[f"e-{n}"].state for n in range(1, 6)] == ["processed", "failed", "processing", "pending", "pending"]
    failed = by_id["e-2"].to_json()
    assert failed["error"] == "work item 2 could not be read: 500" and failed["attempts"] == 1
    assert failed["objectKey"] == "work-item:2@coll" and failed["eventType"] == "workitem.created"
    assert failed["receivedAt"].endswith("Z") and failed["publisherId"] == "tfs"
    assert by_id["u-1"].object_key is None and by_id["u-1"].event_type == "tfvc.checkin"
    with db.connect() as conn:
        counts = event_counts(conn, ["ado", "other", "none"])
    assert counts == {
        "ado": {"pending": 3, "processing": 1, "processed": 1, "failed": 1},
        "other": {"pending": 1, "processing": 0, "processed": 0, "failed": 0},
        "none": {"pending": 0, "processing": 0, "processed": 0, "failed": 0},
    }
    assert stored_event_counts(db, ["other"]) == {"other": counts["other"]}
    assert stored_event_counts(db, []) == {}


def test_events_stored_together_keep_their_arrival_order_and_a_redelivery_in_the_batch_adds_nothing(
    db: Database,
) -> None:
    arrived = [
        IncomingEvent("ado", parse_event(event("z-9", work_item=7)), WHEN),
        IncomingEvent("ado", parse_event(event("a-1", work_item=7, event_type="workitem.updated")), WHEN),
        IncomingEvent("other", parse_event(event("z-9", work_item=7)), WHEN),
        IncomingEvent("ado", parse_event(event("z-9", work_item=7)), WHEN),  # redelivered at once
    ]
    with db.begin() as conn:
        outcomes = store_incoming(conn, arrived)
    assert [(o.identifier, o.job_id is None) for o in outcomes] == [
        ("ado", False),
        ("ado", False),
        ("other", False),
        ("ado", True),
    ]
    first, second = outcomes[0].job_id, outcomes[1].job_id
    assert first is not None and second is not None and first < second  # the order per object kept
    claimed = JobQueue(db, "test-worker").claim([event_job_kind("ado")], 10)
    assert [job.payload["eventId"] for job in claimed] == ["z-9", "a-1"]


def test_the_event_writer_stores_concurrent_events_and_says_whose_were_new(db: Database) -> None:
    told: list[set[str]] = []
    writer = event_writer(db, told.append)
    writer.start()

    async def send_all() -> list[Intake]:
        records = [IncomingEvent("ado", parse_event(event(f"e-{n}", work_item=n)), WHEN) for n in range(40)]
        records.append(IncomingEvent("other", parse_event(event("e-0")), WHEN))
        records.append(IncomingEvent("ado", parse_event(event("e-3", work_item=3)), WHEN))  # a redelivery
        return await asyncio.gather(*(writer.store(record) for record in records))

    try:
        outcomes = asyncio.run(send_all())
    finally:
        assert writer.stop()
    assert sum(o.job_id is None for o in outcomes) == 1 and outcomes[-1].job_id is None
    assert set().union(*told) == {"ado", "other"}
    with db.connect() as conn:
        counts = event_counts(conn, ["ado", "other"])
    assert counts["ado"]["pending"] == 40 and counts["other"]["pending"] == 1
