"""The run service: starting, approving, declining and reading runs; reports through ``reporting``.

Everything a run's body needs is checked and rendered *before* the transaction opens (inputs,
entities, jq templates), so a refused run leaves nothing behind. A run that needs approval gets
its delivery when approved.

Starting a run twice: a caller that may repeat itself after a crash (a watch's ``runAction``
reaction, retried with its event) passes an ``idempotency_key``. The run id is derived from it
(:func:`~kiosk.actions.runs.states.run_id_for_key`) and inserted with "on conflict do nothing":
the second start finds the first's run and returns it, with no second run and no second delivery,
on SQLite and PostgreSQL, however the two starts interleave (the primary key decides).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from kiosk.actions.invocation import OutboundRequest, check_azure_org
from kiosk.actions.payload import RunContext
from kiosk.actions.runs import reporting
from kiosk.actions.runs.bodies import expand_entity_inputs, input_entity, outbound_request, run_entity
from kiosk.actions.runs.listeners import RunListener, note_run_change, note_run_update, watched_transaction
from kiosk.actions.runs.requests import parse_decline, parse_log, parse_report, parse_run_request
from kiosk.actions.runs.states import (
    ACTIVE,
    DECLINED,
    FINISHED,
    IN_PROGRESS,
    ORIGINS,
    STATUSES,
    WAITING,
    finished_conflict,
    invalid,
    new_run_id,
    run_id_for_key,
    run_not_found,
    run_row,
    trigger_of,
    utc_now,
)
from kiosk.actions.runs.store import insert_run, insert_run_once, queue_delivery
from kiosk.actions.runs.views import (
    DEFAULT_LOGS_PAGE,
    DEFAULT_RUNS_PAGE,
    MAX_LOGS_PAGE,
    MAX_RUNS_PAGE,
    decode_run_cursor,
    encode_run_cursor,
    read_run_row,
    render_log,
    render_run,
    titles,
)
from kiosk.actions.secrets import SecretBox
from kiosk.actions.service import Actions
from kiosk.catalog.dates import iso_timestamp
from kiosk.catalog.identifiers import is_entity_identifier, is_schema_identifier
from kiosk.catalog.paging import check_limit, decode_cursor, page_after
from kiosk.catalog.service import Catalog
from kiosk.errors import Conflict, NotFound, ValidationFailed
from kiosk.logs import register_secret
from kiosk.store.engine import Database
from kiosk.store.tables import action_run_logs as logs_table
from kiosk.store.tables import action_runs as runs_table

log = logging.getLogger("kiosk.actions")


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
        with watched_transaction(self.db, self.listener) as (conn, changes):
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
            entity = run_entity(conn, self.catalog, action, request.entity)
            check_azure_org(action.invocation, self.actions.azure_orgs)
            expanded = expand_entity_inputs(conn, self.catalog, inputs)

            run_id = new_run_id() if idempotency_key is None else run_id_for_key(idempotency_key)
            now = utc_now()
            trigger = trigger_of(actor, origin, now)
            needs_approval = action.requires_approval
            outbound: OutboundRequest | None = None
            if not needs_approval:
                ctx = RunContext(run_id, action.document, entity, expanded, trigger)
                outbound = outbound_request(self.actions, action, ctx, inputs.secrets)
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
            inserted = insert_run_once(conn, row) if idempotency_key is not None else insert_run(conn, row)
            if inserted:
                if outbound is not None:
                    queue_delivery(conn, run_id, outbound, box=self.box, secret_values=inputs.secrets.values())
                note_run_change(
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
                raise run_not_found(run_id)
            return again
        if outbound is not None:
            self._queued()
        log.info("action run started", extra={"run": run_id, "action": action.identifier})
        # Answered from the row just written, not read back: two queries less on the hot path
        # (measured ~2 ms on SQLite, ~6 ms on PostgreSQL before the 201).
        return render_run(SimpleNamespace(**row), {action.identifier: action.document.get("title")})

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
            return render_run(row, titles(conn, {row.action}))

    # ----------------------------------------------------------------------------- approvals

    def approve(self, run_id: str, *, actor: str | None) -> dict[str, Any]:
        """Approve a waiting run: it becomes IN_PROGRESS and its delivery is queued, atomically."""
        row = read_run_row(self.db, run_id)
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
            entity = input_entity(conn, self.catalog, action.blueprint, row.entity, "entity") if row.entity else None
            check_azure_org(action.invocation, self.actions.azure_orgs)
            ctx = RunContext(
                row.id,
                action.document,
                entity,
                expand_entity_inputs(conn, self.catalog, inputs),
                trigger_of(row.created_by, row.origin, row.created_at),
            )
        outbound = outbound_request(self.actions, action, ctx, inputs.secrets)
        now = utc_now()
        approval = {"required": True, "decision": "APPROVED", "decidedBy": actor, "decidedAt": iso_timestamp(now)}
        with watched_transaction(self.db, self.listener) as (conn, changes):
            changed = conn.execute(
                sa.update(runs_table)
                .where(runs_table.c.id == row.id, runs_table.c.status == WAITING)
                .values(status=IN_PROGRESS, approval=approval, updated_at=now)
            ).rowcount
            if not changed:
                raise self._not_waiting(read_run_row(self.db, row.id))
            queue_delivery(conn, row.id, outbound, box=self.box, secret_values=inputs.secrets.values())
            note_run_update(conn, self.listener, changes, row, actor)
        self._queued()
        return self.get_run(row.id)

    def decline(self, run_id: str, raw: Any, *, actor: str | None) -> dict[str, Any]:
        """Decline a waiting run: DECLINED, nothing sent, its sealed secrets dropped."""
        reason = parse_decline(raw)
        row = read_run_row(self.db, run_id)
        if row.status != WAITING:
            raise self._not_waiting(row)
        now = utc_now()
        approval = {
            "required": True,
            "decision": DECLINED,
            "decidedBy": actor,
            "decidedAt": iso_timestamp(now),
            "reason": reason,
        }
        with watched_transaction(self.db, self.listener) as (conn, changes):
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
                raise self._not_waiting(read_run_row(self.db, row.id))
            note_run_update(conn, self.listener, changes, row, actor)
        return self.get_run(row.id)

    @staticmethod
    def _not_waiting(row: Any) -> Conflict:
        if row.status in FINISHED:
            return finished_conflict(row.id, row.status)
        return Conflict(
            f"action run {row.id!r} is {row.status}, not waiting for approval", code="run_not_waiting_for_approval"
        )

    def _open(self, row: Any) -> dict[str, str]:
        try:
            return reporting.open_secrets(self.box, row)
        except ValueError as exc:
            raise Conflict(
                f"action run {row.id!r}: its secret inputs cannot be opened ({exc}); decline it and run again",
                code="run_secrets_unreadable",
            ) from None

    # ----------------------------------------------------------------------------- reporting

    def report(self, run_id: str, raw: Any, *, actor: str | None = None) -> dict[str, Any]:
        """Port's ``PATCH /v1/actions/runs/{id}``: status, statusLabel, link, summary, externalRunId."""
        reporting.apply_report(self.db, self.box, self.listener, run_id, parse_report(raw), actor=actor)
        return self.get_run(run_id)

    def add_log(self, run_id: str, raw: Any, *, actor: str | None = None) -> dict[str, Any]:
        """Port's ``POST /v1/actions/runs/{id}/logs``; a ``terminationStatus`` finishes the run."""
        return reporting.apply_log(self.db, self.box, self.listener, run_id, parse_log(raw), actor=actor)

    # ----------------------------------------------------------------------------- reads

    def get_run(self, run_id: str) -> dict[str, Any]:
        row = read_run_row(self.db, run_id)
        with self.db.connect() as conn:
            return render_run(row, titles(conn, {row.action}))

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
        check_limit(limit, MAX_RUNS_PAGE)
        where: list[sa.ColumnElement[bool]] = []
        if action is not None:
            if not is_schema_identifier(action):
                raise invalid("action", "action must be an action identifier", code="invalid_filter")
            where.append(runs_table.c.action == action)
        if blueprint is not None:
            if not is_schema_identifier(blueprint):
                raise invalid("blueprint", "blueprint must be a blueprint identifier", code="invalid_filter")
            where.append(runs_table.c.blueprint == blueprint)
        if entity is not None:
            if not is_entity_identifier(entity):
                raise invalid("entity", "entity must be an entity identifier", code="invalid_filter")
            where.append(runs_table.c.entity == entity)
        if status is not None:
            if status not in STATUSES:
                raise invalid("status", f"status must be one of {', '.join(STATUSES)}", code="invalid_filter")
            where.append(runs_table.c.status == status)
        if active is not None:
            where.append(runs_table.c.status.in_(ACTIVE if active else FINISHED))
        if cursor:
            after, after_id = decode_run_cursor(cursor)
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
            named = titles(conn, {r.action for r in page})
        nxt = encode_run_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
        return [render_run(r, named) for r in page], nxt

    def list_logs(
        self, run_id: str, *, limit: int = DEFAULT_LOGS_PAGE, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A run's logs, oldest first, a page at a time."""
        check_limit(limit, MAX_LOGS_PAGE)
        after = decode_cursor(cursor)
        read_run_row(self.db, run_id)
        with self.db.connect() as conn:
            logs = sa.select(logs_table).where(logs_table.c.run_id == run_id)
            page, nxt = page_after(conn, logs, logs_table.c.id, after, limit)
        return [render_log(r) for r in page], nxt
