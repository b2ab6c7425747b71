"""Writes that would close a loop through a self-relation are refused, entity by entity.

A chain of one relation back to where it started (a service its own dependency, a team its own
parent) is always a data error, and it would make relatedTo traversals and required-relation
deletes ambiguous. Checked on the stored graph with the batch's new edges in place of the old.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiosk.catalog.blueprints import CompiledBlueprint
from kiosk.catalog.entities import ResolvedEntity, StoredEntity
from kiosk.catalog.results import BulkOutcome, error_result
from kiosk.catalog.validation import EntityError
from kiosk.store.tables import entities as ent_table
from kiosk.store.tables import entity_relations as rel_table

Resolved = tuple[int, ResolvedEntity, StoredEntity | None]


def reject_cycles(
    conn: Connection, compiled: CompiledBlueprint, batch: list[Resolved], outcome: BulkOutcome
) -> list[Resolved]:
    """Refuse writes that close a loop through a self-relation (A -parent-> B -parent-> A).

    A chain of one relation back to where it started (a service its own dependency, a team
    its own parent) is always a data error, and it would make relatedTo traversals and
    required-relation deletes ambiguous.
    """
    blueprint = compiled.identifier
    self_rels = [n for n, r in compiled.relations.items() if r["target"] == blueprint]
    if not self_rels:
        return batch
    rejected: set[int] = set()
    for name in self_rels:
        graph: dict[str, list[str]] = {}
        target = ent_table.alias("target")
        rows = conn.execute(
            sa.select(ent_table.c.identifier, target.c.identifier)
            .select_from(rel_table)
            .join(ent_table, ent_table.c.id == rel_table.c.entity_id)
            .join(target, target.c.id == rel_table.c.target_id)
            .where(rel_table.c.relation == name, ent_table.c.blueprint == blueprint)
        ).all()
        for src, dst in rows:
            graph.setdefault(src, []).append(dst)
        for _, f, _ in batch:
            if name in f.touched_relations:
                graph[f.identifier] = list(f.relations.get(name, []))
        for index, f, _ in batch:
            path = _find_cycle(graph, f.identifier)
            if path:
                rejected.add(index)
                outcome.errors.append(
                    error_result(
                        index,
                        f.identifier,
                        EntityError(
                            f"relation {name!r} would form a cycle: {' -> '.join(path)}",
                            code="relation_cycle",
                            field=f"relations.{name}",
                        ),
                    )
                )
    return [item for item in batch if item[0] not in rejected]


def _find_cycle(graph: dict[str, list[str]], start: str) -> list[str] | None:
    """A path start -> ... -> start through ``graph``, if there is one (iterative DFS)."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    visited: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, []):
            if nxt == start:
                return [*path, start]
            if nxt not in visited:
                visited.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None
