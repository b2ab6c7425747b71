"""Entities as the API shows them: a row, its blueprint's relations, its edges, read in sets."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiosk.catalog.blueprint_store import CompiledBlueprints
from kiosk.catalog.dates import iso_timestamp
from kiosk.catalog.entities import render_relations
from kiosk.store.tables import entities as ent_table
from kiosk.store.tables import entity_relations as rel_table

#: Rows per IN (...) list: below SQLite's variable limit, large enough to keep round trips few.
CHUNK = 5_000

# Statements on the paths a single request takes (an action run reads its entity), built once:
# building a select costs more than SQLite takes to run it (SQLAlchemy caches the compiled SQL,
# not the construction), and an alias built per call re-derives its column collection each time.
_TARGET = ent_table.alias("target")
_RELATIONS_OF = (
    sa.select(rel_table.c.entity_id, rel_table.c.relation, _TARGET.c.identifier)
    .join(_TARGET, _TARGET.c.id == rel_table.c.target_id)
    .where(rel_table.c.entity_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(rel_table.c.entity_id, rel_table.c.relation, rel_table.c.position)
)
ENTITY_BY_IDENTIFIER = sa.select(ent_table).where(
    ent_table.c.blueprint == sa.bindparam("blueprint"), ent_table.c.identifier == sa.bindparam("identifier")
)


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def relations_of(conn: Connection, ids: Sequence[int]) -> dict[int, dict[str, list[str]]]:
    """The edges of entities ``ids``: entity id → relation → target identifiers, in order."""
    out: dict[int, dict[str, list[str]]] = {}
    for chunk in chunks(ids):
        rows = conn.execute(_RELATIONS_OF, {"ids": list(chunk)})
        for entity_id, relation, ident in rows:
            out.setdefault(entity_id, {}).setdefault(relation, []).append(ident)
    return out


def render_entities(
    conn: Connection,
    blueprints: CompiledBlueprints,
    rows: Sequence[Any],
    docs: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Rows as the API shows them; ``docs``: blueprint documents the caller already loaded."""
    if not rows:
        return []
    docs = dict(docs or {})
    for bp in {r.blueprint for r in rows} - docs.keys():
        docs[bp] = blueprints.load(conn, bp).document
    # No relations defined, no edges to read: a query (a round trip on PostgreSQL) saved.
    related = [r.id for r in rows if docs[r.blueprint].get("relations")]
    rels = relations_of(conn, related) if related else {}
    out = []
    for r in rows:
        bp_doc = docs[r.blueprint]
        out.append(
            {
                "identifier": r.identifier,
                "title": r.title,
                "icon": r.icon,
                "blueprint": r.blueprint,
                "team": r.team,
                "properties": r.properties,
                "relations": render_relations(bp_doc, rels.get(r.id, {})),
                "createdAt": iso_timestamp(r.created_at),
                "createdBy": r.created_by,
                "updatedAt": iso_timestamp(r.updated_at),
                "updatedBy": r.updated_by,
            }
        )
    return out


def entity_docs(
    conn: Connection, blueprints: CompiledBlueprints, blueprint: str, identifiers: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The stored entities among ``identifiers``, as the API shows them, by identifier."""
    rows: list[Any] = []
    for chunk in chunks(identifiers):
        rows.extend(
            conn.execute(
                sa.select(ent_table).where(ent_table.c.blueprint == blueprint, ent_table.c.identifier.in_(chunk))
            ).all()
        )
    return {doc["identifier"]: doc for doc in render_entities(conn, blueprints, rows)}
