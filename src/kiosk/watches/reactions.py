"""What a refreshed watch does: run an action, upsert a catalog entity — built with jq from the event.

Every jq program runs over the **event document** (:func:`event_document`)::

    {
      "id": 812, "receiver": "acr", "project": null, "sender": "acr", "type": "push",
      "deliveryId": "a1b2...", "receivedAt": "2026-11-24T12:00:00.000Z",
      "watch": "checkout-images",
      "kind": "image", "repository": "contoso.azurecr.io/checkout",
      "tag": "1.2.3", "digest": "sha256:...",          # images and charts
      "ref": "refs/heads/main", "branch": "main",        # git (branch null for a tag ref)
      "change": "push", "commit": "c0ffee...",
      "payload": { ...the body exactly as the sender posted it... }
    }

* ``runAction`` starts a run through :meth:`kiosk.actions.runs.Runs.start_run`, so the action's own
  invocation method (an Azure Pipelines webhook, a plain webhook) delivers it, with approvals and
  input validation as for a run started by hand. The start carries an idempotency key made of
  (event id, watch, reaction position) (:func:`reaction_key`): the event processor may fire a
  reaction again after a crash, and the second start then returns the first run instead of
  starting (and delivering) another. ``entity`` and ``properties`` are Port templates:
  a string that is exactly ``{{ expr }}`` becomes the value jq returns, text around templates is
  interpolated, anything else is taken literally.
* ``upsertEntity`` writes through :meth:`kiosk.catalog.service.Catalog.upsert_entity` (``upsert``,
  ``merge``) with every field a jq expression (Ocean's mapping style). A property or relation whose
  expression gives ``null`` is left out, so a field missing from one event neither fails the
  blueprint's schema nor erases what an earlier event wrote.

Failures are sorted in two: a :class:`~kiosk.errors.KioskError` (the action refuses the inputs, the
entity breaks its blueprint, a template fails) is final and recorded as the reaction's outcome;
a database error is :class:`TransientReactionError` and the event is retried later.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import DBAPIError

from kiosk.actions.payload import render_template
from kiosk.actions.runs import Runs
from kiosk.catalog.service import Catalog
from kiosk.core.jq_sandbox import compile_jq
from kiosk.errors import KioskError, ValidationFailed
from kiosk.store.queue import aware
from kiosk.watches.config import ReactionSpec, UpsertEntitySpec, WatchSpec
from kiosk.watches.normalise import ref_parts

__all__ = ["ReactionOutcome", "Reactor", "TransientReactionError", "event_document", "reaction_key"]

log = logging.getLogger("kiosk.watches")


class TransientReactionError(Exception):
    """The reaction could not run for a reason that may pass (the database): retry the event."""


@dataclass(frozen=True)
class ReactionOutcome:
    status: str  # done | failed
    run_id: str | None = None
    entity: str | None = None
    error: str | None = None


def _iso(value: datetime) -> str:
    return aware(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_document(event: Any, match: Mapping[str, Any], payload: Any) -> dict[str, Any]:
    """The document reactions' jq runs over, for one stored event and one of its matches."""
    summary = event.summary if isinstance(event.summary, dict) else {}
    ref = match.get("ref")
    branch = None
    if isinstance(ref, str):
        kind, name = ref_parts(ref)
        branch = name if kind == "branch" else None
    return {
        "id": event.id,
        "receiver": event.receiver,
        "project": event.project or None,
        "sender": event.sender,
        "type": event.event_type,
        "deliveryId": event.delivery_id,
        "receivedAt": _iso(event.received_at),
        "watch": match.get("watch"),
        "kind": match.get("kind"),
        "repository": match.get("repository"),
        "tag": match.get("tag"),
        "digest": summary.get("digest"),
        "ref": ref,
        "branch": branch,
        "change": match.get("change"),
        "commit": match.get("commit"),
        "payload": payload,
    }


def reaction_key(data: Mapping[str, Any], watch: str, position: int) -> str | None:
    """The idempotency key of reaction ``position`` of ``watch`` for the event ``data`` describes:
    the same event, watch and position always give the same key (so the same run). None when the
    document has no event id (nothing stored to be retried: no key needed)."""
    event_id = data.get("id")
    if event_id is None:
        return None
    return f"watch-reaction:{event_id}:{watch}:{position}"


