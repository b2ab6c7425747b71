"""Port's reporting API: a run's pipeline (or an admin) updates it (PATCH) and adds log lines.

Who may report is decided before these functions run: the run's own pipeline, with its report
token (:mod:`kiosk.actions.report_tokens`), or an admin (``kiosk.web.auth``). The ``actor`` they
are given is the admin's client id, or None for the pipeline.

Reports are written masked: a pipeline that echoes a secret input back into a label, a summary or
a log line has it replaced by ``"****"`` before it is stored.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiosk.actions.inputs import MASK
from kiosk.actions.runs.listeners import RunListener, note_run_update, watched_transaction
from kiosk.actions.runs.requests import RunLog, RunReport
from kiosk.actions.runs.states import (
    FINISHED,
    WAITING,
    finished_conflict,
    is_run_id,
    run_not_found,
    utc_now,
    waiting_conflict,
)
from kiosk.actions.runs.store import add_run_log, lock_run
from kiosk.actions.runs.views import render_log
from kiosk.actions.secrets import SecretBox, mask_text
from kiosk.store.engine import Database
from kiosk.store.tables import action_run_logs as logs_table
from kiosk.store.tables import action_runs as runs_table

log = logging.getLogger("kiosk.actions")


def apply_report(
    db: Database, box: SecretBox, listener: RunListener | None, run_id: str, report: RunReport, *, actor: str | None
) -> None:
    """Store Port's run update (``PATCH /v1/actions/runs/{id}``); a final status finishes the run."""
    with watched_transaction(db, listener) as (conn, changes):
        row = _locked_row(conn, run_id)
        secret_values = _open_quietly(box, row)
        now = utc_now()
        values: dict[str, Any] = {"updated_at": now}
        if report.status is not None:
            values["status"] = report.status
            if report.status in FINISHED:
                values.update(ended_at=now, secrets=None)
        if report.label is not None:
            values["status_label"] = mask_text(report.label, secret_values, MASK)
        if report.summary is not None:
            values["summary"] = mask_text(report.summary, secret_values, MASK)
        if report.external_run_id is not None:
            values["external_run_id"] = report.external_run_id
        if report.links is not None:
            values["links"] = report.links
        conn.execute(sa.update(runs_table).where(runs_table.c.id == row.id).values(**values))
        note_run_update(conn, listener, changes, row, actor)


def apply_log(
    db: Database, box: SecretBox, listener: RunListener | None, run_id: str, entry: RunLog, *, actor: str | None
) -> dict[str, Any]:
    """Store Port's log line (``POST /v1/actions/runs/{id}/logs``); the log as the API shows it."""
    with watched_transaction(db, listener) as (conn, changes):
        row = _locked_row(conn, run_id)
        secret_values = _open_quietly(box, row)
        message = mask_text(entry.message, secret_values, MASK)
        label = mask_text(entry.label, secret_values, MASK) if entry.label is not None else None
        termination = entry.termination
        now = utc_now()
        log_id = add_run_log(conn, row.id, message, termination_status=termination, at=now, status_label=label)
        values: dict[str, Any] = {"updated_at": now}
        if termination is not None:
            values.update(status=termination, ended_at=now, secrets=None)
        if label is not None:
            values["status_label"] = label
        conn.execute(sa.update(runs_table).where(runs_table.c.id == row.id).values(**values))
        if termination is not None:  # a log alone is no run update (as in Port); finishing one is
            note_run_update(conn, listener, changes, row, actor)
        stored = conn.execute(sa.select(logs_table).where(logs_table.c.id == log_id)).one()
    return render_log(stored)


def _locked_row(conn: Connection, run_id: str) -> Any:
    """The run, locked for this transaction; 404 if unknown, 409 unless it takes reports."""
    if not is_run_id(run_id):
        raise run_not_found(run_id)
    row = lock_run(conn, run_id)
    if row is None:
        raise run_not_found(run_id)
    if row.status in FINISHED:
        raise finished_conflict(run_id, row.status)
    if row.status == WAITING:
        raise waiting_conflict(run_id)
    return row


def _open_quietly(box: SecretBox, row: Any) -> dict[str, str]:
    """The run's secrets to mask reports with; none if they cannot be opened (logged)."""
    try:
        return open_secrets(box, row)
    except ValueError as exc:
        log.warning("cannot open a run's secret inputs", extra={"run": row.id, "reason": str(exc)})
        return {}


def open_secrets(box: SecretBox, row: Any) -> dict[str, str]:
    """The run's sealed secret inputs, opened (none when it has none); ``ValueError`` if they
    cannot be opened (another server key, a damaged value)."""
    return box.open(row.id, row.secrets) if row.secrets else {}
