"""The pipelined bulk write (validate stage k+1 while stage k is stored) changes nothing but speed.

Each case runs the same batch through the pipelined path (stages of 4 entities) and through the
all-at-once path, on two identical blueprints, and compares what each answered and stored. The
pipeline is SQLite's only (PostgreSQL writes in one pass), so these run on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kiosk.catalog import writes as catalog_writes
from kiosk.catalog.results import BulkOutcome
from kiosk.catalog.service import Catalog
from kiosk.store import Database, bulk, create_database, upgrade_to_head

TEAM = {"identifier": "team", "schema": {"properties": {"size": {"type": "number"}}}}


def _service(identifier: str) -> dict[str, Any]:
    return {
        "identifier": identifier,
        "schema": {
            "properties": {
                "lang": {"type": "string", "enum": ["go", "py"]},
                "since": {"type": "string", "format": "date-time"},
                "tier": {"type": "number", "default": 3},
            },
            "required": ["lang"],
        },
        "relations": {"team": {"target": "team"}, "helpers": {"target": "team", "many": True}},
    }


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    db = create_database(f"sqlite:///{tmp_path / 'kiosk.db'}")
    upgrade_to_head(db)
    c = Catalog(db)
    c.create_blueprint(TEAM)
    c.create_blueprint(_service("piped"))
    c.create_blueprint(_service("at_once"))
    c.bulk_upsert("team", [{"identifier": f"t{i}"} for i in range(3)])
    try:
        yield c
    finally:
        db.dispose()


def _batch() -> list[Any]:
    """Valid entities with errors of every kind scattered across stages."""
    out: list[Any] = []
    for i in range(30):
        entity: dict[str, Any] = {
            "identifier": f"s{i}",
            "title": f"Service {i}",
            "properties": {"lang": "go" if i % 2 else "py", "since": "2026-11-24T10:00:00+00:00"},
            "relations": {"team": f"t{i % 3}", "helpers": [f"t{(i + 1) % 3}", "t0"]},
        }
        if i == 5:
            entity["properties"]["lang"] = "cobol"
        if i == 9:
            entity["relations"]["team"] = "nobody"
        if i == 13:
            entity["relations"]["ghost"] = "t1"
        if i == 17:
            del entity["properties"]["lang"]
        if i == 21:
            entity["identifier"] = "s20"  # the same identifier twice in one request
        out.append(entity)
    out.insert(7, "not an entity")
    out.insert(25, {"identifier": "bad id!", "properties": {"lang": "go"}})
    return out


def _both(catalog: Catalog, monkeypatch: pytest.MonkeyPatch, batch: list[Any], **options: Any) -> list[BulkOutcome]:
    monkeypatch.setattr(catalog_writes, "PIPELINE_CHUNK", 4)
    piped = catalog.bulk_upsert("piped", batch, **options)
    monkeypatch.setattr(catalog_writes, "PIPELINE_CHUNK", 10**9)
    at_once = catalog.bulk_upsert("at_once", batch, **options)
    return [piped, at_once]


def _normalised(outcome: BulkOutcome) -> tuple[Any, Any]:
    errors = [{k: str(v).replace("'piped'", "'at_once'") for k, v in e.items()} for e in outcome.errors]
    return outcome.entities, errors


def _stored(catalog: Catalog, blueprint: str) -> list[dict[str, Any]]:
    page, _ = catalog.list_entities(blueprint, limit=1000)
    return [{k: v for k, v in e.items() if k not in ("blueprint", "createdAt", "updatedAt")} for e in page]


def test_pipelined_and_at_once_agree_on_create_and_upsert(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    piped, at_once = _both(catalog, monkeypatch, _batch())
    assert _normalised(piped) == _normalised(at_once)
    assert len(piped.entities) == 25 and len(piped.errors) == 7
    assert _stored(catalog, "piped") == _stored(catalog, "at_once")

    again = _batch()
    for entity in again:
        if isinstance(entity, dict) and "properties" in entity:
            entity["properties"]["tier"] = 7
            entity["relations"] = {"helpers": ["t2"]}
    for options in ({"upsert": False}, {"upsert": True, "merge": True}, {"upsert": True}):
        piped, at_once = _both(catalog, monkeypatch, again, **options)
        assert _normalised(piped) == _normalised(at_once), options
        assert _stored(catalog, "piped") == _stored(catalog, "at_once"), options
    stored = catalog.get_entity("piped", "s0")
    assert stored["properties"]["tier"] == 7 and stored["relations"] == {"team": None, "helpers": ["t2"]}


def test_a_failing_stage_rolls_back_the_whole_call(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_writes, "PIPELINE_CHUNK", 4)
    calls = {"n": 0}
    real = bulk.insert_edges

    def failing(conn: Any, edges: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk on fire")
        real(conn, edges)

    monkeypatch.setattr(bulk, "insert_edges", failing)
    valid = [e for e in _batch() if isinstance(e, dict) and e["identifier"] not in ("s5", "s9", "s13", "s17")]
    with pytest.raises(RuntimeError, match="disk on fire"):
        catalog.bulk_upsert("piped", valid)
    assert calls["n"] >= 3
    assert _stored(catalog, "piped") == []


def test_postgresql_writes_in_one_pass(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL the pipeline is never used (its COPY is Python per row: two threads would
    fight over the GIL); on SQLite it is, for a batch larger than one stage."""
    c = Catalog(db)
    c.create_blueprint(TEAM)
    c.create_blueprint(_service("svc"))
    monkeypatch.setattr(catalog_writes, "PIPELINE_CHUNK", 4)
    used: list[bool] = []
    real = catalog_writes._write_pipelined

    def spy(*args: Any, **kwargs: Any) -> Any:
        used.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(catalog_writes, "_write_pipelined", spy)
    out = c.bulk_upsert("svc", [{"identifier": f"s{i}", "properties": {"lang": "go"}} for i in range(10)])
    assert len(out.entities) == 10 and not out.errors
    assert used == ([True] if db.dialect == "sqlite" else [])
