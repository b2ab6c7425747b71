"""The action service: every read and write of self-service action definitions goes through here.

An action is stored as its normalised Port document. Saving one checks, besides the document
itself (:func:`kiosk.actions.model.parse_action`), what only the server knows: the blueprint it
acts on and the blueprints its entity inputs name exist, and an AZURE-DEVOPS action's
organisation is configured in kiosk.yaml.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiosk.actions.invocation import check_azure_org, check_headers
from kiosk.actions.model import Action, parse_action
from kiosk.catalog.dates import format_canonical
from kiosk.catalog.identifiers import is_schema_identifier
from kiosk.config.model import AzureDevOpsOrg
from kiosk.errors import Conflict, NotFound, ValidationFailed
from kiosk.store.engine import Database
from kiosk.store.tables import actions as actions_table
from kiosk.store.tables import blueprints as bp_table

__all__ = ["Actions", "iso"]

Status = Literal["created", "updated", "unchanged"]


def _now() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """A stored timestamp as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (SQLite hands back naive UTC values)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return format_canonical(value)


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
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------- reads

    def _render(self, row: Any) -> dict[str, Any]:
        doc = dict(row.definition)
        doc.update(
            createdAt=iso(row.created_at),
            updatedAt=iso(row.updated_at),
            createdBy=row.created_by,
            updatedBy=row.updated_by,
        )
        return doc

    def list_actions(self, *, blueprint: str | None = None) -> list[dict[str, Any]]:
        """Every action, by identifier; only those acting on ``blueprint`` when given."""
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(actions_table).order_by(actions_table.c.identifier)).all()
        docs = [self._render(r) for r in rows]
        if blueprint is not None:
            docs = [d for d in docs if d["trigger"]["blueprintIdentifier"] == blueprint]
        return docs

    def get_action(self, identifier: str) -> dict[str, Any]:
        if not is_schema_identifier(identifier):
            raise _not_found(identifier)
        with self.db.connect() as conn:
            row = conn.execute(sa.select(actions_table).where(actions_table.c.identifier == identifier)).first()
        if row is None:
            raise _not_found(identifier)
        return self._render(row)

    def load(self, conn: Connection, identifier: str) -> Action:
        """The parsed action (cached per stored version), for starting and approving runs."""
        if not is_schema_identifier(identifier):
            raise _not_found(identifier)
        row = conn.execute(
            sa.select(actions_table.c.definition, actions_table.c.updated_at).where(
                actions_table.c.identifier == identifier
            )
        ).first()
        if row is None:
            raise _not_found(identifier)
        cached = self._parsed.get(identifier)
        if cached is not None and cached[0] == row.updated_at:
            return cached[1]
        action = parse_action(row.definition)
        with self._lock:
            self._parsed[identifier] = (row.updated_at, action)
        return action

    # ----------------------------------------------------------------------------- checks

    def _check(self, conn: Connection, action: Action) -> None:
        """The rules that need the database or the configuration."""
        where = f"action {action.identifier!r}"
        check_azure_org(action.invocation, self.azure_orgs)
        try:
            check_headers(action.invocation)
        except ValidationFailed as exc:
            raise ValidationFailed(f"{where}: {exc.message}", code=exc.code, details=exc.details) from None
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
        """Create or replace; used by ``kiosk apply`` so applying twice changes nothing."""
        action = parse_action(raw)
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
