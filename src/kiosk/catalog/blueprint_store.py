"""Blueprints in the database: the compiled forms entity writes validate with, and the statements
that write blueprint rows (in the caller's transaction).

A blueprint's new version drops the data it no longer defines: the edges of a relation removed or
retargeted, the values of a property removed. Property indexes follow the blueprints that ask for
them (see :mod:`kiosk.catalog.indexes`): created with the blueprint, dropped when no blueprint
asks for that property name any more.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiosk.catalog import indexes
from kiosk.catalog.blueprints import CompiledBlueprint
from kiosk.catalog.dates import iso_timestamp
from kiosk.errors import Conflict, NotFound, ValidationFailed
from kiosk.store.tables import blueprints as bp_table
from kiosk.store.tables import entities as ent_table
from kiosk.store.tables import entity_relations as rel_table

# Built once: building a select costs more than SQLite takes to run it (SQLAlchemy caches the
# compiled SQL, not the construction), and every entity read and write loads its blueprint.
_BLUEPRINT_VERSION = sa.select(bp_table.c.definition, bp_table.c.updated_at).where(
    bp_table.c.identifier == sa.bindparam("identifier")
)


def now() -> datetime:
    return datetime.now(UTC)


def blueprint_not_found(identifier: str) -> NotFound:
    return NotFound(f"blueprint {identifier!r} does not exist", code="blueprint_not_found")


class CompiledBlueprints:
    """Compiled blueprints by identifier, rebuilt when the stored version changes.

    Compiling a blueprint (its validators, its relation table) costs far more than reading its
    definition, and every entity write needs it; the stored ``updated_at`` says when it is stale,
    so several kiosk processes sharing a database each see the others' blueprint changes.
    """

    def __init__(self) -> None:
        self._compiled: dict[str, tuple[str, CompiledBlueprint]] = {}
        self._lock = threading.Lock()

    def load(self, conn: Connection, identifier: str) -> CompiledBlueprint:
        """The blueprint ``identifier`` as stored now, compiled; 404 if there is none."""
        row = conn.execute(_BLUEPRINT_VERSION, {"identifier": identifier}).first()
        if row is None:
            raise blueprint_not_found(identifier)
        return self._compiled_for(row.definition, row.updated_at)

    def _compiled_for(self, document: dict[str, Any], version: datetime) -> CompiledBlueprint:
        key = str(document["identifier"])
        stamp = f"{version.isoformat()}"
        cached = self._compiled.get(key)
        if cached and cached[0] == stamp:
            return cached[1]
        compiled = CompiledBlueprint.build(document)
        with self._lock:
            self._compiled[key] = (stamp, compiled)
        return compiled

    def forget(self, identifier: str) -> None:
        self._compiled.pop(identifier, None)


def render_definition(row: Any) -> dict[str, Any]:
    """A stored definition (a blueprint's, an action's) as the API shows it: with who and when."""
    doc = dict(row.definition)
    doc.update(
        createdAt=iso_timestamp(row.created_at),
        updatedAt=iso_timestamp(row.updated_at),
        createdBy=row.created_by,
        updatedBy=row.updated_by,
    )
    return doc


def blueprint_docs(conn: Connection) -> dict[str, dict[str, Any]]:
    rows = conn.execute(sa.select(bp_table.c.identifier, bp_table.c.definition))
    return {r.identifier: r.definition for r in rows}


def stored_definition(conn: Connection, identifier: str) -> dict[str, Any]:
    row = conn.execute(sa.select(bp_table.c.definition).where(bp_table.c.identifier == identifier)).first()
    if row is None:
        raise blueprint_not_found(identifier)
    return dict(row.definition)


def check_relation_targets(conn: Connection, doc: dict[str, Any]) -> None:
    known = set(blueprint_docs(conn)) | {doc["identifier"]}
    for name, rel in (doc.get("relations") or {}).items():
        if rel["target"] not in known:
            raise ValidationFailed(
                f"blueprint {doc['identifier']!r}: relations.{name}.target: blueprint {rel['target']!r} does not exist",
                code="invalid_blueprint",
                details={"field": f"relations.{name}.target"},
            )


def insert_blueprint(conn: Connection, dialect: str, doc: dict[str, Any], actor: str | None) -> None:
    """Store a new blueprint (its relation targets checked) and the indexes it asks for."""
    check_relation_targets(conn, doc)
    at = now()
    conn.execute(
        sa.insert(bp_table).values(
            identifier=doc["identifier"],
            definition=doc,
            created_at=at,
            updated_at=at,
            created_by=actor,
            updated_by=actor,
        )
    )
    _ensure_indexes(conn, dialect, doc)


def write_blueprint(
    conn: Connection, dialect: str, old: dict[str, Any], doc: dict[str, Any], actor: str | None
) -> None:
    """Replace a stored blueprint and drop the data its new version no longer defines."""
    check_relation_targets(conn, doc)
    old_rels = old.get("relations") or {}
    new_rels = doc.get("relations") or {}
    gone = [n for n, r in old_rels.items() if n not in new_rels or new_rels[n]["target"] != r["target"]]
    ident = doc["identifier"]
    members = sa.select(ent_table.c.id).where(ent_table.c.blueprint == ident)
    if gone:
        conn.execute(sa.delete(rel_table).where(rel_table.c.relation.in_(gone), rel_table.c.entity_id.in_(members)))
    old_props = set((old.get("schema") or {}).get("properties", {}))
    new_props = set((doc.get("schema") or {}).get("properties", {}))
    for prop in sorted(old_props - new_props):
        expr: sa.ColumnElement[Any]
        if dialect == "postgresql":
            expr = ent_table.c.properties.op("-")(sa.literal(prop))
        else:
            expr = sa.func.json_remove(ent_table.c.properties, f'$."{prop}"')
        conn.execute(sa.update(ent_table).where(ent_table.c.blueprint == ident).values(properties=expr))
    conn.execute(
        sa.update(bp_table)
        .where(bp_table.c.identifier == ident)
        .values(definition=doc, updated_at=now(), updated_by=actor)
    )
    _ensure_indexes(conn, dialect, doc)
    drop_unused_indexes(conn, dialect, indexed(old) - indexed(doc))


def check_deletable(conn: Connection, identifier: str, *, delete_entities: bool) -> int:
    """How many entities deleting blueprint ``identifier`` takes with it; 409 when it is a relation's
    target, or has entities and ``delete_entities`` was not given."""
    for other, doc in blueprint_docs(conn).items():
        if other == identifier:
            continue
        for name, rel in (doc.get("relations") or {}).items():
            if rel["target"] == identifier:
                raise Conflict(
                    f"blueprint {identifier!r} is the target of relation {other}.{name}; remove that relation first",
                    code="blueprint_in_use",
                )
    count: int = conn.execute(
        sa.select(sa.func.count()).select_from(ent_table).where(ent_table.c.blueprint == identifier)
    ).scalar_one()
    if count and not delete_entities:
        raise Conflict(
            f"blueprint {identifier!r} has {count} entities; pass delete_entities=true to delete them too",
            code="blueprint_has_entities",
            details={"entities": count},
        )
    return count


def indexed(doc: dict[str, Any]) -> set[str]:
    """The properties blueprint ``doc`` asks an index for."""
    return set(indexes.indexed_properties((doc.get("schema") or {}).get("properties") or {}))


def _ensure_indexes(conn: Connection, dialect: str, doc: dict[str, Any]) -> None:
    for prop in indexed(doc):
        indexes.ensure_property_index(conn, dialect, prop)


def drop_unused_indexes(conn: Connection, dialect: str, candidates: set[str]) -> None:
    """Drop the property indexes no blueprint asks for any more (they only slow writes).

    Index names are per property name, shared by every blueprint that indexes that name.
    """
    if not candidates:
        return
    still = {prop for doc in blueprint_docs(conn).values() for prop in indexed(doc)}
    for prop in sorted(candidates - still):
        indexes.drop_property_index(conn, dialect, prop)
