"""Run changes as a listener hears of them, in the transaction that made them.

Run automations watch runs: a :class:`RunListener` is told, inside the transaction that made it,
of every run created and every run update — a report (PATCH), a log that finishes the run, an
approval or decline, a finish from outside, an expiry. Logs that do not finish the run are not
updates (as in Port). The listener says first whether it watches runs of that action started
from that origin, so unwatched runs cost one small query.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiosk.actions.runs.views import render_run, titles
from kiosk.store.engine import Database
from kiosk.store.tables import action_runs as runs_table

RunChangeKind = Literal["created", "updated"]


@dataclass(frozen=True)
class RunChange:
    """A run created or updated, as the API shows it (secret inputs masked).

    ``before`` is None when it was created. ``actor`` is the client that made the change (None
    when kiosk itself did: a run-state event, an expiry, a failed delivery; and when the run's
    pipeline reported with its report token, which is no API client).
    """

    action: str
    run_id: str
    origin: str
    kind: RunChangeKind
    before: dict[str, Any] | None
    after: dict[str, Any]
    actor: str | None


class RunListener(Protocol):
    """Something that reacts to run changes in the writer's transaction (run automations do)."""

    def watched_runs(self, conn: Connection, action: str, origin: str) -> frozenset[RunChangeKind]:
        """The kinds of change to runs of ``action`` started from ``origin`` it wants (empty: none)."""
        ...

    def runs_changed(self, conn: Connection, changes: Sequence[RunChange]) -> bool:
        """Called inside the transaction. Its own mistakes (a condition, a template) must not fail
        it; failing to store what it reacts with does, so that a committed change never goes
        without its reaction. True when it stored work :meth:`committed` should announce."""
        ...

    def committed(self) -> None:
        """The transaction whose changes it took (and said True to) has committed."""
        ...


@contextmanager
def _transaction(conn_or_db: Connection | Database) -> Iterator[Connection]:
    """The caller's transaction when given a connection, else a new one."""
    if isinstance(conn_or_db, Database):
        with conn_or_db.begin() as conn:
            yield conn
    else:
        yield conn_or_db


@contextmanager
def watched_transaction(
    conn_or_db: Connection | Database, listener: RunListener | None
) -> Iterator[tuple[Connection, list[RunChange]]]:
    """A transaction (the caller's when given a connection, else a new one), plus a list the body
    appends its run changes to: they are handed to ``listener`` before the transaction ends, and
    announced (``committed``) after it commits.

    In the caller's transaction (given a connection) kiosk cannot know when it commits, so nothing
    is announced; the delivery worker then finds the queued work at its next poll.
    """
    changes: list[RunChange] = []
    with _transaction(conn_or_db) as conn:
        yield conn, changes
        announced = listener is not None and bool(changes) and listener.runs_changed(conn, changes)
    if announced and listener is not None and isinstance(conn_or_db, Database):
        listener.committed()


def note_run_change(
    conn: Connection,
    listener: RunListener | None,
    changes: list[RunChange],
    run_id: str,
    action: str,
    origin: str,
    before: Any,
    actor: str | None,
) -> None:
    """Append the change just written to run ``run_id`` to ``changes``, if ``listener`` watches it.

    ``before`` is the run's row before the change (None: it was just created). The run is read
    back and both rendered only when watched.
    """
    if listener is None:
        return
    kind: RunChangeKind = "created" if before is None else "updated"
    if kind not in listener.watched_runs(conn, action, origin):
        return
    after = conn.execute(sa.select(runs_table).where(runs_table.c.id == run_id)).one()
    named = titles(conn, {action})
    changes.append(
        RunChange(
            action=action,
            run_id=run_id,
            origin=origin,
            kind=kind,
            before=render_run(before, named) if before is not None else None,
            after=render_run(after, named),
            actor=actor,
        )
    )


def note_run_update(
    conn: Connection, listener: RunListener | None, changes: list[RunChange], before: Any, actor: str | None
) -> None:
    """:func:`note_run_change` for an update just made to the run whose earlier row is ``before``."""
    note_run_change(conn, listener, changes, before.id, before.action, before.origin, before, actor)
