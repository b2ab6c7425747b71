"""The catalog's change hook on both engines: what an EntityListener hears, inside the write's
transaction, and that an unwatched blueprint costs no reads of "before"."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiosk.catalog import rendering
from kiosk.catalog.blueprint_store import CompiledBlueprints
from kiosk.catalog.changes import ChangeKind, EntityChange
from kiosk.catalog.service import Catalog
from kiosk.errors import ValidationFailed
from kiosk.store import Database
from kiosk.store.tables import entities


@dataclass
class Recorder:
    """An EntityListener that records what it hears and what it was asked."""

    watch: dict[str, frozenset[ChangeKind]] = field(default_factory=dict)
    heard: list[EntityChange] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)
    committed_calls: int = 0
    #: Entities of the written blueprint the transaction held when the listener was told.
    seen_rows: list[int] = field(default_factory=list)

    def watched_entities(self, conn: Connection, blueprint: str) -> frozenset[ChangeKind]:
        self.asked.append(blueprint)
        return self.watch.get(blueprint, frozenset())

    def entities_changed(self, conn: Connection, changes: Sequence[EntityChange]) -> bool:
        self.heard.extend(changes)
        self.seen_rows.append(conn.execute(sa.select(sa.func.count()).select_from(entities)).scalar_one())
        return True

    def committed(self) -> None:
        self.committed_calls += 1

    def summary(self) -> list[tuple[str, str, str]]:
        return [(c.kind, c.blueprint, c.identifier) for c in self.heard]


ALL: frozenset[ChangeKind] = frozenset({"created", "updated", "deleted"})


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def catalog(db: Database, recorder: Recorder) -> Catalog:
    catalog = Catalog(db, listener=recorder)
    catalog.create_blueprint({"identifier": "team"})
    catalog.create_blueprint(
        {
            "identifier": "service",
            "schema": {"properties": {"lang": {"type": "string", "enum": ["go", "rust"]}}},
            "relations": {
                "owner": {"target": "team", "many": False},
                "parent": {"target": "service", "required": False},
            },
        }
    )
    catalog.create_blueprint(
        {"identifier": "deployment", "relations": {"service": {"target": "service", "required": True}}}
    )
    return catalog


def test_unwatched_writes_read_no_before_and_tell_nothing(
    catalog: Catalog, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Sequence[str]] = []
    real = rendering.entity_docs

    def counting(
        conn: Connection, blueprints: CompiledBlueprints, blueprint: str, identifiers: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        reads.append(identifiers)
        return real(conn, blueprints, blueprint, identifiers)

    monkeypatch.setattr(rendering, "entity_docs", counting)
    catalog.bulk_upsert("service", [{"identifier": f"s{i}"} for i in range(50)], upsert=True)
    catalog.bulk_upsert(
        "service", [{"identifier": f"s{i}", "properties": {"lang": "go"}} for i in range(50)], upsert=True
    )
    catalog.delete_entity("service", "s0")
    assert reads == [] and recorder.heard == [] and recorder.committed_calls == 0
    assert recorder.asked == ["service"] * 3  # one question per write

    recorder.watch["service"] = frozenset({"created"})  # creations only: still no "before" read
    catalog.bulk_upsert(
        "service", [{"identifier": "s1", "properties": {"lang": "rust"}}, {"identifier": "new"}], upsert=True
    )
    assert recorder.summary() == [("created", "service", "new")]
    assert [list(r) for r in reads] == [["new"]]  # only the created entity's "after"


def test_created_updated_deleted_with_documents(catalog: Catalog, recorder: Recorder) -> None:
    recorder.watch["service"] = ALL
    catalog.upsert_entity("service", {"identifier": "a", "properties": {"lang": "go"}}, actor="kc_1")
    catalog.upsert_entity("service", {"identifier": "a", "properties": {"lang": "go"}}, upsert=True)  # no change
    catalog.patch_entity("service", "a", {"properties": {"lang": "rust"}}, actor="kc_2")
    catalog.delete_entity("service", "a")
    assert recorder.summary() == [("created", "service", "a"), ("updated", "service", "a"), ("deleted", "service", "a")]
    created, updated, deleted = recorder.heard
    assert created.before is None and created.after is not None and created.after["properties"] == {"lang": "go"}
    assert created.actor == "kc_1" and created.after["createdBy"] == "kc_1"
    assert updated.before is not None and updated.after is not None
    assert (updated.before["properties"], updated.after["properties"]) == ({"lang": "go"}, {"lang": "rust"})
    assert updated.actor == "kc_2"
    assert deleted.after is None and deleted.before is not None and deleted.before["properties"] == {"lang": "rust"}
    assert deleted.actor is None
    # told inside the write's transaction, once its statements ran: created there, deleted gone
    assert recorder.seen_rows == [1, 1, 0]
    assert recorder.committed_calls == 3


def test_refused_writes_tell_nothing(catalog: Catalog, recorder: Recorder) -> None:
    recorder.watch["service"] = ALL
    with pytest.raises(ValidationFailed):
        catalog.upsert_entity("service", {"identifier": "a", "properties": {"lang": "cobol"}})
    outcome = catalog.bulk_upsert("service", [{"identifier": "b", "properties": {"lang": "cobol"}}])
    assert outcome.errors and recorder.heard == [] and recorder.committed_calls == 0


def test_missing_relation_targets_and_dependents_are_changes_too(catalog: Catalog, recorder: Recorder) -> None:
    recorder.watch = {"team": ALL, "deployment": ALL}
    catalog.upsert_entity("service", {"identifier": "svc", "relations": {"owner": "platform"}}, create_missing=True)
    catalog.upsert_entity("deployment", {"identifier": "d1", "relations": {"service": "svc"}})
    catalog.delete_entity("service", "svc", delete_dependents=True)  # takes d1 (required relation) with it
    assert recorder.summary() == [
        ("created", "team", "platform"),
        ("created", "deployment", "d1"),
        ("deleted", "deployment", "d1"),
    ]


def test_self_relation_targets_created_in_the_same_blueprint(catalog: Catalog, recorder: Recorder) -> None:
    recorder.watch["service"] = frozenset({"created"})
    catalog.upsert_entity("service", {"identifier": "child", "relations": {"parent": "root"}}, create_missing=True)
    assert sorted(recorder.summary()) == [("created", "service", "child"), ("created", "service", "root")]


def test_deleting_a_blueprint_with_entities(catalog: Catalog, recorder: Recorder) -> None:
    catalog.bulk_upsert("deployment", [], upsert=True)
    catalog.upsert_entity("service", {"identifier": "svc"})
    catalog.bulk_upsert("deployment", [{"identifier": f"d{i}", "relations": {"service": "svc"}} for i in range(3)])
    recorder.watch["deployment"] = frozenset({"deleted"})
    catalog.delete_blueprint("deployment", delete_entities=True)
    assert recorder.summary() == [("deleted", "deployment", f"d{i}") for i in range(3)]
    assert recorder.committed_calls == 1


def test_without_a_listener_nothing_changes(db: Database) -> None:
    catalog = Catalog(db)
    catalog.create_blueprint({"identifier": "service"})
    catalog.upsert_entity("service", {"identifier": "a"})
    catalog.delete_entity("service", "a")
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(entities)).scalar_one() == 0
