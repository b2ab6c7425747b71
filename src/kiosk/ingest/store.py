"""The integration's storage: entities it writes (with their datasource), the safe delete phase,
resync state, raw examples and a mapping replaced through the API.

Synchronous SQLAlchemy, like the rest of kiosk's storage; the async resync engine calls it through
``asyncio.to_thread``.

**Datasource.** Every entity a resync produces is recorded for its :class:`Source` (integration and
organisation; Port's ``$datasource``) in ``entity_datasources``, whether it was written or found
unchanged. The delete phase only ever looks at entities recorded for its own source, so nothing
written by anyone else is deleted; an entity also recorded for another source (another
organisation, another integration) loses only this source's record.

**Change detection.** :meth:`IngestStore.write` compares each entity with what the catalog holds
now and writes only new or changed entities, through the catalog's set-based write
(:func:`kiosk.catalog.writes.write_entities`) in one transaction per call, telling the catalog's
listener as a bulk upsert does. The comparison is first a quick one on the document as given
(:func:`_same_as_stored`: equal values, no parse, no validation), then, where that is not enough, on
the entity as the catalog itself would store it (:func:`_unchanged`: the same merge, defaults and
date normalisation). An unchanged entity costs a read and no write: the second resync of an
unchanged organisation updates no row. Stored entities are read per chunk of identifiers, so a
call's memory follows its batch, not the table.

**Delete phase.** :meth:`IngestStore.plan_deletion` says what a delete would do;
:meth:`IngestStore.delete` computes it again inside its one write transaction (so what it deletes
is what the database holds at that moment, and a process killed midway leaves nothing
half-deleted), refuses over ``entityDeletionThreshold`` (Ocean's rule: stale candidates / entities
recorded, refused when strictly greater), spares every candidate another staying entity points at,
and never deletes an entity the plan did not show as doomed.

**Item marks.** For an item whose version a fetcher can read cheaply (a work item's revision),
:meth:`IngestStore.write` records, in the same transaction as the entities, an
:class:`ItemMark`: the item's version and, per entity the resource made of it, what the catalog
holds right after the write (row id, ``updated_at``, number of relation edges). An item whose
entity failed is not marked. :meth:`IngestStore.unchanged_items` later answers which items of a
resource are still exactly as marked — same version, and every entity the same row, not written
since by anyone (same ``updated_at``), with the same edges (a relation target deleted drops an edge
without touching the entity) and still recorded for this source — and what entities they made.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson
import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from kiosk.catalog.blueprint_store import blueprint_docs
from kiosk.catalog.blueprints import CompiledBlueprint
from kiosk.catalog.changes import EntityChange, after_commit, announce, note_deleted
from kiosk.catalog.dates import canonical_datetime
from kiosk.catalog.entities import (
    ENTITY_KEYS,
    EntityIn,
    StoredEntity,
    merged_properties,
    parse_entity,
    resolve_entity,
    validate_properties,
)
from kiosk.catalog.rendering import chunks
from kiosk.catalog.results import error_result
from kiosk.catalog.service import Catalog
from kiosk.catalog.validation import EntityError
from kiosk.catalog.writes import write_entities
from kiosk.errors import KioskError
from kiosk.ingest.state import DeletionReport, IncrementalState, ResyncState
from kiosk.store import bulk
from kiosk.store.engine import Database
from kiosk.store.queue import aware, db_time
from kiosk.store.tables import entities as ent_table
from kiosk.store.tables import entity_datasources as ds_table
from kiosk.store.tables import entity_relations as rel_table
from kiosk.store.tables import ingest_item_marks as marks_table
from kiosk.store.tables import ingest_resource_reads as reads_table
from kiosk.store.tables import integration_examples, integration_mappings, integration_state

__all__ = [
    "DeletionPlan",
    "EntityKey",
    "IngestStore",
    "ItemMark",
    "MarkBatch",
    "Source",
    "WriteOutcome",
    "incremental_key",
]

#: The integration type in a datasource (Ocean's ``port-ocean/<type>/…``).
INTEGRATION_TYPE = "azure-devops"

#: Identifiers (or ids) per IN list: below SQLite's variable limit, few round trips.
CHUNK = 5_000

#: Entities created before the first ANALYZE on PostgreSQL (see IngestStore._refresh_statistics).
ANALYZE_FIRST = 2_000

#: (blueprint, identifier)
EntityKey = tuple[str, str]


@dataclass(frozen=True)
class Source:
    """Who writes: one integration reading one organisation (its URL)."""

    integration: str
    organization: str

    @property
    def datasource(self) -> str:
        """Port's ``$datasource`` for this source, e.g. ``kiosk/azure-devops/ado/https://dev.azure.com/acme``.

        The URL without a trailing slash, so ``…/acme`` and ``…/acme/`` are one organisation."""
        return f"kiosk/{INTEGRATION_TYPE}/{self.integration}/{self.organization.rstrip('/')}"

    @property
    def actor(self) -> str:
        """The ``createdBy``/``updatedBy`` of what it writes (the catalog keeps 200 characters)."""
        return f"kiosk/{INTEGRATION_TYPE}/{self.integration}"[:200]

    @property
    def live_actor(self) -> str:
        """The ``updatedBy`` of what its live events write: told apart from the resync's, so a
        resync running meanwhile leaves an event's newer entity as it is."""
        return f"kiosk/{INTEGRATION_TYPE}/{self.integration}/live"[:200]


@dataclass
class WriteOutcome:
    """What one :meth:`IngestStore.write` did. ``failed``: the catalog's per-entity error results
    (``identifier``, ``blueprint``, ``message``, ``code``, ``statusCode``, ``field`` when known)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    #: Of ``unchanged``: left as a live event wrote them after ``newer_since`` (see :meth:`IngestStore.write`).
    newer: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ItemMark:
    """One item a resource read in full and mapped: its key (unique in the organisation for the
    kind), its version (what the fetcher can read cheaply next time), the entities made of it."""

    item: str
    version: str
    entities: tuple[EntityKey, ...]


@dataclass(frozen=True)
class MarkBatch:
    """The marks of one :meth:`IngestStore.write`: ``resource`` is the resource's hash."""

    resource: str
    items: Sequence[ItemMark]


