"""What a run is, without the database: its statuses, its id, the row a new run gets.

Statuses: ``WAITING_FOR_APPROVAL`` → ``IN_PROGRESS`` → ``SUCCESS`` | ``FAILURE``, or
``WAITING_FOR_APPROVAL`` → ``DECLINED``. The last three are final: a finished run is never
reopened or changed (409, :func:`finished_conflict`). The transitions themselves are
compare-and-set updates (``WHERE status = …``) in the modules that make them, so two reporters
racing (the pipeline's PATCH and a run-state event) cannot both finish a run.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

from kiosk.catalog.dates import iso_timestamp
from kiosk.errors import Conflict, NotFound, ValidationFailed

IN_PROGRESS = "IN_PROGRESS"
WAITING = "WAITING_FOR_APPROVAL"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
DECLINED = "DECLINED"
ACTIVE = (IN_PROGRESS, WAITING)
FINISHED = (SUCCESS, FAILURE, DECLINED)
STATUSES = (*ACTIVE, *FINISHED)
#: What a reporter may set with PATCH (and ``terminationStatus`` on a log, the last two).
REPORTABLE = (SUCCESS, FAILURE, IN_PROGRESS)
#: Where a run was started from (its ``source``, and its ``trigger``'s ``origin``).
ORIGINS = frozenset({"UI", "API", "AUTOMATION"})
MAX_LABEL = 1000


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_run_id() -> str:
    return "r_" + secrets.token_hex(12)


#: Hex digits of a run id after ``r_`` (random or derived: both look the same to everyone else).
RUN_ID_HEX = 24


def run_id_for_key(key: str) -> str:
    """The run id a start with idempotency key ``key`` gets: the same key, the same id.

    A hash, so any text can be a key and the id has the usual shape (``r_`` + 24 hex digits, 96
    bits: collisions between different keys are out of reach). The ``idempotency-key`` prefix keeps
    these ids apart from anything else hashed into an id later.
    """
    digest = hashlib.sha256(b"kiosk-run-idempotency-key\x00" + key.encode()).hexdigest()
    return "r_" + digest[:RUN_ID_HEX]


def pipeline_run_name(run_id: str) -> str:
    """The run name a triggered pipeline sets (``name: kiosk-<runId>``), matched by run-state events."""
    return f"kiosk-{run_id}"


def is_run_id(value: str) -> bool:
    return value.startswith("r_") and 2 < len(value) <= 40 and all(c in "0123456789abcdef" for c in value[2:])


def run_not_found(run_id: str) -> NotFound:
    return NotFound(f"action run {run_id!r} does not exist", code="run_not_found")


def invalid(field: str, message: str, code: str = "invalid_request") -> ValidationFailed:
    return ValidationFailed(message, code=code, details={"field": field})


def finished_conflict(run_id: str, status: str) -> Conflict:
    return Conflict(
        f"action run {run_id!r} already finished ({status}); a finished run cannot be changed",
        code="run_exhausted",
        details={"status": status},
    )


def waiting_conflict(run_id: str) -> Conflict:
    return Conflict(
        f"action run {run_id!r} is waiting for approval; an admin must approve or decline it first",
        code="run_waiting_for_approval",
        details={"status": WAITING},
    )


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def trigger_of(actor: str | None, origin: str, at: datetime) -> dict[str, Any]:
    """Port's ``trigger``: who (kiosk knows API clients, not people), from where, when."""
    return {
        "by": {"orgId": "kiosk", "userId": actor, "user": {"id": actor, "email": None}},
        "origin": origin,
        "at": iso_timestamp(at),
    }


def run_row(
    run_id: str,
    *,
    action: str,
    status: str,
    blueprint: str | None,
    entity: str | None,
    properties: dict[str, Any],
    secrets: str | None,
    origin: str,
    created_by: str | None,
    approval: dict[str, Any] | None,
    now: datetime,
    status_label: str | None = None,
) -> dict[str, Any]:
    """A new run's row for :func:`kiosk.actions.runs.store.insert_runs`. A run created already
    finished (``status`` SUCCESS / FAILURE: an automation whose request could not be built) ends
    now; ``status_label`` is clipped to the column's length."""
    return {
        "id": run_id,
        "action": action,
        "status": status,
        "status_label": clip(status_label, MAX_LABEL) if status_label is not None else None,
        "blueprint": blueprint,
        "entity": entity,
        "properties": properties,
        "secrets": secrets,
        "links": [],
        "summary": None,
        "external_run_id": None,
        "origin": origin,
        "created_by": created_by,
        "approval": approval,
        "pipeline_run_name": pipeline_run_name(run_id),
        "created_at": now,
        "updated_at": now,
        "ended_at": now if status in FINISHED else None,
    }
