"""Finished queue jobs for the retention tests (tests/store/test_queue_retention.py and
tests/runtime/test_retention.py): jobs finished some days ago, and what is left of them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa

from kiosk.store import Database
from kiosk.store.queue import enqueue, utcnow
from kiosk.store.tables import jobs


def jobs_left(db: Database) -> set[int]:
    with db.connect() as conn:
        return {int(r.id) for r in conn.execute(sa.select(jobs.c.id))}


def age_jobs(db: Database, job_ids: Sequence[int], days: float) -> None:
    with db.begin() as conn:
        when = utcnow() - timedelta(days=days)
        conn.execute(sa.update(jobs).where(jobs.c.id.in_(list(job_ids))).values(updated_at=when, run_after=when))


def finished_job(db: Database, kind: str, status: str, days: float) -> int:
    """A job of ``kind`` set to ``status``, last changed ``days`` ago."""
    with db.begin() as conn:
        job_id = enqueue(conn, kind, {"delivery": "msg"})
        assert job_id is not None
        conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(status=status))
    age_jobs(db, [job_id], days)
    return job_id


def sentinel_job(db: Database) -> int:
    """A newer job than any other (the newest job of the table is never pruned)."""
    with db.begin() as conn:
        job_id = enqueue(conn, "sentinel", {})
    assert job_id is not None
    return job_id
