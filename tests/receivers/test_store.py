"""Storing events in batches with their jobs (both engines): ids in order, duplicates found."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from tests.support.events import acr_record

from kiosk.receivers.intake import EventRecord
from kiosk.receivers.store import list_events, store_events
from kiosk.store import Database
from kiosk.store.tables import jobs, receiver_events


def record(n: int, key: str | None, **fields: Any) -> EventRecord:
    """Push ``n`` (delivery ``key``), with a payload that needs quoting; odd ones have reactions."""
    values: dict[str, Any] = {
        "matches": [{"watch": "w", "tag": str(n)}],
        "summary": {"tag": str(n)},
        "payload": f'{{"n": {n}, "text": "caf\\u00e9 \'quoted\'"}}',
        "react": n % 2 == 1,
        **fields,
    }
    return acr_record(key, **values)


def test_a_batch_keeps_order_and_finds_duplicates_within_and_across_batches(db: Database) -> None:
    with db.begin() as conn:
        first = store_events(conn, [record(0, "a")])
    batch = [
        record(1, "b"),
        record(2, "a"),  # stored in an earlier batch
        record(3, "b"),  # earlier in this batch
        record(4, None),  # no sender id: never a duplicate
        record(5, None, outcome="rejected", status_code=400, accepted=False, payload=None, matches=[], summary=None),
    ]
    with db.begin() as conn:
        stored = store_events(conn, batch)
    assert [s.duplicate for s in stored] == [False, True, True, False, False]
    assert [s.queued for s in stored] == [True, False, False, False, False]
    ids = [s.event_id for s in stored]
    assert ids == sorted(ids) and ids[0] > first[0].event_id
    with db.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(receiver_events))}
        job_events = sorted(int(j.payload["event"]) for j in conn.execute(sa.select(jobs)))
    assert [rows[i].summary for i in ids] == [{"tag": str(n)} for n in range(1, 5)] + [None]
    assert [rows[i].outcome for i in ids] == ["refreshed", "duplicate", "duplicate", "refreshed", "rejected"]
    assert rows[ids[1]].matches == [] and rows[ids[1]].refreshed == 0 and rows[ids[1]].processing is None
    assert rows[ids[1]].reason == "event a was already received; not processed again"
    assert rows[ids[0]].payload == {"n": 1, "text": "café 'quoted'"} and rows[ids[0]].processing == "pending"
    assert job_events == [first[0].event_id, ids[0], ids[3]]
    with db.connect() as conn:
        page, nxt = list_events(conn, "acr", None, limit=4)
        rest, end = list_events(conn, "acr", None, limit=4, cursor=nxt)
    assert [e["id"] for e in page + rest] == sorted(rows, reverse=True) and end is None
