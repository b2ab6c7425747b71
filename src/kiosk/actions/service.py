"""The action service: every read and write of action definitions (self-service actions and
automations) goes through here.

An action is stored as its normalised Port document. Saving one checks, besides the document
itself (:func:`kiosk.actions.model.parse_action`), what only the server knows: the blueprint it
acts on and the blueprints its entity inputs name exist, an automation's blueprint or watched
action exists, and an AZURE-DEVOPS action's organisation is configured in kiosk.yaml.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from kiosk.actions.invocation import check_azure_org, check_headers
from kiosk.actions.model import Action, AutomationSpec, parse_action
from kiosk.catalog.blueprint_store import render_definition
from kiosk.catalog.identifiers import is_schema_identifier
from kiosk.config.model import AzureDevOpsOrg
from kiosk.errors import Conflict, NotFound, ValidationFailed
from kiosk.store.engine import Database
from kiosk.store.tables import actions as actions_table
from kiosk.store.tables import blueprints as bp_table

__all__ = ["Actions"]

log = logging.getLogger("kiosk.actions")

#: Built once (every run start reads it): constructing a select costs more than running it.
_ACTION_VERSION = sa.select(actions_table.c.definition, actions_table.c.updated_at).where(
    actions_table.c.identifier == sa.bindparam("identifier")
)

Status = Literal["created", "updated", "unchanged"]


def _now() -> datetime:
    return datetime.now(UTC)


def _not_found(identifier: str) -> NotFound:
    return NotFound(f"action {identifier!r} does not exist", code="action_not_found")


class Actions:
    """Self-service action definitions over one :class:`Database`.

    ``azure_orgs`` are kiosk.yaml's ``azureDevOps.orgs``; ``sign_webhooks`` says whether a
    WEBHOOK signing secret is configured (``delivery.signingSecret``).
    """

    def __init__(
        self,
        db: Database,
        *,
        azure_orgs: Mapping[str, AzureDevOpsOrg] | None = None,
        sign_webhooks: bool = False,
    ) -> None:
        self.db = db
        self.azure_orgs: dict[str, AzureDevOpsOrg] = dict(azure_orgs or {})
        self.sign_webhooks = sign_webhooks
        self._parsed: dict[str, tuple[datetime, Action]] = {}
        #: Stored versions that no longer parse (logged once each, then skipped).
        self._unparsable: dict[str, datetime] = {}
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------- reads

    def list_actions(self, *, blueprint: str | None = None) -> list[dict[str, Any]]:
        """Every action, by identifier; only those acting on ``blueprint`` when given."""
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(actions_table).order_by(actions_table.c.identifier)).all()
        docs = [render_definition(r) for r in rows]
        if blueprint is not None:
            docs = [d for d in docs if _blueprint_of(d) == blueprint]
        return docs

    def get_action(self, identifier: str) -> dict[str, Any]:
        if not is_schema_identifier(identifier):
            raise _not_found(identifier)
        with self.db.connect() as conn:
            row = conn.execute(sa.select(actions_table).where(actions_table.c.identifier == identifier)).first()
        if row is None:
            raise _not_found(identifier)
        return render_definition(row)

    def load(self, conn: Connection, identifier: str) -> Action:
        """The parsed action (cached per stored version), for starting and approving runs."""
        if not is_schema_identifier(identifier):
            raise _not_found(identifier)
        row = conn.execute(_ACTION_VERSION, {"identifier": identifier}).first()
        if row is None:
            raise _not_found(identifier)
        cached = self._parsed.get(identifier)
        if cached is not None and cached[0] == row.updated_at:
            return cached[1]
        action = parse_action(row.definition)
        with self._lock:
            self._parsed[identifier] = (row.updated_at, action)
        return action

    def all_parsed(self, conn: Connection) -> list[Action]:
        """Every stored action, parsed, by identifier: what automations are matched against.

        Called inside catalog and run writes, so it costs one narrow query (identifiers and
        versions) when nothing changed; only new or changed definitions are read and parsed. A
        stored definition that no longer parses is logged once and skipped — it must not break
        the write that asked.
        """
        versions = conn.execute(
            sa.select(actions_table.c.identifier, actions_table.c.updated_at).order_by(actions_table.c.identifier)
        ).all()
        stale = [
            r.identifier
            for r in versions
            if (cached := self._parsed.get(r.identifier)) is None or cached[0] != r.updated_at
            if self._unparsable.get(r.identifier) != r.updated_at
        ]
        if stale:
            self._parse_stored(conn, stale)
        out = []
        for r in versions:
            cached = self._parsed.get(r.identifier)
            if cached is not None and cached[0] == r.updated_at:
                out.append(cached[1])
        return out

    def _parse_stored(self, conn: Connection, identifiers: list[str]) -> None:
        rows = conn.execute(
            sa.select(actions_table.c.identifier, actions_table.c.definition, actions_table.c.updated_at).where(
                actions_table.c.identifier.in_(identifiers)
            )
        ).all()
        for row in rows:
            try:
                action = parse_action(row.definition)
            except ValidationFailed as exc:
                log.warning("a stored action no longer parses", extra={"action": row.identifier, "reason": exc.message})
                with self._lock:
                    self._unparsable[row.identifier] = row.updated_at
                continue
            with self._lock:
                self._parsed[row.identifier] = (row.updated_at, action)

    # ----------------------------------------------------------------------------- checks

    def _check(self, conn: Connection, action: Action) -> None:
        """The rules that need the database or the configuration."""
        where = f"action {action.identifier!r}"
        check_azure_org(action.invocation, self.azure_orgs)
        try:
            check_headers(action.invocation)
        except ValidationFailed as exc:
            raise ValidationFailed(f"{where}: {exc.message}", code=exc.code, details=exc.details) from None
        if action.automation is not None:
            self._check_automation(conn, action.identifier, action.automation)
            return
        wanted = {action.blueprint} | action.inputs.entity_blueprints
        known = set(conn.execute(sa.select(bp_table.c.identifier).where(bp_table.c.identifier.in_(wanted))).scalars())
        if action.blueprint not in known:
            raise ValidationFailed(
                f"{where}: trigger.blueprintIdentifier: blueprint {action.blueprint!r} does not exist",
                code="blueprint_not_found",
                details={"field": "trigger.blueprintIdentifier"},
            )
        for name, spec in action.inputs.specs.items():
            for bp in sorted(spec.entity_blueprints - known):
                field = f"trigger.userInputs.properties.{name}"
                raise ValidationFailed(
                    f"{where}: {field}: blueprint {bp!r} (of format 'entity') does not exist",
                    code="blueprint_not_found",
                    details={"field": field},
                )

    def _check_automation(self, conn: Connection, identifier: str, spec: AutomationSpec) -> None:
        """An automation's blueprint must exist; the action whose runs it watches must exist and be
        a self-service action (automation runs never fire run automations, so watching one would
        never fire — see :mod:`kiosk.actions.automations`)."""
        where = f"action {identifier!r}"
        if spec.blueprint is not None:
            known = conn.execute(
                sa.select(bp_table.c.identifier).where(bp_table.c.identifier == spec.blueprint)
            ).first()
            if known is None:
                raise ValidationFailed(
                    f"{where}: trigger.event.blueprintIdentifier: blueprint {spec.blueprint!r} does not exist",
                    code="blueprint_not_found",
                    details={"field": "trigger.event.blueprintIdentifier"},
                )
            return
        field = "trigger.event.actionIdentifier"
        if spec.action == identifier:
            raise ValidationFailed(
                f"{where}: {field}: an automation cannot watch its own runs (automation runs never fire run "
                "automations)",
                code="invalid_action",
                details={"field": field},
            )
        row = conn.execute(
            sa.select(actions_table.c.definition).where(actions_table.c.identifier == spec.action)
        ).first()
        if row is None:
            raise ValidationFailed(
                f"{where}: {field}: action {spec.action!r} does not exist "
                "(in kiosk.yaml, list it before the automation)",
                code="action_not_found",
                details={"field": field},
            )
        if (row.definition.get("trigger") or {}).get("type") == "automation":
            raise ValidationFailed(
                f"{where}: {field}: {spec.action!r} is an automation; automation runs never fire run automations, "
                "so watch the self-service action it reacts to instead",
                code="invalid_action",
                details={"field": field},
            )

    # ----------------------------------------------------------------------------- writes

    def create_action(self, raw: Any, *, actor: str | None = None) -> dict[str, Any]:
        action = parse_action(raw)
        with self.db.begin() as conn:
            exists = conn.execute(
                sa.select(actions_table.c.identifier).where(actions_table.c.identifier == action.identifier)
            ).first()
            if exists:
                raise Conflict(f"action {action.identifier!r} already exists", code="action_exists")
            self._check(conn, action)
            self._insert(conn, action, actor)
        return self.get_action(action.identifier)

    def _insert(self, conn: Connection, action: Action, actor: str | None) -> None:
        now = _now()
        conn.execute(
            sa.insert(actions_table).values(
                identifier=action.identifier,
                definition=action.document,
                created_at=now,
                updated_at=now,
                created_by=actor,
                updated_by=actor,
            )
        )

    def replace_action(self, identifier: str, raw: Any, *, actor: str | None = None) -> dict[str, Any]:
        if not is_schema_identifier(identifier):
            raise _not_found(identifier)
        action = parse_action(raw, identifier=identifier)
        with self.db.begin() as conn:
            exists = conn.execute(
                sa.select(actions_table.c.identifier).where(actions_table.c.identifier == identifier)
            ).first()
            if exists is None:
                raise _not_found(identifier)
            self._check(conn, action)
            conn.execute(
                sa.update(actions_table)
                .where(actions_table.c.identifier == identifier)
                .values(definition=action.document, updated_at=_now(), updated_by=actor)
            )
        return self.get_action(identifier)

    def upsert_action(self, raw: Any, *, actor: str | None = None) -> Status:
        """Create or replace; used by ``kiosk apply`` so applying twice changes nothing. Processes
        starting together on one database apply kiosk.yaml together: when another one inserted the
        action between this one's look and its insert, the upsert is made again (it then updates)."""
        action = parse_action(raw)
        try:
            return self._upsert(action, actor)
        except IntegrityError:
            return self._upsert(action, actor)

    def _upsert(self, action: Action, actor: str | None) -> Status:
        with self.db.begin() as conn:
            self._check(conn, action)
            row = conn.execute(
                sa.select(actions_table.c.definition).where(actions_table.c.identifier == action.identifier)
            ).first()
            if row is None:
                self._insert(conn, action, actor)
                return "created"
            if row.definition == action.document:
                return "unchanged"
            conn.execute(
                sa.update(actions_table)
                .where(actions_table.c.identifier == action.identifier)
                .values(definition=action.document, updated_at=_now(), updated_by=actor)
            )
            return "updated"

    def delete_action(self, identifier: str) -> None:
        """Delete the definition; its runs stay (they are history)."""
        if not is_schema_identifier(identifier):
            raise _not_found(identifier)
        with self.db.begin() as conn:
            deleted = conn.execute(sa.delete(actions_table).where(actions_table.c.identifier == identifier)).rowcount
        if not deleted:
            raise _not_found(identifier)
        with self._lock:
            self._parsed.pop(identifier, None)


def _blueprint_of(doc: Mapping[str, Any]) -> str | None:
    """The blueprint an action document is about: a self-service action's, or the one whose
    entities an automation watches (None for a run automation)."""
    trigger = doc.get("trigger") or {}
    blueprint = trigger.get("blueprintIdentifier") or (trigger.get("event") or {}).get("blueprintIdentifier")
    return str(blueprint) if blueprint is not None else None
