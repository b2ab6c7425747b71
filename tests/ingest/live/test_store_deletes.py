"""The store's share of live deletes (SQLite and PostgreSQL): only entities recorded for the source,
an entity another source wrote too only loses this source's record, the gone items' marks go in
the same transaction; and marks read back whatever their version."""

from __future__ import annotations

import pytest
from tests.support.integrations import create_blueprints

from kiosk.catalog.service import Catalog
from kiosk.ingest.store import IngestStore, ItemMark, MarkBatch, Source
from kiosk.store.engine import Database

ONE = Source("ado", "https://dev.azure.com/one")
TWO = Source("ado", "https://dev.azure.com/two")
RESOURCE = "r" * 32


@pytest.fixture
def store(db: Database) -> IngestStore:
    catalog = Catalog(db)
    create_blueprints(catalog, [{"identifier": "item", "title": "Item", "schema": {"properties": {}}}], actor="test")
    return IngestStore(db, catalog)


def write(store: IngestStore, source: Source, *identifiers: str, marks: MarkBatch | None = None) -> None:
    docs = [{"identifier": i, "blueprint": "item", "title": i} for i in identifiers]
    outcome = store.write(source, docs, merge=True, create_missing=False, marks=marks)
    assert not outcome.failed


def existing(store: IngestStore) -> set[str]:
    page, _ = store.catalog.list_entities("item", limit=100)
    return {e["identifier"] for e in page}


def test_only_this_sources_entities_are_deleted_and_shared_ones_lose_the_record(store: IngestStore) -> None:
    write(store, ONE, "mine", "shared", marks=MarkBatch(RESOURCE, [ItemMark("7", "3/x", (("item", "mine"),))]))
    write(store, TWO, "shared", "theirs")
    assert store.marked_entities(ONE, RESOURCE, ["7", "8"]) == {"7": (("item", "mine"),)}

    deleted = store.delete_entities(
        ONE,
        [("item", "mine"), ("item", "shared"), ("item", "theirs"), ("item", "nowhere")],
        resource=RESOURCE,
        items=["7"],
    )
    assert deleted == (1, 1)  # "mine" deleted, "shared" unrecorded for ONE, "theirs" untouched
    assert existing(store) == {"shared", "theirs"}
    assert store.marked_entities(ONE, RESOURCE, ["7"]) == {}
    # "shared" is TWO's alone now: ONE deleting it again changes nothing, TWO deleting it deletes it.
    assert store.delete_entities(ONE, [("item", "shared")]) == (0, 0)
    assert store.delete_entities(TWO, [("item", "shared")]) == (1, 0)
    assert existing(store) == {"theirs"}
