"""The catalog service: every read and write of blueprints and entities goes through here.

It owns the transactions: a request is applied in one transaction or not at all, so a rejected
request leaves the database unchanged. Bulk writes are set-based (a few IN queries and
``executemany`` statements per call, whatever the batch size) because that is what makes tens of
thousands of entities per second possible on SQLite.

Entity changes can be watched (automations do): an :class:`EntityListener` is told of every
entity created, updated or deleted *inside* the write's transaction, so whatever it stores commits
or rolls back with the change itself, and is told again once the transaction committed. The
listener first says which kinds of change to a blueprint it wants; the "before" documents cost a
query, so they are read only when it wants updates (a bulk upsert nobody watches pays one small
query for asking).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiosk.catalog import indexes, search
from kiosk.catalog.blueprints import CompiledBlueprint, parse_blueprint
from kiosk.catalog.entities import (
    EntityIn,
    ResolvedEntity,
    StoredEntity,
    parse_entity,
    render_relations,
    resolve_entity,
    validate_properties,
)
from kiosk.catalog.validation import EntityError
from kiosk.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, ValidationFailed
from kiosk.json_depth import MAX_JSON_DEPTH, exceeds_depth
from kiosk.store import bulk
from kiosk.store.engine import Database
from kiosk.store.tables import blueprints as bp_table
from kiosk.store.tables import entities as ent_table
from kiosk.store.tables import entity_relations as rel_table

MAX_BULK = 20_000
#: Entities per stage of a pipelined bulk write (see :meth:`Catalog._write_pipelined`): small
#: enough that the first stage's storage starts early, large enough that each statement is big.
PIPELINE_CHUNK = 2_000
#: Rows per IN (...) list: below SQLite's variable limit, large enough to keep round trips few.
CHUNK = 5_000
MAX_PAGE = 10_000
DEFAULT_PAGE = 1_000

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
_BLUEPRINT_VERSION = sa.select(bp_table.c.definition, bp_table.c.updated_at).where(
    bp_table.c.identifier == sa.bindparam("identifier")
)
_ENTITY_BY_IDENTIFIER = sa.select(ent_table).where(
    ent_table.c.blueprint == sa.bindparam("blueprint"), ent_table.c.identifier == sa.bindparam("identifier")
)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes; they were stored as UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"e{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("e"):
            raise ValueError(raw)
        return int(raw[1:])
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the 'from' cursor is not one this server gave out", code="invalid_cursor") from None


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


@dataclass
class BulkOutcome:
    """One result per entity, in request order: ``entities`` succeeded, ``errors`` did not."""

    entities: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


class Catalog:
    """Blueprints and entities over one :class:`Database`.

    ``listener`` (settable after construction, as the app wires it once the automations exist)
    hears of every entity change; see :class:`EntityListener`.
    """

    def __init__(self, db: Database, *, listener: EntityListener | None = None) -> None:
        self.db = db
        self.listener = listener
        self._compiled: dict[str, tuple[str, CompiledBlueprint]] = {}
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------- blueprints

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

    def _load_blueprint(self, conn: Connection, identifier: str) -> CompiledBlueprint:
        row = conn.execute(_BLUEPRINT_VERSION, {"identifier": identifier}).first()
        if row is None:
            raise NotFound(f"blueprint {identifier!r} does not exist", code="blueprint_not_found")
        return self._compiled_for(row.definition, row.updated_at)

    def _blueprint_docs(self, conn: Connection) -> dict[str, dict[str, Any]]:
        rows = conn.execute(sa.select(bp_table.c.identifier, bp_table.c.definition))
        return {r.identifier: r.definition for r in rows}

    def _render_blueprint(self, row: Any) -> dict[str, Any]:
        doc = dict(row.definition)
        doc.update(
            createdAt=_iso(row.created_at),
            updatedAt=_iso(row.updated_at),
            createdBy=row.created_by,
            updatedBy=row.updated_by,
        )
        return doc

    def list_blueprints(self) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(bp_table).order_by(bp_table.c.identifier))
            return [self._render_blueprint(r) for r in rows]

    def get_blueprint(self, identifier: str) -> dict[str, Any]:
        with self.db.connect() as conn:
            row = conn.execute(sa.select(bp_table).where(bp_table.c.identifier == identifier)).first()
        if row is None:
            raise NotFound(f"blueprint {identifier!r} does not exist", code="blueprint_not_found")
        return self._render_blueprint(row)

    def _check_relation_targets(self, conn: Connection, doc: dict[str, Any]) -> None:
        known = set(self._blueprint_docs(conn)) | {doc["identifier"]}
        for name, rel in (doc.get("relations") or {}).items():
            if rel["target"] not in known:
                raise ValidationFailed(
                    f"blueprint {doc['identifier']!r}: relations.{name}.target: "
                    f"blueprint {rel['target']!r} does not exist",
                    code="invalid_blueprint",
                    details={"field": f"relations.{name}.target"},
                )

    def create_blueprint(self, raw: Any, *, actor: str | None = None) -> dict[str, Any]:
        doc = parse_blueprint(raw).to_document()
        with self.db.begin() as conn:
            exists = conn.execute(
                sa.select(bp_table.c.identifier).where(bp_table.c.identifier == doc["identifier"])
            ).first()
            if exists:
                raise Conflict(f"blueprint {doc['identifier']!r} already exists", code="blueprint_exists")
            self._check_relation_targets(conn, doc)
            now = _now()
            conn.execute(
                sa.insert(bp_table).values(
                    identifier=doc["identifier"],
                    definition=doc,
                    created_at=now,
                    updated_at=now,
                    created_by=actor,
                    updated_by=actor,
                )
            )
            self._ensure_indexes(conn, doc)
        return self.get_blueprint(doc["identifier"])

    def _ensure_indexes(self, conn: Connection, doc: dict[str, Any]) -> None:
        for prop in _indexed(doc):
            indexes.ensure_property_index(conn, self.db.dialect, prop)

    def _drop_unused_indexes(self, conn: Connection, candidates: set[str]) -> None:
        """Drop the property indexes no blueprint asks for any more (they only slow writes).

        Index names are per property name, shared by every blueprint that indexes that name.
        """
        if not candidates:
            return
        still = {prop for doc in self._blueprint_docs(conn).values() for prop in _indexed(doc)}
        for prop in sorted(candidates - still):
            indexes.drop_property_index(conn, self.db.dialect, prop)

    def _write_blueprint(self, conn: Connection, old: dict[str, Any], doc: dict[str, Any], actor: str | None) -> None:
        """Replace a stored blueprint and drop the data its new version no longer defines."""
        self._check_relation_targets(conn, doc)
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
            if self.db.is_postgres:
                expr = ent_table.c.properties.op("-")(sa.literal(prop))
            else:
                expr = sa.func.json_remove(ent_table.c.properties, f'$."{prop}"')
            conn.execute(sa.update(ent_table).where(ent_table.c.blueprint == ident).values(properties=expr))
        conn.execute(
            sa.update(bp_table)
            .where(bp_table.c.identifier == ident)
            .values(definition=doc, updated_at=_now(), updated_by=actor)
        )
        self._ensure_indexes(conn, doc)
        self._drop_unused_indexes(conn, _indexed(old) - _indexed(doc))

    def _stored_definition(self, conn: Connection, identifier: str) -> dict[str, Any]:
        row = conn.execute(sa.select(bp_table.c.definition).where(bp_table.c.identifier == identifier)).first()
        if row is None:
            raise NotFound(f"blueprint {identifier!r} does not exist", code="blueprint_not_found")
        return dict(row.definition)

    def replace_blueprint(self, identifier: str, raw: Any, *, actor: str | None = None) -> dict[str, Any]:
        if isinstance(raw, dict):
            raw = {**raw, "identifier": raw.get("identifier", identifier)}
        doc = parse_blueprint(raw).to_document()
        if doc["identifier"] != identifier:
            raise ValidationFailed("a blueprint's identifier cannot be changed", code="invalid_blueprint")
        with self.db.begin() as conn:
            old = self._stored_definition(conn, identifier)
            self._write_blueprint(conn, old, doc, actor)
        return self.get_blueprint(identifier)

    def patch_blueprint(self, identifier: str, patch: Any, *, actor: str | None = None) -> dict[str, Any]:
        if not isinstance(patch, dict):
            raise ValidationFailed("a blueprint patch must be a JSON object", code="invalid_blueprint")
        with self.db.begin() as conn:
            old = self._stored_definition(conn, identifier)
            merged = {**old, **patch}
            if "schema" in patch and isinstance(patch["schema"], dict):
                old_schema = old.get("schema") or {}
                merged["schema"] = {**old_schema, **patch["schema"]}
            doc = parse_blueprint(merged).to_document()
            if doc["identifier"] != identifier:
                raise ValidationFailed("a blueprint's identifier cannot be changed", code="invalid_blueprint")
            self._write_blueprint(conn, old, doc, actor)
        return self.get_blueprint(identifier)

    def upsert_blueprint(self, raw: Any, *, actor: str | None = None) -> Literal["created", "updated", "unchanged"]:
        """Create or replace; used by ``kiosk apply`` so applying twice changes nothing."""
        doc = parse_blueprint(raw).to_document()
        with self.db.begin() as conn:
            row = conn.execute(
                sa.select(bp_table.c.definition).where(bp_table.c.identifier == doc["identifier"])
            ).first()
            if row is None:
                self._check_relation_targets(conn, doc)
                now = _now()
                conn.execute(
                    sa.insert(bp_table).values(
                        identifier=doc["identifier"],
                        definition=doc,
                        created_at=now,
                        updated_at=now,
                        created_by=actor,
                        updated_by=actor,
                    )
                )
                self._ensure_indexes(conn, doc)
                return "created"
            if row.definition == doc:
                return "unchanged"
            self._write_blueprint(conn, dict(row.definition), doc, actor)
            return "updated"

    def delete_blueprint(self, identifier: str, *, delete_entities: bool = False) -> None:
        with self.db.begin() as conn:
            self._stored_definition(conn, identifier)
            for other, doc in self._blueprint_docs(conn).items():
                if other == identifier:
                    continue
                for name, rel in (doc.get("relations") or {}).items():
                    if rel["target"] == identifier:
                        raise Conflict(
                            f"blueprint {identifier!r} is the target of relation {other}.{name}; "
                            "remove that relation first",
                            code="blueprint_in_use",
                        )
            count = conn.execute(
                sa.select(sa.func.count()).select_from(ent_table).where(ent_table.c.blueprint == identifier)
            ).scalar_one()
            if count and not delete_entities:
                raise Conflict(
                    f"blueprint {identifier!r} has {count} entities; pass delete_entities=true to delete them too",
                    code="blueprint_has_entities",
                    details={"entities": count},
                )
            old = self._stored_definition(conn, identifier)
            changes: list[EntityChange] = []
            if count:
                self._note_deleted(conn, ent_table.c.blueprint == identifier, changes)
            conn.execute(sa.delete(ent_table).where(ent_table.c.blueprint == identifier))
            conn.execute(sa.delete(bp_table).where(bp_table.c.identifier == identifier))
            self._drop_unused_indexes(conn, _indexed(old))
            announced = self._announce(conn, changes)
        self._compiled.pop(identifier, None)
        self._after_commit(announced)

    # ----------------------------------------------------------------------------- entity reads

    def _relations_of(self, conn: Connection, ids: Sequence[int]) -> dict[int, dict[str, list[str]]]:
        out: dict[int, dict[str, list[str]]] = {}
        for chunk in _chunks(ids):
            rows = conn.execute(_RELATIONS_OF, {"ids": list(chunk)})
            for entity_id, relation, ident in rows:
                out.setdefault(entity_id, {}).setdefault(relation, []).append(ident)
        return out

    def _render_entities(
        self, conn: Connection, rows: Sequence[Any], docs: dict[str, dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """Rows as the API shows them; ``docs``: blueprint documents the caller already loaded."""
        if not rows:
            return []
        docs = dict(docs or {})
        for bp in {r.blueprint for r in rows} - docs.keys():
            docs[bp] = self._load_blueprint(conn, bp).document
        # No relations defined, no edges to read: a query (a round trip on PostgreSQL) saved.
        related = [r.id for r in rows if docs[r.blueprint].get("relations")]
        rels = self._relations_of(conn, related) if related else {}
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
                    "createdAt": _iso(r.created_at),
                    "createdBy": r.created_by,
                    "updatedAt": _iso(r.updated_at),
                    "updatedBy": r.updated_by,
                }
            )
        return out

    def get_entity(self, blueprint: str, identifier: str, *, conn: Connection | None = None) -> dict[str, Any]:
        """One entity as the API shows it; on ``conn`` when the caller reads more on one connection."""
        if conn is None:
            with self.db.connect() as own:
                return self.get_entity(blueprint, identifier, conn=own)
        compiled = self._load_blueprint(conn, blueprint)
        row = conn.execute(_ENTITY_BY_IDENTIFIER, {"blueprint": blueprint, "identifier": identifier}).first()
        if row is None:
            raise NotFound(
                f"entity {identifier!r} of blueprint {blueprint!r} does not exist",
                code="entity_not_found",
            )
        return self._render_entities(conn, [row], {blueprint: compiled.document})[0]

    def list_entities(
        self, blueprint: str, *, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        limit = _check_limit(limit)
        after = decode_cursor(cursor)
        with self.db.connect() as conn:
            self._load_blueprint(conn, blueprint)
            rows = conn.execute(
                sa.select(ent_table)
                .where(ent_table.c.blueprint == blueprint, ent_table.c.id > after)
                .order_by(ent_table.c.id)
                .limit(limit + 1)
            ).all()
            page = rows[:limit]
            nxt = encode_cursor(page[-1].id) if len(rows) > limit else None
            return self._render_entities(conn, page), nxt

    def search(
        self, raw_query: Any, *, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        limit = _check_limit(limit)
        after = decode_cursor(cursor)
        query = search.parse_query(raw_query)
        where = search.compile_query(query, self.db)
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(ent_table).where(where, ent_table.c.id > after).order_by(ent_table.c.id).limit(limit + 1)
            ).all()
            page = rows[:limit]
            nxt = encode_cursor(page[-1].id) if len(rows) > limit else None
            return self._render_entities(conn, page), nxt

    # ----------------------------------------------------------------------------- entity writes

    def upsert_entity(
        self,
        blueprint: str,
        raw: Any,
        *,
        upsert: bool = False,
        merge: bool = False,
        create_missing: bool = False,
        actor: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Port's ``POST /v1/blueprints/{bp}/entities``; returns the entity and whether it was created."""
        changes: list[EntityChange] = []
        with self.db.begin() as conn:
            compiled = self._load_blueprint(conn, blueprint)
            try:
                entity = parse_entity(raw, blueprint)
            except EntityError as exc:
                raise _as_kiosk_error(exc, raw.get("identifier") if isinstance(raw, dict) else None) from None
            outcome = self._write_entities(
                conn,
                compiled,
                [(0, entity)],
                upsert=upsert,
                merge=merge,
                create_missing=create_missing,
                actor=actor,
                changes=changes,
            )
            if outcome.errors:
                err = outcome.errors[0]
                raise _error_from_result(err)
            created = bool(outcome.entities[0]["created"])
            row = conn.execute(
                sa.select(ent_table).where(
                    ent_table.c.blueprint == blueprint, ent_table.c.identifier == entity.identifier
                )
            ).one()
            rendered = self._render_entities(conn, [row])[0]
            announced = self._announce(conn, changes)
        self._after_commit(announced)
        return rendered, created

    def patch_entity(
        self,
        blueprint: str,
        identifier: str,
        raw: Any,
        *,
        create_missing: bool = False,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Port's PATCH: merge the given fields into an existing entity."""
        with self.db.begin() as conn:
            compiled = self._load_blueprint(conn, blueprint)
            try:
                entity = parse_entity(raw, blueprint, identifier=identifier)
            except EntityError as exc:
                raise _as_kiosk_error(exc, identifier) from None
            exists = conn.execute(
                sa.select(ent_table.c.id).where(
                    ent_table.c.blueprint == blueprint, ent_table.c.identifier == identifier
                )
            ).first()
            if exists is None:
                raise NotFound(
                    f"entity {identifier!r} of blueprint {blueprint!r} does not exist",
                    code="entity_not_found",
                )
            changes: list[EntityChange] = []
            outcome = self._write_entities(
                conn,
                compiled,
                [(0, entity)],
                upsert=True,
                merge=True,
                create_missing=create_missing,
                actor=actor,
                changes=changes,
            )
            if outcome.errors:
                raise _error_from_result(outcome.errors[0])
            row = conn.execute(sa.select(ent_table).where(ent_table.c.id == exists.id)).one()
            rendered = self._render_entities(conn, [row])[0]
            announced = self._announce(conn, changes)
        self._after_commit(announced)
        return rendered

    def delete_entity(self, blueprint: str, identifier: str, *, delete_dependents: bool = False) -> None:
        with self.db.begin() as conn:
            self._load_blueprint(conn, blueprint)
            row = conn.execute(
                sa.select(ent_table.c.id).where(
                    ent_table.c.blueprint == blueprint, ent_table.c.identifier == identifier
                )
            ).first()
            if row is None:
                raise NotFound(
                    f"entity {identifier!r} of blueprint {blueprint!r} does not exist",
                    code="entity_not_found",
                )
            doomed = self._dependents_closure(conn, row.id, delete_dependents)
            changes: list[EntityChange] = []
            self._note_deleted(conn, ent_table.c.id.in_(doomed), changes)
            conn.execute(sa.delete(ent_table).where(ent_table.c.id.in_(doomed)))
            announced = self._announce(conn, changes)
        self._after_commit(announced)

    def _dependents_closure(self, conn: Connection, root: int, delete_dependents: bool) -> list[int]:
        """Entities whose *required* relation points at a doomed entity must go too (or block)."""
        docs = self._blueprint_docs(conn)
        required = {
            (bp, name) for bp, d in docs.items() for name, r in (d.get("relations") or {}).items() if r.get("required")
        }
        doomed = {root}
        frontier = [root]
        while frontier:
            rows = conn.execute(
                sa.select(ent_table.c.id, ent_table.c.blueprint, ent_table.c.identifier, rel_table.c.relation)
                .join(rel_table, rel_table.c.entity_id == ent_table.c.id)
                .where(rel_table.c.target_id.in_(frontier))
            ).all()
            frontier = []
            for r in rows:
                if (r.blueprint, r.relation) in required and r.id not in doomed:
                    if not delete_dependents:
                        raise Conflict(
                            f"entity {r.identifier!r} of blueprint {r.blueprint!r} requires this entity through "
                            f"relation {r.relation!r}; pass delete_dependents=true to delete it too",
                            code="entity_has_dependents",
                        )
                    doomed.add(r.id)
                    frontier.append(r.id)
        return sorted(doomed)

    def bulk_upsert(
        self,
        blueprint: str,
        raws: Any,
        *,
        upsert: bool = False,
        merge: bool = False,
        create_missing: bool = False,
        actor: str | None = None,
    ) -> BulkOutcome:
        """Port's bulk route: one result per entity; invalid entities do not stop valid ones."""
        if not isinstance(raws, list):
            raise ValidationFailed("'entities' must be a list", code="invalid_request", details={"field": "entities"})
        if len(raws) > MAX_BULK:
            raise PayloadTooLarge(
                f"{len(raws)} entities in one call; the limit is {MAX_BULK}",
                code="too_many_entities",
                details={"limit": MAX_BULK, "given": len(raws)},
            )
        parsed: list[EntityIn | None] = []
        pre_errors: dict[int, dict[str, Any]] = {}
        seen: set[str] = set()
        # One pass over the whole list (one level more than an entity) is cheaper than 20,000; only
        # when it finds something too deep is each entity checked, so the deep ones fail alone.
        some_too_deep = exceeds_depth(raws, MAX_JSON_DEPTH + 1)
        for index, raw in enumerate(raws):
            ident = raw.get("identifier") if isinstance(raw, dict) else None
            try:
                entity = parse_entity(raw, blueprint, check_depth=some_too_deep)
            except EntityError as exc:
                pre_errors[index] = _error_result(index, ident, exc)
                parsed.append(None)
                continue
            if entity.identifier in seen:
                pre_errors[index] = _error_result(
                    index,
                    entity.identifier,
                    EntityError(
                        "identifier appears more than once in this request",
                        code="duplicate_identifier",
                        field="identifier",
                    ),
                )
                parsed.append(None)
                continue
            seen.add(entity.identifier)
            parsed.append(entity)
        changes: list[EntityChange] = []
        with self.db.begin() as conn:
            compiled = self._load_blueprint(conn, blueprint)
            outcome = self._write_entities(
                conn,
                compiled,
                [(i, e) for i, e in enumerate(parsed) if e is not None],
                upsert=upsert,
                merge=merge,
                create_missing=create_missing,
                actor=actor,
                changes=changes,
            )
            announced = self._announce(conn, changes)
        self._after_commit(announced)
        if pre_errors:
            outcome.errors = sorted([*outcome.errors, *pre_errors.values()], key=lambda r: r["index"])
        return outcome

    def _existing(
        self, conn: Connection, blueprint: str, identifiers: Sequence[str], *, with_data: bool
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
        for chunk in _chunks(identifiers):
            for r in conn.execute(
                sa.select(*cols).where(ent_table.c.blueprint == blueprint, ent_table.c.identifier.in_(chunk))
            ):
                out[r.identifier] = StoredEntity(r.id, r.identifier, r.title, r.icon, r.team, r.properties)
        if out:
            rels = self._relations_of(conn, [e.id for e in out.values()])
            for stored in out.values():
                stored.relations = rels.get(stored.id, {})
        return out

    def _target_ids(self, conn: Connection, blueprint: str, identifiers: Iterable[str]) -> dict[str, int]:
        return bulk.entity_ids(conn, blueprint, sorted(set(identifiers)))

    def _write_entities(
        self,
        conn: Connection,
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

        The changes a listener watches are appended to ``changes`` (the caller announces them)."""
        blueprint = compiled.identifier
        outcome = BulkOutcome()
        watched = self._watched(conn, blueprint)
        before = self._entity_docs(conn, blueprint, [e.identifier for _, e in batch]) if "updated" in watched else {}
        existing = self._existing(conn, blueprint, [e.identifier for _, e in batch], with_data=merge)
        rel_defs = compiled.relations
        self_relations = {name for name, rel in rel_defs.items() if rel["target"] == blueprint}

        pipelined = conn.dialect.name == "sqlite" and not self_relations and not create_missing
        if pipelined and len(batch) > PIPELINE_CHUNK:
            outcome.entities = self._write_pipelined(conn, compiled, batch, existing, upsert, merge, actor, outcome)
        else:
            outcome.entities = self._write_at_once(
                conn, compiled, batch, existing, self_relations, upsert, merge, create_missing, actor, outcome, changes
            )
        outcome.errors.sort(key=lambda r: r["index"])
        if watched:
            written = [
                (str(r["identifier"]), bool(r["created"]))
                for r in outcome.entities
                if ("created" if r["created"] else "updated") in watched
            ]
            self._note_written(conn, blueprint, written, before, actor, changes)
        return outcome

    def _write_pipelined(
        self,
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
        known = {bp: self._target_ids(conn, bp, idents) for bp, idents in wanted.items()}
        by_relation = {name: known.get(rel["target"], {}) for name, rel in rel_defs.items()}
        now = _now()
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
                stored.append(writer.submit(self._store, conn, compiled, stage, by_relation, no_self, now, actor))
            return [result for future in stored for result in future.result()]

    def _write_at_once(
        self,
        conn: Connection,
        compiled: CompiledBlueprint,
        batch: Sequence[tuple[int, EntityIn]],
        existing: dict[str, StoredEntity],
        self_relations: set[str],
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
        resolved = self._reject_cycles(conn, compiled, resolved, outcome)

        # Relation targets: look them up per target blueprint, create the missing ones if asked.
        wanted: dict[str, set[str]] = {}
        for _, final, _ in resolved:
            for name, targets in final.relations.items():
                wanted.setdefault(rel_defs[name]["target"], set()).update(targets)
        known: dict[str, dict[str, int]] = {bp: self._target_ids(conn, bp, idents) for bp, idents in wanted.items()}
        if create_missing:
            pending = {final.identifier for _, final, _ in resolved}
            for target_bp, idents in wanted.items():
                todo = idents - pending if target_bp == blueprint else idents
                made = self._create_missing_targets(conn, target_bp, todo, known[target_bp], actor)
                if made and "created" in self._watched(conn, target_bp):
                    self._note_written(conn, target_bp, [(i, True) for i in made], {}, actor, changes)
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
        return self._store(conn, compiled, still_ok, by_relation, self_relations, _now(), actor)

    # ----------------------------------------------------------------------------- change hook

    def _watched(self, conn: Connection, blueprint: str) -> frozenset[ChangeKind]:
        if self.listener is None:
            return frozenset()
        return self.listener.watched_entities(conn, blueprint)

    def _entity_docs(self, conn: Connection, blueprint: str, identifiers: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored entities among ``identifiers``, as the API shows them, by identifier."""
        rows: list[Any] = []
        for chunk in _chunks(identifiers):
            rows.extend(
                conn.execute(
                    sa.select(ent_table).where(ent_table.c.blueprint == blueprint, ent_table.c.identifier.in_(chunk))
                ).all()
            )
        return {doc["identifier"]: doc for doc in self._render_entities(conn, rows)}

    def _note_written(
        self,
        conn: Connection,
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
        after = self._entity_docs(conn, blueprint, [ident for ident, _ in written])
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

    def _note_deleted(self, conn: Connection, where: sa.ColumnElement[bool], changes: list[EntityChange]) -> None:
        """Record the entities ``where`` selects, about to be deleted, for the blueprints watched."""
        if self.listener is None:
            return
        blueprints = conn.execute(sa.select(ent_table.c.blueprint).where(where).distinct()).scalars().all()
        watched = [bp for bp in sorted(blueprints) if "deleted" in self._watched(conn, bp)]
        if not watched:
            return
        rows = conn.execute(
            sa.select(ent_table).where(where, ent_table.c.blueprint.in_(watched)).order_by(ent_table.c.id)
        ).all()
        for doc in self._render_entities(conn, rows):
            changes.append(EntityChange(doc["blueprint"], doc["identifier"], "deleted", doc, None, None))

    def _announce(self, conn: Connection, changes: Sequence[EntityChange]) -> bool:
        """Hand the write's changes to the listener, still inside its transaction."""
        if self.listener is None or not changes:
            return False
        return self.listener.entities_changed(conn, changes)

    def _after_commit(self, announced: bool) -> None:
        if announced and self.listener is not None:
            self.listener.committed()

    def _store(
        self,
        conn: Connection,
        compiled: CompiledBlueprint,
        items: list[tuple[int, ResolvedEntity, StoredEntity | None]],
        by_relation: dict[str, dict[str, int]],
        self_relations: set[str],
        now: datetime,
        actor: str | None,
    ) -> list[dict[str, Any]]:
        """Write validated entities and their edges; one result per entity, in order."""
        blueprint = compiled.identifier
        ids = bulk.insert_entities(
            conn,
            blueprint,
            [(f.identifier, f.title, f.icon, f.team, f.properties) for _, f, s in items if s is None],
            now,
            actor,
        )
        updated = [(s.id, f.title, f.icon, f.team, f.properties) for _, f, s in items if s is not None]
        bulk.update_entities(conn, updated, now, actor)
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
        self, conn: Connection, target_bp: str, idents: set[str], known: dict[str, int], actor: str | None
    ) -> list[str]:
        """Create bare target entities, as Port does, where the target blueprint allows an empty entity;
        the identifiers created.

        Where it does not (required properties or relations), nothing is created and the
        referring entity is refused with a message naming the missing target.
        """
        missing = sorted(i for i in idents if i not in known)
        if not missing:
            return []
        target = self._load_blueprint(conn, target_bp)
        if target.required_properties or target.required_relations:
            return []
        props_template: dict[str, Any] = {}
        validate_properties(target, props_template)  # fills in defaults
        rows: list[bulk.EntityRow] = [(ident, None, None, [], dict(props_template)) for ident in missing]
        known.update(bulk.insert_entities(conn, target_bp, rows, _now(), actor))
        return missing

    def _reject_cycles(
        self,
        conn: Connection,
        compiled: CompiledBlueprint,
        batch: list[tuple[int, ResolvedEntity, StoredEntity | None]],
        outcome: BulkOutcome,
    ) -> list[tuple[int, ResolvedEntity, StoredEntity | None]]:
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
                        _error_result(
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


def _resolve_one(
    compiled: CompiledBlueprint,
    index: int,
    entity: EntityIn,
    existing: dict[str, StoredEntity],
    upsert: bool,
    merge: bool,
    outcome: BulkOutcome,
) -> tuple[int, ResolvedEntity, StoredEntity | None] | None:
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
        outcome.errors.append(_error_result(index, entity.identifier, exc))
        return None
    return index, final, stored


def _targets_exist(
    compiled: CompiledBlueprint,
    item: tuple[int, ResolvedEntity, StoredEntity | None],
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
        _error_result(
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


def _same_entity(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Equal apart from the fields every write touches."""
    return {k: v for k, v in before.items() if k not in BOOKKEEPING} == {
        k: v for k, v in after.items() if k not in BOOKKEEPING
    }


def _indexed(doc: dict[str, Any]) -> set[str]:
    return set(indexes.indexed_properties((doc.get("schema") or {}).get("properties") or {}))


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


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit must be between 1 and {MAX_PAGE}", code="invalid_limit")
    return limit


def _error_result(index: int, identifier: Any, exc: EntityError) -> dict[str, Any]:
    result: dict[str, Any] = {
        "index": index,
        "identifier": identifier if isinstance(identifier, str) else None,
        "statusCode": exc.status,
        "error": exc.code,
        "message": (f"entity {identifier!r}: " if isinstance(identifier, str) else "")
        + (f"{exc.field}: " if exc.field and not exc.message.startswith(exc.field) else "")
        + exc.message,
    }
    if exc.field:
        result["field"] = exc.field
    return result


def _as_kiosk_error(exc: EntityError, identifier: Any) -> ValidationFailed | Conflict | BadRequest:
    return _error_from_result(_error_result(0, identifier, exc))


def _error_from_result(result: dict[str, Any]) -> ValidationFailed | Conflict | BadRequest:
    details = {"entity": result.get("identifier"), "field": result.get("field")}
    if result["statusCode"] == 409:
        return Conflict(result["message"], code=result["error"], details=details)
    if result["statusCode"] == 400:  # json_too_deep: the same status as a body refused whole
        return BadRequest(result["message"], code=result["error"], details=details)
    return ValidationFailed(result["message"], code=result["error"], details=details)
