"""Finishing runs from outside the reporting API: for the rest of kiosk.

The Azure run-state listener (:func:`finish_run_from_pipeline`), the delivery worker
(:func:`fail_run_for_delivery` when a delivery dies, :func:`succeed_run_for_delivery` when a
synchronized WEBHOOK is answered 2xx: its answer is the run's result) and the periodic sweep
(:func:`expire_stale_runs`). Each finishes only an IN_PROGRESS run, with a compare-and-set
update, so whichever reporter comes second changes nothing. Each runs in the caller's
transaction when given a connection, and tells ``listener`` (the automations) of the change in
the same transaction.
"""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiosk.actions.runs.listeners import RunChange, RunListener, note_run_update, watched_transaction
from kiosk.actions.runs.states import FAILURE, IN_PROGRESS, MAX_LABEL, SUCCESS, clip, utc_now
from kiosk.actions.runs.store import add_run_log, lock_run
from kiosk.store.engine import Database
from kiosk.store.tables import action_runs as runs_table
from kiosk.store.tables import deliveries as deliveries_table


def finish_run(
    conn_or_db: Connection | Database,
    run_id: str,
    status: str,
    *,
    label: str | None = None,
    link: str | None = None,
    log_message: str | None = None,
    listener: RunListener | None = None,
) -> bool:
    """Finish an IN_PROGRESS run as SUCCESS or FAILURE; False (nothing changed) if it is not one.

    ``link`` is added to the run's links (once); ``log_message`` is added to its logs. Runs in
    the caller's transaction when given a connection. ``listener`` (the automations) hears of
    the change, in the same transaction.
    """
    if status not in (SUCCESS, FAILURE):
        raise ValueError(f"status must be SUCCESS or FAILURE, not {status!r}")
    with watched_transaction(conn_or_db, listener) as (conn, changes):
        row = lock_run(conn, run_id)
        if row is None or row.status != IN_PROGRESS:
            return False
        return _finish(
            conn, row, status, label=label, link=link, log_message=log_message, listener=listener, changes=changes
        )


def _finish(
    conn: Connection,
    row: Any,
    status: str,
    *,
    label: str | None,
    link: str | None,
    log_message: str | None,
    listener: RunListener | None,
    changes: list[RunChange],
) -> bool:
    """Finish the run ``row`` (a full row, read for update); the change is noted in ``changes``
    when ``listener`` watches it."""
    now = utc_now()
    values: dict[str, Any] = {"status": status, "updated_at": now, "ended_at": now, "secrets": None}
    if label is not None:
        values["status_label"] = clip(label, MAX_LABEL)
    links = list(row.links or [])
    if link and link not in links:
        values["links"] = [*links, link]
    changed = conn.execute(
        sa.update(runs_table).where(runs_table.c.id == row.id, runs_table.c.status == IN_PROGRESS).values(**values)
    ).rowcount
    if changed and log_message:
        add_run_log(
            conn, row.id, log_message, termination_status=status, at=now, status_label=values.get("status_label")
        )
    if changed:
        note_run_update(conn, listener, changes, row, None)
    return bool(changed)


def finish_run_from_pipeline(
    conn_or_db: Connection | Database,
    pipeline_run_name: str,
    status: str,
    link: str | None,
    label: str | None,
    *,
    listener: RunListener | None = None,
) -> bool:
    """Finish the run whose pipeline is named ``pipeline_run_name`` (a run-state event said so).

    Returns whether a run changed: False when no run has that name or it already finished (the
    pipeline's own report may have come first). ``listener`` as for :func:`finish_run`.
    """
    if status not in (SUCCESS, FAILURE):
        raise ValueError(f"status must be SUCCESS or FAILURE, not {status!r}")
    with watched_transaction(conn_or_db, listener) as (conn, changes):
        row = conn.execute(
            sa.select(runs_table)
            .where(runs_table.c.pipeline_run_name == pipeline_run_name, runs_table.c.status == IN_PROGRESS)
            .order_by(runs_table.c.created_at.desc())
            .limit(1)
            .with_for_update()
        ).first()
        if row is None:
            return False
        return _finish(conn, row, status, label=label, link=link, log_message=None, listener=listener, changes=changes)


