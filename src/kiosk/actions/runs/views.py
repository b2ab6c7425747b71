"""Runs and their logs as the API shows them, and the reads that page through them."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiosk.actions.runs.states import is_run_id, run_not_found
from kiosk.catalog.dates import iso_timestamp
from kiosk.errors import BadRequest
from kiosk.store.engine import Database
from kiosk.store.tables import action_runs as runs_table
from kiosk.store.tables import actions as actions_table

DEFAULT_RUNS_PAGE = 100
MAX_RUNS_PAGE = 1000
DEFAULT_LOGS_PAGE = 1000
MAX_LOGS_PAGE = 10_000


def render_run(row: Any, titles: Mapping[str, str | None]) -> dict[str, Any]:
    approval = row.approval or {}
    decision = approval.get("decision")
    return {
        "id": row.id,
        "status": row.status,
        "statusLabel": row.status_label,
        "link": list(row.links or []),
        "summary": row.summary,
        "externalRunId": row.external_run_id,
        "action": {"identifier": row.action, "title": titles.get(row.action)},
        "blueprint": {"identifier": row.blueprint} if row.blueprint else None,
        "entity": {"identifier": row.entity} if row.entity else None,
        "properties": row.properties,
        "createdAt": iso_timestamp(row.created_at),
        "updatedAt": iso_timestamp(row.updated_at),
        "endedAt": iso_timestamp(row.ended_at),
        "source": row.origin,
        "createdBy": row.created_by,
        "requiredApproval": bool(approval.get("required")),
        "approval": (
            {
                "decision": decision,
                "decidedBy": approval.get("decidedBy"),
                "decidedAt": approval.get("decidedAt"),
                "reason": approval.get("reason"),
            }
            if decision
            else None
        ),
    }


def render_log(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "runId": row.run_id,
        "message": row.message,
        "terminationStatus": row.termination_status,
        "statusLabel": row.status_label,
        "createdAt": iso_timestamp(row.created_at),
    }


def titles(conn: Connection, identifiers: set[str]) -> dict[str, str | None]:
    """The titles of the actions ``identifiers``, which a rendered run shows."""
    if not identifiers:
        return {}
    rows = conn.execute(
        sa.select(actions_table.c.identifier, actions_table.c.definition).where(
            actions_table.c.identifier.in_(sorted(identifiers))
        )
    )
    return {r.identifier: r.definition.get("title") for r in rows}


def encode_run_cursor(created_at: datetime, run_id: str) -> str:
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    raw = f"r{created_at.astimezone(UTC).isoformat()}|{run_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_run_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, run_id = raw[1:].partition("|")
        if not raw.startswith("r") or not is_run_id(run_id):
            raise ValueError(raw)
        return datetime.fromisoformat(stamp).astimezone(UTC), run_id
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the 'from' cursor is not one this server gave out", code="invalid_cursor") from None


def read_run_row(db: Database, run_id: str) -> Any:
    """The run's row; 404 if there is none."""
    if not is_run_id(run_id):
        raise run_not_found(run_id)
    with db.connect() as conn:
        row = conn.execute(sa.select(runs_table).where(runs_table.c.id == run_id)).first()
    if row is None:
        raise run_not_found(run_id)
    return row
