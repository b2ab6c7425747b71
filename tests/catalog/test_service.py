"""The catalog service on both engines: the semantics that the API tests do not reach."""

from __future__ import annotations

import pytest

from kiosk.catalog.service import MAX_BULK, Catalog
from kiosk.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from kiosk.store import Database

TEAM = {"identifier": "team", "schema": {"properties": {"size": {"type": "number"}}}}
SERVICE = {
    "identifier": "service",
    "schema": {
        "properties": {"lang": {"type": "string", "x-kiosk-index": True}, "tier": {"type": "number"}},
        "required": [],
    },
    "relations": {"team": {"target": "team"}, "deps": {"target": "service", "many": True}},
}


@pytest.fixture
def catalog(db: Database) -> Catalog:
    c = Catalog(db)
    c.create_blueprint(TEAM)
    c.create_blueprint(SERVICE)
    return c


def test_upsert_blueprint_is_idempotent(catalog: Catalog) -> None:
    assert catalog.upsert_blueprint(SERVICE) == "unchanged"
    changed = {**SERVICE, "title": "Services"}
    assert catalog.upsert_blueprint(changed) == "updated"
    assert catalog.upsert_blueprint(changed) == "unchanged"
    assert catalog.upsert_blueprint({"identifier": "env"}) == "created"


def test_relation_to_unknown_blueprint_is_refused(catalog: Catalog) -> None:
    with pytest.raises(ValidationFailed) as err:
        catalog.create_blueprint({"identifier": "x", "relations": {"r": {"target": "ghost"}}})
    assert "relations.r.target" in err.value.message
    with pytest.raises(NotFound):
        catalog.get_blueprint("x")


def test_bulk_create_missing_related_and_merge(catalog: Catalog) -> None:
    out = catalog.bulk_upsert(
        "service",
        [{"identifier": f"s{i}", "properties": {"lang": "go"}, "relations": {"team": "t1"}} for i in range(3)],
        create_missing=True,
    )
    assert not out.errors and len(out.entities) == 3
    assert catalog.get_entity("team", "t1")["properties"] == {}
    out = catalog.bulk_upsert(
        "service",
        [{"identifier": "s0", "properties": {"tier": 1}, "relations": {"deps": ["s1", "s2"]}}],
        upsert=True,
        merge=True,
    )
    assert out.entities == [{"identifier": "s0", "index": 0, "created": False}]
    s0 = catalog.get_entity("service", "s0")
    assert s0["properties"] == {"lang": "go", "tier": 1}
    assert s0["relations"] == {"team": "t1", "deps": ["s1", "s2"]}


def test_bulk_limit(catalog: Catalog) -> None:
    with pytest.raises(PayloadTooLarge):
        catalog.bulk_upsert("service", [{"identifier": "x"}] * (MAX_BULK + 1))


def test_cycle_inside_one_bulk_call(catalog: Catalog) -> None:
    out = catalog.bulk_upsert(
        "service",
        [
            {"identifier": "a", "relations": {"deps": ["b"]}},
            {"identifier": "b", "relations": {"deps": ["a"]}},
            {"identifier": "c", "relations": {"deps": ["a", "b"]}},
        ],
    )
    errors = {e["identifier"]: e["error"] for e in out.errors}
    # c points at a and b, which were refused, so it has nothing to point at either.
    assert errors == {"a": "relation_cycle", "b": "relation_cycle", "c": "related_entity_not_found"}
    assert out.entities == []
    with pytest.raises(NotFound):
        catalog.get_entity("service", "c")


def test_blueprint_change_drops_data_it_no_longer_defines(catalog: Catalog) -> None:
    catalog.upsert_entity("team", {"identifier": "t1"})
    catalog.upsert_entity(
        "service", {"identifier": "a", "properties": {"lang": "go", "tier": 2}, "relations": {"team": "t1"}}
    )
    catalog.replace_blueprint(
        "service", {"identifier": "service", "schema": {"properties": {"lang": {"type": "string"}}}}
    )
    a = catalog.get_entity("service", "a")
    assert a["properties"] == {"lang": "go"} and a["relations"] == {}


