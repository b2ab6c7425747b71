"""Action runs: starting them, approvals, Port's reporting API, and finishing them from outside.

A run is stored together with its delivery, in one transaction (``create_delivery`` inside the
same ``db.begin()``): either the run exists and its webhook will be sent, or neither happened.
So a crash between "run recorded" and "webhook queued" cannot leave a run that waits forever
for a pipeline nobody triggered. A run that needs approval gets its delivery when approved.

Everything a run's body needs is checked and rendered *before* the transaction opens (inputs,
entities, jq templates), so a refused run leaves nothing behind.

Statuses: ``WAITING_FOR_APPROVAL`` → ``IN_PROGRESS`` → ``SUCCESS`` | ``FAILURE``, or
``WAITING_FOR_APPROVAL`` → ``DECLINED``. The last three are final: a finished run is never
reopened or changed (409). Status changes are compare-and-set updates (``WHERE status = …``), so
two reporters racing (the pipeline's PATCH and a run-state event) cannot both finish a run.

Secret inputs: clear only in memory; sealed in ``action_runs.secrets`` (see
:mod:`kiosk.actions.secrets`) until the run finishes, then dropped; sealed in the stored delivery
body too (``deliveries.body``, bound to the delivery id), which only the delivery worker opens, in
memory, to send it — the pipeline needs them in clear on the wire, nowhere else. ``"****"`` in every
answer; registered with the log redaction the moment they are read.

Starting a run twice: a caller that may repeat itself after a crash (a watch's ``runAction``
reaction, retried with its event) passes an ``idempotency_key``. The run id is derived from it
(:func:`run_id_for_key`) and inserted with "on conflict do nothing": the second start finds the
first's run and returns it, with no second run and no second delivery, on SQLite and PostgreSQL,
however the two starts interleave (the primary key decides).

Synchronized WEBHOOK actions (``synchronized: true``) take the receiver's HTTP answer as the
run's result: the delivery worker finishes the run (:func:`succeed_run_for_delivery`) when it is
delivered, :func:`fail_run_for_delivery` when it dies. Other runs stay IN_PROGRESS after their
delivery: the pipeline reports back.

Who may report (PATCH, logs) is decided before these methods run: the run's own pipeline, with
its report token (:mod:`kiosk.actions.report_tokens`), or an admin (``kiosk.web.auth``). The
``actor`` they are given is the admin's client id, or None for the pipeline.

Functions for other parts of kiosk (the delivery worker, the Azure run-state listener, a
periodic sweep) are at the bottom: :func:`finish_run`, :func:`finish_run_from_pipeline`,
:func:`fail_run_for_delivery`, :func:`expire_stale_runs`.

Run changes can be watched (run automations do): a :class:`RunListener` is told, inside the
transaction that made it, of every run created and every run update — a report (PATCH), a log
that finishes the run, an approval or decline, a finish from outside, an expiry. Logs that do not
finish the run are not updates (as in Port). The listener says first whether it watches runs of
that action started from that origin, so unwatched runs cost one small query.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import secrets
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from types import SimpleNamespace
from typing import Any, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from kiosk.actions.inputs import MASK, ValidatedInputs
from kiosk.actions.invocation import OutboundRequest, check_azure_org, render_request
from kiosk.actions.model import Action
from kiosk.actions.payload import RunContext, default_payload, jq_input
from kiosk.actions.secrets import SecretBox, mask_text
from kiosk.actions.service import Actions, iso
from kiosk.catalog.identifiers import is_entity_identifier, is_schema_identifier
from kiosk.catalog.service import Catalog, decode_cursor, encode_cursor
from kiosk.catalog.validation import is_url
from kiosk.delivery.outbox import BodySealer, create_delivery
from kiosk.errors import BadRequest, Conflict, NotFound, ValidationFailed
from kiosk.logs import register_secret
from kiosk.store.engine import Database
from kiosk.store.tables import action_run_logs as logs_table
from kiosk.store.tables import action_runs as runs_table
from kiosk.store.tables import actions as actions_table
from kiosk.store.tables import deliveries as deliveries_table
from kiosk.store.tables import entities as ent_table

__all__ = [
    "ACTIVE",
    "FINISHED",
    "RunChange",
    "RunListener",
    "Runs",
    "expire_stale_runs",
    "fail_run_for_delivery",
    "finish_run",
    "finish_run_from_pipeline",
    "insert_runs",
    "pipeline_run_name",
    "queue_delivery",
    "run_id_for_key",
    "run_row",
    "succeed_run_for_delivery",
    "trigger_of",
]

log = logging.getLogger("kiosk.actions")

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

DEFAULT_RUNS_PAGE = 100
MAX_RUNS_PAGE = 1000
DEFAULT_LOGS_PAGE = 1000
MAX_LOGS_PAGE = 10_000
MAX_LABEL = 1000
MAX_EXTERNAL_ID = 500
MAX_TEXT = 100_000
MAX_LINKS = 50
RUN_BODY_KEYS = frozenset({"entity", "properties"})
PATCH_KEYS = frozenset({"status", "statusLabel", "link", "summary", "externalRunId"})
LOG_KEYS = frozenset({"message", "terminationStatus", "statusLabel"})
ORIGINS = frozenset({"UI", "API", "AUTOMATION"})


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


def _now() -> datetime:
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


def _is_run_id(value: str) -> bool:
    return value.startswith("r_") and 2 < len(value) <= 40 and all(c in "0123456789abcdef" for c in value[2:])


def _run_not_found(run_id: str) -> NotFound:
    return NotFound(f"action run {run_id!r} does not exist", code="run_not_found")


def _invalid(field: str, message: str, code: str = "invalid_request") -> ValidationFailed:
    return ValidationFailed(message, code=code, details={"field": field})


def _finished_conflict(run_id: str, status: str) -> Conflict:
    return Conflict(
        f"action run {run_id!r} already finished ({status}); a finished run cannot be changed",
        code="run_exhausted",
        details={"status": status},
    )


def _waiting_conflict(run_id: str) -> Conflict:
    return Conflict(
        f"action run {run_id!r} is waiting for approval; an admin must approve or decline it first",
        code="run_waiting_for_approval",
        details={"status": WAITING},
    )


@contextmanager
def _transaction(conn_or_db: Connection | Database) -> Iterator[Connection]:
    """The caller's transaction when given a connection, else a new one."""
    if isinstance(conn_or_db, Database):
        with conn_or_db.begin() as conn:
            yield conn
    else:
        yield conn_or_db


