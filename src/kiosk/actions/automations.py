"""Automations: an action's invocation fired by catalog and run events instead of a person.

An automation is an action document whose ``trigger.type`` is ``automation`` (see
:mod:`kiosk.actions.model`). It listens to one event:

    entity  ENTITY_CREATED | ENTITY_UPDATED | ENTITY_DELETED | ANY_ENTITY_CHANGE on a blueprint,
            heard from every catalog write (:class:`Automations` is the catalog's
            :class:`~kiosk.catalog.changes.EntityListener`). An "update" that changes nothing but
            ``updatedAt`` / ``updatedBy`` (a re-applied kiosk.yaml) is no event.
    run     RUN_CREATED | RUN_UPDATED | ANY_RUN_CHANGE of an action's runs, heard from every run
            write (it is also the runs' :class:`~kiosk.actions.runs.listeners.RunListener`).

Firing. For every matching, enabled (``publish`` not false) automation whose condition holds,
kiosk stores an action run (origin ``AUTOMATION``, ``IN_PROGRESS``, no entity needed) and its
delivery *in the transaction of the change that caused it*: a committed change never loses its
automation, and a rolled-back one (a write refused by validation) never fired. After the commit
the delivery worker is woken (``notify``), so the webhook goes out at once.

Depth 1. Runs started by automations never fire run automations. So an automation watching its
own runs, or two automations watching each other's (A → B → A), stop after one step instead of
firing forever; saving an automation that watches an automation is refused for the same reason
(:meth:`kiosk.actions.service.Actions`). Nothing an automation does inside kiosk writes the
catalog, so entity events cannot chain either (a pipeline writing back through the API is a
new request, as in Port).

Never breaks the write that caused it: a condition that errors counts as false (logged); a
condition stopped by a jq limit (:mod:`kiosk.core.jq_engine`: time, memory), a body or header
template that fails or is stopped, or a request that cannot be built (its organisation was removed
from kiosk.yaml), records the automation's run as FAILURE with the reason in its label and logs,
and queues nothing (nothing retries it). Conditions run on kiosk's jq workers, one round trip per
automation per write (all its events at once).

What body templates and conditions see (jq input)::

    {
      "event":   {"type": "ENTITY_UPDATED", "context": {...}, "diff": {"before": ..., "after": ...}},
      "diff":    the same {"before", "after"} (a shortcut),
      "entity":  the entity (after; before when deleted) for entity events, null for run events,
      "action":  {"identifier", "title"} of the automation,
      "trigger": {"by": {...}, "origin": "AUTOMATION", "at": ...},
      "run":     {"id": the automation run's id,      (Port's ``.run.id``)
                  "reportToken": its report token}     (filled in at send time, see report_tokens)
    }

``before`` is null on create, ``after`` null on delete. For run events the run that changed is
``.diff.after`` (``.diff.before`` its previous state), as the API shows it (secret inputs
masked); ``.run`` stays the automation's own run, so ``.run.id`` means the same everywhere.

The default body (no ``invocationMethod.body``) is Port-shaped::

    {"action", "resourceType": "entity" | "run", "status": "TRIGGERED", "trigger",
     "event": {"type", "diff": {"before", "after"}},
     "context": {"blueprintIdentifier", "entityIdentifier", "runId", "reportToken"}    (entity events)
              | {"actionIdentifier", "runIdentifier", "runId", "reportToken"}}         (run events)

where ``context.runId`` is the automation run's id (the one a pipeline reports on, with
``context.reportToken``) and ``runIdentifier`` the run that changed.

Everything here is pure except :class:`Automations`, whose only IO is the run and delivery rows
it writes through :mod:`kiosk.actions.runs.store`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy.engine import Connection

from kiosk.actions.invocation import OutboundRequest, render_request
from kiosk.actions.model import ENTITY_EVENTS, RUN_EVENTS, Action, AutomationSpec
from kiosk.actions.report_tokens import PLACEHOLDER as REPORT_TOKEN
from kiosk.actions.runs.listeners import RunChange, RunChangeKind
from kiosk.actions.runs.states import FAILURE, IN_PROGRESS, new_run_id, run_row, trigger_of
from kiosk.actions.runs.store import add_run_log, insert_runs, queue_delivery
from kiosk.actions.service import Actions
from kiosk.catalog.changes import ChangeKind, EntityChange
from kiosk.core import jq_engine
from kiosk.core.jq_engine import JqResult, JqStopped, JqUnavailable
from kiosk.errors import ServiceUnavailable, ValidationFailed

__all__ = [
    "AUTOMATION",
    "Automations",
    "Event",
    "condition_holds",
    "conditions_hold",
    "default_body",
    "entity_event",
    "listens",
    "run_event",
    "template_input",
]

log = logging.getLogger("kiosk.actions")

#: The ``origin`` of runs automations start (and of their ``trigger``).
AUTOMATION = "AUTOMATION"

#: The event each kind of entity change is.
ENTITY_EVENT_OF: dict[ChangeKind, str] = {
    "created": "ENTITY_CREATED",
    "updated": "ENTITY_UPDATED",
    "deleted": "ENTITY_DELETED",
}
RUN_EVENT_OF: dict[RunChangeKind, str] = {"created": "RUN_CREATED", "updated": "RUN_UPDATED"}
#: The events a trigger's ``event.type`` matches (``ANY_…`` matches each of its kind).
MATCHES: dict[str, frozenset[str]] = {
    **{event: frozenset({event}) for event in (*ENTITY_EVENTS, *RUN_EVENTS)},
    "ANY_ENTITY_CHANGE": frozenset(ENTITY_EVENT_OF.values()),
    "ANY_RUN_CHANGE": frozenset(RUN_EVENT_OF.values()),
}


@dataclass(frozen=True)
class Event:
    """Something that happened, as automations see it."""

    #: The concrete event: ENTITY_CREATED / ENTITY_UPDATED / ENTITY_DELETED / RUN_CREATED / RUN_UPDATED.
    type: str
    resource: Literal["entity", "run"]
    #: What automations match on: the entity's blueprint, or the run's action.
    subject: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    #: ``{blueprintIdentifier, entityIdentifier}`` or ``{actionIdentifier, runIdentifier}``.
    context: dict[str, Any]
    #: The client whose write caused it (None when kiosk itself did).
    actor: str | None

    @property
    def entity(self) -> str | None:
        """The entity an entity event is about (stored on the automation's run); None for runs."""
        return str(self.context["entityIdentifier"]) if self.resource == "entity" else None

    @property
    def blueprint(self) -> str | None:
        return self.subject if self.resource == "entity" else None


def entity_event(change: EntityChange) -> Event:
    return Event(
        type=ENTITY_EVENT_OF[change.kind],
        resource="entity",
        subject=change.blueprint,
        before=change.before,
        after=change.after,
        context={"blueprintIdentifier": change.blueprint, "entityIdentifier": change.identifier},
        actor=change.actor,
    )


def run_event(change: RunChange) -> Event:
    return Event(
        type=RUN_EVENT_OF[change.kind],
        resource="run",
        subject=change.action,
        before=change.before,
        after=change.after,
        context={"actionIdentifier": change.action, "runIdentifier": change.run_id},
        actor=change.actor,
    )


def listens(spec: AutomationSpec, event: Event) -> bool:
    """Does the (enabled) automation ``spec`` fire on ``event``, conditions aside?"""
    if not spec.enabled or event.type not in MATCHES[spec.event]:
        return False
    watched = spec.blueprint if event.resource == "entity" else spec.action
    return watched == event.subject


def _kinds(spec: AutomationSpec, events: Mapping[Any, str]) -> set[Any]:
    """The change kinds (keys of ``events``) that ``spec``'s event type matches."""
    return {kind for kind, event in events.items() if event in MATCHES[spec.event]}


def template_input(action: Action, event: Event, trigger: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """The document body templates and conditions are evaluated over (see the module doc)."""
    diff = {"before": event.before, "after": event.after}
    entity = None
    if event.resource == "entity":
        entity = event.after if event.after is not None else event.before
    return {
        "event": {"type": event.type, "context": dict(event.context), "diff": diff},
        "diff": diff,
        "entity": entity,
        "action": {"identifier": action.identifier, "title": action.title},
        "trigger": dict(trigger),
        "run": {"id": run_id, "reportToken": REPORT_TOKEN},
    }


def default_body(action: Action, event: Event, trigger: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """Port's automation payload (see the module doc)."""
    return {
        "action": action.identifier,
        "resourceType": event.resource,
        "status": "TRIGGERED",
        "trigger": dict(trigger),
        "event": {"type": event.type, "diff": {"before": event.before, "after": event.after}},
        "context": {**event.context, "runId": run_id, "reportToken": REPORT_TOKEN},
    }


def condition_holds(identifier: str, spec: AutomationSpec, data: Mapping[str, Any]) -> bool:
    """Do ``spec``'s expressions hold over ``data``: all (``and``) or any (``or``); none: yes.

    An expression holds when its first result is ``true``; ``false``, ``null`` or no result do
    not. One that fails, or gives anything else, counts as false and is logged: a broken
    condition must never break the write that is being checked. One stopped by a jq limit
    raises :class:`~kiosk.core.jq_engine.JqStopped` (see :func:`conditions_hold`).
    """
    return conditions_hold(identifier, spec, [data])[0]


def conditions_hold(identifier: str, spec: AutomationSpec, inputs: Sequence[Mapping[str, Any]]) -> list[bool]:
    """:func:`condition_holds` for each of ``inputs``, every expression over every input in one
    round trip to the jq workers: a bulk write fires an automation per entity, and a round trip
    per entity would cost more than jq itself.

    Raises :class:`~kiosk.core.jq_engine.JqStopped` when an expression hits a jq limit (for the
    whole batch: the program is what is broken) and :class:`~kiosk.core.jq_engine.JqUnavailable`
    when no jq worker is free; :class:`Automations` records either as the run's failure.
    """
    if not spec.expressions:
        return [True] * len(inputs)
    expressions = spec.expressions
    width = len(expressions)
    results = jq_engine.engine().evaluate(expressions, [d if isinstance(d, dict) else dict(d) for d in inputs])
    out: list[bool] = []
    for row in range(len(inputs)):
        # Lazily, so an "and" stops (and logs) at its first false expression, as it always did.
        holds = (_holds(identifier, expr, results[row * width + i]) for i, expr in enumerate(expressions))
        out.append(all(holds) if spec.combinator == "and" else any(holds))
    return out


def _holds(identifier: str, expression: str, outcome: JqResult) -> bool:
    if outcome.error is not None:
        reason = next((line.strip() for line in outcome.error.splitlines() if line.strip()), "error")
        log.warning(
            "an automation's condition failed; counted as false",
            extra={"automation": identifier, "expression": expression, "reason": reason},
        )
        return False
    result = outcome.value
    if result is None or isinstance(result, bool):
        return result is True
    log.warning(
        "an automation's condition gave neither true nor false; counted as false",
        extra={"automation": identifier, "expression": expression, "result_type": type(result).__name__},
    )
    return False


def _condition_failure(spec: AutomationSpec, exc: JqStopped | JqUnavailable) -> str:
    """Why an automation's condition could not be decided, naming the expression."""
    if isinstance(exc, JqStopped) and exc.expression in spec.expressions:
        where = f"trigger.condition.expressions[{spec.expressions.index(exc.expression)}]"
        return f"{where}: the condition failed: {exc.message}"
    return f"trigger.condition: the condition could not be evaluated: {exc}"


def _now() -> datetime:
    return datetime.now(UTC)


class Automations:
    """Fires automations on entity and run changes: the catalog's and the runs' listener.

    ``actions`` gives the stored automations (parsed once per stored version), the configured
    Azure DevOps organisations and whether WEBHOOK deliveries are signed. ``notify`` (the delivery
    worker's, settable after construction) is called once a transaction that queued deliveries
    committed.
    """

    def __init__(self, actions: Actions, *, notify: Callable[[], None] | None = None) -> None:
        self.actions = actions
        self.notify = notify

    def _enabled(self, conn: Connection) -> list[tuple[Action, AutomationSpec]]:
        return [
            (action, action.automation)
            for action in self.actions.all_parsed(conn)
            if action.automation is not None and action.automation.enabled
        ]

    # ----------------------------------------------------------------------------- the listeners

    def watched_entities(self, conn: Connection, blueprint: str) -> frozenset[ChangeKind]:
        kinds: set[ChangeKind] = set()
        for _, spec in self._enabled(conn):
            if spec.blueprint == blueprint:
                kinds |= _kinds(spec, ENTITY_EVENT_OF)
        return frozenset(kinds)

    def entities_changed(self, conn: Connection, changes: Sequence[EntityChange]) -> bool:
        return self._fire_all(conn, [entity_event(change) for change in changes])

    def watched_runs(self, conn: Connection, action: str, origin: str) -> frozenset[RunChangeKind]:
        if origin == AUTOMATION:  # depth 1: automation runs never fire run automations
            return frozenset()
        kinds: set[RunChangeKind] = set()
        for _, spec in self._enabled(conn):
            if spec.action == action:
                kinds |= _kinds(spec, RUN_EVENT_OF)
        return frozenset(kinds)

    def runs_changed(self, conn: Connection, changes: Sequence[RunChange]) -> bool:
        return self._fire_all(conn, [run_event(change) for change in changes if change.origin != AUTOMATION])

    def committed(self) -> None:
        if self.notify is not None:
            self.notify()

    # ----------------------------------------------------------------------------- firing

    def _fire_all(self, conn: Connection, events: Sequence[Event]) -> bool:
        """Fire every automation each event matches; True when a delivery was queued.

        Conditions are decided per automation over all its events in one jq round trip; the
        runs go in with one statement, then a delivery per run: a bulk write that fires an
        automation per entity costs no more statements (or jq round trips) than it must.
        """
        if not events:
            return False
        automations = self._enabled(conn)
        staged = [
            self._stage(action, spec, event) for event in events for action, spec in automations if listens(spec, event)
        ]
        verdicts = self._decide(staged)
        firings = [self._prepare(stage, verdict) for stage, verdict in zip(staged, verdicts, strict=True) if verdict]
        insert_runs(conn, [firing.row for firing in firings])
        for firing in firings:
            if firing.outbound is not None:
                queue_delivery(conn, firing.row["id"], firing.outbound, source="automation")
                log.info(
                    "automation fired",
                    extra={"run": firing.row["id"], "action": firing.row["action"], "event": firing.event},
                )
            else:
                add_run_log(
                    conn,
                    firing.row["id"],
                    f"kiosk could not build the automation's request: {firing.failure}",
                    termination_status=FAILURE,
                    at=firing.row["created_at"],
                )
                log.warning(
                    "an automation matched but its request could not be built",
                    extra={
                        "run": firing.row["id"],
                        "action": firing.row["action"],
                        "event": firing.event,
                        "reason": firing.failure,
                    },
                )
        return any(firing.outbound is not None for firing in firings)

    def _stage(self, action: Action, spec: AutomationSpec, event: Event) -> _Staged:
        """What an automation's run of ``event`` would be: its id, trigger and jq input."""
        run_id = new_run_id()
        now = _now()
        trigger = trigger_of(event.actor, AUTOMATION, now)
        return _Staged(action, spec, event, run_id, now, trigger, template_input(action, event, trigger, run_id))

    def _decide(self, staged: Sequence[_Staged]) -> list[bool | str]:
        """Per staged run: True (its condition holds), False (it does not: no run), or why the
        condition could not be decided (a jq limit, no jq worker): the run is then recorded
        FAILURE with that reason, never retried, and the write goes on."""
        verdicts: list[bool | str] = [True] * len(staged)
        groups: dict[str, list[int]] = {}
        for i, stage in enumerate(staged):
            if stage.spec.expressions:
                groups.setdefault(stage.action.identifier, []).append(i)
        for identifier, members in groups.items():
            spec = staged[members[0]].spec
            try:
                holds: list[bool | str] = list(conditions_hold(identifier, spec, [staged[i].data for i in members]))
            except (JqStopped, JqUnavailable) as exc:
                failure = _condition_failure(spec, exc)
                log.warning(
                    "an automation's condition was stopped", extra={"automation": identifier, "reason": failure}
                )
                holds = [failure] * len(members)
            for i, verdict in zip(members, holds, strict=True):
                verdicts[i] = verdict
        return verdicts

    def _prepare(self, stage: _Staged, verdict: bool | str) -> _Firing:
        """The run (and request) an automation makes of an event whose condition held (or could
        not be decided: ``verdict`` is then the reason). A request that cannot be built makes a
        FAILURE run that says why."""
        action, event, trigger, run_id = stage.action, stage.event, stage.trigger, stage.run_id
        outbound: OutboundRequest | None = None
        failure: str | None = verdict if isinstance(verdict, str) else None
        if failure is None:
            try:
                outbound = render_request(
                    action.invocation,
                    stage.data,
                    lambda: default_body(action, event, trigger, run_id),
                    orgs=self.actions.azure_orgs,
                    sign_webhooks=self.actions.sign_webhooks,
                    secrets={},
                )
            except (ValidationFailed, ServiceUnavailable) as exc:
                failure = exc.message
        row = run_row(
            run_id,
            action=action.identifier,
            status=IN_PROGRESS if outbound is not None else FAILURE,
            blueprint=event.blueprint,
            entity=event.entity,
            properties={},
            secrets=None,
            origin=AUTOMATION,
            created_by=event.actor,
            approval=None,
            now=stage.now,
            status_label=f"not sent: {failure}" if failure is not None else None,
        )
        return _Firing(row, outbound, failure, event.type)


@dataclass(frozen=True)
class _Staged:
    """An automation matched an event: the run it would start, before its condition is decided."""

    action: Action
    spec: AutomationSpec
    event: Event
    run_id: str
    now: datetime
    trigger: dict[str, Any]
    data: dict[str, Any]


@dataclass(frozen=True)
class _Firing:
    """One automation run about to be stored: its row, and its request or why there is none."""

    row: dict[str, Any]
    outbound: OutboundRequest | None
    failure: str | None
    event: str