def test_indexed_value_size_is_bounded(catalog: Catalog) -> None:
    with pytest.raises(ValidationFailed) as err:
        catalog.upsert_entity("service", {"identifier": "a", "properties": {"lang": "x" * 5000}})
    assert err.value.details["field"] == "properties.lang"


def test_delete_blueprint_rules(catalog: Catalog) -> None:
    with pytest.raises(Conflict):
        catalog.delete_blueprint("team")  # service.team targets it
    catalog.upsert_entity("service", {"identifier": "a"})
    with pytest.raises(Conflict):
        catalog.delete_blueprint("service")
    catalog.delete_blueprint("service", delete_entities=True)
    catalog.delete_blueprint("team")
    assert catalog.list_blueprints() == []


def _index_names(catalog: Catalog) -> set[str]:
    with catalog.db.connect() as conn:
        if catalog.db.is_postgres:
            rows = conn.exec_driver_sql("SELECT indexname FROM pg_indexes WHERE tablename = 'entities'")
        else:
            rows = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'entities'")
        return {r[0] for r in rows}


def test_property_indexes_follow_the_blueprints(catalog: Catalog) -> None:
    from kiosk.catalog.indexes import property_index_name

    lang = property_index_name("lang")
    assert lang in _index_names(catalog)
    # another blueprint indexing the same property keeps the shared index alive
    catalog.create_blueprint(
        {"identifier": "lib", "schema": {"properties": {"lang": {"type": "string", "x-kiosk-index": True}}}}
    )
    unmarked = {**SERVICE, "schema": {"properties": {"lang": {"type": "string"}, "tier": {"type": "number"}}}}
    catalog.replace_blueprint("service", unmarked)
    assert lang in _index_names(catalog)
    catalog.delete_blueprint("lib")
    assert lang not in _index_names(catalog)


def test_large_bulk_results_and_storage(catalog: Catalog) -> None:
    """Thousands of entities, some invalid: one result per entity, in order, and the data stored."""
    library = {
        "identifier": "library",
        "schema": {"properties": {"tier": {"type": "number"}}},
        "relations": {"team": {"target": "team"}},
    }
    catalog.create_blueprint(library)
    catalog.bulk_upsert("team", [{"identifier": f"t{i}"} for i in range(5)])
    n = 5_123
    docs = []
    for i in range(n):
        doc = {"identifier": f"lib-{i}", "properties": {"tier": i}, "relations": {"team": f"t{i % 5}"}}
        if i % 7 == 3:
            doc["properties"] = {"tier": "high"}
        if i % 11 == 5:
            doc["relations"] = {"team": "ghost"}
        docs.append(doc)
    out = catalog.bulk_upsert("library", docs)
    bad_prop = {i for i in range(n) if i % 7 == 3}
    bad_rel = {i for i in range(n) if i % 11 == 5} - bad_prop
    assert [e["index"] for e in out.errors] == sorted(bad_prop | bad_rel)
    assert {e["index"] for e in out.errors if e["error"] == "related_entity_not_found"} == bad_rel
    assert [e["index"] for e in out.entities] == [i for i in range(n) if i not in bad_prop | bad_rel]
    assert catalog.get_entity("library", "lib-1")["relations"] == {"team": "t1"}
    entities, _ = catalog.list_entities("library", limit=10_000)
    assert len(entities) == len(out.entities)
    # merge over the same large batch keeps the stored relations
    again = catalog.bulk_upsert(
        "library",
        [{"identifier": e["identifier"], "properties": {"tier": 1}} for e in out.entities],
        upsert=True,
        merge=True,
    )
    assert not again.errors and all(not e["created"] for e in again.entities)
    merged = catalog.get_entity("library", "lib-1")
    assert merged["relations"] == {"team": "t1"} and merged["properties"] == {"tier": 1}
