"""The catalog service: every read and write of blueprints and entities goes through here.

It owns the transactions: a request is applied in one transaction or not at all, so a rejected
request leaves the database unchanged. What happens inside them lives beside it:

    blueprint_store  the compiled-blueprint cache and the statements that write blueprint rows
    writes           the set-based entity write (validation, relation targets, storage)
    cycles           writes that would close a loop through a self-relation, refused
    results          BulkOutcome, and an entity's error as the routes answer it
    rendering        entities as the API shows them
    changes          the change hook: EntityChange, EntityListener
    paging           the ``from`` cursors and page limits
"""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from kiosk.catalog import blueprint_store, search
from kiosk.catalog.blueprint_store import CompiledBlueprints, render_definition
from kiosk.catalog.blueprints import CompiledBlueprint, parse_blueprint
from kiosk.catalog.changes import EntityChange, EntityListener, after_commit, announce, note_deleted
from kiosk.catalog.entities import EntityIn, parse_entity
from kiosk.catalog.paging import DEFAULT_PAGE, check_limit, decode_cursor, page_after
from kiosk.catalog.rendering import ENTITY_BY_IDENTIFIER, render_entities
from kiosk.catalog.results import BulkOutcome, as_kiosk_error, error_from_result, error_result
from kiosk.catalog.validation import EntityError
from kiosk.catalog.writes import write_entities
from kiosk.core.json_depth import MAX_JSON_DEPTH, exceeds_depth
from kiosk.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from kiosk.store.engine import Database
from kiosk.store.tables import blueprints as bp_table
from kiosk.store.tables import entities as ent_table
from kiosk.store.tables import entity_relations as rel_table

MAX_BULK = 20_000


def _entity_not_found(blueprint: str, identifier: str) -> NotFound:
    return NotFound(f"entity {identifier!r} of blueprint {blueprint!r} does not exist", code="entity_not_found")


