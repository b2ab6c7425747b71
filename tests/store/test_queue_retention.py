"""The queue's retention: which finished jobs go (without a database), and the pruner on both engines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from tests.store.jobs import finished_job, jobs_left

from kiosk.store import Database
from kiosk.store.queue import JobQueue, enqueue, utcnow
from kiosk.store.queue_retention import JobPolicy, JobPruner, JobRule, job_rules
from kiosk.store.tables import jobs

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_policy_ages_must_be_positive() -> None:
    assert JobPolicy() == JobPolicy(timedelta(days=1), timedelta(days=30), {})
    with pytest.raises(ValueError, match="positive"):
        JobPolicy(dead_max_age=timedelta(0))
    with pytest.raises(ValueError, match="positive"):
        JobPolicy(done_kept_at_least={"receiver_event": timedelta(0)})


def test_rules_keep_the_longer_kept_kinds_as_long_as_asked() -> None:
    policy = JobPolicy(done_kept_at_least={"receiver_event": timedelta(days=7)})
    assert job_rules(policy, NOW) == [
        JobRule("done", NOW - timedelta(days=7), kinds=("receiver_event",)),
        JobRule("done", NOW - timedelta(days=1), skip_kinds=("receiver_event",)),
        JobRule("dead", NOW - timedelta(days=30)),
    ]
    assert {rule.status for rule in job_rules(policy, NOW)} == {"done", "dead"}  # never pending or running
    # Kept at least that long: as long as done jobs, when those are kept longer.
    longer = job_rules(JobPolicy(timedelta(days=9), done_kept_at_least={"receiver_event": timedelta(days=7)}), NOW)
    assert longer[0] == JobRule("done", NOW - timedelta(days=9), kinds=("receiver_event",))
    assert job_rules(JobPolicy(), NOW) == [
        JobRule("done", NOW - timedelta(days=1)),
        JobRule("dead", NOW - timedelta(days=30)),
    ]


def test_finished_jobs_go_after_their_periods_and_pending_or_leased_ones_never(db: Database) -> None:
    done_old = finished_job(db, "delivery", "done", 2)
    done_new = finished_job(db, "delivery", "done", 0.5)
    dead_recent = finished_job(db, "delivery", "dead", 2)
    dead_old = finished_job(db, "delivery", "dead", 31)
    pending_old = finished_job(db, "delivery", "pending", 90)
    ago = utcnow() - timedelta(days=90)
    with db.begin() as conn:
        leased_old = enqueue(conn, "delivery", {}, run_after=ago)
    assert leased_old is not None
    [claimed] = JobQueue(db, "dead-worker", lease_seconds=0.001).claim(["delivery"], limit=1)
    assert claimed.id == pending_old  # the oldest due one; make the other one the leased one
    lease_ran_out = utcnow() - timedelta(days=80)
    with db.begin() as conn:
        conn.execute(sa.update(jobs).where(jobs.c.id == pending_old).values(status="pending", locked_by=None))
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.id == leased_old)
            .values(status="running", locked_by="dead-worker", locked_until=lease_ran_out, updated_at=lease_ran_out)
        )
    report = JobPruner(db, JobPolicy(), rest=0).run()
    assert jobs_left(db) == {done_new, dead_recent, pending_old, leased_old}
    assert done_old not in jobs_left(db) and dead_old not in jobs_left(db)
    assert report.jobs == {"done": 1, "dead": 1}