def _first(program: Any, data: Mapping[str, Any], where: str) -> Any:
    try:
        return next(iter(program.input_value(dict(data))), None)
    except ValueError as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "error")
        raise ValidationFailed(f"{where}: jq failed: {first}", code="template_failed") from None


@dataclass(frozen=True)
class _EntityMapping:
    blueprint: Any
    identifier: Any
    title: Any | None
    properties: dict[str, Any]
    relations: dict[str, Any]

    @classmethod
    def compile(cls, spec: UpsertEntitySpec) -> _EntityMapping:
        return cls(
            blueprint=compile_jq(spec.blueprint),
            identifier=compile_jq(spec.identifier),
            title=compile_jq(spec.title) if spec.title is not None else None,
            properties={k: compile_jq(v) for k, v in spec.properties.items()},
            relations={k: compile_jq(v) for k, v in spec.relations.items()},
        )

    def build(self, data: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """(blueprint, entity document) for one event."""
        blueprint = _first(self.blueprint, data, "upsertEntity.blueprint")
        identifier = _first(self.identifier, data, "upsertEntity.identifier")
        if not isinstance(blueprint, str) or not blueprint:
            raise ValidationFailed("upsertEntity.blueprint must give a blueprint identifier", code="template_failed")
        if not isinstance(identifier, str) or not identifier:
            raise ValidationFailed("upsertEntity.identifier must give a string", code="template_failed")
        doc: dict[str, Any] = {"identifier": identifier}
        if self.title is not None:
            title = _first(self.title, data, "upsertEntity.title")
            if title is not None:
                doc["title"] = title if isinstance(title, str) else str(title)
        properties = {k: _first(p, data, f"upsertEntity.properties.{k}") for k, p in self.properties.items()}
        relations = {k: _first(p, data, f"upsertEntity.relations.{k}") for k, p in self.relations.items()}
        doc["properties"] = {k: v for k, v in properties.items() if v is not None}
        doc["relations"] = {k: v for k, v in relations.items() if v is not None}
        return blueprint, doc


class Reactor:
    """Fires the reactions of the configured watches (mappings compiled once)."""

    def __init__(self, watches: Sequence[WatchSpec], runs: Runs, catalog: Catalog) -> None:
        self.runs = runs
        self.catalog = catalog
        self._reactions: dict[str, list[ReactionSpec]] = {w.name: list(w.reactions) for w in watches}
        self._mappings: dict[tuple[str, int], _EntityMapping] = {
            (w.name, i): _EntityMapping.compile(r.upsertEntity)
            for w in watches
            for i, r in enumerate(w.reactions)
            if r.upsertEntity is not None
        }

    def reactions(self, watch: str) -> list[ReactionSpec]:
        """The reactions of ``watch`` (none for a watch no longer configured)."""
        return self._reactions.get(watch, [])

    def react(self, watch: str, position: int, data: Mapping[str, Any]) -> ReactionOutcome:
        """Fire one reaction; a final failure is an outcome, a passing one raises TransientReactionError."""
        reaction = self._reactions[watch][position]
        actor = f"watch:{watch}"
        try:
            if reaction.runAction is not None:
                spec = reaction.runAction
                where = f"watches[{watch}].reactions[{position}].runAction"
                raw: dict[str, Any] = {
                    "properties": render_template(spec.properties, data, where=f"{where}.properties", secrets={})
                }
                if spec.entity is not None:
                    entity = render_template(spec.entity, data, where=f"{where}.entity", secrets={})
                    raw["entity"] = entity if isinstance(entity, str) else str(entity)
                key = reaction_key(data, watch, position)
                run = self.runs.start_run(spec.action, raw, actor=actor, origin="AUTOMATION", idempotency_key=key)
                return ReactionOutcome("done", run_id=str(run["id"]))
            blueprint, doc = self._mappings[(watch, position)].build(data)
            entity_doc, _created = self.catalog.upsert_entity(blueprint, doc, upsert=True, merge=True, actor=actor)
            return ReactionOutcome("done", entity=f"{blueprint}/{entity_doc.get('identifier', doc['identifier'])}")
        except KioskError as exc:
            return ReactionOutcome("failed", error=exc.message)
        except DBAPIError as exc:
            raise TransientReactionError(f"database error: {type(exc.orig).__name__ if exc.orig else exc}") from exc
