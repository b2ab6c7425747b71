"""The integration's storage on both engines: change detection, datasources, the delete phase
(threshold, sparing, dependents, other writers, two organisations, one transaction), state,
raw examples and replaced mappings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiosk.catalog.changes import ChangeKind, EntityChange
from kiosk.catalog.entities import parse_entity
from kiosk.catalog.service import Catalog
from kiosk.catalog.validation import EntityError
from kiosk.ingest import store as store_module
from kiosk.ingest.state import OrgState, ResourceState, ResyncState
from kiosk.ingest.store import IngestStore, ItemMark, MarkBatch, Source
from kiosk.store import Database, bulk, create_database, upgrade_to_head
from kiosk.store.tables import entities, entity_datasources

ORG1 = Source("ado", "https://dev.azure.com/acme")
ORG2 = Source("ado", "https://dev.azure.com/globex")
OTHER_INTEGRATION = Source("ado-two", "https://dev.azure.com/acme")
ALL: frozenset[ChangeKind] = frozenset({"created", "updated", "deleted"})


@dataclass
class Recorder:
    """An EntityListener that records every change it is told of."""

    heard: list[EntityChange] = field(default_factory=list)
    committed_calls: int = 0
    fail: bool = False

    def watched_entities(self, conn: Connection, blueprint: str) -> frozenset[ChangeKind]:
        return ALL

    def entities_changed(self, conn: Connection, changes: Sequence[EntityChange]) -> bool:
        if self.fail:
            raise RuntimeError("listener failed")
        self.heard.extend(changes)
        return True

    def committed(self) -> None:
        self.committed_calls += 1

    def summary(self) -> list[tuple[str, str, str]]:
        return sorted((c.kind, c.blueprint, c.identifier) for c in self.heard)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def catalog(db: Database, recorder: Recorder) -> Catalog:
    catalog = Catalog(db, listener=recorder)
    catalog.create_blueprint(
        {
            "identifier": "project",
            "schema": {
                "properties": {
                    "state": {"type": "string"},
                    "visibility": {"type": "string", "default": "private"},
                    "since": {"type": "string", "format": "date-time"},
                }
            },
        }
    )
    catalog.create_blueprint(
        {
            "identifier": "repository",
            "schema": {
                "properties": {
                    "url": {"type": "string"},
                    "branch": {"type": "string"},
                    "minReviewers": {"type": "number"},
                    "size": {"type": "number"},
                    "tags": {"type": "array"},
                    "pushedAt": {"type": "string", "format": "date-time"},
                }
            },
            "relations": {
                "project": {"target": "project", "many": False},
                "dependsOn": {"target": "repository", "many": True},
            },
        }
    )
    # Someone else's blueprint: its entities require a repository.
    catalog.create_blueprint(
        {"identifier": "service", "relations": {"repository": {"target": "repository", "required": True}}}
    )
    return catalog


@pytest.fixture
def store(db: Database, catalog: Catalog) -> IngestStore:
    return IngestStore(db, catalog)


def project(ident: str, **props: Any) -> dict[str, Any]:
    return {"identifier": ident, "blueprint": "project", "title": ident.title(), "properties": {"state": "ok", **props}}


def repo(ident: str, project_id: str = "p1", **props: Any) -> dict[str, Any]:
    return {
        "identifier": ident,
        "blueprint": "repository",
        "title": ident,
        "properties": {"url": f"https://x/{ident}", "branch": "main", **props},
        "relations": {"project": project_id},
    }


def rows(db: Database) -> dict[tuple[str, str], tuple[Any, ...]]:
    """Every entity row (blueprint, identifier) → (title, properties, updated_at, updated_by)."""
    with db.connect() as conn:
        result = conn.execute(
            sa.select(
                entities.c.blueprint,
                entities.c.identifier,
                entities.c.title,
                entities.c.properties,
                entities.c.updated_at,
                entities.c.updated_by,
            )
        )
        return {(r.blueprint, r.identifier): (r.title, r.properties, r.updated_at, r.updated_by) for r in result}


def recorded(db: Database) -> set[tuple[str, str, str]]:
    """(datasource, blueprint, identifier) of every datasource record."""
    with db.connect() as conn:
        result = conn.execute(
            sa.select(entity_datasources.c.datasource, entities.c.blueprint, entities.c.identifier).join(
                entities, entities.c.id == entity_datasources.c.entity_id
            )
        )
        return {(r.datasource, r.blueprint, r.identifier) for r in result}


def surviving(db: Database) -> set[tuple[str, str]]:
    return set(rows(db))


# ------------------------------------------------------------------------------------------------
# Writing and change detection


def test_first_write_creates_and_records_the_source(store: IngestStore, db: Database, recorder: Recorder) -> None:
    outcome = store.write(
        ORG1, [repo("r1"), project("p1"), repo("r2")], merge=False, create_missing=False
    )  # the repository comes first: projects are written before it
    assert (outcome.created, outcome.updated, outcome.unchanged, outcome.failed) == (3, 0, 0, [])
    assert surviving(db) == {("project", "p1"), ("repository", "r1"), ("repository", "r2")}
    ds = ORG1.datasource
    assert ds == "kiosk/azure-devops/ado/https://dev.azure.com/acme"
    assert recorded(db) == {(ds, "project", "p1"), (ds, "repository", "r1"), (ds, "repository", "r2")}
    assert rows(db)[("repository", "r1")][3] == "kiosk/azure-devops/ado"
    assert recorder.summary() == [
        ("created", "project", "p1"),
        ("created", "repository", "r1"),
        ("created", "repository", "r2"),
    ]
    assert recorder.committed_calls == 1


def test_an_unchanged_second_write_writes_nothing(store: IngestStore, db: Database, recorder: Recorder) -> None:
    since = "2026-03-01T12:00:00+02:00"  # stored normalised to UTC; the same instant is no change
    batch = [project("p1", since=since), repo("r1", size=3), repo("r2")]
    batch[2]["relations"]["dependsOn"] = ["r1"]
    store.write(ORG1, batch, merge=False, create_missing=False)
    before = rows(db)
    recorder.heard.clear()
    with db.connect() as conn:
        records_before = conn.execute(sa.select(sa.func.count()).select_from(entity_datasources)).scalar_one()

    outcome = store.write(ORG1, batch, merge=False, create_missing=False)

    assert (outcome.created, outcome.updated, outcome.unchanged, outcome.failed) == (0, 0, 3, [])
    assert rows(db) == before  # updated_at untouched on every row
    assert recorder.heard == []
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(entity_datasources)).scalar_one() == records_before
    # The property with a default ("visibility") is filled in by the catalog, and still no change.
    assert before[("project", "p1")][1] == {"state": "ok", "visibility": "private", "since": "2026-03-01T10:00:00.000Z"}


def test_changes_are_detected_per_field(store: IngestStore, db: Database, recorder: Recorder) -> None:
    store.write(
        ORG1,
        [project("p1"), project("p2"), repo("r1"), repo("r2"), repo("r3", tags=[1])],
        merge=False,
        create_missing=False,
    )
    before = rows(db)
    recorder.heard.clear()
    changed_title = {**repo("r1"), "title": "renamed"}
    changed_relation = repo("r2", project_id="p2")
    changed_type = repo("r3", tags=[True])  # [1] → [true] is a change although 1 == True in Python

    outcome = store.write(
        ORG1,
        [project("p1"), project("p2"), changed_title, changed_relation, changed_type],
        merge=False,
        create_missing=False,
    )

    assert (outcome.created, outcome.updated, outcome.unchanged) == (0, 3, 2)
    after = rows(db)
    assert after[("repository", "r1")][0] == "renamed"
    assert after[("repository", "r3")][1]["tags"] == [True]
    assert after[("project", "p1")] == before[("project", "p1")]
    assert store.catalog.get_entity("repository", "r2")["relations"]["project"] == "p2"
    # The catalog's change hook compares documents with == (so [1] and [true] look alike to it);
    # what matters here is that the listener hears the writes and nothing about the projects.
    assert {("updated", "repository", "r1"), ("updated", "repository", "r2")} <= set(recorder.summary())
    assert all(c.blueprint == "repository" for c in recorder.heard)


def test_replacing_drops_what_the_entity_no_longer_gives(store: IngestStore, db: Database) -> None:
    store.write(ORG1, [project("p1"), repo("r1", minReviewers=2)], merge=False, create_missing=False)
    outcome = store.write(ORG1, [project("p1"), repo("r1")], merge=False, create_missing=False)
    assert (outcome.updated, outcome.unchanged) == (1, 1)
    assert "minReviewers" not in rows(db)[("repository", "r1")][1]


def test_merge_compares_only_the_keys_given(store: IngestStore, db: Database, recorder: Recorder) -> None:
    store.write(ORG1, [project("p1"), repo("r1"), repo("r2")], merge=True, create_missing=False)
    recorder.heard.clear()
    policy = [
        {"identifier": "r1", "blueprint": "repository", "properties": {"minReviewers": 2}},
        {"identifier": "r2", "blueprint": "repository", "properties": {"minReviewers": 1}},
    ]

    first = store.write(ORG1, policy, merge=True, create_missing=False)
    assert (first.created, first.updated, first.unchanged) == (0, 2, 0)
    r1 = rows(db)[("repository", "r1")]
    assert r1[0] == "r1"  # title kept
    assert r1[1] == {"url": "https://x/r1", "branch": "main", "minReviewers": 2}
    assert store.catalog.get_entity("repository", "r1")["relations"]["project"] == "p1"  # relation kept
    assert [c.kind for c in recorder.heard] == ["updated", "updated"]

    before = rows(db)
    second = store.write(ORG1, policy, merge=True, create_missing=False)
    assert (second.created, second.updated, second.unchanged) == (0, 0, 2)
    assert rows(db) == before

    # The repository resource again, merging: it gives no minReviewers, so that one stays.
    third = store.write(ORG1, [project("p1"), repo("r1"), repo("r2")], merge=True, create_missing=False)
    assert (third.updated, third.unchanged) == (0, 3)
    assert rows(db)[("repository", "r1")][1]["minReviewers"] == 2


def test_one_identifier_twice_in_a_call_merges_when_merging(store: IngestStore, db: Database) -> None:
    parts = [
        {"identifier": "p1", "blueprint": "project", "properties": {"state": "ok"}},
        {"identifier": "p1", "blueprint": "project", "title": "One", "properties": {"since": "2026-01-01T00:00:00Z"}},
    ]
    outcome = store.write(ORG1, parts, merge=True, create_missing=False)
    assert (outcome.created, outcome.updated) == (1, 0)
    title, props, _, _ = rows(db)[("project", "p1")]
    assert title == "One"
    assert props == {"state": "ok", "since": "2026-01-01T00:00:00.000Z", "visibility": "private"}

    replaced = store.write(ORG1, parts, merge=False, create_missing=False)
    assert replaced.updated == 1
    assert rows(db)[("project", "p1")][1] == {"since": "2026-01-01T00:00:00.000Z", "visibility": "private"}


def test_failures_are_reported_and_the_others_written(store: IngestStore, db: Database) -> None:
    outcome = store.write(
        ORG1,
        [
            project("p1"),
            repo("bad", size="big"),  # not a number
            repo("orphan", project_id="nowhere"),  # missing target, create_missing off
            {"identifier": "x", "blueprint": "nosuch"},
            {"identifier": "y"},
            repo("r1"),
        ],
        merge=False,
        create_missing=False,
    )
    assert (outcome.created, outcome.updated, outcome.unchanged) == (2, 0, 0)
    failed = {(f["blueprint"], f["identifier"]): f for f in outcome.failed}
    assert set(failed) == {("repository", "bad"), ("repository", "orphan"), ("nosuch", "x"), (None, "y")}
    assert failed[("nosuch", "x")]["code"] == "blueprint_not_found"
    assert failed[(None, "y")]["code"] == "invalid_entity"
    assert "size" in failed[("repository", "bad")]["message"]
    assert failed[("repository", "orphan")]["message"]
    assert "index" not in failed[("repository", "bad")]
    assert surviving(db) == {("project", "p1"), ("repository", "r1")}
    assert {(bp, ident) for _, bp, ident in recorded(db)} == {("project", "p1"), ("repository", "r1")}


def test_create_missing_makes_targets_but_does_not_claim_them(store: IngestStore, db: Database) -> None:
    outcome = store.write(ORG1, [repo("r1", project_id="ghost")], merge=False, create_missing=True)
    assert outcome.created == 1 and outcome.failed == []
    assert ("project", "ghost") in surviving(db)
    # Only what the resync produced is recorded: the placeholder is never a delete candidate.
    assert recorded(db) == {(ORG1.datasource, "repository", "r1")}


def test_an_entity_someone_else_wrote_is_claimed_when_produced_unchanged(store: IngestStore, db: Database) -> None:
    store.catalog.upsert_entity("project", {"identifier": "p1", "title": "P1", "properties": {"state": "ok"}})
    outcome = store.write(ORG1, [project("p1")], merge=False, create_missing=False)
    assert outcome.unchanged == 1
    assert recorded(db) == {(ORG1.datasource, "project", "p1")}


# ------------------------------------------------------------------------------------------------
# The delete phase


def seed(store: IngestStore, source: Source, projects: Sequence[str], repos: Sequence[str]) -> None:
    batch = [project(p) for p in projects] + [repo(r, project_id=projects[0]) for r in repos]
    outcome = store.write(source, batch, merge=False, create_missing=False)
    assert outcome.failed == []


BLUEPRINTS = ("project", "repository")


def test_stale_entities_are_deleted_and_others_writers_never(
    store: IngestStore, db: Database, recorder: Recorder
) -> None:
    seed(store, ORG1, ["p1"], ["r1", "r2", "r3", "r4"])
    store.catalog.upsert_entity("repository", {"identifier": "manual", "properties": {}})  # not the integration's
    recorder.heard.clear()
    produced = {"project": ["p1"], "repository": ["r1", "r2"]}

    plan = store.plan_deletion(ORG1, produced, BLUEPRINTS)
    assert plan.existing == 5
    assert plan.candidates == (("repository", "r3"), ("repository", "r4"))
    assert plan.doomed == plan.candidates and plan.spared == () and plan.shared == ()

    report = store.delete(ORG1, plan, threshold=0.9, delete_dependents=True)
    assert (report.ran, report.deleted, report.spared, report.candidates, report.existing) == (True, 2, 0, 2, 5)
    assert surviving(db) == {("project", "p1"), ("repository", "r1"), ("repository", "r2"), ("repository", "manual")}
    assert recorder.summary() == [("deleted", "repository", "r3"), ("deleted", "repository", "r4")]
    assert {ident for _, _, ident in recorded(db)} == {"p1", "r1", "r2"}


def test_the_delete_phase_planned_inside_its_transaction_deletes_the_same(
    store: IngestStore, db: Database, recorder: Recorder
) -> None:
    seed(store, ORG1, ["p1"], ["r1", "r2", "r3", "r4"])
    store.catalog.upsert_entity("repository", {"identifier": "manual", "properties": {}})
    recorder.heard.clear()
    produced = {"project": ["p1"], "repository": ["r1", "r2"]}

    report = store.delete_stale(ORG1, produced, BLUEPRINTS, threshold=0.9, delete_dependents=True)

    assert (report.ran, report.deleted, report.spared, report.candidates, report.existing) == (True, 2, 0, 2, 5)
    assert surviving(db) == {("project", "p1"), ("repository", "r1"), ("repository", "r2"), ("repository", "manual")}
    assert recorder.summary() == [("deleted", "repository", "r3"), ("deleted", "repository", "r4")]
    refused = store.delete_stale(ORG1, {}, BLUEPRINTS, threshold=0.5, delete_dependents=True)
    assert not refused.ran and "entityDeletionThreshold" in (refused.reason or "")
    assert surviving(db) == {("project", "p1"), ("repository", "r1"), ("repository", "r2"), ("repository", "manual")}


def test_only_the_planned_blueprints_are_candidates(store: IngestStore, db: Database) -> None:
    seed(store, ORG1, ["p1"], ["r1"])
    plan = store.plan_deletion(ORG1, {"project": ["p1"]}, ["project"])  # repository: not in this mapping
    assert plan.existing == 1 and plan.candidates == ()
    report = store.delete(ORG1, plan, threshold=0.9, delete_dependents=True)
    assert report.ran and report.deleted == 0
    assert surviving(db) == {("project", "p1"), ("repository", "r1")}


def test_relation_targets_of_staying_entities_are_spared(store: IngestStore, db: Database) -> None:
    seed(store, ORG1, ["p1", "p2", "p3"], ["r1", "r2", "r3", "r4", "r5", "r6"])
    # r2 (stale) depends on r3 (stale): r3 is spared only because r2 is, which r1 points at.
    store.write(
        ORG1, [{**repo("r1"), "relations": {"project": "p1", "dependsOn": ["r2"]}}], merge=True, create_missing=False
    )
    store.write(
        ORG1, [{**repo("r2"), "relations": {"project": "p2", "dependsOn": ["r3"]}}], merge=True, create_missing=False
    )
    # Someone else's service requires r4 (stale): spared too.
    store.catalog.upsert_entity("service", {"identifier": "svc", "relations": {"repository": "r4"}})
    # r5 (stale) points at r6 (stale), nothing points at r5: both go.
    store.write(
        ORG1, [{**repo("r5"), "relations": {"project": "p3", "dependsOn": ["r6"]}}], merge=True, create_missing=False
    )
    produced = {"project": ["p1", "p3"], "repository": ["r1"]}

    plan = store.plan_deletion(ORG1, produced, BLUEPRINTS)
    assert plan.candidates == (
        ("project", "p2"),
        ("repository", "r2"),
        ("repository", "r3"),
        ("repository", "r4"),
        ("repository", "r5"),
        ("repository", "r6"),
    )
    # p2: r2 (spared) points at it.
    assert plan.spared == (("project", "p2"), ("repository", "r2"), ("repository", "r3"), ("repository", "r4"))
    assert plan.doomed == (("repository", "r5"), ("repository", "r6"))

    report = store.delete(ORG1, plan, threshold=0.9, delete_dependents=True)
    assert (report.ran, report.deleted, report.spared) == (True, 2, 4)
    assert surviving(db) == {
        ("project", "p1"),
        ("project", "p2"),
        ("project", "p3"),
        ("repository", "r1"),
        ("repository", "r2"),
        ("repository", "r3"),
        ("repository", "r4"),
        ("service", "svc"),
    }
    # Spared entities stay recorded: once nothing points at them, a later resync deletes them.
    assert (ORG1.datasource, "repository", "r4") in recorded(db)


def test_the_threshold_refuses_over_and_passes_at(store: IngestStore, db: Database, recorder: Recorder) -> None:
    seed(store, ORG1, ["p1"], ["r1", "r2", "r3"])
    everything = surviving(db)
    recorder.heard.clear()

    over = store.plan_deletion(ORG1, {"project": ["p1"], "repository": ["r1"]}, BLUEPRINTS)  # 2 of 4
    report = store.delete(ORG1, over, threshold=0.4, delete_dependents=True)
    assert (report.ran, report.deleted, report.candidates, report.existing) == (False, 0, 2, 4)
    assert report.reason is not None and "entityDeletionThreshold 0.4" in report.reason
    assert surviving(db) == everything and recorder.heard == []

    at = store.delete(ORG1, over, threshold=0.5, delete_dependents=True)  # 2/4 = 0.5: ≤ passes (Ocean's rule)
    assert (at.ran, at.deleted) == (True, 2)

    nothing = store.plan_deletion(ORG1, {}, BLUEPRINTS)  # an empty resync: 2 of 2
    refused = store.delete(ORG1, nothing, threshold=0.9, delete_dependents=True)
    assert not refused.ran and refused.candidates == 2
    assert surviving(db) == {("project", "p1"), ("repository", "r1")}

    zero = store.plan_deletion(ORG1, {"project": ["p1"], "repository": ["r1"]}, BLUEPRINTS)
    none_stale = store.delete(ORG1, zero, threshold=0, delete_dependents=True)
    assert (none_stale.ran, none_stale.deleted) == (True, 0)


def test_two_organisations_keep_their_own_entities(store: IngestStore, db: Database) -> None:
    seed(store, ORG1, ["p1"], ["shared", "only1"])
    seed(store, ORG2, ["p1"], ["shared", "only2", "stale2"])
    seed(store, OTHER_INTEGRATION, ["p1"], ["shared"])

    # ORG2's resync produced neither "shared" nor "stale2": "shared" loses ORG2's record only.
    plan = store.plan_deletion(ORG2, {"project": ["p1"], "repository": ["only2"]}, BLUEPRINTS)
    assert plan.candidates == (("repository", "shared"), ("repository", "stale2"))
    assert plan.shared == (("repository", "shared"),)
    assert plan.doomed == (("repository", "stale2"),)
    report = store.delete(ORG2, plan, threshold=0.9, delete_dependents=True)
    assert (report.ran, report.deleted) == (True, 1)
    assert surviving(db) == {
        ("project", "p1"),
        ("repository", "shared"),
        ("repository", "only1"),
        ("repository", "only2"),
    }
    assert (ORG2.datasource, "repository", "shared") not in recorded(db)
    assert (ORG1.datasource, "repository", "shared") in recorded(db)
    assert (OTHER_INTEGRATION.datasource, "repository", "shared") in recorded(db)

    # ORG1 failing to produce anything of ORG2's never touches ORG2's entities.
    plan1 = store.plan_deletion(ORG1, {"project": ["p1"], "repository": ["shared"]}, BLUEPRINTS)
    assert plan1.candidates == (("repository", "only1"),)
    store.delete(ORG1, plan1, threshold=0.9, delete_dependents=True)
    assert surviving(db) == {("project", "p1"), ("repository", "shared"), ("repository", "only2")}


def test_an_entity_someone_requires_since_the_plan(store: IngestStore, db: Database) -> None:
    seed(store, ORG1, ["p1"], ["r1", "r2", "r3", "r4"])
    produced = {"project": ["p1"], "repository": ["r1", "r2"]}
    plan = store.plan_deletion(ORG1, produced, BLUEPRINTS)
    assert plan.doomed == (("repository", "r3"), ("repository", "r4"))
    store.catalog.upsert_entity("service", {"identifier": "svc", "relations": {"repository": "r3"}})

    # Without deleteDependentEntities: refused as a whole, as Port refuses; nothing deleted.
    refused = store.delete(ORG1, plan, threshold=0.9, delete_dependents=False)
    assert not refused.ran
    assert refused.reason is not None and "'svc'" in refused.reason
    assert len(surviving(db)) == 6

    # With it: kiosk still never deletes another writer's entity; the target is spared instead.
    report = store.delete(ORG1, plan, threshold=0.9, delete_dependents=True)
    assert (report.ran, report.deleted, report.spared) == (True, 1, 1)
    assert surviving(db) == {
        ("project", "p1"),
        ("repository", "r1"),
        ("repository", "r2"),
        ("repository", "r3"),
        ("service", "svc"),
    }


def test_dependents_inside_the_plan_go_together(store: IngestStore, db: Database) -> None:
    store.catalog.create_blueprint(
        {"identifier": "branch", "relations": {"repository": {"target": "repository", "required": True}}}
    )
    seed(store, ORG1, ["p1"], ["r1", "r2"])
    store.write(
        ORG1,
        [{"identifier": "b2", "blueprint": "branch", "relations": {"repository": "r2"}}],
        merge=False,
        create_missing=False,
    )
    plan = store.plan_deletion(ORG1, {"project": ["p1"], "repository": ["r1"]}, ["project", "repository", "branch"])
    assert plan.doomed == (("branch", "b2"), ("repository", "r2"))
    report = store.delete(ORG1, plan, threshold=0.9, delete_dependents=False)
    assert (report.ran, report.deleted) == (True, 2)
    assert surviving(db) == {("project", "p1"), ("repository", "r1")}


def test_nothing_planned_is_deleted_beyond_the_plan(store: IngestStore, db: Database) -> None:
    seed(store, ORG1, ["p1"], ["r1", "r2", "r3"])
    plan = store.plan_deletion(ORG1, {"project": ["p1"], "repository": ["r1", "r2"]}, BLUEPRINTS)
    # Produced by a later write of the same source, after the plan: r2 is no longer in the plan's
    # produced set only by the plan's account; the plan only ever deletes r3.
    store.catalog.upsert_entity("repository", {"identifier": "r9", "properties": {}})
    store.write(ORG1, [repo("r9")], merge=False, create_missing=False)
    report = store.delete(ORG1, plan, threshold=0.9, delete_dependents=True)
    assert report.deleted == 1
    assert surviving(db) == {("project", "p1"), ("repository", "r1"), ("repository", "r2"), ("repository", "r9")}


def test_a_failure_mid_delete_deletes_nothing(
    store: IngestStore, db: Database, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(store, ORG1, ["p1"], ["r1", "r2", "r3", "r4"])
    seed(store, ORG2, ["p1"], ["r2"])
    everything, records = surviving(db), recorded(db)
    plan = store.plan_deletion(ORG1, {"project": ["p1"], "repository": ["r1"]}, BLUEPRINTS)
    assert plan.doomed == (("repository", "r3"), ("repository", "r4")) and plan.shared == (("repository", "r2"),)

    monkeypatch.setattr(store_module, "CHUNK", 1)  # one entity per statement
    real = store_module._delete_entities
    calls: list[Sequence[int]] = []

    def dies_on_the_second(conn: Connection, ids: Sequence[int]) -> None:
        calls.append(ids)
        if len(calls) == 2:
            raise RuntimeError("killed mid-delete")
        real(conn, ids)

    monkeypatch.setattr(store_module, "_delete_entities", dies_on_the_second)
    with pytest.raises(RuntimeError, match="killed mid-delete"):
        store.delete(ORG1, plan, threshold=0.9, delete_dependents=True)
    assert len(calls) == 2  # the first entity was deleted inside the transaction, then rolled back
    assert surviving(db) == everything and recorded(db) == records

    monkeypatch.setattr(store_module, "_delete_entities", real)
    recorder.fail = True  # the listener fails after every row was deleted: all rolled back too
    with pytest.raises(RuntimeError, match="listener failed"):
        store.delete(ORG1, plan, threshold=0.9, delete_dependents=True)
    assert surviving(db) == everything and recorded(db) == records

    recorder.fail = False
    report = store.delete(ORG1, plan, threshold=0.9, delete_dependents=True)
    assert (report.ran, report.deleted) == (True, 2)
    assert surviving(db) == everything - {("repository", "r3"), ("repository", "r4")}
    assert (ORG1.datasource, "repository", "r2") not in recorded(db)


def test_a_plan_is_for_its_own_source(store: IngestStore) -> None:
    plan = store.plan_deletion(ORG1, {}, BLUEPRINTS)
    with pytest.raises(ValueError):
        store.delete(ORG2, plan, threshold=0.9, delete_dependents=True)


# ------------------------------------------------------------------------------------------------
# State, examples, mapping


def test_state_round_trip(store: IngestStore) -> None:
    assert store.load_state("ado") is None
    start = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)
    state = ResyncState(
        integration="ado",
        status="running",
        started_at=start,
        interval_minutes=60,
        next_resync_at=start + timedelta(hours=1),
        organizations=[
            OrgState(
                url=ORG1.organization,
                status="running",
                resources=[
                    ResourceState(index=0, kind="project", blueprint="project", fetched=3, created=2, errors=["x"])
                ],
                started_at=start,
            )
        ],
        trigger="schedule",
    )
    store.save_state(state)
    assert store.load_state("ado") == state
    state.status = "completed"
    state.finished_at = start + timedelta(minutes=2)
    state.organizations[0].deletion.ran = True
    state.organizations[0].deletion.deleted = 4
    store.save_state(state)
    loaded = store.load_state("ado")
    assert loaded == state and loaded is not None and loaded.totals()["deleted"] == 4
    assert store.load_state("other") is None


def test_examples_round_trip(store: IngestStore) -> None:
    assert store.examples("ado", "repository") == []
    store.save_examples("ado", "repository", [{"id": "1", "name": "a"}, {"id": "2", "nested": {"x": [1, None]}}])
    store.save_examples("ado", "project", [{"id": "p"}])
    assert store.examples("ado", "repository") == [{"id": "1", "name": "a"}, {"id": "2", "nested": {"x": [1, None]}}]
    store.save_examples("ado", "repository", [{"id": "3"}])
    assert store.examples("ado", "repository") == [{"id": "3"}]
    assert store.examples("ado", "project") == [{"id": "p"}]
    assert store.examples("other", "project") == []


def test_mapping_round_trip(store: IngestStore) -> None:
    assert store.load_mapping("ado") is None
    mapping = {"enableMergeEntity": True, "resources": [{"kind": "project", "selector": {"query": "true"}}]}
    before = datetime.now(UTC)
    store.save_mapping("ado", mapping, actor="client-1")
    loaded = store.load_mapping("ado")
    assert loaded is not None
    assert loaded[0] == mapping and loaded[2] == "client-1"
    assert loaded[1].tzinfo is not None and before - timedelta(seconds=1) <= loaded[1] <= datetime.now(UTC)
    store.save_mapping("ado", {"resources": []}, actor=None)
    assert store.load_mapping("ado") is not None and store.load_mapping("ado")[0:3:2] == ({"resources": []}, None)  # type: ignore[index]
    store.clear_mapping("ado")
    assert store.load_mapping("ado") is None
    store.clear_mapping("ado")  # clearing nothing is fine


# ------------------------------------------------------------------------------------------------
# The quick comparison never says "unchanged" where the exact one would not


VARIATIONS: list[tuple[str, dict[str, Any], bool]] = [
    # (what, the document written over the stored r1, is it unchanged when merging)
    ("same", repo("r1"), True),
    ("title", {**repo("r1"), "title": "other"}, False),
    ("title not given", {k: v for k, v in repo("r1").items() if k != "title"}, True),
    ("icon", {**repo("r1"), "icon": "Git"}, False),
    ("team", {**repo("r1"), "team": "platform"}, False),
    ("property value", repo("r1", branch="dev"), False),
    ("property type", repo("r1", tags=[True]), False),
    ("property cleared", repo("r1", branch=None), False),
    ("property added", repo("r1", size=3), False),
    ("relation", repo("r1", project_id="p2"), False),
    ("relation as list", {**repo("r1"), "relations": {"project": ["p1"]}}, False),  # refused: not many
    ("many relation as one", {**repo("r1"), "relations": {"dependsOn": "r2"}}, True),
    ("relation cleared", {**repo("r1"), "relations": {"project": None}}, False),
    ("many relation duplicated", {**repo("r1"), "relations": {"dependsOn": ["r2", "r2"]}}, True),
    ("many relation reordered", {**repo("r1"), "relations": {"dependsOn": ["r2", "r3"]}}, False),
    ("unknown relation", {**repo("r1"), "relations": {"nope": "x"}}, False),
    ("invalid property", repo("r1", size="big"), False),
    ("unknown field", {**repo("r1"), "owner": "x"}, False),
    ("team null", {**repo("r1"), "team": None}, True),
    ("team as one name", {**repo("r1"), "team": "platform"}, False),
    ("properties null", {**repo("r1"), "properties": None}, False),
    ("date in another offset", repo("r1", pushedAt="2026-01-01T02:00:00+02:00"), True),
    ("date not a date", repo("r1", pushedAt="yesterday"), False),
]


@pytest.mark.parametrize(("what", "doc", "same_when_merging"), VARIATIONS, ids=[v[0] for v in VARIATIONS])
def test_the_quick_check_is_sound(
    store: IngestStore, db: Database, what: str, doc: dict[str, Any], same_when_merging: bool
) -> None:
    base = {
        **repo("r1", tags=[1], pushedAt="2026-01-01T00:00:00Z"),
        "relations": {"project": "p1", "dependsOn": ["r2"]},
    }
    store.write(ORG1, [project("p1"), project("p2"), repo("r2"), repo("r3"), base], merge=False, create_missing=False)
    with db.connect() as conn:
        compiled = store.catalog.blueprints.load(conn, "repository")
        ((stored, _, _),) = store_module._stored(conn, "repository", ["r1"], ORG1.datasource, True).values()
    dates = store_module._datetime_properties(compiled)
    for merge in (True, False):
        quick = store_module._same_as_stored(compiled, dates, doc, stored, merge)
        try:
            entity = parse_entity(doc, "repository")
        except EntityError:
            exact = False  # refused: the write reports it
        else:
            exact = store_module._unchanged(compiled, entity, stored, merge)
        assert not quick or exact, (what, merge)
        if merge:
            assert exact is same_when_merging, what
    # And the write agrees with the exact check.
    outcome = store.write(ORG1, [doc], merge=True, create_missing=False)
    assert outcome.unchanged == (1 if same_when_merging else 0), what


@pytest.mark.postgres
def test_postgres_statistics_are_refreshed_as_a_first_resync_grows(pg_url: str) -> None:
    from kiosk.store import create_database, upgrade_to_head

    db = create_database(pg_url)
    try:
        upgrade_to_head(db)
        catalog = Catalog(db)
        catalog.create_blueprint({"identifier": "project"})
        store = IngestStore(db, catalog)

        def reltuples() -> float:
            with db.connect() as conn:
                return float(
                    conn.exec_driver_sql("SELECT reltuples FROM pg_class WHERE relname = 'entities'").scalar_one()
                )

        store.write(ORG1, [{"identifier": "a", "blueprint": "project"}], merge=False, create_missing=False)
        assert reltuples() < 0  # never analysed
        store._analyze_after = 3
        store.write(ORG1, [{"identifier": i, "blueprint": "project"} for i in "bcd"], merge=False, create_missing=False)
        assert reltuples() == 4
        assert store._analyze_after == 8  # twice the growth that triggered it
    finally:
        db.dispose()


def test_records_go_with_their_entity_whoever_deletes_it(store: IngestStore, db: Database) -> None:
    seed(store, ORG1, ["p1"], ["r1", "r2"])
    store.catalog.delete_entity("repository", "r1")
    assert {ident for _, _, ident in recorded(db)} == {"p1", "r2"}
    store.catalog.delete_entity("repository", "r2")
    assert recorded(db) == {(ORG1.datasource, "project", "p1")}
    # A later resync of the same source finds nothing of the deleted entities to plan for.
    plan = store.plan_deletion(ORG1, {"project": ["p1"]}, ["project", "repository"])
    assert (plan.existing, plan.candidates) == (1, ())


def test_items_held_as_marked_need_only_their_version_s_suffix(store: IngestStore) -> None:
    marks = MarkBatch(
        "res",
        [
            ItemMark("1", "7/projA", (("project", "p1"),)),
            ItemMark("2", "3/projA", (("project", "p2"),)),
            ItemMark("3", "5/projB", (("project", "p3"),)),
        ],
    )
    store.write(ORG1, [project("p1"), project("p2"), project("p3")], merge=False, create_missing=False, marks=marks)
    # Any marked revision will do, but the suffix (the project stamped on the item) must match.
    held = store.unchanged_as_marked(ORG1, "res", {"1": "/projA", "2": "/projA", "3": "/projA", "4": "/projA"})
    assert held == {"1": (("project", "p1"),), "2": (("project", "p2"),)}
    # The exact comparison still wants the version itself.
    assert set(store.unchanged_items(ORG1, "res", {"1": "7/projA", "2": "4/projA"})) == {"1"}
    # Another source, or another resource, holds none of them.
    assert store.unchanged_as_marked(ORG2, "res", {"1": "/projA"}) == {}
    assert store.unchanged_as_marked(ORG1, "other", {"1": "/projA"}) == {}
    # An entity written by someone since is no longer as marked.
    store.catalog.patch_entity("project", "p2", {"title": "by hand"}, actor="someone")
    assert set(store.unchanged_as_marked(ORG1, "res", {"1": "/projA", "2": "/projA"})) == {"1"}


def test_when_a_complete_read_began_is_kept_per_source_and_resource(store: IngestStore) -> None:
    assert store.read_began(ORG1, "res") is None
    first = datetime(2026, 12, 6, 18, 2, 20, 812587, tzinfo=UTC)
    store.save_read_began(ORG1, "res", first)
    store.save_read_began(ORG1, "other", first - timedelta(days=1))
    assert store.read_began(ORG1, "res") == first
    assert store.read_began(ORG2, "res") is None
    later = first + timedelta(hours=1)
    store.save_read_began(ORG1, "res", later)  # replaced, not added
    assert store.read_began(ORG1, "res") == later
    # A resource no longer in the mapping loses it with its marks.
    store.forget_resources(ORG1, {"other"})
    assert store.read_began(ORG1, "res") is None
    assert store.read_began(ORG1, "other") == first - timedelta(days=1)


def test_a_resync_leaves_what_live_events_wrote_after_it_began(store: IngestStore) -> None:
    store.write(ORG1, [project("p1"), project("p2")], merge=False, create_missing=False)
    began = datetime.now(UTC)
    live = store.write(ORG1, [project("p1", state="live")], merge=False, create_missing=False, live=True)
    assert (live.updated, live.newer) == (1, 0)
    assert store.catalog.get_entity("project", "p1")["updatedBy"] == ORG1.live_actor
    # The resync read p1 before the event: what it read is older, and is not written back …
    stale = [project("p1", state="old"), project("p2", state="new")]
    outcome = store.write(ORG1, stale, merge=False, create_missing=False, newer_since=began)
    assert (outcome.updated, outcome.unchanged, outcome.newer) == (1, 1, 1)
    assert store.catalog.get_entity("project", "p1")["properties"]["state"] == "live"
    # … while a resync that began after the event writes over it as usual.
    later = store.write(ORG1, stale, merge=False, create_missing=False, newer_since=datetime.now(UTC))
    assert (later.updated, later.newer) == (1, 0)
    assert store.catalog.get_entity("project", "p1")["properties"]["state"] == "old"


def test_the_delete_phase_keeps_what_was_written_after_the_resync_began(store: IngestStore) -> None:
    store.write(ORG1, [project("p1"), project("p2")], merge=False, create_missing=False)
    began = datetime.now(UTC)
    store.write(ORG1, [project("p3")], merge=False, create_missing=False, live=True)  # an event, meanwhile
    report = store.delete_stale(
        ORG1, {"project": ["p1"]}, ["project"], threshold=1, delete_dependents=False, written_since=began
    )
    assert report.ran and report.deleted == 1
    assert {e["identifier"] for e in store.catalog.list_entities("project", limit=10)[0]} == {"p1", "p3"}


@pytest.mark.postgres
def test_an_entity_another_writer_created_meanwhile_is_written_again(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live event and a resync (or two processes) may create one entity at once: the write whose
    insert finds the other's row is made again, and compares with it (PostgreSQL: SQLite's writers
    take the database one at a time)."""
    db = create_database(pg_url)
    upgrade_to_head(db)
    catalog = Catalog(db)
    catalog.create_blueprint({"identifier": "project", "schema": {"properties": {"state": {"type": "string"}}}})
    store = IngestStore(db, catalog)
    insert = bulk.insert_entities
    raced: list[str] = []

    def insert_after_the_other_writer(conn: Connection, blueprint: str, *args: Any, **options: Any) -> Any:
        if not raced:  # the other writer creates p1, committed, between this one's look and insert
            raced.append(blueprint)
            IngestStore(db, Catalog(db)).write(ORG2, [project("p1", state="theirs")], merge=False, create_missing=False)
        return insert(conn, blueprint, *args, **options)

    monkeypatch.setattr(bulk, "insert_entities", insert_after_the_other_writer)
    outcome = store.write(ORG1, [project("p1", state="ours"), project("p2")], merge=False, create_missing=False)
    assert raced == ["project"]
    assert (outcome.created, outcome.updated, outcome.failed) == (1, 1, [])
    assert catalog.get_entity("project", "p1")["properties"]["state"] == "ours"
    assert {(ds, "project", "p1") for ds in (ORG1.datasource, ORG2.datasource)} <= recorded(db)