@dataclass(frozen=True)
class DeletionPlan:
    """What the delete phase of one source would do, as the database stood when it was planned.

    ``existing``: entities of ``blueprints`` recorded for the source; ``candidates``: those this
    resync did not produce; ``shared``: candidates another source recorded too (only this source's
    record would go); ``spared``: candidates a staying entity points at (directly or through other
    spared ones); ``doomed``: the candidates that would be deleted.
    """

    source: Source
    blueprints: frozenset[str]
    produced: Mapping[str, Collection[str]] = field(repr=False)
    existing: int
    candidates: tuple[EntityKey, ...]
    shared: tuple[EntityKey, ...]
    spared: tuple[EntityKey, ...]
    doomed: tuple[EntityKey, ...]
    doomed_ids: frozenset[int] = field(repr=False)
    shared_ids: frozenset[int] = field(repr=False)
    spared_ids: frozenset[int] = field(repr=False)

    @property
    def rate(self) -> float:
        """Ocean's deletion rate: candidates over entities recorded (0 when there are none)."""
        return len(self.candidates) / self.existing if self.existing else 0.0


class IngestStore:
    """The integration's reads and writes of the catalog and of its own tables."""

    def __init__(self, db: Database, catalog: Catalog) -> None:
        self.db = db
        self.catalog = catalog
        # Entities this store created since PostgreSQL's statistics were last refreshed, and how
        # many more it takes to refresh them again (see _refresh_statistics).
        self._created_since_analyze = 0
        self._analyze_after = ANALYZE_FIRST
        self._analyzing = threading.Lock()

    # ----------------------------------------------------------------------------- entities

    def write(
        self,
        source: Source,
        entities: Sequence[dict[str, Any]],
        *,
        merge: bool,
        create_missing: bool,
        marks: MarkBatch | None = None,
        live: bool = False,
        newer_since: datetime | None = None,
    ) -> WriteOutcome:
        """Write the new and changed ``entities`` (Port entity documents, each with its
        ``blueprint``) in one transaction, and record ``source`` for every one produced.

        ``live``: written by a live event (:attr:`Source.live_actor`). ``newer_since``: when the
        resync writing began reading; an entity a live event wrote after that is newer than what
        the resync read, and is left as it is (counted unchanged and ``newer``) — the resync must
        not undo an event that came while it ran.

        ``marks``: the items these entities were made of, recorded in the same transaction (see
        the module docstring); an item with an entity that failed, or that is not stored, is not.

        With ``merge`` (Ocean's ``enableMergeEntity``) only the keys an entity gives are compared
        and written. An identifier given twice in one call is written once: the later document
        wins, or, when merging, its keys are merged over the earlier one's.
        """
        options = _WriteOptions(merge, create_missing, live, newer_since)
        try:
            outcome = self._write_once(source, entities, options, marks)
        except _UNIQUE_VIOLATIONS:
            # Another writer (a live event, another process's resync) created one of these entities
            # between this write's look and its insert: written again, it finds and compares it.
            outcome = self._write_once(source, entities, options, marks)
        self._refresh_statistics(outcome.created)
        return outcome

    def _write_once(
        self, source: Source, entities: Sequence[dict[str, Any]], options: _WriteOptions, marks: MarkBatch | None
    ) -> WriteOutcome:
        """One attempt of :meth:`write`, in one transaction."""
        outcome = WriteOutcome()
        groups = _group(entities, options.merge, outcome.failed)
        if not groups and marks is None:
            return outcome
        changes: list[EntityChange] = []
        listener = self.catalog.listener
        with self.db.begin() as conn:
            compiled: dict[str, CompiledBlueprint] = {}
            for blueprint, docs in groups.items():
                try:
                    compiled[blueprint] = self.catalog.blueprints.load(conn, blueprint)
                except KioskError as exc:
                    outcome.failed.extend(
                        _failure(blueprint, doc.get("identifier"), exc.code, str(exc)) for doc in docs
                    )
            for blueprint in _write_order(compiled):
                self._write_blueprint(
                    conn,
                    source,
                    compiled[blueprint],
                    groups[blueprint],
                    options,
                    changes,
                    outcome,
                )
            if marks is not None:
                failed = {(f.get("blueprint"), f.get("identifier")) for f in outcome.failed}
                _save_marks(conn, source.datasource, marks.resource, marks.items, failed)
            announced = announce(listener, conn, changes)
        after_commit(listener, announced)
        return outcome

    def _refresh_statistics(self, created: int) -> None:
        """ANALYZE the entity tables on PostgreSQL once a resync has grown them a lot.

        A first resync fills tables whose statistics say "nearly empty" (autovacuum comes a
        minute later, at best); with those the planner answers "these 1,000 identifiers of this
        blueprint" by reading every entity of the blueprint and testing each against the list,
        so each batch costs more than the one before (measured: 100,000 work items in batches of
        1,000 took 93 s instead of ~10 s). Refreshed when the entities created since the last
        refresh reach a threshold that doubles each time: a handful of ANALYZEs per resync."""
        if not self.db.is_postgres:
            return
        # Writers run in several threads (the resync's, the live events'): one decides at a time,
        # and the next threshold is set before the ANALYZE (two writers deciding together had set
        # it to nought: every write then ran an ANALYZE).
        with self._analyzing:
            self._created_since_analyze += created
            if self._created_since_analyze < self._analyze_after:
                return
            self._analyze_after = 2 * self._created_since_analyze
            self._created_since_analyze = 0
            with self.db.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql("ANALYZE entities, entity_relations, entity_datasources, ingest_item_marks")

    def _write_blueprint(
        self,
        conn: Connection,
        source: Source,
        compiled: CompiledBlueprint,
        docs: list[dict[str, Any]],
        options: _WriteOptions,
        changes: list[EntityChange],
        outcome: WriteOutcome,
    ) -> None:
        """One blueprint's entities of a :meth:`write`: compare per chunk, write the changed ones
        in one set-based call (so relations between them resolve), record the source."""
        blueprint = compiled.identifier
        datasource = source.datasource
        merge = options.merge
        newer_than = (options.newer_since, source.live_actor) if options.newer_since is not None else None
        with_relations = bool(compiled.relation_names)
        dates = _datetime_properties(compiled)
        changed: list[EntityIn] = []
        # Stored id and "already recorded for this source" of every changed entity that exists.
        known: dict[str, tuple[int, bool]] = {}
        to_record: list[int] = []
        for chunk in chunks(docs, CHUNK):
            identifiers = [i for doc in chunk if isinstance(i := doc.get("identifier"), str)]
            stored = _stored(conn, blueprint, identifiers, datasource, with_relations, newer_than)
            for doc in chunk:
                identifier = doc.get("identifier")
                found = stored.get(identifier) if isinstance(identifier, str) else None
                if found is not None and found[2]:  # a live event's, newer than what was read
                    outcome.unchanged += 1
                    outcome.newer += 1
                    if not found[1]:
                        to_record.append(found[0].id)
                    continue
                # An unchanged entity costs the quick check alone: no parse, no validation.
                if found is not None and _same_as_stored(compiled, dates, doc, found[0], merge):
                    outcome.unchanged += 1
                    if not found[1]:
                        to_record.append(found[0].id)
                    continue
                try:
                    entity = parse_entity(doc, blueprint)
                except EntityError as exc:
                    outcome.failed.append(_from_result(blueprint, error_result(0, identifier, exc)))
                    continue
                if found is not None:
                    current, recorded, _ = found
                    if _unchanged(compiled, entity, current, merge):
                        outcome.unchanged += 1
                        if not recorded:
                            to_record.append(current.id)
                        continue
                    known[entity.identifier] = (current.id, recorded)
                changed.append(entity)
        if changed:
            result = write_entities(
                conn,
                self.catalog.blueprints,
                self.catalog.listener,
                compiled,
                list(enumerate(changed)),
                upsert=True,
                merge=merge,
                create_missing=options.create_missing,
                actor=source.live_actor if options.live else source.actor,
                changes=changes,
            )
            look_up: list[str] = []  # written entities whose id is not known yet: the new ones
            for written in result.entities:
                identifier = str(written["identifier"])
                if written["created"]:
                    outcome.created += 1
                else:
                    outcome.updated += 1
                stored_before = known.get(identifier)
                if stored_before is None:
                    look_up.append(identifier)
                elif not stored_before[1]:
                    to_record.append(stored_before[0])
            for chunk_ids in chunks(look_up, CHUNK):
                to_record.extend(bulk.entity_ids(conn, blueprint, chunk_ids).values())
            outcome.failed.extend(_from_result(blueprint, error) for error in result.errors)
        _record(conn, datasource, to_record)

    # ----------------------------------------------------------------------------- item marks

    def unchanged_items(
        self, source: Source, resource: str, versions: Mapping[str, str]
    ) -> dict[str, tuple[EntityKey, ...]]:
        """Those of ``versions`` (item key → version read now) whose mark for ``resource`` says
        the same version and whose entities are still exactly as the mark left them, with the
        entities each made. Any doubt (no mark, a missing entity, a write since) leaves the item
        out: it is then read in full."""
        return self._held(source, resource, versions, lambda wanted, marked: wanted == marked)

    def unchanged_as_marked(
        self, source: Source, resource: str, suffixes: Mapping[str, str]
    ) -> dict[str, tuple[EntityKey, ...]]:
        """As :meth:`unchanged_items` for items Azure says did not change since their marks were
        made (no version was read): any marked version ending with the item's suffix (the part of
        a version that depends on more than the item, such as its project's fingerprint)."""
        return self._held(source, resource, suffixes, lambda suffix, marked: marked.endswith(suffix))

    def _held(
        self, source: Source, resource: str, wanted: Mapping[str, str], matches: Callable[[str, str], bool]
    ) -> dict[str, tuple[EntityKey, ...]]:
        datasource = source.datasource
        out: dict[str, tuple[EntityKey, ...]] = {}
        with self.db.connect() as conn:
            sql = _MARK_QUERIES["postgresql" if conn.dialect.name == "postgresql" else "sqlite"][1]
            for chunk in chunks(list(wanted), CHUNK):
                rows = _driver_rows(conn, sql, (datasource, resource, chunk))
                candidates = {
                    item: _json(entities) for item, version, entities in rows if matches(wanted[item], version)
                }
                # Each marked entity is looked up by the row id its mark holds (the primary key),
                # and must still be that blueprint and identifier, updated then, with those edges.
                stamps = _stamps_by_id(conn, datasource, [e[2] for entities in candidates.values() for e in entities])
                for item, entities in candidates.items():
                    if all(stamps.get(e[2]) == (e[0], e[1], e[3], e[4]) for e in entities):
                        out[item] = tuple((str(e[0]), str(e[1])) for e in entities)
        return out

    def read_began(self, source: Source, resource: str) -> datetime | None:
        """When the last complete read of ``resource`` began, by Azure's clock (None: never)."""
        with self.db.connect() as conn:
            found = conn.execute(
                sa.select(reads_table.c.began_at).where(
                    reads_table.c.datasource == source.datasource, reads_table.c.resource == resource
                )
            ).scalar_one_or_none()
        return None if found is None else aware(found)

    def save_read_began(self, source: Source, resource: str, began_at: datetime) -> None:
        """Record that a complete read of ``resource`` began at ``began_at`` (Azure's clock): every
        mark of an item it listed is exact as of then."""
        with self.db.begin() as conn:
            conn.execute(
                sa.delete(reads_table).where(
                    reads_table.c.datasource == source.datasource, reads_table.c.resource == resource
                )
            )
            conn.execute(
                sa.insert(reads_table).values(datasource=source.datasource, resource=resource, began_at=began_at)
            )

    def has_marks(self, source: Source, resource: str) -> bool:
        """Whether ``resource`` holds any mark for ``source`` (none: a first resync, or a changed
        mapping, where asking items' versions first would only add requests)."""
        with self.db.connect() as conn:
            found = conn.execute(
                sa.select(marks_table.c.item)
                .where(marks_table.c.datasource == source.datasource, marks_table.c.resource == resource)
                .limit(1)
            ).first()
        return found is not None

    def forget_items(self, source: Source, resource: str, keep: Collection[str]) -> int:
        """Delete the marks of ``resource`` for items not in ``keep`` (gone from Azure); how many."""
        datasource = source.datasource
        with self.db.begin() as conn:
            stale = [
                item
                for item in conn.execute(
                    sa.select(marks_table.c.item).where(
                        marks_table.c.datasource == datasource, marks_table.c.resource == resource
                    )
                ).scalars()
                if item not in keep
            ]
            _delete_item_marks(conn, datasource, resource, stale)
        return len(stale)

    def forget_resources(self, source: Source, keep: Collection[str]) -> int:
        """Delete the marks of every resource of ``source`` not in ``keep`` (a mapping since
        changed); how many rows."""
        with self.db.begin() as conn:
            result = conn.execute(
                sa.delete(marks_table).where(
                    marks_table.c.datasource == source.datasource, marks_table.c.resource.not_in(sorted(keep))
                )
            )
            conn.execute(
                sa.delete(reads_table).where(
                    reads_table.c.datasource == source.datasource, reads_table.c.resource.not_in(sorted(keep))
                )
            )
        return int(result.rowcount or 0)

    def blueprints_fingerprint(self) -> str:
        """A hash of every blueprint's definition: part of a resource's hash, so a blueprint
        changed since the marks were made (a property's default, a relation) voids them."""
        with self.db.connect() as conn:
            docs = blueprint_docs(conn)
        return hashlib.blake2b(_canonical(docs), digest_size=16).hexdigest()

    # ----------------------------------------------------------------------------- live events

    def marked_entities(
        self, source: Source, resource: str, items: Collection[str]
    ) -> dict[str, tuple[EntityKey, ...]]:
        """The entities each of ``items`` made for ``resource``, as its mark (left by the resync or
        a live event) records them, whatever its version: how a live event finds the entities of an
        item Azure no longer has (a deleted work item) under whatever identifier the mapping gave."""
        out: dict[str, tuple[EntityKey, ...]] = {}
        with self.db.connect() as conn:
            for chunk in chunks(sorted(set(items)), CHUNK):
                rows = conn.execute(
                    sa.select(marks_table.c.item, marks_table.c.entities).where(
                        marks_table.c.datasource == source.datasource,
                        marks_table.c.resource == resource,
                        marks_table.c.item.in_(chunk),
                    )
                )
                for item, entities in rows:
                    out[str(item)] = tuple((str(e[0]), str(e[1])) for e in _json(entities))
        return out

    def related_entities(self, source: Source, blueprint: str, targets: Collection[EntityKey]) -> set[EntityKey]:
        """The entities of ``blueprint`` recorded for ``source`` with a relation to any of
        ``targets``: how a live event finds the children of a repository Azure no longer has (its
        branches, pull requests … cannot be listed any more)."""
        target = ent_table.alias("target")
        by_blueprint: dict[str, list[str]] = {}
        for target_blueprint, identifier in targets:
            by_blueprint.setdefault(target_blueprint, []).append(identifier)
        out: set[EntityKey] = set()
        with self.db.connect() as conn:
            for target_blueprint, identifiers in sorted(by_blueprint.items()):
                for chunk in chunks(sorted(set(identifiers)), CHUNK):
                    rows = conn.execute(
                        sa.select(ent_table.c.blueprint, ent_table.c.identifier)
                        .distinct()
                        .join(ds_table, ds_table.c.entity_id == ent_table.c.id)
                        .join(rel_table, rel_table.c.entity_id == ent_table.c.id)
                        .join(target, target.c.id == rel_table.c.target_id)
                        .where(
                            ds_table.c.datasource == source.datasource,
                            ent_table.c.blueprint == blueprint,
                            target.c.blueprint == target_blueprint,
                            target.c.identifier.in_(chunk),
                        )
                    )
                    out.update((str(b), str(i)) for b, i in rows)
        return out

    def delete_entities(
        self, source: Source, keys: Collection[EntityKey], *, resource: str | None = None, items: Collection[str] = ()
    ) -> tuple[int, int]:
        """Delete the entities ``keys`` recorded for ``source``, in one transaction, the catalog's
        listener told: an entity another source recorded too only loses this source's record, an
        entity not recorded for ``source`` (someone else's) is left alone. The marks of ``items``
        for ``resource`` go in the same transaction (those items are gone). (deleted, unrecorded)."""
        datasource = source.datasource
        changes: list[EntityChange] = []
        listener = self.catalog.listener
        by_blueprint: dict[str, list[str]] = {}
        for blueprint, identifier in keys:
            by_blueprint.setdefault(blueprint, []).append(identifier)
        with self.db.begin() as conn:
            recorded: list[int] = []
            for blueprint, identifiers in sorted(by_blueprint.items()):
                for chunk in chunks(sorted(set(identifiers)), CHUNK):
                    recorded.extend(
                        conn.execute(
                            sa.select(ent_table.c.id)
                            .join(ds_table, ds_table.c.entity_id == ent_table.c.id)
                            .where(
                                ds_table.c.datasource == datasource,
                                ent_table.c.blueprint == blueprint,
                                ent_table.c.identifier.in_(chunk),
                            )
                        ).scalars()
                    )
            shared = _recorded_elsewhere(conn, datasource, sorted(recorded))
            doomed = sorted(set(recorded) - shared)
            for chunk_ids in chunks(doomed, CHUNK):
                note_deleted(conn, self.catalog.blueprints, listener, ent_table.c.id.in_(list(chunk_ids)), changes)
                _delete_entities(conn, chunk_ids)
            for chunk_ids in chunks(sorted(shared), CHUNK):
                conn.execute(
                    sa.delete(ds_table).where(ds_table.c.datasource == datasource, ds_table.c.entity_id.in_(chunk_ids))
                )
            if resource is not None:
                _delete_item_marks(conn, datasource, resource, sorted(set(items)))
            announced = announce(listener, conn, changes)
        after_commit(listener, announced)
        return len(doomed), len(shared)

    # ----------------------------------------------------------------------------- delete phase

    def plan_deletion(
        self, source: Source, produced: Mapping[str, Collection[str]], blueprints: Collection[str]
    ) -> DeletionPlan:
        """What deleting the entities of ``blueprints`` recorded for ``source`` and not in
        ``produced`` (blueprint → identifiers this resync produced, all resources) would do."""
        with self.db.connect() as conn:
            return _plan(conn, source, produced, frozenset(blueprints))

    def delete_stale(
        self,
        source: Source,
        produced: Mapping[str, Collection[str]],
        blueprints: Collection[str],
        *,
        threshold: float,
        delete_dependents: bool,
        written_since: datetime | None = None,
    ) -> DeletionReport:
        """The delete phase of a resync, planned and run in one transaction: what
        :meth:`plan_deletion` then :meth:`delete` do, with the plan made once, inside it.
        ``written_since``: when the resync began reading; an entity written after that (by a live
        event that came meanwhile) is newer than what the resync read, and is kept."""
        return self._delete(source, produced, frozenset(blueprints), None, threshold, delete_dependents, written_since)

    def delete(
        self, source: Source, plan: DeletionPlan, *, threshold: float, delete_dependents: bool
    ) -> DeletionReport:
        """Run the delete phase ``plan`` describes, in one transaction.

        The plan is computed again inside the transaction; only entities doomed both then and now
        are deleted, so an entity someone pointed at (or another source recorded) in between is
        kept. Refused (``ran=False``, nothing changed) when the candidates are more than
        ``threshold`` of the entities recorded (Ocean's ``entityDeletionThreshold``, ``≤`` passes).

        ``delete_dependents`` (Ocean's ``deleteDependentEntities``) decides what happens when an
        entity outside the plan has come to *require* a doomed one since it was made: kiosk never
        deletes another writer's entity, so with True the target is spared and the rest deleted;
        with False the delete phase is refused, as Port refuses to delete an entity others require
        without ``delete_dependents``. Dependents inside the plan go with what they depend on.
        """
        if source != plan.source:
            raise ValueError("the plan was made for another source")
        return self._delete(source, plan.produced, plan.blueprints, plan, threshold, delete_dependents)

    def _delete(
        self,
        source: Source,
        produced: Mapping[str, Collection[str]],
        blueprints: frozenset[str],
        planned: DeletionPlan | None,
        threshold: float,
        delete_dependents: bool,
        written_since: datetime | None = None,
    ) -> DeletionReport:
        """:meth:`delete`'s work; with no earlier plan, the one made inside the transaction is it."""
        changes: list[EntityChange] = []
        listener = self.catalog.listener
        with self.db.begin() as conn:
            now = _plan(conn, source, produced, blueprints, written_since)
            plan = planned if planned is not None else now
            report = DeletionReport(candidates=len(now.candidates), existing=now.existing)
            if now.rate > threshold:
                report.spared = len(now.spared)
                report.reason = (
                    f"{len(now.candidates)} of {now.existing} entities would be deleted "
                    f"({now.rate:.0%}), over entityDeletionThreshold {threshold:g}"
                )
                return report
            doomed = now.doomed_ids & plan.doomed_ids
            newly_spared = plan.doomed_ids & now.spared_ids
            if newly_spared and not delete_dependents:
                dependent = _required_referrer(conn, newly_spared, doomed)
                if dependent is not None:
                    report.spared = len(now.spared)
                    report.reason = (
                        f"entity {dependent[1]!r} of blueprint {dependent[0]!r} now requires an entity this "
                        "delete phase would remove; deleteDependentEntities is false"
                    )
                    return report
            ordered = sorted(doomed)
            for chunk in chunks(ordered, CHUNK):
                where = ent_table.c.id.in_(list(chunk))
                note_deleted(conn, self.catalog.blueprints, listener, where, changes)
                _delete_entities(conn, chunk)
            shared = sorted(now.shared_ids & (plan.doomed_ids | plan.shared_ids))
            for chunk in chunks(shared, CHUNK):
                conn.execute(
                    sa.delete(ds_table).where(
                        ds_table.c.datasource == source.datasource, ds_table.c.entity_id.in_(chunk)
                    )
                )
            announced = announce(listener, conn, changes)
            report.ran = True
            report.deleted = len(ordered)
            report.spared = len(now.candidates) - len(ordered) - len(now.shared)
        after_commit(listener, announced)
        return report

    # ----------------------------------------------------------------------------- state, examples, mapping

    def save_state(self, state: ResyncState) -> None:
        """Keep ``state`` as the integration's latest resync (replacing the one before)."""
        with self.db.begin() as conn:
            _upsert(
                conn,
                integration_state,
                {"integration": state.integration, "state": state.to_json(), "updated_at": _now()},
                "integration",
            )

    def load_state(self, integration: str) -> ResyncState | None:
        with self.db.connect() as conn:
            row = conn.execute(
                sa.select(integration_state.c.state).where(integration_state.c.integration == integration)
            ).first()
        return None if row is None else ResyncState.from_json(row.state)

    def save_incremental_state(self, state: IncrementalState) -> None:
        """Keep ``state`` as the integration's latest incremental pass, beside (never over) its resync's."""
        with self.db.begin() as conn:
            _upsert(
                conn,
                integration_state,
                {"integration": incremental_key(state.integration), "state": state.to_json(), "updated_at": _now()},
                "integration",
            )

    def load_incremental_state(self, integration: str) -> IncrementalState | None:
        with self.db.connect() as conn:
            row = conn.execute(
                sa.select(integration_state.c.state).where(
                    integration_state.c.integration == incremental_key(integration)
                )
            ).first()
        return None if row is None else IncrementalState.from_json(row.state)

    def save_examples(self, integration: str, kind: str, examples: list[dict[str, Any]]) -> None:
        """Keep ``examples`` (raw items) as the kind's examples, replacing the ones before."""
        with self.db.begin() as conn:
            _upsert(
                conn,
                integration_examples,
                {"integration": integration, "kind": kind, "examples": examples, "updated_at": _now()},
                "integration",
                "kind",
            )

    def examples(self, integration: str, kind: str) -> list[dict[str, Any]]:
        """The kind's stored raw examples; empty when none were kept."""
        with self.db.connect() as conn:
            row = conn.execute(
                sa.select(integration_examples.c.examples).where(
                    integration_examples.c.integration == integration, integration_examples.c.kind == kind
                )
            ).first()
        return [] if row is None else list(row.examples)

    def save_mapping(self, integration: str, mapping: dict[str, Any], *, actor: str | None) -> None:
        """Keep ``mapping`` as the one replaced through the API (it wins over kiosk.yaml's)."""
        with self.db.begin() as conn:
            _upsert(
                conn,
                integration_mappings,
                {"integration": integration, "mapping": mapping, "updated_at": _now(), "updated_by": actor},
                "integration",
            )

    def load_mapping(self, integration: str) -> tuple[dict[str, Any], datetime, str | None] | None:
        """The mapping replaced through the API, when and by whom; None when there is none."""
        with self.db.connect() as conn:
            row = conn.execute(
                sa.select(integration_mappings).where(integration_mappings.c.integration == integration)
            ).first()
        if row is None:
            return None
        return dict(row.mapping), _aware(row.updated_at), row.updated_by

    def clear_mapping(self, integration: str) -> None:
        """Forget the mapping replaced through the API (kiosk.yaml's applies again)."""
        with self.db.begin() as conn:
            conn.execute(sa.delete(integration_mappings).where(integration_mappings.c.integration == integration))