@contextmanager
def _watched_transaction(
    conn_or_db: Connection | Database, listener: RunListener | None
) -> Iterator[tuple[Connection, list[RunChange]]]:
    """:func:`_transaction`, plus a list the body appends its run changes to: they are handed to
    ``listener`` before the transaction ends, and announced (``committed``) after it commits.

    In the caller's transaction (given a connection) kiosk cannot know when it commits, so nothing
    is announced; the delivery worker then finds the queued work at its next poll.
    """
    changes: list[RunChange] = []
    with _transaction(conn_or_db) as conn:
        yield conn, changes
        announced = listener is not None and bool(changes) and listener.runs_changed(conn, changes)
    if announced and listener is not None and isinstance(conn_or_db, Database):
        listener.committed()


def _note_run_change(
    conn: Connection,
    listener: RunListener | None,
    changes: list[RunChange],
    *,
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
    titles = _titles(conn, {action})
    changes.append(
        RunChange(
            action=action,
            run_id=run_id,
            origin=origin,
            kind=kind,
            before=_render_run(before, titles) if before is not None else None,
            after=_render_run(after, titles),
            actor=actor,
        )
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------------- run bodies


@dataclass(frozen=True)
class RunRequest:
    """``POST /v1/actions/{id}/runs``: the entity (DAY-2 / DELETE) and the inputs."""

    entity: str | None
    properties: Any


def parse_run_request(raw: Any) -> RunRequest:
    if not isinstance(raw, dict):
        raise _invalid("body", "the run request must be a JSON object {entity?, properties}")
    unknown = sorted(set(raw) - RUN_BODY_KEYS)
    if unknown:
        raise _invalid(unknown[0], f"{unknown[0]}: unknown field (a run takes 'entity' and 'properties')")
    entity = raw.get("entity")
    if isinstance(entity, dict) and "identifier" in entity:
        entity = entity["identifier"]  # Port's UI sends the entity object
    if entity is not None and not isinstance(entity, str):
        raise _invalid("entity", "entity must be the identifier of an entity (a string)")
    return RunRequest(entity=entity, properties=raw.get("properties"))


def _reject_unknown(raw: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise _invalid(unknown[0], f"{unknown[0]}: unknown field ({what} takes {', '.join(sorted(allowed))})")


def _optional_text(raw: Mapping[str, Any], key: str, limit: int) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(key, f"{key} must be a string")
    if len(value) > limit:
        raise _invalid(key, f"{key} must be at most {limit} characters")
    return value


def _status(raw: Mapping[str, Any], key: str, allowed: Sequence[str]) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if value not in allowed:
        raise _invalid(key, f"{key} must be one of {', '.join(allowed)}")
    return str(value)


def _links(raw: Mapping[str, Any]) -> list[str] | None:
    value = raw.get("link")
    if value is None:
        return None
    links = [value] if isinstance(value, str) else value
    if not isinstance(links, list) or not all(isinstance(v, str) for v in links):
        raise _invalid("link", "link must be a URL or a list of URLs")
    if len(links) > MAX_LINKS:
        raise _invalid("link", f"link may hold at most {MAX_LINKS} URLs")
    for i, url in enumerate(links):
        if not is_url(url) or len(url) > 2000:
            raise _invalid("link", f"link[{i}] must be an http:// or https:// URL")
    return list(links)


# --------------------------------------------------------------------------------- rendering


def _render_run(row: Any, titles: Mapping[str, str | None]) -> dict[str, Any]:
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
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
        "endedAt": iso(row.ended_at),
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


def _render_log(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "runId": row.run_id,
        "message": row.message,
        "terminationStatus": row.termination_status,
        "statusLabel": row.status_label,
        "createdAt": iso(row.created_at),
    }


def _titles(conn: Connection, identifiers: set[str]) -> dict[str, str | None]:
    if not identifiers:
        return {}
    rows = conn.execute(
        sa.select(actions_table.c.identifier, actions_table.c.definition).where(
            actions_table.c.identifier.in_(sorted(identifiers))
        )
    )
    return {r.identifier: r.definition.get("title") for r in rows}


def _encode_run_cursor(created_at: datetime, run_id: str) -> str:
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    raw = f"r{created_at.astimezone(UTC).isoformat()}|{run_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_run_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, run_id = raw[1:].partition("|")
        if not raw.startswith("r") or not _is_run_id(run_id):
            raise ValueError(raw)
        return datetime.fromisoformat(stamp).astimezone(UTC), run_id
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the 'from' cursor is not one this server gave out", code="invalid_cursor") from None


# --------------------------------------------------------------------------------- the service


class Runs:
    """Action runs over one :class:`Database`: start, approve/decline, report, read."""

    def __init__(
        self,
        db: Database,
        catalog: Catalog,
        actions: Actions,
        box: SecretBox,
        *,
        notify: Callable[[], None] | None = None,
        listener: RunListener | None = None,
    ) -> None:
        """``notify`` is called after a transaction that queued a delivery commits (the delivery
        worker's ``notify``, so it sends at once instead of at its next poll). ``listener`` hears
        of every run change (the automations; see :class:`RunListener`)."""
        self.db = db
        self.catalog = catalog
        self.actions = actions
        self.box = box
        self.notify = notify
        self.listener = listener

    def _queued(self) -> None:
        if self.notify is not None:
            self.notify()

    # ----------------------------------------------------------------------------- starting

    def start_run(
        self,
        identifier: str,
        raw: Any,
        *,
        actor: str | None = None,
        origin: str = "API",
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Validate, then store the run and (unless it needs approval) its delivery, atomically.

        ``idempotency_key``: a start that may be repeated (after a crash between this commit and
        the caller's own record of it) names itself; the run id is derived from the key, and a
        start whose run already exists changes nothing and returns that run as it is now — no
        second run, no second delivery. The primary key decides, so two starts racing in
        different processes end the same way. The key must not be reused for a different action
        (409).
        """
        if origin not in ORIGINS:
            raise ValueError(f"origin must be one of {sorted(ORIGINS)}")
        if idempotency_key is not None:
            existing = self._existing_run(run_id_for_key(idempotency_key), identifier)
            if existing is not None:  # the common repeat, answered without validating anything again
                return existing
        request = parse_run_request(raw)
        # One transaction for the reads and the writes: on PostgreSQL every pool checkout costs a
        # liveness round trip and every transaction a BEGIN and a COMMIT/ROLLBACK (bench.action_latency,
        # POST to the delivery's arrival: 10.9-11.3 ms -> 9.2-9.5 ms median). On SQLite the write lock
        # is then held for the ~1 ms of validation, which delays another writer by as much.
        with _watched_transaction(self.db, self.listener) as (conn, changes):
            action = self.actions.load(conn, identifier)
            if action.is_automation:
                raise ValidationFailed(
                    f"action {identifier!r} is an automation: kiosk runs it when its trigger's event happens, "
                    "not by hand",
                    code="action_is_automation",
                    details={"action": identifier},
                )
            inputs = action.inputs.validate(request.properties)
            for value in inputs.secrets.values():
                register_secret(value)
            entity = self._run_entity(conn, action, request.entity)
            check_azure_org(action.invocation, self.actions.azure_orgs)
            expanded = self._expand_entity_inputs(conn, inputs)

            run_id = new_run_id() if idempotency_key is None else run_id_for_key(idempotency_key)
            now = _now()
            trigger = trigger_of(actor, origin, now)
            needs_approval = action.requires_approval
            outbound: OutboundRequest | None = None
            if not needs_approval:
                ctx = RunContext(run_id, action.document, entity, expanded, trigger)
                outbound = self._outbound(action, ctx, inputs.secrets)
            row = run_row(
                run_id,
                action=action.identifier,
                status=WAITING if needs_approval else IN_PROGRESS,
                blueprint=action.blueprint,
                entity=entity["identifier"] if entity is not None else None,
                properties=inputs.masked(),
                secrets=self.box.seal(run_id, inputs.secrets) if inputs.secrets else None,
                origin=origin,
                created_by=actor,
                approval={"required": True} if needs_approval else None,
                now=now,
            )
            inserted = _insert_run_once(conn, row) if idempotency_key is not None else _insert_run(conn, row)
            if inserted:
                if outbound is not None:
                    queue_delivery(conn, run_id, outbound, box=self.box, secret_values=inputs.secrets.values())
                _note_run_change(
                    conn,
                    self.listener,
                    changes,
                    run_id=run_id,
                    action=action.identifier,
                    origin=origin,
                    before=None,
                    actor=actor,
                )
        if not inserted:
            # Another start with this key committed between the check above and the insert: its
            # run (and delivery) stand, this one left nothing behind.
            log.info("action run already started with this idempotency key", extra={"run": run_id})
            again = self._existing_run(run_id, identifier)
            if again is None:  # the insert conflicted on this id, and runs are never deleted
                raise _run_not_found(run_id)
            return again
        if outbound is not None:
            self._queued()
        log.info("action run started", extra={"run": run_id, "action": action.identifier})
        # Answered from the row just written, not read back: two queries less on the hot path
        # (measured ~2 ms on SQLite, ~6 ms on PostgreSQL before the 201).
        return _render_run(SimpleNamespace(**row), {action.identifier: action.document.get("title")})

    def _existing_run(self, run_id: str, identifier: str) -> dict[str, Any] | None:
        """The run ``run_id`` if it exists (a start repeated with its idempotency key); 409 if it
        is a run of another action (the key was reused for something else)."""
        with self.db.connect() as conn:
            row = conn.execute(sa.select(runs_table).where(runs_table.c.id == run_id)).first()
            if row is None:
                return None
            if row.action != identifier:
                raise Conflict(
                    f"the idempotency key already started a run of action {row.action!r}, not {identifier!r}",
                    code="idempotency_key_reused",
                    details={"run": run_id, "action": row.action},
                )
            return _render_run(row, _titles(conn, {row.action}))

    def _run_entity(self, conn: Connection, action: Action, given: str | None) -> dict[str, Any] | None:
        """The entity a run acts on: none for CREATE, an existing one of the blueprint otherwise."""
        if action.operation == "CREATE":
            if given is not None:
                raise _invalid(
                    "entity",
                    f"entity: action {action.identifier!r} is a CREATE action; it takes no entity",
                    code="entity_not_allowed",
                )
            return None
        if given is None:
            raise _invalid(
                "entity",
                f"entity is required: action {action.identifier!r} ({action.operation}) runs on an existing "
                f"entity of blueprint {action.blueprint!r}",
                code="entity_required",
            )
        return self._entity(conn, action.blueprint, given, "entity")

    def _entity(self, conn: Connection, blueprint: str, identifier: str, field: str) -> dict[str, Any]:
        """The entity as the catalog renders it, or a 422 naming ``field`` (and where it lives)."""
        if not is_entity_identifier(identifier):
            raise _invalid(field, f"{field} must be an entity identifier", code="entity_not_found")
        try:
            return self.catalog.get_entity(blueprint, identifier, conn=conn)
        except NotFound:
            pass
        elsewhere = list(
            conn.execute(
                sa.select(ent_table.c.blueprint)
                .where(ent_table.c.identifier == identifier)
                .order_by(ent_table.c.blueprint)
                .limit(3)
            ).scalars()
        )
        hint = f" (there is one of blueprint {', '.join(map(repr, elsewhere))})" if elsewhere else ""
        raise _invalid(
            field,
            f"{field}: entity {identifier!r} of blueprint {blueprint!r} does not exist{hint}",
            code="entity_not_found",
        )

    def _expand_entity_inputs(self, conn: Connection, inputs: ValidatedInputs) -> dict[str, Any]:
        """The inputs as a run's body carries them: entity inputs become the entity documents."""
        docs: dict[tuple[str, str], dict[str, Any]] = {}
        for ref in inputs.entity_refs:
            key = (ref.blueprint, ref.identifier)
            if key not in docs:
                docs[key] = self._entity(conn, ref.blueprint, ref.identifier, f"properties.{ref.input}")
        out = dict(inputs.values)
        for name, value in inputs.values.items():
            refs = [r for r in inputs.entity_refs if r.input == name]
            if not refs:
                continue
            bp = refs[0].blueprint
            if isinstance(value, list):
                out[name] = [docs.get((bp, v), v) if isinstance(v, str) else v for v in value]
            elif isinstance(value, str):
                out[name] = docs[(bp, value)]
        return out

    def _outbound(self, action: Action, ctx: RunContext, secret_values: Mapping[str, str]) -> OutboundRequest:
        """Render the body (Port's payload or the action's template) and build the request.

        The body carries secret inputs in clear (the pipeline needs them); :func:`queue_delivery`
        stores it sealed.
        """
        return render_request(
            action.invocation,
            jq_input(ctx),
            lambda: default_payload(ctx),
            orgs=self.actions.azure_orgs,
            sign_webhooks=self.actions.sign_webhooks,
            secrets=secret_values,
        )

    # ----------------------------------------------------------------------------- approvals

    def approve(self, run_id: str, *, actor: str | None) -> dict[str, Any]:
        """Approve a waiting run: it becomes IN_PROGRESS and its delivery is queued, atomically."""
        row = self._row(run_id)
        if row.status != WAITING:
            raise self._not_waiting(row)
        with self.db.connect() as conn:
            try:
                action = self.actions.load(conn, row.action)
            except NotFound:
                raise Conflict(
                    f"action {row.action!r} no longer exists; decline the run instead",
                    code="action_not_found",
                ) from None
            if action.is_automation:
                raise Conflict(
                    f"action {row.action!r} has become an automation since the run was started; "
                    "decline the run instead",
                    code="action_is_automation",
                )
            sealed = self._open(row)
            inputs = action.inputs.restore(row.properties, sealed)
            entity = self._entity(conn, action.blueprint, row.entity, "entity") if row.entity else None
            check_azure_org(action.invocation, self.actions.azure_orgs)
            ctx = RunContext(
                row.id,
                action.document,
                entity,
                self._expand_entity_inputs(conn, inputs),
                trigger_of(row.created_by, row.origin, row.created_at),
            )
        outbound = self._outbound(action, ctx, inputs.secrets)
        now = _now()
        approval = {"required": True, "decision": "APPROVED", "decidedBy": actor, "decidedAt": iso(now)}
        with _watched_transaction(self.db, self.listener) as (conn, changes):
            changed = conn.execute(
                sa.update(runs_table)
                .where(runs_table.c.id == row.id, runs_table.c.status == WAITING)
                .values(status=IN_PROGRESS, approval=approval, updated_at=now)
            ).rowcount
            if not changed:
                raise self._not_waiting(self._row(row.id))
            queue_delivery(conn, row.id, outbound, box=self.box, secret_values=inputs.secrets.values())
            self._note(conn, changes, row, actor)
        self._queued()
        return self.get_run(row.id)

    def decline(self, run_id: str, raw: Any, *, actor: str | None) -> dict[str, Any]:
        """Decline a waiting run: DECLINED, nothing sent, its sealed secrets dropped."""
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise _invalid("body", "the decline request must be a JSON object {reason?}")
        _reject_unknown(raw, frozenset({"reason"}), "a decline")
        reason = _optional_text(raw, "reason", MAX_LABEL - 20)
        row = self._row(run_id)
        if row.status != WAITING:
            raise self._not_waiting(row)
        now = _now()
        approval = {
            "required": True,
            "decision": DECLINED,
            "decidedBy": actor,
            "decidedAt": iso(now),
            "reason": reason,
        }
        with _watched_transaction(self.db, self.listener) as (conn, changes):
            changed = conn.execute(
                sa.update(runs_table)
                .where(runs_table.c.id == row.id, runs_table.c.status == WAITING)
                .values(
                    status=DECLINED,
                    status_label=f"declined: {reason}" if reason else "declined",
                    approval=approval,
                    secrets=None,
                    updated_at=now,
                    ended_at=now,
                )
            ).rowcount
            if not changed:
                raise self._not_waiting(self._row(row.id))
            self._note(conn, changes, row, actor)
        return self.get_run(row.id)

    def _note(self, conn: Connection, changes: list[RunChange], before: Any, actor: str | None) -> None:
        """Note the update just made to the run whose earlier row is ``before``."""
        _note_run_change(
            conn,
            self.listener,
            changes,
            run_id=before.id,
            action=before.action,
            origin=before.origin,
            before=before,
            actor=actor,
        )

    @staticmethod
    def _not_waiting(row: Any) -> Conflict:
        if row.status in FINISHED:
            return _finished_conflict(row.id, row.status)
        return Conflict(
            f"action run {row.id!r} is {row.status}, not waiting for approval", code="run_not_waiting_for_approval"
        )

    def _open(self, row: Any) -> dict[str, str]:
        if not row.secrets:
            return {}
        try:
            return self.box.open(row.id, row.secrets)
        except ValueError as exc:
            raise Conflict(
                f"action run {row.id!r}: its secret inputs cannot be opened ({exc}); decline it and run again",
                code="run_secrets_unreadable",
            ) from None

    # ----------------------------------------------------------------------------- reporting

    def report(self, run_id: str, raw: Any, *, actor: str | None = None) -> dict[str, Any]:
        """Port's ``PATCH /v1/actions/runs/{id}``: status, statusLabel, link, summary, externalRunId."""
        if not isinstance(raw, dict):
            raise _invalid("body", "the run update must be a JSON object")
        _reject_unknown(raw, PATCH_KEYS, "a run update")
        if not any(raw.get(k) is not None for k in PATCH_KEYS):
            raise _invalid("body", f"the run update changes nothing (give one of {', '.join(sorted(PATCH_KEYS))})")
        status = _status(raw, "status", REPORTABLE)
        label = _optional_text(raw, "statusLabel", MAX_LABEL)
        summary = _optional_text(raw, "summary", MAX_TEXT)
        external = _optional_text(raw, "externalRunId", MAX_EXTERNAL_ID)
        links = _links(raw)
        with _watched_transaction(self.db, self.listener) as (conn, changes):
            row = self._locked_row(conn, run_id)
            secret_values = self._open_quietly(row)
            now = _now()
            values: dict[str, Any] = {"updated_at": now}
            if status is not None:
                values["status"] = status
                if status in FINISHED:
                    values.update(ended_at=now, secrets=None)
            if label is not None:
                values["status_label"] = mask_text(label, secret_values, MASK)
            if summary is not None:
                values["summary"] = mask_text(summary, secret_values, MASK)
            if external is not None:
                values["external_run_id"] = external
            if links is not None:
                values["links"] = links
            conn.execute(sa.update(runs_table).where(runs_table.c.id == row.id).values(**values))
            self._note(conn, changes, row, actor)
        return self.get_run(run_id)

    def add_log(self, run_id: str, raw: Any, *, actor: str | None = None) -> dict[str, Any]:
        """Port's ``POST /v1/actions/runs/{id}/logs``; a ``terminationStatus`` finishes the run."""
        if not isinstance(raw, dict):
            raise _invalid("body", "the log must be a JSON object {message, terminationStatus?, statusLabel?}")
        _reject_unknown(raw, LOG_KEYS, "a run log")
        message = raw.get("message")
        if not isinstance(message, str):
            raise _invalid("message", "message is required and must be a string")
        if len(message) > MAX_TEXT:
            raise _invalid("message", f"message must be at most {MAX_TEXT} characters")
        termination = _status(raw, "terminationStatus", (SUCCESS, FAILURE))
        label = _optional_text(raw, "statusLabel", MAX_LABEL)
        with _watched_transaction(self.db, self.listener) as (conn, changes):
            row = self._locked_row(conn, run_id)
            secret_values = self._open_quietly(row)
            message = mask_text(message, secret_values, MASK)
            label = mask_text(label, secret_values, MASK) if label is not None else None
            now = _now()
            log_id = conn.execute(
                sa.insert(logs_table)
                .values(
                    run_id=row.id,
                    message=message,
                    termination_status=termination,
                    status_label=label,
                    created_at=now,
                )
                .returning(logs_table.c.id)
            ).scalar_one()
            values: dict[str, Any] = {"updated_at": now}
            if termination is not None:
                values.update(status=termination, ended_at=now, secrets=None)
            if label is not None:
                values["status_label"] = label
            conn.execute(sa.update(runs_table).where(runs_table.c.id == row.id).values(**values))
            if termination is not None:  # a log alone is no run update (as in Port); finishing one is
                self._note(conn, changes, row, actor)
            stored = conn.execute(sa.select(logs_table).where(logs_table.c.id == log_id)).one()
        return _render_log(stored)

    def _locked_row(self, conn: Connection, run_id: str) -> Any:
        """The run, locked for this transaction; 404 if unknown, 409 unless it takes reports."""
        if not _is_run_id(run_id):
            raise _run_not_found(run_id)
        row = conn.execute(sa.select(runs_table).where(runs_table.c.id == run_id).with_for_update()).first()
        if row is None:
            raise _run_not_found(run_id)
        if row.status in FINISHED:
            raise _finished_conflict(run_id, row.status)
        if row.status == WAITING:
            raise _waiting_conflict(run_id)
        return row

    def _open_quietly(self, row: Any) -> dict[str, str]:
        """The run's secrets to mask reports with; none if they cannot be opened (logged)."""
        if not row.secrets:
            return {}
        try:
            return self.box.open(row.id, row.secrets)
        except ValueError as exc:
            log.warning("cannot open a run's secret inputs", extra={"run": row.id, "reason": str(exc)})
            return {}

    # ----------------------------------------------------------------------------- reads

    def _row(self, run_id: str) -> Any:
        if not _is_run_id(run_id):
            raise _run_not_found(run_id)
        with self.db.connect() as conn:
            row = conn.execute(sa.select(runs_table).where(runs_table.c.id == run_id)).first()
        if row is None:
            raise _run_not_found(run_id)
        return row

    def get_run(self, run_id: str) -> dict[str, Any]:
        row = self._row(run_id)
        with self.db.connect() as conn:
            return _render_run(row, _titles(conn, {row.action}))

    def list_runs(
        self,
        *,
        action: str | None = None,
        blueprint: str | None = None,
        entity: str | None = None,
        status: str | None = None,
        active: bool | None = None,
        limit: int = DEFAULT_RUNS_PAGE,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Runs newest first, filtered (all filters AND), a page at a time."""
        if not 1 <= limit <= MAX_RUNS_PAGE:
            raise BadRequest(f"limit must be between 1 and {MAX_RUNS_PAGE}", code="invalid_limit")
        where: list[sa.ColumnElement[bool]] = []
        if action is not None:
            if not is_schema_identifier(action):
                raise _invalid("action", "action must be an action identifier", code="invalid_filter")
            where.append(runs_table.c.action == action)
        if blueprint is not None:
            if not is_schema_identifier(blueprint):
                raise _invalid("blueprint", "blueprint must be a blueprint identifier", code="invalid_filter")
            where.append(runs_table.c.blueprint == blueprint)
        if entity is not None:
            if not is_entity_identifier(entity):
                raise _invalid("entity", "entity must be an entity identifier", code="invalid_filter")
            where.append(runs_table.c.entity == entity)
        if status is not None:
            if status not in STATUSES:
                raise _invalid("status", f"status must be one of {', '.join(STATUSES)}", code="invalid_filter")
            where.append(runs_table.c.status == status)
        if active is not None:
            where.append(runs_table.c.status.in_(ACTIVE if active else FINISHED))
        if cursor:
            after, after_id = _decode_run_cursor(cursor)
            where.append(
                sa.or_(
                    runs_table.c.created_at < after,
                    sa.and_(runs_table.c.created_at == after, runs_table.c.id < after_id),
                )
            )
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(runs_table)
                .where(*where)
                .order_by(runs_table.c.created_at.desc(), runs_table.c.id.desc())
                .limit(limit + 1)
            ).all()
            page = rows[:limit]
            titles = _titles(conn, {r.action for r in page})
        nxt = _encode_run_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
        return [_render_run(r, titles) for r in page], nxt

    def list_logs(
        self, run_id: str, *, limit: int = DEFAULT_LOGS_PAGE, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A run's logs, oldest first, a page at a time."""
        if not 1 <= limit <= MAX_LOGS_PAGE:
            raise BadRequest(f"limit must be between 1 and {MAX_LOGS_PAGE}", code="invalid_limit")
        after = decode_cursor(cursor)
        self._row(run_id)
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(logs_table)
                .where(logs_table.c.run_id == run_id, logs_table.c.id > after)
                .order_by(logs_table.c.id)
                .limit(limit + 1)
            ).all()
        page = rows[:limit]
        nxt = encode_cursor(page[-1].id) if len(rows) > limit else None
        return [_render_log(r) for r in page], nxt


def trigger_of(actor: str | None, origin: str, at: datetime) -> dict[str, Any]:
    """Port's ``trigger``: who (kiosk knows API clients, not people), from where, when."""
    return {
        "by": {"orgId": "kiosk", "userId": actor, "user": {"id": actor, "email": None}},
        "origin": origin,
        "at": iso(at),
    }


# --------------------------------------------------------------------------------- from outside


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
    """A new run's row for :func:`insert_runs`. A run created already finished (``status``
    SUCCESS / FAILURE: an automation whose request could not be built) ends now;
    ``status_label`` is clipped to the column's length."""
    return {
        "id": run_id,
        "action": action,
        "status": status,
        "status_label": _clip(status_label, MAX_LABEL) if status_label is not None else None,
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


def _insert_run(conn: Connection, row: dict[str, Any]) -> bool:
    """Store one new run (its id is fresh and random); always True."""
    insert_runs(conn, [row])
    return True


def _insert_run_once(conn: Connection, row: dict[str, Any]) -> bool:
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
    """Store new runs (rows from :func:`run_row`) with one statement, in the caller's transaction.

    Bound parameters rather than ``.values()`` literals: the statement is compiled once and
    cached, which is what keeps a bulk write that fires an automation per entity affordable.
    """
    if rows:
        conn.execute(sa.insert(runs_table), list(rows))


def add_run_log(conn: Connection, run_id: str, message: str, *, termination_status: str | None, at: datetime) -> None:
    """A log line on a run, written by kiosk itself (in the caller's transaction)."""
    conn.execute(
        sa.insert(logs_table).values(
            run_id=run_id, message=message, termination_status=termination_status, status_label=None, created_at=at
        )
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

    return create_delivery(
        conn,
        source=source,
        run_id=run_id,
        method=outbound.method,
        url=outbound.url,
        headers=outbound.headers,
        body=outbound.body,
        signing=outbound.signing,
        synchronized=outbound.synchronized,
        seal=seal,
    )


def _seal_body(box: SecretBox, delivery_id: str, body: bytes, *, values: tuple[str, ...]) -> bytes:
    return box.seal_body(delivery_id, body, values)


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
    with _watched_transaction(conn_or_db, listener) as (conn, changes):
        row = conn.execute(sa.select(runs_table).where(runs_table.c.id == run_id).with_for_update()).first()
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
    now = _now()
    values: dict[str, Any] = {"status": status, "updated_at": now, "ended_at": now, "secrets": None}
    if label is not None:
        values["status_label"] = _clip(label, MAX_LABEL)
    links = list(row.links or [])
    if link and link not in links:
        values["links"] = [*links, link]
    changed = conn.execute(
        sa.update(runs_table).where(runs_table.c.id == row.id, runs_table.c.status == IN_PROGRESS).values(**values)
    ).rowcount
    if changed and log_message:
        conn.execute(
            sa.insert(logs_table).values(
                run_id=row.id,
                message=log_message,
                termination_status=status,
                status_label=values.get("status_label"),
                created_at=now,
            )
        )
    if changed:
        _note_run_change(
            conn, listener, changes, run_id=row.id, action=row.action, origin=row.origin, before=row, actor=None
        )
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
    with _watched_transaction(conn_or_db, listener) as (conn, changes):
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
    with _watched_transaction(conn_or_db, listener) as (conn, changes):
        row = conn.execute(sa.select(runs_table).where(runs_table.c.id == run_id).with_for_update()).first()
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
    cutoff = _now() - older_than
    label = f"no report from the pipeline within {describe_duration(older_than)}"
    with _watched_transaction(db, listener) as (conn, changes):
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
