"""Group commit (both engines): events handed over together share a transaction, each request gets
its own outcome, and one record the database refuses fails alone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from tests.support.events import acr_record

from kiosk.receivers.intake import EventRecord
from kiosk.receivers.store import Stored
from kiosk.receivers.writer import EventWriter, WriterStopped
from kiosk.store import Database
from kiosk.store.tables import receiver_events


def record(n: int, **fields: Any) -> EventRecord:
    """An accepted push (delivery ``d<n>``) that matched no watch."""
    return acr_record(f"d{n}", outcome="no_match", refreshed=0, **fields)


def test_events_stored_together_each_get_their_outcome(db: Database) -> None:
    woken: list[int] = []
    writer = EventWriter(db, on_queued=lambda: woken.append(1))
    writer.start()

    async def send_all() -> list[Stored | BaseException]:
        records = [record(n) for n in range(50)]
        records.append(record(3))  # a redelivery of d3
        records.append(record(99, status_code=None))  # refused by the database (NOT NULL)
        records.append(record(100, react=True))
        return await asyncio.gather(*(writer.store(r) for r in records), return_exceptions=True)

    try:
        outcomes = asyncio.run(send_all())
    finally:
        assert writer.stop()
    stored = [o for o in outcomes if isinstance(o, Stored)]
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(stored) == 52 and len(failed) == 1 and isinstance(failed[0], sa.exc.IntegrityError)
    assert [o.duplicate for o in stored].count(True) == 1
    assert stored[-1].queued and woken  # the reactive event woke the processor
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(receiver_events)).scalar() == 52


def test_a_stopped_writer_refuses_new_events(db: Database) -> None:
    writer = EventWriter(db)
    with pytest.raises(WriterStopped):
        asyncio.run(writer.store(record(1)))
    writer.start()
    assert asyncio.run(writer.store(record(1))).event_id > 0
    writer.stop()
    with pytest.raises(WriterStopped):
        asyncio.run(writer.store(record(2)))
