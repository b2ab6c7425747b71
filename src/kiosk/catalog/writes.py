"""The set-based entity write: validate a batch against its blueprint and store it, in the
caller's transaction.

Every entity write goes through :func:`write_entities`, one entity or 20,000: a few IN queries
and ``executemany`` statements per call, whatever the batch size, because that is what makes tens
of thousands of entities per second possible on SQLite. Invalid entities do not stop valid ones:
each gets its result (an error or what was stored), in request order.

This is the bulk route's hot path (``bench.bulk_upsert``): the per-entity work stays in plain
module-level functions called from the loops here; an indirection added per entity shows there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiosk.catalog import rendering
from kiosk.catalog.blueprint_store import CompiledBlueprints, now
from kiosk.catalog.blueprints import CompiledBlueprint
from kiosk.catalog.changes import EntityChange, EntityListener, note_written, watched
from kiosk.catalog.cycles import Resolved, reject_cycles
from kiosk.catalog.entities import EntityIn, StoredEntity, resolve_entity, validate_properties
from kiosk.catalog.rendering import chunks, relations_of
from kiosk.catalog.results import BulkOutcome, error_result
from kiosk.catalog.validation import EntityError
from kiosk.store import bulk
from kiosk.store.tables import entities as ent_table

#: Entities per stage of a pipelined bulk write (see :func:`_write_pipelined`): small enough that
#: the first stage's storage starts early, large enough that each statement is big.
PIPELINE_CHUNK = 2_000


def write_entities(
    conn: Connection,
    blueprints: CompiledBlueprints,
    listener: EntityListener | None,
    compiled: CompiledBlueprint,
    batch: Sequence[tuple[int, EntityIn]],
    *,
    upsert: bool,
    merge: bool,
    create_missing: bool,
    actor: str | None,
    changes: list[EntityChange],
) -> BulkOutcome:
    """Validate and store ``batch`` of (request index, entity), unique identifiers, inside the
    caller's transaction. Results carry the request index; successes come back in order.

    The changes ``listener`` watches are appended to ``changes`` (the caller announces them)."""
    blueprint = compiled.identifier
    outcome = BulkOutcome()
    wanted = watched(listener, conn, blueprint)
    identifiers = [e.identifier for _, e in batch]
    before = rendering.entity_docs(conn, blueprints, blueprint, identifiers) if "updated" in wanted else {}
    existing = _existing(conn, blueprint, identifiers, with_data=merge)
    rel_defs = compiled.relations
    self_relations = {name for name, rel in rel_defs.items() if rel["target"] == blueprint}

    pipelined = conn.dialect.name == "sqlite" and not self_relations and not create_missing
    if pipelined and len(batch) > PIPELINE_CHUNK:
        outcome.entities = _write_pipelined(conn, compiled, batch, existing, upsert, merge, actor, outcome)
    else:
        outcome.entities = _write_at_once(
            conn,
            blueprints,
            listener,
            compiled,
            batch,
            existing,
            self_relations,
            upsert=upsert,
            merge=merge,
            create_missing=create_missing,
            actor=actor,
            outcome=outcome,
            changes=changes,
        )
    outcome.errors.sort(key=lambda r: r["index"])
    if wanted:
        written = [
            (str(r["identifier"]), bool(r["created"]))
            for r in outcome.entities
            if ("created" if r["created"] else "updated") in wanted
        ]
        note_written(conn, blueprints, blueprint, written, before, actor, changes)
    return outcome


def _existing(
    conn: Connection, blueprint: str, identifiers: Sequence[str], *, with_data: bool
) -> dict[str, StoredEntity]:
    """The stored entities among ``identifiers``; with their data (and relations) when merging."""
    if not with_data:
        return {
            ident: StoredEntity(eid, ident, None, None, [], {})
            for ident, eid in bulk.entity_ids(conn, blueprint, identifiers).items()
        }
    out: dict[str, StoredEntity] = {}
    cols = [
        ent_table.c.id,
        ent_table.c.identifier,
        ent_table.c.title,
        ent_table.c.icon,
        ent_table.c.team,
        ent_table.c.properties,
    ]
    for chunk in chunks(identifiers):
        for r in conn.execute(
            sa.select(*cols).where(ent_table.c.blueprint == blueprint, ent_table.c.identifier.in_(chunk))
        ):
            out[r.identifier] = StoredEntity(r.id, r.identifier, r.title, r.icon, r.team, r.properties)
    if out:
        rels = relations_of(conn, [e.id for e in out.values()])
        for stored in out.values():
            stored.relations = rels.get(stored.id, {})
    return out


def _target_ids(conn: Connection, blueprint: str, identifiers: Iterable[str]) -> dict[str, int]:
    return bulk.entity_ids(conn, blueprint, sorted(set(identifiers)))


def _write_pipelined(
    conn: Connection,
    compiled: CompiledBlueprint,
    batch: Sequence[tuple[int, EntityIn]],
    existing: dict[str, StoredEntity],
    upsert: bool,
    merge: bool,
    actor: str | None,
    outcome: BulkOutcome,
) -> list[dict[str, Any]]:
    """Validate one stage of entities while the previous stage is being stored.

    A bulk call's time is Python (resolving and validating, GIL held) plus SQLite (storing,
    GIL released for each statement). Here a second thread stores stage k on the request's
    connection while this thread validates stage k+1, so on two cores the call takes about the
    longer of the two instead of their sum. Only this thread decides what is valid, and only
    the writer thread touches ``conn`` until it is done, so the transaction is used by one
    thread at a time, as a connection must be.

    SQLite only: there a stage is stored by three statements that run in C without the GIL. On
    PostgreSQL the COPY stream is written row by row in Python, and the two threads then fight
    over the GIL (measured: a 20,000-entity call went from ~2.6 s to ~6-20 s), so PostgreSQL
    keeps the one-pass path.

    Used without self-relations (a stage could point at an entity a later stage refuses) and
    without ``create_missing_related_entities`` (targets are created only for accepted
    entities); the relation targets are looked up once, up front, from what the entities name
    (and, when merging, what they are related to now).
    """
    rel_defs = compiled.relations
    wanted: dict[str, set[str]] = {}
    for _, entity in batch:
        for name, value in (entity.relations or {}).items():
            rel = rel_defs.get(name)
            if rel is None:
                continue  # unknown relation: resolve_entity refuses the entity
            targets = wanted.setdefault(rel["target"], set())
            if isinstance(value, str):
                targets.add(value)
            elif isinstance(value, list):
                targets.update(t for t in value if isinstance(t, str))
    if merge:  # a merged entity keeps the relations it has, and they are checked again
        for current in existing.values():
            for name, idents in current.relations.items():
                if name in rel_defs:
                    wanted.setdefault(rel_defs[name]["target"], set()).update(idents)
    known = {bp: _target_ids(conn, bp, idents) for bp, idents in wanted.items()}
    by_relation = {name: known.get(rel["target"], {}) for name, rel in rel_defs.items()}
    at = now()
    no_self: set[str] = set()  # no self-relations on this path (see above)
    stored: list[Future[list[dict[str, Any]]]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kiosk-bulk-writer") as writer:
        for start in range(0, len(batch), PIPELINE_CHUNK):
            stage = [
                item
                for index, entity in batch[start : start + PIPELINE_CHUNK]
                if (item := _resolve_one(compiled, index, entity, existing, upsert, merge, outcome)) is not None
                and _targets_exist(compiled, item, by_relation, no_self, no_self, outcome)
            ]
            if stored and stored[-1].done():
                stored[-1].result()  # a failed stage stops the call at once, not at the end
            stored.append(writer.submit(_store, conn, compiled, stage, by_relation, no_self, at, actor))
        return [result for future in stored for result in future.result()]


def _write_at_once(
    conn: Connection,
    blueprints: CompiledBlueprints,
    listener: EntityListener | None,
    compiled: CompiledBlueprint,
    batch: Sequence[tuple[int, EntityIn]],
    existing: dict[str, StoredEntity],
    self_relations: set[str],
    *,
    upsert: bool,
    merge: bool,
    create_missing: bool,
    actor: str | None,
    outcome: BulkOutcome,
    changes: list[EntityChange],
) -> list[dict[str, Any]]:
    """Validate the whole batch, then store it: the general path (self-relations, created targets)."""
    blueprint = compiled.identifier
    rel_defs = compiled.relations
    resolved = [
        item
        for index, entity in batch
        if (item := _resolve_one(compiled, index, entity, existing, upsert, merge, outcome)) is not None
    ]
    # Cycles first: an entity refused here must not count as an existing relation target.
    resolved = reject_cycles(conn, compiled, resolved, outcome)

    # Relation targets: look them up per target blueprint, create the missing ones if asked.
    wanted: dict[str, set[str]] = {}
    for _, final, _ in resolved:
        for name, targets in final.relations.items():
            wanted.setdefault(rel_defs[name]["target"], set()).update(targets)
    known: dict[str, dict[str, int]] = {bp: _target_ids(conn, bp, idents) for bp, idents in wanted.items()}
    if create_missing:
        pending = {final.identifier for _, final, _ in resolved}
        for target_bp, idents in wanted.items():
            todo = idents - pending if target_bp == blueprint else idents
            made = _create_missing_targets(conn, blueprints, target_bp, todo, known[target_bp], actor)
            if made and "created" in watched(listener, conn, target_bp):
                note_written(conn, blueprints, target_bp, [(i, True) for i in made], {}, actor, changes)
    by_relation = {name: known.get(rel["target"], {}) for name, rel in rel_defs.items()}
    # With a self-relation, entities of this very batch may be targets; refusing one can orphan
    # another that points at it, so repeat until nothing more is refused.
    still_ok = resolved
    while True:
        alive = {final.identifier for _, final, _ in still_ok} if self_relations else set()
        survivors = [
            item for item in still_ok if _targets_exist(compiled, item, by_relation, self_relations, alive, outcome)
        ]
        if len(survivors) == len(still_ok):
            break
        still_ok = survivors
    return _store(conn, compiled, still_ok, by_relation, self_relations, now(), actor)


def _store(
    conn: Connection,
    compiled: CompiledBlueprint,
    items: list[Resolved],
    by_relation: dict[str, dict[str, int]],
    self_relations: set[str],
    at: datetime,
    actor: str | None,
) -> list[dict[str, Any]]:
    """Write validated entities and their edges; one result per entity, in order."""
    blueprint = compiled.identifier
    ids = bulk.insert_entities(
        conn,
        blueprint,
        [(f.identifier, f.title, f.icon, f.team, f.properties) for _, f, s in items if s is None],
        at,
        actor,
    )
    updated = [(s.id, f.title, f.icon, f.team, f.properties) for _, f, s in items if s is not None]
    bulk.update_entities(conn, updated, at, actor)
    for _, f, s in items:
        if s is not None:
            ids[f.identifier] = s.id
    # Edges: drop the touched relations of updated entities, then insert the new edges.
    if updated:
        for name in compiled.relations:
            touched = [s.id for _, f, s in items if s is not None and name in f.touched_relations]
            bulk.delete_edges(conn, name, touched)
    for name in self_relations:  # self-relations may point at entities stored just now
        by_relation[name].update(ids)
    edges = [
        (ids[f.identifier], name, by_relation[name][t], position)
        for _, f, _ in items
        for name, targets in f.relations.items()
        if name in f.touched_relations
        for position, t in enumerate(targets)
    ]
    bulk.insert_edges(conn, edges)
    return [{"identifier": f.identifier, "index": i, "created": s is None} for i, f, s in items]


def _create_missing_targets(
    conn: Connection,
    blueprints: CompiledBlueprints,
    target_bp: str,
    idents: set[str],
    known: dict[str, int],
    actor: str | None,
) -> list[str]:
    """Create bare target entities, as Port does, where the target blueprint allows an empty entity;
    the identifiers created.

    Where it does not (required properties or relations), nothing is created and the
    referring entity is refused with a message naming the missing target.
    """
    missing = sorted(i for i in idents if i not in known)
    if not missing:
        return []
    target = blueprints.load(conn, target_bp)
    if target.required_properties or target.required_relations:
        return []
    props_template: dict[str, Any] = {}
    validate_properties(target, props_template)  # fills in defaults
    rows: list[bulk.EntityRow] = [(ident, None, None, [], dict(props_template)) for ident in missing]
    known.update(bulk.insert_entities(conn, target_bp, rows, now(), actor))
    return missing


def _resolve_one(
    compiled: CompiledBlueprint,
    index: int,
    entity: EntityIn,
    existing: dict[str, StoredEntity],
    upsert: bool,
    merge: bool,
    outcome: BulkOutcome,
) -> Resolved | None:
    """The entity as it will be stored, or None after recording why it cannot be."""
    stored = existing.get(entity.identifier)
    try:
        if stored is not None and not upsert:
            raise EntityError(
                "an entity with this identifier already exists; pass upsert=true to overwrite it",
                code="entity_exists",
                status=409,
            )
        final = resolve_entity(compiled, entity, stored, merge=merge)
        validate_properties(compiled, final.properties)
    except EntityError as exc:
        outcome.errors.append(error_result(index, entity.identifier, exc))
        return None
    return index, final, stored


def _targets_exist(
    compiled: CompiledBlueprint,
    item: Resolved,
    by_relation: dict[str, dict[str, int]],
    self_relations: set[str],
    alive: set[str],
    outcome: BulkOutcome,
) -> bool:
    """Do all of the entity's relation targets exist? If not, record the first missing one."""
    final = item[1]
    problem = _missing_target(final.relations, by_relation, self_relations, alive)
    if problem is None:
        return True
    name, target = problem
    outcome.errors.append(
        error_result(
            item[0],
            final.identifier,
            EntityError(
                f"relation {name!r} points at {target!r}, which is not an entity of blueprint "
                f"{compiled.relations[name]['target']!r} (pass create_missing_related_entities=true to create it)",
                code="related_entity_not_found",
                field=f"relations.{name}",
            ),
        )
    )
    return False


def _missing_target(
    relations: dict[str, list[str]],
    by_relation: dict[str, dict[str, int]],
    self_relations: set[str],
    alive: set[str],
) -> tuple[str, str] | None:
    """The first (relation, target) that points at nothing, or None."""
    for name, targets in relations.items():
        known = by_relation[name]
        for t in targets:
            if t not in known and not (name in self_relations and t in alive):
                return name, t
    return None
