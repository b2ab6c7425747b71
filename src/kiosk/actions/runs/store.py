"""The statements that write runs, their logs and their deliveries, in the caller's transaction.

Shared by the run service and the automations, which store the runs they start the same way.
A run is stored together with its delivery, in one transaction (:func:`queue_delivery` inside
the same ``db.begin()``): either the run exists and its webhook will be sent, or neither happened.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from kiosk.actions.invocation import OutboundRequest
from kiosk.actions.secrets import SecretBox
from kiosk.delivery.outbox import BodySealer, create_delivery
from kiosk.store.tables import action_run_logs as logs_table
from kiosk.store.tables import action_runs as runs_table


def insert_run(conn: Connection, row: dict[str, Any]) -> bool:
    """Store one new run (its id is fresh and random); always True."""
    insert_runs(conn, [row])
    return True


def insert_run_once(conn: Connection, row: dict[str, Any]) -> bool:
    """Store one new run unless a run with its id exists; whether it was stored.

    "On conflict do nothing" on the primary key, not a read then an insert: on PostgreSQL a
    concurrent insert of the same id waits for the other transaction and then does nothing, on
    SQLite writers are serialised; either way exactly one start stores the run, and no error
    aborts the caller's transaction.
    """
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(runs_table)
        .values(**row)
        .on_conflict_do_nothing(index_elements=[runs_table.c.id])
        .returning(runs_table.c.id)
    )
    # RETURNING, not rowcount: psycopg reports a row count for an insert that did nothing.
    return conn.execute(statement).first() is not None


def insert_runs(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Store new runs (rows from :func:`kiosk.actions.runs.states.run_row`) with one statement.

    Bound parameters rather than ``.values()`` literals: the statement is compiled once and
    cached, which is what keeps a bulk write that fires an automation per entity affordable.
    """
    if rows:
        conn.execute(sa.insert(runs_table), list(rows))


def lock_run(conn: Connection, run_id: str) -> Any:
    """The run's row, locked for the rest of the transaction (``FOR UPDATE``); None if unknown."""
    return conn.execute(sa.select(runs_table).where(runs_table.c.id == run_id).with_for_update()).first()


def add_run_log(
    conn: Connection,
    run_id: str,
    message: str,
    *,
    termination_status: str | None,
    at: datetime,
    status_label: str | None = None,
) -> int:
    """A log line on a run, in the caller's transaction; its id."""
    return int(
        conn.execute(
            sa.insert(logs_table)
            .values(
                run_id=run_id,
                message=message,
                termination_status=termination_status,
                status_label=status_label,
                created_at=at,
            )
            .returning(logs_table.c.id)
        ).scalar_one()
    )


def queue_delivery(
    conn: Connection,
    run_id: str,
    outbound: OutboundRequest,
    *,
    source: str = "action",
    box: SecretBox | None = None,
    secret_values: Collection[str] = (),
) -> str:
    """The run's delivery, in the caller's transaction (so it commits with the run); ``source``
    says what queued it (``action`` or ``automation``) in the deliveries API.

    ``outbound.body`` holds the run's secret inputs (``secret_values``) in clear when it has any:
    the pipeline needs them. Then the body is stored sealed with ``box`` (the server's), bound to
    the delivery id, and only the delivery worker opens it, to send it. A run without secrets is
    stored as it is, at no cost.
    """
    values = tuple(value for value in secret_values if value)
    seal: BodySealer | None = None
    if values:
        if box is None:
            raise ValueError("a delivery body carrying secret inputs needs a SecretBox to be sealed with")
        seal = functools.partial(_seal_body, box, values=values)

    return create_delivery(conn, outbound, source=source, run_id=run_id, seal=seal)


def _seal_body(box: SecretBox, delivery_id: str, body: bytes, *, values: tuple[str, ...]) -> bytes:
    return box.seal_body(delivery_id, body, values)
