"""Property expression indexes: naming, DDL on both engines, and that ``=`` rules really use them."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from kiosk.catalog.indexes import (
    check_property_name,
    drop_property_index,
    ensure_property_index,
    indexed_properties,
    property_index_expression,
    property_index_name,
)
from kiosk.catalog.search import compile_query
from kiosk.errors import ValidationFailed
from kiosk.store import Database, create_database, upgrade_to_head
from kiosk.store.tables import blueprints, entities

#: ``-m "not postgres"`` runs the SQLite half alone (the project's marker convention).
ENGINES = [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
#: A name using every special character a property name may hold.
ODD = "my-prop@x$=_1"
ROWS = 240


class Explain(Executable, ClauseElement):
    """``EXPLAIN <statement>`` with the statement's bind parameters processed as usual."""

    inherit_cache = False

    def __init__(self, statement: sa.Select[Any], prefix: str) -> None:
        self.statement = statement
        self.prefix = prefix


@compiles(Explain)
def _compile_explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{element.prefix} {compiler.process(element.statement, **kw)}"


# ---------------------------------------------------------------------------- pure functions


def test_index_name_is_stable_safe_and_distinct() -> None:
    name = property_index_name("env")
    assert name == property_index_name("env")
    assert re.fullmatch(r"ix_entities_prop_[0-9a-f]{16}", name)
    assert property_index_name(ODD) != name
    assert len(property_index_name("a" * 100)) <= 63  # PostgreSQL's identifier limit


@pytest.mark.parametrize("name", ["env", "a", "A_b-c@d=e$f", "$team", "x" * 100])
def test_property_names_accepted(name: str) -> None:
    assert check_property_name(name) == name


@pytest.mark.parametrize("name", ["", "a.b", "a'b", 'a"b', "a b", "a\\b", "a[0]", "é", "x" * 101, "a\n", None, 3])
def test_property_names_rejected(name: Any) -> None:
    with pytest.raises(ValidationFailed, match="not a property name"):
        check_property_name(name)


def test_index_expressions() -> None:
    assert property_index_expression("sqlite", "env") == "json_extract(properties, '$.\"env\"')"
    assert property_index_expression("postgresql", "env") == "(properties -> 'env')"
    with pytest.raises(ValueError, match="unsupported"):
        property_index_expression("mysql", "env")
    with pytest.raises(ValidationFailed):
        property_index_expression("sqlite", "a'); DROP TABLE entities; --")


def test_indexed_properties() -> None:
    schema = {
        "env": {"type": "string", "x-kiosk-index": True},
        "tier": {"type": "number"},
        "typo": {"type": "string", "x-kiosk-index": "true"},
        "one": {"type": "string", "x-kiosk-index": 1},
        "odd": "not a schema",
        ODD: {"type": "number", "x-kiosk-index": True},
    }
    assert indexed_properties(schema) == ["env", ODD]
    assert indexed_properties({}) == []
    with pytest.raises(ValidationFailed, match=r"schema\.properties\.a\.b"):
        indexed_properties({"a.b": {"x-kiosk-index": True}})


# -------------------------------------------------------------------------- both engines


@pytest.fixture(scope="module", params=ENGINES)
def index_db(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A database with ROWS service entities whose ``env``/ODD/``plain`` values cycle through types."""
    if request.param == "sqlite":
        url = f"sqlite:///{request.getfixturevalue('tmp_path_factory').mktemp('indexes') / 'kiosk.db'}"
    else:
        url = request.getfixturevalue("pg_server").create_database(f"indexes_{uuid.uuid4().hex[:8]}")
    db = create_database(url)
    upgrade_to_head(db)
    values: list[Any] = ["dev", "prod", "staging", 1, True, None, "1", ["dev"]]
    with db.begin() as conn:
        conn.execute(
            blueprints.insert(),
            [{"identifier": "service", "definition": {"identifier": "service"}, "created_at": NOW, "updated_at": NOW}],
        )
        conn.execute(
            entities.insert(),
            [
                {
                    "blueprint": "service",
                    "identifier": f"svc-{i}",
                    "team": [],
                    "properties": {"env": values[i % len(values)], ODD: i, "plain": values[i % len(values)]},
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for i in range(ROWS)
            ],
        )
        for prop in ("env", ODD):
            ensure_property_index(conn, db.dialect, prop)
    yield db
    db.dispose()


def index_names(conn: Connection, dialect: str) -> set[str]:
    if dialect == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'entities'"
    else:
        sql = "SELECT indexname FROM pg_indexes WHERE tablename = 'entities'"
    return {row[0] for row in conn.exec_driver_sql(sql)}


def plan(conn: Connection, db: Database, query: dict[str, Any]) -> str:
    statement = sa.select(entities.c.identifier).where(compile_query(query, db))
    if db.is_postgres:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # 240 rows: make the choice visible
        return "\n".join(row[0] for row in conn.execute(Explain(statement, "EXPLAIN")))
    return "\n".join(str(row[-1]) for row in conn.execute(Explain(statement, "EXPLAIN QUERY PLAN")))


def eq(prop: str, value: Any, operator: str = "=") -> dict[str, Any]:
    return {"combinator": "and", "rules": [{"property": prop, "operator": operator, "value": value}]}


def test_ensure_is_idempotent_and_drop_removes(index_db: Database) -> None:
    with index_db.begin() as conn:
        before = index_names(conn, index_db.dialect)
        assert {property_index_name("env"), property_index_name(ODD)} <= before
        ensure_property_index(conn, index_db.dialect, "env")  # again: no error, no new index
        assert index_names(conn, index_db.dialect) == before
        ensure_property_index(conn, index_db.dialect, "extra")
        assert property_index_name("extra") in index_names(conn, index_db.dialect)
        drop_property_index(conn, index_db.dialect, "extra")
        drop_property_index(conn, index_db.dialect, "extra")  # absent: still fine
        assert index_names(conn, index_db.dialect) == before


@pytest.mark.parametrize(
    ("prop", "value", "operator"),
    [("env", "dev", "="), ("env", 1, "="), ("env", True, "="), (ODD, 7, "="), ("env", ["dev", "prod"], "in")],
)
def test_equality_uses_the_index(index_db: Database, prop: str, value: Any, operator: str) -> None:
    with index_db.begin() as conn:
        text = plan(conn, index_db, eq(prop, value, operator))
    assert property_index_name(prop) in text, text


def test_unindexed_property_scans(index_db: Database) -> None:
    """The check above means something: the same rule on an unindexed property uses no index."""
    with index_db.begin() as conn:
        text = plan(conn, index_db, eq("plain", "dev"))
    assert "ix_entities_prop_" not in text, text


@pytest.mark.parametrize(
    ("prop", "value", "expected"),
    [
        ("env", "dev", ROWS // 8),
        ("env", 1, ROWS // 8),  # the number 1: not true, not "1"
        ("env", True, ROWS // 8),
        ("env", "1", ROWS // 8),
        ("env", None, ROWS // 8),
        (ODD, 7, 1),
    ],
)
def test_indexed_equality_keeps_exact_json_semantics(index_db: Database, prop: str, value: Any, expected: int) -> None:
    with index_db.connect() as conn:
        found = conn.execute(
            sa.select(sa.func.count()).select_from(entities).where(compile_query(eq(prop, value), index_db))
        ).scalar_one()
    assert found == expected