def _synchronized_run(conn: Connection, run_id: str) -> bool:
    """Was the run delivered synchronously (its webhook's answer is its result)?"""
    targets = conn.execute(sa.select(deliveries_table.c.target).where(deliveries_table.c.run_id == run_id)).scalars()
    return any(isinstance(target, dict) and target.get("synchronized") for target in targets)


def fail_run_for_delivery(
    conn_or_db: Connection | Database, run_id: str, reason: str, *, listener: RunListener | None = None
) -> bool:
    """The run's delivery was dead-lettered: FAILURE, with the reason in the label and the logs.

    Worded for what the delivery was: a pipeline that never got triggered, or — for a synchronized
    WEBHOOK, whose answer is the run's result — the webhook's failing answer. False when the run
    is not IN_PROGRESS (unknown, or already finished).
    """
    with watched_transaction(conn_or_db, listener) as (conn, changes):
        row = lock_run(conn, run_id)
        if row is None or row.status != IN_PROGRESS:
            return False
        if _synchronized_run(conn, run_id):
            label = f"the webhook call failed: {reason}"
            message = f"the run's webhook did not succeed (synchronized: its answer is the run's result): {reason}"
        else:
            label = f"the pipeline could not be triggered: {reason}"
            message = f"kiosk gave up delivering the run's webhook: {reason}"
        return _finish(
            conn, row, FAILURE, label=label, link=None, log_message=message, listener=listener, changes=changes
        )


def describe_http_status(status_code: int | None) -> str:
    """``HTTP 201 Created``: the status and its standard phrase, when it has one."""
    if status_code is None:
        return "no HTTP status"
    try:
        return f"HTTP {status_code} {HTTPStatus(status_code).phrase}"
    except ValueError:
        return f"HTTP {status_code}"


def succeed_run_for_delivery(
    conn_or_db: Connection | Database,
    run_id: str,
    status_code: int | None,
    *,
    listener: RunListener | None = None,
) -> bool:
    """A synchronized WEBHOOK run's delivery was answered 2xx: the run is SUCCESS, its label naming
    the status. False (nothing changed) when the run is not IN_PROGRESS — the receiver may have
    reported first, and a finished run is never changed. ``listener`` as for :func:`finish_run`.
    """
    answer = describe_http_status(status_code)
    return finish_run(
        conn_or_db,
        run_id,
        SUCCESS,
        label=f"the webhook answered {answer}",
        log_message=f"the run's webhook answered {answer} (synchronized: its answer is the run's result)",
        listener=listener,
    )


def describe_duration(span: timedelta) -> str:
    """``1 hour 30 minutes``: the largest units, for labels people read."""
    seconds = max(int(span.total_seconds()), 0)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [(days, "day"), (hours, "hour"), (minutes, "minute"), (seconds, "second")]
    words = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n]
    return " ".join(words[:2]) if words else "0 seconds"


def expire_stale_runs(db: Database, older_than: timedelta, *, listener: RunListener | None = None) -> int:
    """Fail the IN_PROGRESS runs nothing was heard about for ``older_than``; how many.

    "Heard about" is any change to the run (a report, a log, approval): ``updated_at``. So a
    pipeline that logged once and then died is caught as well as one that never started.
    ``listener`` as for :func:`finish_run`.
    """
    cutoff = utc_now() - older_than
    label = f"no report from the pipeline within {describe_duration(older_than)}"
    with watched_transaction(db, listener) as (conn, changes):
        rows = conn.execute(
            sa.select(runs_table)
            .where(runs_table.c.status == IN_PROGRESS, runs_table.c.updated_at < cutoff)
            .order_by(runs_table.c.updated_at)
            .with_for_update()
        ).all()
        count = 0
        for row in rows:
            count += _finish(
                conn, row, FAILURE, label=label, link=None, log_message=label, listener=listener, changes=changes
            )
    return count