# --------------------------------------------------------------------------------------------------
# Writing


def incremental_key(integration: str) -> str:
    """The ``integration_state`` row of ``integration``'s incremental passes: ``incremental:`` and a
    digest of the identifier (identifiers hold no ``:``, so no integration's own row has this key,
    and the key fits the column whatever the identifier's length)."""
    return "incremental:" + hashlib.sha256(integration.encode()).hexdigest()[:40]


def _group(
    entities: Sequence[dict[str, Any]], merge: bool, failed: list[dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """Entity documents by blueprint, in first-seen order, one per identifier."""
    by_blueprint: dict[str, dict[Any, dict[str, Any]]] = {}
    for doc in entities:
        blueprint = doc.get("blueprint") if isinstance(doc, dict) else None
        if not isinstance(blueprint, str) or not blueprint:
            identifier = doc.get("identifier") if isinstance(doc, dict) else None
            failed.append(_failure(None, identifier, "invalid_entity", "an entity must name its blueprint"))
            continue
        docs = by_blueprint.setdefault(blueprint, {})
        key = doc.get("identifier")
        key = key if isinstance(key, str) else id(doc)  # no identifier: parse_entity refuses it alone
        earlier = docs.get(key)
        docs[key] = _merged(earlier, doc) if merge and earlier is not None else doc
    return {bp: list(docs.values()) for bp, docs in by_blueprint.items()}


def _merged(earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """Two partial documents of one entity, as merging one after the other would store them."""
    out = {**earlier, **later}
    for key in ("properties", "relations"):
        if isinstance(earlier.get(key), dict) and isinstance(later.get(key), dict):
            out[key] = {**earlier[key], **later[key]}
    return out


def _write_order(compiled: Mapping[str, CompiledBlueprint]) -> list[str]:
    """Blueprints with relation targets in the same call after those targets (given order
    otherwise, and for cycles), so a repository's relation to a project written in the same call
    finds the project."""
    order = list(compiled)
    needs = {
        bp: {rel["target"] for rel in c.relations.values() if rel.get("target") in compiled and rel["target"] != bp}
        for bp, c in compiled.items()
    }
    out: list[str] = []
    done: set[str] = set()
    while len(out) < len(order):
        ready = [bp for bp in order if bp not in done and needs[bp] <= done]
        if not ready:  # a cycle between blueprints: the rest in the given order
            ready = [bp for bp in order if bp not in done]
        for bp in ready:
            out.append(bp)
            done.add(bp)
    return out


_STORED_SQL = (
    "SELECT e.id, e.identifier, e.title, e.icon, e.team, e.properties, d.entity_id, "
    "(e.updated_at > {param} AND e.updated_by = {param}) FROM entities AS e "
    "LEFT JOIN entity_datasources AS d ON d.entity_id = e.id AND d.datasource = {param} "
    "WHERE e.blueprint = {param} AND e.identifier {identifiers}"
)
_EDGES_SQL = (
    "SELECT r.entity_id, r.relation, t.identifier FROM entity_relations AS r "
    "JOIN entities AS t ON t.id = r.target_id WHERE r.entity_id {ids} "
    "ORDER BY r.entity_id, r.relation, r.position"
)
_STORED = {
    "postgresql": (
        _STORED_SQL.format(param="%s", identifiers="= ANY(%s)"),
        _EDGES_SQL.format(ids="= ANY(%s)"),
    ),
    "sqlite": (
        _STORED_SQL.format(param="?", identifiers="IN (SELECT value FROM json_each(?))"),
        _EDGES_SQL.format(ids="IN (SELECT value FROM json_each(?))"),
    ),
}


def _stored(
    conn: Connection,
    blueprint: str,
    identifiers: Sequence[str],
    datasource: str,
    with_relations: bool,
    newer_than: tuple[datetime, str] | None = None,
) -> dict[str, tuple[StoredEntity, bool, bool]]:
    """The stored entities among ``identifiers`` (with their relations), whether each is recorded
    for ``datasource`` yet, and whether it was written after ``newer_than``'s time by its actor:
    one query, plus one for the edges.

    On the driver's own cursor, as :mod:`kiosk.store.bulk` writes: this read runs for every
    entity of every resync, and SQLAlchemy's per-row result handling would cost more than the
    query. A list parameter is an array on PostgreSQL, JSON text for ``json_each`` on SQLite."""
    postgres = conn.dialect.name == "postgresql"
    entities_sql, edges_sql = _STORED["postgresql" if postgres else "sqlite"]

    def as_list(values: Sequence[Any]) -> Any:
        return list(values) if postgres else orjson.dumps(list(values)).decode()

    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        since, actor = newer_than if newer_than is not None else (_NEVER, "")
        cursor.execute(entities_sql, (db_time(conn, since), actor, datasource, blueprint, as_list(identifiers)))
        out: dict[str, tuple[StoredEntity, bool, bool]] = {}
        by_id: dict[int, StoredEntity] = {}
        for entity_id, identifier, title, icon, team, properties, recorded, newer in cursor.fetchall():
            stored = StoredEntity(entity_id, identifier, title, icon, _json(team) or [], _json(properties) or {})
            out[identifier] = (stored, recorded is not None, bool(newer))
            by_id[entity_id] = stored
        if with_relations and by_id:
            cursor.execute(edges_sql, (as_list(list(by_id)),))
            for entity_id, relation, target in cursor.fetchall():
                by_id[entity_id].relations.setdefault(relation, []).append(target)
    finally:
        cursor.close()
    return out


#: What an insert finding another writer's row raises: SQLAlchemy's, or the driver's own where
#: kiosk writes on the driver's cursor (PostgreSQL's COPY, SQLite's executemany).
_UNIQUE_VIOLATIONS: Final = (IntegrityError, psycopg.errors.IntegrityError, sqlite3.IntegrityError)

#: A time no entity is written after (no entity is newer than it).
_NEVER: Final = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class _WriteOptions:
    """How :meth:`IngestStore.write` writes (see its docstring)."""

    merge: bool
    create_missing: bool
    live: bool
    newer_since: datetime | None


def _json(value: Any) -> Any:
    """A JSON column as the driver returns it: text on SQLite, already parsed on PostgreSQL."""
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


def _canonical(value: Any) -> bytes:
    # orjson tells 1, 1.0 and true apart, which == does not; sorted keys make key order irrelevant.
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _given_relations(value: Any, many: bool) -> list[str] | None:
    """A relation value as the catalog stores it (target identifiers, in order, once each);
    None for a shape only the catalog's own parse can judge (a list for a single relation...).
    Identifiers are not checked here: only a value equal to what is stored passes, and stored
    identifiers are valid ones."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if many and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(dict.fromkeys(value))
    return None


def _datetime_properties(compiled: CompiledBlueprint) -> frozenset[str]:
    """The blueprint's date-time properties: the catalog stores them normalised."""
    props = (compiled.document.get("schema") or {}).get("properties") or {}
    return frozenset(name for name, spec in props.items() if spec.get("format") == "date-time")


def _team(value: Any) -> Any:
    """A team value as the catalog stores it (None: none; one name: a list of one)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


def _same_as_stored(
    compiled: CompiledBlueprint, dates: frozenset[str], doc: dict[str, Any], stored: StoredEntity, merge: bool
) -> bool:
    """The quick check of the common case, on the document as given (not parsed): does it give
    exactly what is stored (the keys it gives, when merging; date-time properties ``dates``
    compared as the catalog stores them)? Neither parsed nor validated, so True is only said where
    writing it could not change anything: every value it gives equals a stored one, which the
    catalog accepted. Anything else goes to the parse and :func:`_unchanged`, the exact check."""
    if not doc.keys() <= ENTITY_KEYS:
        return False
    if ("title" in doc or not merge) and doc.get("title") != stored.title:
        return False
    if ("icon" in doc or not merge) and doc.get("icon") != stored.icon:
        return False
    if ("team" in doc or not merge) and _team(doc.get("team")) != stored.team:
        return False
    given = doc.get("properties", {})
    given_relations = doc.get("relations", {})
    if type(given) is not dict or type(given_relations) is not dict:
        return False
    properties = merged_properties(stored.properties if merge else None, given)
    for name in dates & given.keys():
        value = properties.get(name)
        if isinstance(value, str) and value != stored.properties.get(name):
            try:
                properties[name] = canonical_datetime(value)
            except ValueError:
                return False
    try:
        if _canonical(properties) != _canonical(stored.properties):
            return False
    except orjson.JSONEncodeError:  # deeper than orjson writes, or not JSON: the parse says why
        return False
    relations = dict(stored.relations) if merge else {}
    for name, value in given_relations.items():
        if name not in compiled.relation_names:
            return False
        targets = _given_relations(value, compiled.relation_many[name])
        if targets is None:
            return False
        relations[name] = targets
    return {k: v for k, v in relations.items() if v} == stored.relations


def _unchanged(compiled: CompiledBlueprint, entity: EntityIn, stored: StoredEntity, merge: bool) -> bool:
    """Would writing ``entity`` leave ``stored`` as it is? Decided on the entity as the catalog
    would store it (merged or replaced, defaults filled, date-times normalised), so a mapping
    that omits a defaulted property, or writes a date in another offset, is still unchanged.
    An entity the catalog would refuse counts as changed: the write reports its error."""
    try:
        final = resolve_entity(compiled, entity, stored, merge=merge)
        validate_properties(compiled, final.properties)
    except EntityError:
        return False
    return (
        final.title == stored.title
        and final.icon == stored.icon
        and final.team == stored.team
        and final.relations == stored.relations
        and _canonical(final.properties) == _canonical(stored.properties)
    )


def _record(conn: Connection, datasource: str, entity_ids: Sequence[int]) -> None:
    """Record ``datasource`` for the entities (one statement; rows already there are kept)."""
    if not entity_ids:
        return
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "INSERT INTO entity_datasources (datasource, entity_id) SELECT %s, unnest(%s::integer[]) "
            "ON CONFLICT DO NOTHING",
            (datasource, list(entity_ids)),
        )
    else:
        conn.exec_driver_sql(
            "INSERT OR IGNORE INTO entity_datasources (datasource, entity_id) SELECT ?, value FROM json_each(?)",
            (datasource, orjson.dumps(list(entity_ids)).decode()),
        )


_STAMPS_SQL = (
    "SELECT e.id, e.identifier, e.updated_at, "
    "(SELECT count(*) FROM entity_relations AS r WHERE r.entity_id = e.id) FROM entities AS e "
    "JOIN entity_datasources AS d ON d.entity_id = e.id AND d.datasource = {param} "
    "WHERE e.blueprint = {param} AND e.identifier {identifiers}"
)
_STAMPS_BY_ID_SQL = (
    "SELECT e.id, e.blueprint, e.identifier, e.updated_at, "
    "(SELECT count(*) FROM entity_relations AS r WHERE r.entity_id = e.id) FROM entities AS e "
    "JOIN entity_datasources AS d ON d.entity_id = e.id AND d.datasource = {param} "
    "WHERE e.id {identifiers}"
)
_MARKS_SQL = (
    "SELECT item, version, entities{as_text} FROM ingest_item_marks "
    "WHERE datasource = {param} AND resource = {param} AND item {identifiers}"
)
# The marks' entities come back as text on both engines and are parsed by orjson (:func:`_json`):
# on PostgreSQL that is a third faster than the driver parsing JSONB, on every item of a resync.
_MARK_QUERIES = {
    "postgresql": (
        _STAMPS_SQL.format(param="%s", identifiers="= ANY(%s)"),
        _MARKS_SQL.format(param="%s", identifiers="= ANY(%s)", as_text="::text"),
        _STAMPS_BY_ID_SQL.format(param="%s", identifiers="= ANY(%s)"),
    ),
    "sqlite": (
        _STAMPS_SQL.format(param="?", identifiers="IN (SELECT value FROM json_each(?))"),
        _MARKS_SQL.format(param="?", identifiers="IN (SELECT value FROM json_each(?))", as_text=""),
        _STAMPS_BY_ID_SQL.format(param="?", identifiers="IN (SELECT value FROM json_each(?))"),
    ),
}


def _driver_rows(conn: Connection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    """Rows of ``sql`` on the driver's own cursor (a list parameter as in :func:`_stored`): these
    reads run for every item of every resync, where SQLAlchemy's row handling would dominate."""
    postgres = conn.dialect.name == "postgresql"
    bound = tuple(
        (list(p) if postgres else orjson.dumps(list(p)).decode()) if isinstance(p, (list, tuple)) else p for p in params
    )
    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        cursor.execute(sql, bound)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _stamp_time(value: Any) -> str:
    """``updated_at`` as the driver gives it, as text: a datetime on PostgreSQL, text on SQLite."""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _entity_stamps(
    conn: Connection, datasource: str, keys: Sequence[EntityKey]
) -> dict[EntityKey, tuple[int, str, int]]:
    """(row id, ``updated_at``, edge count) of those of ``keys`` stored and recorded for
    ``datasource``, per blueprint and chunk of identifiers."""
    by_blueprint: dict[str, list[str]] = {}
    for blueprint, identifier in keys:
        by_blueprint.setdefault(blueprint, []).append(identifier)
    sql = _MARK_QUERIES["postgresql" if conn.dialect.name == "postgresql" else "sqlite"][0]
    out: dict[EntityKey, tuple[int, str, int]] = {}
    for blueprint, identifiers in by_blueprint.items():
        for chunk in chunks(sorted(set(identifiers)), CHUNK):
            for entity_id, identifier, updated_at, count in _driver_rows(conn, sql, (datasource, blueprint, chunk)):
                out[(blueprint, identifier)] = (int(entity_id), _stamp_time(updated_at), int(count))
    return out


def _stamps_by_id(conn: Connection, datasource: str, ids: Sequence[int]) -> dict[int, tuple[str, str, str, int]]:
    """(blueprint, identifier, ``updated_at``, edge count) of the entities with these row ids that
    are stored and recorded for ``datasource``, by row id."""
    sql = _MARK_QUERIES["postgresql" if conn.dialect.name == "postgresql" else "sqlite"][2]
    out: dict[int, tuple[str, str, str, int]] = {}
    for chunk in chunks(sorted(set(ids)), CHUNK):
        for entity_id, blueprint, identifier, updated_at, count in _driver_rows(conn, sql, (datasource, chunk)):
            out[int(entity_id)] = (blueprint, identifier, _stamp_time(updated_at), int(count))
    return out


def _save_marks(
    conn: Connection, datasource: str, resource: str, marks: Sequence[ItemMark], failed: Collection[Any]
) -> None:
    """Record ``marks`` (replacing the items' earlier ones) with their entities' stamps as the
    catalog holds them now; an item one of whose entities ``failed`` or is not stored is left
    unmarked (its earlier mark deleted), so the next resync reads it in full."""
    if not marks:
        return
    stamps = _entity_stamps(conn, datasource, [key for mark in marks for key in mark.entities])
    rows: list[dict[str, Any]] = []
    unmarked: list[str] = []
    for mark in marks:
        if all(key in stamps and key not in failed for key in mark.entities):
            entities = [[*key, *stamps[key]] for key in mark.entities]
            rows.append(
                {
                    "datasource": datasource,
                    "resource": resource,
                    "item": mark.item,
                    "version": mark.version,
                    "entities": entities,
                }
            )
        else:
            unmarked.append(mark.item)
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    for chunk in chunks(rows, CHUNK):
        statement = insert(marks_table)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["datasource", "resource", "item"],
                set_={"version": statement.excluded.version, "entities": statement.excluded.entities},
            ),
            list(chunk),
        )
    _delete_item_marks(conn, datasource, resource, unmarked)


def _delete_item_marks(conn: Connection, datasource: str, resource: str, items: Sequence[str]) -> None:
    """Delete the marks of these ``items`` of ``resource`` (so each is read in full next time), in
    chunks small enough for any driver's parameter limit."""
    for chunk in chunks(items, CHUNK):
        conn.execute(
            sa.delete(marks_table).where(
                marks_table.c.datasource == datasource,
                marks_table.c.resource == resource,
                marks_table.c.item.in_(chunk),
            )
        )


def _failure(blueprint: str | None, identifier: Any, code: str, message: str) -> dict[str, Any]:
    return {
        "identifier": identifier if isinstance(identifier, str) else None,
        "blueprint": blueprint,
        "code": code,
        "message": message,
    }


def _from_result(blueprint: str, result: dict[str, Any]) -> dict[str, Any]:
    """A catalog error result (without its request index) for :attr:`WriteOutcome.failed`."""
    out = {k: v for k, v in result.items() if k != "index"}
    out["blueprint"] = blueprint
    out["code"] = result["error"]
    return out


# --------------------------------------------------------------------------------------------------
# The delete phase


def _plan(
    conn: Connection,
    source: Source,
    produced: Mapping[str, Collection[str]],
    blueprints: frozenset[str],
    written_since: datetime | None = None,
) -> DeletionPlan:
    """What a delete phase would do; an entity written after ``written_since`` is no candidate."""
    datasource = source.datasource
    kept = {bp: frozenset(idents) for bp, idents in produced.items()}
    existing = 0
    candidates: dict[int, EntityKey] = {}
    if blueprints:
        rows = conn.execute(
            sa.select(ent_table.c.id, ent_table.c.blueprint, ent_table.c.identifier, ent_table.c.updated_at)
            .join(ds_table, ds_table.c.entity_id == ent_table.c.id)
            .where(ds_table.c.datasource == datasource, ent_table.c.blueprint.in_(sorted(blueprints)))
        )
        nothing: frozenset[str] = frozenset()
        for entity_id, blueprint, identifier, updated_at in rows:
            existing += 1
            if written_since is not None and aware(updated_at) > written_since:
                continue  # written while the resync ran: newer than what it read
            if identifier not in kept.get(blueprint, nothing):
                candidates[entity_id] = (blueprint, identifier)
    shared = _recorded_elsewhere(conn, datasource, sorted(candidates))
    doomed = set(candidates) - shared
    spared = _spare_referenced(conn, doomed)
    return DeletionPlan(
        source=source,
        blueprints=blueprints,
        produced=produced,
        existing=existing,
        candidates=tuple(sorted(candidates.values())),
        shared=tuple(sorted(candidates[i] for i in shared)),
        spared=tuple(sorted(candidates[i] for i in spared)),
        doomed=tuple(sorted(candidates[i] for i in doomed)),
        doomed_ids=frozenset(doomed),
        shared_ids=frozenset(shared),
        spared_ids=frozenset(spared),
    )


def _recorded_elsewhere(conn: Connection, datasource: str, entity_ids: Sequence[int]) -> set[int]:
    """Those of ``entity_ids`` another datasource recorded too."""
    out: set[int] = set()
    for chunk in chunks(entity_ids, CHUNK):
        out.update(
            conn.execute(
                sa.select(ds_table.c.entity_id)
                .where(ds_table.c.datasource != datasource, ds_table.c.entity_id.in_(list(chunk)))
                .distinct()
            ).scalars()
        )
    return out


def _spare_referenced(conn: Connection, doomed: set[int]) -> set[int]:
    """Take out of ``doomed`` (in place) every entity a staying entity points at, and what those
    point at in turn; return them. A staying entity is any entity not doomed, whoever wrote it."""
    spared: set[int] = set()
    frontier: set[int] = set()
    for chunk in chunks(sorted(doomed), CHUNK):
        edges = conn.execute(
            sa.select(rel_table.c.entity_id, rel_table.c.target_id).where(rel_table.c.target_id.in_(list(chunk)))
        )
        frontier.update(target for source_id, target in edges if source_id not in doomed)
    while frontier:
        doomed -= frontier
        spared |= frontier
        reached: set[int] = set()
        for chunk in chunks(sorted(frontier), CHUNK):
            reached.update(
                conn.execute(sa.select(rel_table.c.target_id).where(rel_table.c.entity_id.in_(list(chunk)))).scalars()
            )
        frontier = reached & doomed
    return spared


def _required_referrer(conn: Connection, targets: Iterable[int], doomed: set[int] | frozenset[int]) -> EntityKey | None:
    """An entity outside ``doomed`` whose *required* relation points at one of ``targets``."""
    required = {
        (bp, name)
        for bp, doc in blueprint_docs(conn).items()
        for name, rel in (doc.get("relations") or {}).items()
        if rel.get("required")
    }
    if not required:
        return None
    for chunk in chunks(sorted(targets), CHUNK):
        rows = conn.execute(
            sa.select(ent_table.c.id, ent_table.c.blueprint, ent_table.c.identifier, rel_table.c.relation)
            .join(rel_table, rel_table.c.entity_id == ent_table.c.id)
            .where(rel_table.c.target_id.in_(list(chunk)))
            .order_by(ent_table.c.id)
        )
        for entity_id, blueprint, identifier, relation in rows:
            if entity_id not in doomed and (blueprint, relation) in required:
                return blueprint, identifier
    return None


def _delete_entities(conn: Connection, entity_ids: Sequence[int]) -> None:
    """Delete entity rows; their edges and datasource records go with them (cascade)."""
    conn.execute(sa.delete(ent_table).where(ent_table.c.id.in_(list(entity_ids))))


# --------------------------------------------------------------------------------------------------
# Small tables


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive values (kiosk stores UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _upsert(conn: Connection, table: sa.Table, values: dict[str, Any], *keys: str) -> None:
    """Insert ``values`` or replace the row with the same ``keys``."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(table).values(**values)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=list(keys), set_={k: statement.excluded[k] for k in values if k not in keys}
        )
    )
