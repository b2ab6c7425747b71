"""Watch refresh state and reaction records in the database.

Watches themselves are config (kiosk.yaml, held in memory); what happens to them is stored:
``watch_states`` (when each was last refreshed, by which event, how often — written by the intake,
in the transaction that stores the events) and
``receiver_event_reactions`` (what each reaction did for each event, which is also how a retried
job knows which reactions already fired).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from kiosk.store.queue import aware
from kiosk.store.tables import receiver_event_reactions as reactions_table
from kiosk.store.tables import receiver_events as events_table
from kiosk.store.tables import watch_states

__all__ = [
    "Refresh",
    "WatchState",
    "done_reactions",
    "load_events",
    "load_states",
    "mark_events",
    "record_reaction",
    "record_refreshes",
]


@dataclass(frozen=True)
class WatchState:
    watch: str
    last_refreshed_at: datetime
    last_event_id: int | None
    refreshes: int


@dataclass(frozen=True)
class Refresh:
    """Refreshes of one watch in a batch: how many, and the newest event among them."""

    count: int
    last_event_id: int


def load_states(conn: Connection) -> dict[str, WatchState]:
    return {
        r.watch: WatchState(r.watch, aware(r.last_refreshed_at), r.last_event_id, r.refreshes)
        for r in conn.execute(sa.select(watch_states))
    }


def _refresh_upsert(insert: Any) -> Any:
    """The upsert adding refreshes to a watch's row, built once per dialect (compiling it costs more
    than running it)."""
    excluded = insert.excluded
    return insert.on_conflict_do_update(
        index_elements=["watch"],
        set_={
            "last_refreshed_at": excluded.last_refreshed_at,
            "refreshes": watch_states.c.refreshes + excluded.refreshes,
            "last_event_id": sa.case(
                (watch_states.c.last_event_id.is_(None), excluded.last_event_id),
                (excluded.last_event_id > watch_states.c.last_event_id, excluded.last_event_id),
                else_=watch_states.c.last_event_id,
            ),
        },
    )


_REFRESH_UPSERT = {
    "sqlite": _refresh_upsert(sqlite.insert(watch_states)),
    "postgresql": _refresh_upsert(postgresql.insert(watch_states)),
}


def record_refreshes(conn: Connection, refreshes: Mapping[str, Refresh], at: datetime) -> None:
    """Add a batch of refreshes: one upsert per watch (in name order, so concurrent writers lock
    rows in the same order), executed as one batch."""
    if not refreshes:
        return
    rows = [
        {"watch": watch, "last_refreshed_at": at, "last_event_id": r.last_event_id, "refreshes": r.count}
        for watch, r in sorted(refreshes.items())
    ]
    conn.execute(_REFRESH_UPSERT[conn.dialect.name], rows)


def load_events(conn: Connection, event_ids: Sequence[int]) -> dict[int, Any]:
    """Events by id, bodies included (reactions read them)."""
    if not event_ids:
        return {}
    return {int(r.id): r for r in conn.execute(sa.select(events_table).where(events_table.c.id.in_(list(event_ids))))}


def done_reactions(conn: Connection, event_ids: Sequence[int]) -> set[tuple[int, str, int]]:
    """``(event id, watch, position)`` of every reaction already recorded for these events."""
    if not event_ids:
        return set()
    rows = conn.execute(
        sa.select(reactions_table.c.event_id, reactions_table.c.watch, reactions_table.c.position).where(
            reactions_table.c.event_id.in_(list(event_ids))
        )
    )
    return {(int(r.event_id), str(r.watch), int(r.position)) for r in rows}


def record_reaction(
    conn: Connection,
    *,
    event_id: int,
    watch: str,
    position: int,
    kind: str,
    status: str,
    run_id: str | None,
    entity: str | None,
    error: str | None,
    at: datetime,
) -> None:
    conn.execute(
        sa.insert(reactions_table).values(
            event_id=event_id,
            watch=watch,
            position=position,
            kind=kind,
            status=status,
            run_id=run_id,
            entity=entity,
            error=None if error is None else error[:2000],
            created_at=at,
        )
    )


def mark_events(conn: Connection, event_ids: Sequence[int], processing: str, at: datetime) -> None:
    """Set the processing state (``done`` / ``failed``) of events."""
    if event_ids:
        conn.execute(
            sa.update(events_table)
            .where(events_table.c.id.in_(list(event_ids)))
            .values(processing=processing, processed_at=at)
        )
