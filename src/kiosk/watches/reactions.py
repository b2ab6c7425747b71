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

Every jq program runs on kiosk's jq workers (:mod:`kiosk.core.jq_engine`), one round trip per
reaction, bounded in time and memory.

Failures are sorted in two: a :class:`~kiosk.errors.KioskError` (the action refuses the inputs, the
entity breaks its blueprint, a template fails or is stopped by a jq limit) is final and recorded
as the reaction's outcome; a database error, or no jq worker free, is
:class:`TransientReactionError` and the event is retried later.
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
from kiosk.core import jq_engine
from kiosk.core.jq_engine import JqError, JqResult, JqStopped, JqUnavailable
from kiosk.core.jq_sandbox import compile_jq
from kiosk.errors import KioskError, ServiceUnavailable, ValidationFailed
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


def _first(result: JqResult, where: str) -> Any:
    if result.error is not None:
        first = next((line.strip() for line in result.error.splitlines() if line.strip()), "error")
        raise ValidationFailed(f"{where}: jq failed: {first}", code="template_failed")
    return result.value


@dataclass(frozen=True)
class _EntityMapping:
    """An ``upsertEntity`` reaction's fields: name (``upsertEntity.…``) -> jq expression."""

    fields: dict[str, str]

    @classmethod
    def compile(cls, spec: UpsertEntitySpec) -> _EntityMapping:
        fields = {"upsertEntity.blueprint": spec.blueprint, "upsertEntity.identifier": spec.identifier}
        if spec.title is not None:
            fields["upsertEntity.title"] = spec.title
        fields.update({f"upsertEntity.properties.{k}": v for k, v in spec.properties.items()})
        fields.update({f"upsertEntity.relations.{k}": v for k, v in spec.relations.items()})
        for expression in fields.values():
            compile_jq(expression)  # checked when kiosk.yaml was loaded; a syntax error cannot get here
        return cls(fields)

    def _evaluate(self, data: Mapping[str, Any]) -> dict[str, JqResult]:
        """Every field over the event, in one round trip to the jq workers. A field stopped by a
        jq limit fails the reaction for good (:class:`ValidationFailed`, naming the field, the
        program and the limit); no jq worker free is :class:`TransientReactionError`."""
        names = list(self.fields)
        try:
            results = jq_engine.first_each([self.fields[n] for n in names], dict(data))
        except JqStopped as exc:
            name = next((n for n in names if self.fields[n] == exc.expression), names[0])
            raise ValidationFailed(f"{name}: {exc.message}", code="template_failed") from None
        except JqUnavailable as exc:
            raise TransientReactionError(f"jq: {exc}") from None
        except JqError as exc:
            raise ValidationFailed(f"upsertEntity: {exc}", code="template_failed") from None
        return dict(zip(names, results, strict=True))

    def build(self, data: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """(blueprint, entity document) for one event."""
        results = self._evaluate(data)
        blueprint = _first(results["upsertEntity.blueprint"], "upsertEntity.blueprint")
        identifier = _first(results["upsertEntity.identifier"], "upsertEntity.identifier")
        if not isinstance(blueprint, str) or not blueprint:
            raise ValidationFailed("upsertEntity.blueprint must give a blueprint identifier", code="template_failed")
        if not isinstance(identifier, str) or not identifier:
            raise ValidationFailed("upsertEntity.identifier must give a string", code="template_failed")
        doc: dict[str, Any] = {"identifier": identifier}
        if "upsertEntity.title" in results:
            title = _first(results["upsertEntity.title"], "upsertEntity.title")
            if title is not None:
                doc["title"] = title if isinstance(title, str) else str(title)
        properties: dict[str, Any] = {}
        relations: dict[str, Any] = {}
        for name, result in results.items():
            for prefix, out in (("upsertEntity.properties.", properties), ("upsertEntity.relations.", relations)):
                if name.startswith(prefix):
                    out[name[len(prefix) :]] = _first(result, name)
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
                # One template, so one jq round trip; its fields' paths are where.properties…, where.entity.
                template: dict[str, Any] = {"properties": spec.properties}
                if spec.entity is not None:
                    template["entity"] = spec.entity
                rendered = render_template(template, data, where=where, secrets={})
                raw: dict[str, Any] = {"properties": rendered["properties"]}
                if spec.entity is not None:
                    entity = rendered["entity"]
                    raw["entity"] = entity if isinstance(entity, str) else str(entity)
                key = reaction_key(data, watch, position)
                run = self.runs.start_run(spec.action, raw, actor=actor, origin="AUTOMATION", idempotency_key=key)
                return ReactionOutcome("done", run_id=str(run["id"]))
            blueprint, doc = self._mappings[(watch, position)].build(data)
            entity_doc, _created = self.catalog.upsert_entity(blueprint, doc, upsert=True, merge=True, actor=actor)
            return ReactionOutcome("done", entity=f"{blueprint}/{entity_doc.get('identifier', doc['identifier'])}")
        except ServiceUnavailable as exc:  # no jq worker free now: the event is tried again later
            raise TransientReactionError(exc.message) from exc
        except KioskError as exc:
            return ReactionOutcome("failed", error=exc.message)
        except DBAPIError as exc:
            raise TransientReactionError(f"database error: {type(exc.orig).__name__ if exc.orig else exc}") from exc
