"""The event retention rules without a database: cutoffs, kept jobs, and the choice within a batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kiosk.config.model import RetentionConfig
from kiosk.receivers.retention import (
    OldBatch,
    Policy,
    cutoffs,
    deletable,
    kept_jobs,
    old_batch,
    over_cap,
    unprocessed_events,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_defaults_and_config() -> None:
    assert Policy.from_config(RetentionConfig()) == Policy(
        event_max_age=timedelta(days=7),
        events_per_receiver=10_000,
    )
    custom = RetentionConfig.model_validate(
        {"receiverEvents": {"maxAgeDays": 0.5, "maxPerReceiver": 20}, "jobs": {"doneMaxAgeDays": 2}}
    )
    assert Policy.from_config(custom) == Policy(timedelta(hours=12), 20)
    with pytest.raises(ValueError, match="at least 1"):
        Policy(events_per_receiver=0)
    with pytest.raises(ValueError, match="positive"):
        Policy(event_max_age=timedelta(0))


def test_cutoffs_and_event_jobs_kept_as_long_as_events() -> None:
    cut = cutoffs(Policy(), NOW)
    assert cut.events_before == NOW - timedelta(days=7) and cut.events_per_receiver == 10_000
    # The event's job holds the dedupe key: it lives as long as the event history goes back (or as
    # long as done jobs, when those are kept longer: tests/store/test_queue_retention.py).
    assert kept_jobs(Policy()) == {"receiver_event": timedelta(days=7)}


def test_unprocessed_events_come_from_job_payloads() -> None:
    payloads = [{"event": 3}, {"event": 5}, {"event": "7"}, {"event": True}, {"delivery": "msg_1"}, {}]
    assert unprocessed_events(payloads) == frozenset({3, 5})


def at(days_ago: float) -> datetime:
    return NOW - timedelta(days=days_ago)


def test_old_batch_deletes_the_old_and_stops_at_the_young() -> None:
    before = at(7)
    rows = [(1, at(9)), (2, at(8)), (3, at(7.5))]
    assert old_batch(rows, before=before, limit=3, keep=frozenset()) == OldBatch([1, 2, 3], more=True, last=3)
    # An event still to process (its job pending or leased) is kept, and the walk goes on past it.
    assert old_batch(rows, before=before, limit=3, keep=frozenset({2})) == OldBatch([1, 3], more=True, last=3)
    # A young event: the rest of the table is younger still.
    young = [(4, at(8)), (5, at(6)), (6, at(8))]
    assert old_batch(young, before=before, limit=3, keep=frozenset()) == OldBatch([4, 6], more=False, last=6)
    # A short batch is the end of the table.
    assert old_batch(rows[:2], before=before, limit=3, keep=frozenset()) == OldBatch([1, 2], more=False, last=2)
    assert old_batch([], before=before, limit=3, keep=frozenset()) == OldBatch([], more=False, last=0)
    # Exactly at the cutoff is kept (older than the retention goes, not as old as it).
    assert old_batch([(7, before)], before=before, limit=1, keep=frozenset()).delete == []


def test_cap_choices() -> None:
    counts = {("", "acr"): 12, ("payments", "acr"): 10, ("", "builds"): 11, ("", "quiet"): 1}
    assert over_cap(counts, 10) == [("", "acr"), ("", "builds")]
    assert over_cap(counts, 12) == []
    assert deletable([1, 2, 3, 4], frozenset({2, 9})) == [1, 3, 4]
