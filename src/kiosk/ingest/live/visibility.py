"""How far behind an integration's live events are: the lag, read from the job rows every process
shares (what one process processed and failed is in its processor's
:class:`~kiosk.ingest.live.processor.EventStats`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from kiosk.ingest.events import event_job_kind
from kiosk.store.engine import Database
from kiosk.store.queue import PENDING, RUNNING, aware, utcnow
from kiosk.store.tables import jobs

__all__ = ["event_lag", "oldest_pending"]


def oldest_pending(db: Database, identifiers: Sequence[str]) -> dict[str, datetime | None]:
    """Per integration, when its oldest event not yet processed (pending, or being processed) was
    received; None when there is none. One query."""
    kinds = {event_job_kind(identifier): identifier for identifier in identifiers}
    out: dict[str, datetime | None] = dict.fromkeys(identifiers)
    if not kinds:
        return out
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(jobs.c.kind, sa.func.min(jobs.c.created_at).label("oldest"))
            .where(jobs.c.kind.in_(list(kinds)), jobs.c.status.in_([PENDING, RUNNING]))
            .group_by(jobs.c.kind)
        )
        for row in rows:
            out[kinds[str(row.kind)]] = aware(row.oldest)
    return out


def event_lag(db: Database, identifiers: Sequence[str], now: datetime | None = None) -> dict[str, float]:
    """Per integration, seconds between now and the receipt of its oldest unprocessed event (0
    when every event is processed or failed)."""
    moment = now or utcnow()
    return {
        identifier: 0.0 if oldest is None else max(0.0, (moment - oldest).total_seconds())
        for identifier, oldest in oldest_pending(db, identifiers).items()
    }
