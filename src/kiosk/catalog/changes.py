"""The catalog's change hook: entity changes told to a listener inside the write's transaction.

Entity changes can be watched (automations do): an :class:`EntityListener` is told of every
entity created, updated or deleted *inside* the write's transaction, so whatever it stores commits
or rolls back with the change itself, and is told again once the transaction committed. The
listener first says which kinds of change to a blueprint it wants; the "before" documents cost a
query, so they are read only when it wants updates (a bulk upsert nobody watches pays one small
query for asking).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiosk.catalog import rendering
from kiosk.catalog.blueprint_store import CompiledBlueprints
from kiosk.store.tables import entities as ent_table

ChangeKind = Literal["created", "updated", "deleted"]
#: Fields every write changes; an "update" that changes nothing else is no change at all.
BOOKKEEPING = frozenset({"updatedAt", "updatedBy"})


@dataclass(frozen=True)
class EntityChange:
    """One entity created, updated or deleted by a catalog write, as the API shows it.

    ``before`` is None when it was created, ``after`` None when it was deleted. ``actor`` is the
    client that wrote it (None for deletions, which the API does not attribute).
    """

    blueprint: str
    identifier: str
    kind: ChangeKind
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    actor: str | None


class EntityListener(Protocol):
    """Something that reacts to entity changes in the writer's transaction (automations do)."""

    def watched_entities(self, conn: Connection, blueprint: str) -> frozenset[ChangeKind]:
        """The kinds of change to ``blueprint``'s entities it wants to hear of (empty: none)."""
        ...

    def entities_changed(self, conn: Connection, changes: Sequence[EntityChange]) -> bool:
        """Called inside the write's transaction. Its own mistakes (a condition, a template) must
        not fail the write; failing to store what it reacts with does, so that a committed change
        never goes without its reaction. True when it stored work :meth:`committed` should announce."""
        ...

    def committed(self) -> None:
        """The transaction whose changes it took (and said True to) has committed."""
        ...


def watched(listener: EntityListener | None, conn: Connection, blueprint: str) -> frozenset[ChangeKind]:
    """The kinds of change to ``blueprint``'s entities ``listener`` wants (none without one)."""
    if listener is None:
        return frozenset()
    return listener.watched_entities(conn, blueprint)


def note_written(
    conn: Connection,
    blueprints: CompiledBlueprints,
    blueprint: str,
    written: Sequence[tuple[str, bool]],
    before: dict[str, dict[str, Any]],
    actor: str | None,
    changes: list[EntityChange],
) -> None:
    """Record (identifier, created) writes as changes; an update that changed nothing but the
    bookkeeping fields (a re-applied kiosk.yaml, an idempotent upsert) is no change."""
    if not written:
        return
    after = rendering.entity_docs(conn, blueprints, blueprint, [ident for ident, _ in written])
    for ident, created in written:
        doc = after.get(ident)
        if doc is None:
            continue
        if created:
            changes.append(EntityChange(blueprint, ident, "created", None, doc, actor))
            continue
        old = before.get(ident)
        if old is not None and not _same_entity(old, doc):
            changes.append(EntityChange(blueprint, ident, "updated", old, doc, actor))


def note_deleted(
    conn: Connection,
    blueprints: CompiledBlueprints,
    listener: EntityListener | None,
    where: sa.ColumnElement[bool],
    changes: list[EntityChange],
) -> None:
    """Record the entities ``where`` selects, about to be deleted, for the blueprints watched."""
    if listener is None:
        return
    candidates = conn.execute(sa.select(ent_table.c.blueprint).where(where).distinct()).scalars().all()
    watching = [bp for bp in sorted(candidates) if "deleted" in watched(listener, conn, bp)]
    if not watching:
        return
    rows = conn.execute(
        sa.select(ent_table).where(where, ent_table.c.blueprint.in_(watching)).order_by(ent_table.c.id)
    ).all()
    for doc in rendering.render_entities(conn, blueprints, rows):
        changes.append(EntityChange(doc["blueprint"], doc["identifier"], "deleted", doc, None, None))


def announce(listener: EntityListener | None, conn: Connection, changes: Sequence[EntityChange]) -> bool:
    """Hand the write's changes to the listener, still inside its transaction."""
    if listener is None or not changes:
        return False
    return listener.entities_changed(conn, changes)


def after_commit(listener: EntityListener | None, announced: bool) -> None:
    if announced and listener is not None:
        listener.committed()


def _same_entity(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Equal apart from the fields every write touches."""
    return {k: v for k, v in before.items() if k not in BOOKKEEPING} == {
        k: v for k, v in after.items() if k not in BOOKKEEPING
    }