class Catalog:
    """Blueprints and entities over one :class:`Database`.

    ``listener`` (settable after construction, as the app wires it once the automations exist)
    hears of every entity change; see :class:`~kiosk.catalog.changes.EntityListener`.
    """

    def __init__(self, db: Database, *, listener: EntityListener | None = None) -> None:
        self.db = db
        self.listener = listener
        self.blueprints = CompiledBlueprints()

    # ----------------------------------------------------------------------------- blueprints

    def list_blueprints(self) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(bp_table).order_by(bp_table.c.identifier))
            return [render_definition(r) for r in rows]

    def get_blueprint(self, identifier: str) -> dict[str, Any]:
        with self.db.connect() as conn:
            row = conn.execute(sa.select(bp_table).where(bp_table.c.identifier == identifier)).first()
        if row is None:
            raise blueprint_store.blueprint_not_found(identifier)
        return render_definition(row)

    def create_blueprint(self, raw: Any, *, actor: str | None = None) -> dict[str, Any]:
        doc = parse_blueprint(raw).to_document()
        with self.db.begin() as conn:
            exists = conn.execute(
                sa.select(bp_table.c.identifier).where(bp_table.c.identifier == doc["identifier"])
            ).first()
            if exists:
                raise Conflict(f"blueprint {doc['identifier']!r} already exists", code="blueprint_exists")
            blueprint_store.insert_blueprint(conn, self.db.dialect, doc, actor)
        return self.get_blueprint(doc["identifier"])

    def replace_blueprint(self, identifier: str, raw: Any, *, actor: str | None = None) -> dict[str, Any]:
        if isinstance(raw, dict):
            raw = {**raw, "identifier": raw.get("identifier", identifier)}
        doc = parse_blueprint(raw).to_document()
        if doc["identifier"] != identifier:
            raise ValidationFailed("a blueprint's identifier cannot be changed", code="invalid_blueprint")
        with self.db.begin() as conn:
            old = blueprint_store.stored_definition(conn, identifier)
            blueprint_store.write_blueprint(conn, self.db.dialect, old, doc, actor)
        return self.get_blueprint(identifier)

    def patch_blueprint(self, identifier: str, patch: Any, *, actor: str | None = None) -> dict[str, Any]:
        if not isinstance(patch, dict):
            raise ValidationFailed("a blueprint patch must be a JSON object", code="invalid_blueprint")
        with self.db.begin() as conn:
            old = blueprint_store.stored_definition(conn, identifier)
            merged = {**old, **patch}
            if "schema" in patch and isinstance(patch["schema"], dict):
                old_schema = old.get("schema") or {}
                merged["schema"] = {**old_schema, **patch["schema"]}
            doc = parse_blueprint(merged).to_document()
            if doc["identifier"] != identifier:
                raise ValidationFailed("a blueprint's identifier cannot be changed", code="invalid_blueprint")
            blueprint_store.write_blueprint(conn, self.db.dialect, old, doc, actor)
        return self.get_blueprint(identifier)

    def upsert_blueprint(self, raw: Any, *, actor: str | None = None) -> Literal["created", "updated", "unchanged"]:
        """Create or replace; used by ``kiosk apply`` so applying twice changes nothing. Processes
        starting together apply kiosk.yaml together: when another one inserted the blueprint
        between this one's look and its insert, the upsert is made again (it then compares)."""
        doc = parse_blueprint(raw).to_document()
        try:
            return self._upsert_blueprint(doc, actor)
        except IntegrityError:
            return self._upsert_blueprint(doc, actor)

    def _upsert_blueprint(self, doc: dict[str, Any], actor: str | None) -> Literal["created", "updated", "unchanged"]:
        with self.db.begin() as conn:
            row = conn.execute(
                sa.select(bp_table.c.definition).where(bp_table.c.identifier == doc["identifier"])
            ).first()
            if row is None:
                blueprint_store.insert_blueprint(conn, self.db.dialect, doc, actor)
                return "created"
            if row.definition == doc:
                return "unchanged"
            blueprint_store.write_blueprint(conn, self.db.dialect, dict(row.definition), doc, actor)
            return "updated"

    def delete_blueprint(self, identifier: str, *, delete_entities: bool = False) -> None:
        with self.db.begin() as conn:
            old = blueprint_store.stored_definition(conn, identifier)
            count = blueprint_store.check_deletable(conn, identifier, delete_entities=delete_entities)
            changes: list[EntityChange] = []
            if count:
                note_deleted(conn, self.blueprints, self.listener, ent_table.c.blueprint == identifier, changes)
            conn.execute(sa.delete(ent_table).where(ent_table.c.blueprint == identifier))
            conn.execute(sa.delete(bp_table).where(bp_table.c.identifier == identifier))
            blueprint_store.drop_unused_indexes(conn, self.db.dialect, blueprint_store.indexed(old))
            announced = announce(self.listener, conn, changes)
        self.blueprints.forget(identifier)
        after_commit(self.listener, announced)

    # ----------------------------------------------------------------------------- entity reads

    def get_entity(self, blueprint: str, identifier: str, *, conn: Connection | None = None) -> dict[str, Any]:
        """One entity as the API shows it; on ``conn`` when the caller reads more on one connection."""
        if conn is None:
            with self.db.connect() as own:
                return self.get_entity(blueprint, identifier, conn=own)
        compiled = self.blueprints.load(conn, blueprint)
        row = conn.execute(ENTITY_BY_IDENTIFIER, {"blueprint": blueprint, "identifier": identifier}).first()
        if row is None:
            raise _entity_not_found(blueprint, identifier)
        return render_entities(conn, self.blueprints, [row], {blueprint: compiled.document})[0]

    def list_entities(
        self, blueprint: str, *, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        limit = check_limit(limit)
        after = decode_cursor(cursor)
        with self.db.connect() as conn:
            self.blueprints.load(conn, blueprint)
            members = sa.select(ent_table).where(ent_table.c.blueprint == blueprint)
            page, nxt = page_after(conn, members, ent_table.c.id, after, limit)
            return render_entities(conn, self.blueprints, page), nxt

    def search(
        self, raw_query: Any, *, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        limit = check_limit(limit)
        after = decode_cursor(cursor)
        query = search.parse_query(raw_query)
        where = search.compile_query(query, self.db)
        with self.db.connect() as conn:
            page, nxt = page_after(conn, sa.select(ent_table).where(where), ent_table.c.id, after, limit)
            return render_entities(conn, self.blueprints, page), nxt

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
            compiled = self.blueprints.load(conn, blueprint)
            try:
                entity = parse_entity(raw, blueprint)
            except EntityError as exc:
                raise as_kiosk_error(exc, raw.get("identifier") if isinstance(raw, dict) else None) from None
            outcome = self._write_one(conn, compiled, entity, upsert, merge, create_missing, actor, changes)
            created = bool(outcome.entities[0]["created"])
            row = conn.execute(ENTITY_BY_IDENTIFIER, {"blueprint": blueprint, "identifier": entity.identifier}).one()
            rendered = render_entities(conn, self.blueprints, [row])[0]
            announced = announce(self.listener, conn, changes)
        after_commit(self.listener, announced)
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
            compiled = self.blueprints.load(conn, blueprint)
            try:
                entity = parse_entity(raw, blueprint, identifier=identifier)
            except EntityError as exc:
                raise as_kiosk_error(exc, identifier) from None
            exists = self._entity_id(conn, blueprint, identifier)
            changes: list[EntityChange] = []
            self._write_one(conn, compiled, entity, True, True, create_missing, actor, changes)
            row = conn.execute(sa.select(ent_table).where(ent_table.c.id == exists)).one()
            rendered = render_entities(conn, self.blueprints, [row])[0]
            announced = announce(self.listener, conn, changes)
        after_commit(self.listener, announced)
        return rendered

    def _write_one(
        self,
        conn: Connection,
        compiled: CompiledBlueprint,
        entity: EntityIn,
        upsert: bool,
        merge: bool,
        create_missing: bool,
        actor: str | None,
        changes: list[EntityChange],
    ) -> BulkOutcome:
        """Write one entity through the set-based path; its error as the one-entity routes raise it."""
        outcome = write_entities(
            conn,
            self.blueprints,
            self.listener,
            compiled,
            [(0, entity)],
            upsert=upsert,
            merge=merge,
            create_missing=create_missing,
            actor=actor,
            changes=changes,
        )
        if outcome.errors:
            raise error_from_result(outcome.errors[0])
        return outcome

    def delete_entity(self, blueprint: str, identifier: str, *, delete_dependents: bool = False) -> None:
        with self.db.begin() as conn:
            self.blueprints.load(conn, blueprint)
            doomed = self._dependents_closure(conn, self._entity_id(conn, blueprint, identifier), delete_dependents)
            changes: list[EntityChange] = []
            note_deleted(conn, self.blueprints, self.listener, ent_table.c.id.in_(doomed), changes)
            conn.execute(sa.delete(ent_table).where(ent_table.c.id.in_(doomed)))
            announced = announce(self.listener, conn, changes)
        after_commit(self.listener, announced)

    @staticmethod
    def _entity_id(conn: Connection, blueprint: str, identifier: str) -> int:
        """The stored entity's row id; 404 if there is none."""
        row = conn.execute(
            sa.select(ent_table.c.id).where(ent_table.c.blueprint == blueprint, ent_table.c.identifier == identifier)
        ).first()
        if row is None:
            raise _entity_not_found(blueprint, identifier)
        return int(row.id)

    @staticmethod
    def _dependents_closure(conn: Connection, root: int, delete_dependents: bool) -> list[int]:
        """Entities whose *required* relation points at a doomed entity must go too (or block)."""
        docs = blueprint_store.blueprint_docs(conn)
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
                pre_errors[index] = error_result(index, ident, exc)
                parsed.append(None)
                continue
            if entity.identifier in seen:
                pre_errors[index] = error_result(
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
            compiled = self.blueprints.load(conn, blueprint)
            outcome = write_entities(
                conn,
                self.blueprints,
                self.listener,
                compiled,
                [(i, e) for i, e in enumerate(parsed) if e is not None],
                upsert=upsert,
                merge=merge,
                create_missing=create_missing,
                actor=actor,
                changes=changes,
            )
            announced = announce(self.listener, conn, changes)
        after_commit(self.listener, announced)
        if pre_errors:
            outcome.errors = sorted([*outcome.errors, *pre_errors.values()], key=lambda r: r["index"])
        return outcome
