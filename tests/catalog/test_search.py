"""Port search rules: parsing errors, SQL on SQLite and PostgreSQL, and SQL == the reference evaluator.

Every SQL test runs on both engines (``catalog_db`` / ``random_db`` are parametrised); each
example also checks :func:`kiosk.catalog.search.evaluate` gives the same answer, and the
Hypothesis tests compare the two on random rule trees over a fixed random dataset.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kiosk.catalog.dates import canonical_datetime
from kiosk.catalog.search import (
    Edge,
    EdgeListRelations,
    EntityKey,
    Query,
    compile_query,
    compile_query_for_dialect,
    evaluate,
    parse_query,
)
from kiosk.errors import KioskError, ValidationFailed
from kiosk.store import Database, create_database, upgrade_to_head
from kiosk.store.tables import blueprints, entities, entity_relations

#: ``-m "not postgres"`` runs the SQLite half alone (the project's marker convention).
ENGINES = [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]
CREATED = datetime(2026, 1, 1, tzinfo=UTC)

# ----------------------------------------------------------------------------------- fixtures


def open_database(engine: str, name: str, request: pytest.FixtureRequest) -> Database:
    """A migrated, empty database on ``engine`` (PostgreSQL started only when a test needs it)."""
    if engine == "sqlite":
        directory = request.getfixturevalue("tmp_path_factory").mktemp(name)
        url = f"sqlite:///{directory / 'kiosk.db'}"
    else:
        url = request.getfixturevalue("pg_server").create_database(f"{name}_{uuid.uuid4().hex[:8]}")
    db = create_database(url)
    upgrade_to_head(db)
    return db


def loaded_database(
    request: pytest.FixtureRequest,
    name: str,
    definitions: dict[str, dict[str, Any]],
    docs: list[dict[str, Any]],
    edges: list[Edge],
) -> Iterator[Database]:
    """A database on the engine of ``request.param`` holding the dataset, disposed of afterwards."""
    db = open_database(request.param, name, request)
    load(db, definitions, docs, edges)
    yield db
    db.dispose()


def load(db: Database, definitions: dict[str, dict[str, Any]], docs: list[dict[str, Any]], edges: list[Edge]) -> None:
    """Insert blueprints, entities and relation edges with plain Core inserts."""
    with db.begin() as conn:
        conn.execute(
            blueprints.insert(),
            [
                {"identifier": bp, "definition": d, "created_at": CREATED, "updated_at": CREATED}
                for bp, d in definitions.items()
            ],
        )
        conn.execute(
            entities.insert(),
            [
                {
                    "blueprint": d["blueprint"],
                    "identifier": d["identifier"],
                    "title": d.get("title"),
                    "icon": d.get("icon"),
                    "team": d.get("team", []),
                    "properties": d.get("properties", {}),
                    "created_at": d["createdAt"],
                    "updated_at": d["updatedAt"],
                }
                for d in docs
            ],
        )
        ids = {
            (row.blueprint, row.identifier): row.id
            for row in conn.execute(sa.select(entities.c.blueprint, entities.c.identifier, entities.c.id))
        }
        if edges:
            conn.execute(
                entity_relations.insert(),
                [
                    {"entity_id": ids[e.source], "relation": e.relation, "target_id": ids[e.target], "position": 0}
                    for e in edges
                ],
            )


def sql_matches(db: Database, query: Query | dict[str, Any]) -> set[EntityKey]:
    where = compile_query(query, db)
    with db.connect() as conn:
        rows = conn.execute(sa.select(entities.c.blueprint, entities.c.identifier).where(where)).all()
    return {(row.blueprint, row.identifier) for row in rows}


def py_matches(
    docs: list[dict[str, Any]], relations: EdgeListRelations, query: Query | dict[str, Any]
) -> set[EntityKey]:
    return {(d["blueprint"], d["identifier"]) for d in docs if evaluate(query, d, relations)}


# ------------------------------------------------------------------------- example dataset


def _doc(bp: str, ident: str, days: int = 0, **fields: Any) -> dict[str, Any]:
    created = fields.pop("createdAt", CREATED + timedelta(days=60 + days))
    return {
        "blueprint": bp,
        "identifier": ident,
        "title": fields.pop("title", None),
        "icon": fields.pop("icon", None),
        "team": fields.pop("team", []),
        "properties": fields.pop("properties", {}),
        "createdAt": created,
        "updatedAt": fields.pop("updatedAt", created),
    }


SERVICE = "service"
NODE = "node"
EXAMPLE_DEFINITIONS: dict[str, dict[str, Any]] = {
    SERVICE: {"identifier": SERVICE, "schema": {"properties": {}}, "relations": {}},
    NODE: {
        "identifier": NODE,
        "schema": {"properties": {}},
        "relations": {
            "next": {"target": NODE, "required": True, "many": True},
            "link": {"target": NODE, "required": False, "many": True},
        },
    },
}
EXAMPLE_DOCS: list[dict[str, Any]] = [
    _doc(
        SERVICE,
        "s1",
        title="Payments API",
        icon="Github",
        team=["platform", "payments"],
        createdAt=datetime(2026, 1, 1, 0, 0, 0, 500, tzinfo=UTC),
        updatedAt=datetime(2026, 6, 1, 12, 0, 0, 999_999, tzinfo=UTC),
        properties={
            "env": "dev",
            "n": 1,
            "flag": True,
            "tags": ["a", "b"],
            "deployedAt": "2026-11-24T10:00:00.000Z",
            "desc": "hello world",
            "o": {},
        },
    ),
    _doc(
        SERVICE,
        "s2",
        title="Billing",
        team=["payments"],
        createdAt=datetime(2026, 2, 1, tzinfo=UTC),
        properties={
            "env": "prod",
            "n": 2.5,
            "flag": False,
            "tags": [],
            "deployedAt": "2026-11-25T09:30:00.000Z",
            "desc": "",
        },
    ),
    _doc(
        SERVICE,
        "s3",
        1,
        properties={
            "env": 1,
            "n": "1",
            "tags": [1, True, "1", ["a"]],
            "desc": None,
            "deployedAt": "2026-11-24T11:00:00.000Z",
        },
    ),
    _doc(SERVICE, "s4", 2, title=""),
    _doc(
        SERVICE,
        "s5",
        3,
        title="Ünïcödé ✓ 🚀",
        team=["ops"],
        properties={
            "env": "'; DROP TABLE entities; --",
            "desc": "ünïcödé ✓ 🚀",
            "tags": ['x"y', "%_", "' OR 1=1 --"],
        },
    ),
    _doc(
        SERVICE,
        "s6",
        4,
        title="x",
        properties={"env": ["dev"], "n": True, "desc": "100% _match_", "o": {"a": 1}, "flag": None},
    ),
    _doc(SERVICE, "s7", 5, properties={"env": "Dev", "n": 10, "n2": -3, "deployedAt": "2026-11-24T09:59:59.999Z"}),
    *[_doc(NODE, f"n{i}") for i in range(1, 7)],
    *[_doc(NODE, f"c{i}") for i in range(13)],
]
EXAMPLE_EDGES: list[Edge] = [
    Edge((NODE, "n1"), (NODE, "n2"), "next", True),
    Edge((NODE, "n2"), (NODE, "n3"), "next", True),
    Edge((NODE, "n3"), (NODE, "n1"), "next", True),  # a cycle n1 -> n2 -> n3 -> n1
    Edge((NODE, "n3"), (NODE, "n4"), "link", False),
    Edge((NODE, "n5"), (NODE, "n1"), "link", False),
    Edge((NODE, "n4"), (NODE, "n6"), "link", False),
    *[Edge((NODE, f"c{i}"), (NODE, f"c{i + 1}"), "next", True) for i in range(12)],  # a chain of 12
]
EXAMPLE_RELATIONS = EdgeListRelations(EXAMPLE_EDGES)
ALL_SERVICES = {f"s{i}" for i in range(1, 8)}


@pytest.fixture(scope="module", params=ENGINES)
def catalog_db(request: pytest.FixtureRequest) -> Iterator[Database]:
    yield from loaded_database(request, "search_examples", EXAMPLE_DEFINITIONS, EXAMPLE_DOCS, EXAMPLE_EDGES)


def rule(prop: str, operator: str, *value: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"property": prop, "operator": operator}
    if value:
        found["value"] = value[0]
    return found


def q(*rules: dict[str, Any], combinator: str = "and") -> dict[str, Any]:
    return {"combinator": combinator, "rules": list(rules)}


def check(db: Database, query: dict[str, Any], expected: set[EntityKey]) -> None:
    """SQL and the reference evaluator must both give ``expected``."""
    assert py_matches(EXAMPLE_DOCS, EXAMPLE_RELATIONS, query) == expected, "evaluate() disagrees"
    assert sql_matches(db, query) == expected, "SQL disagrees"


def services(*names: str) -> set[EntityKey]:
    return {(SERVICE, n) for n in names}


def nodes(*names: str) -> set[EntityKey]:
    return {(NODE, n) for n in names}


# ------------------------------------------------------------------------ property examples

PROPERTY_CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    # = and != compare JSON values exactly; a missing property reads as null
    ("eq-string", rule("env", "=", "dev"), {"s1"}),
    ("eq-number-not-string-or-bool", rule("env", "=", 1), {"s3"}),
    ("eq-float-equals-int", rule("n", "=", 1.0), {"s1"}),
    ("eq-string-one", rule("n", "=", "1"), {"s3"}),
    ("eq-true-not-1", rule("n", "=", True), {"s6"}),
    ("eq-true", rule("flag", "=", True), {"s1"}),
    ("eq-false", rule("flag", "=", False), {"s2"}),
    ("eq-null-includes-missing", rule("flag", "=", None), {"s3", "s4", "s5", "s6", "s7"}),
    ("eq-case-sensitive", rule("env", "=", "Dev"), {"s7"}),
    ("ne-includes-missing", rule("env", "!=", "dev"), ALL_SERVICES - {"s1"}),
    ("ne-null", rule("flag", "!=", None), {"s1", "s2"}),
    ("eq-array-never-equals-scalar", rule("tags", "=", "a"), set()),
    # in / notIn
    ("in", rule("env", "in", ["dev", "prod"]), {"s1", "s2"}),
    ("in-mixed-types", rule("env", "in", [1, "Dev", True]), {"s3", "s7"}),
    ("in-null", rule("env", "in", [None]), {"s4"}),
    ("in-empty", rule("env", "in", []), set()),
    ("notIn", rule("env", "notIn", ["dev", "prod"]), ALL_SERVICES - {"s1", "s2"}),
    ("notIn-empty", rule("env", "notIn", []), ALL_SERVICES),
    # contains: substring on strings, membership on arrays
    ("contains-substring", rule("desc", "contains", "world"), {"s1"}),
    ("contains-empty-string", rule("desc", "contains", ""), {"s1", "s2", "s5", "s6"}),
    ("contains-case-sensitive", rule("desc", "contains", "HELLO"), set()),
    ("contains-percent-is-data", rule("desc", "contains", "%"), {"s6"}),
    ("contains-underscore-is-data", rule("desc", "contains", "_match_"), {"s6"}),
    ("contains-element", rule("tags", "contains", "a"), {"s1"}),
    ("contains-number-element", rule("tags", "contains", 1), {"s3"}),
    ("contains-bool-element", rule("tags", "contains", True), {"s3"}),
    ("contains-string-or-array", rule("env", "contains", "dev"), {"s1", "s6"}),
    ("contains-sql-looking", rule("tags", "contains", "' OR 1=1 --"), {"s5"}),
    ("contains-quote", rule("tags", "contains", 'x"y'), {"s5"}),
    ("contains-unicode", rule("desc", "contains", "ïcödé ✓ 🚀"), {"s5"}),
    ("eq-sql-injection-is-data", rule("env", "=", "'; DROP TABLE entities; --"), {"s5"}),
    # ranges on numbers
    ("gt", rule("n", ">", 1), {"s2", "s7"}),
    ("ge", rule("n", ">=", 1), {"s1", "s2", "s7"}),
    ("lt", rule("n", "<", 2.5), {"s1"}),
    ("le", rule("n", "<=", 2.5), {"s1", "s2"}),
    ("between-numbers", rule("n", "between", {"from": 1, "to": 2.5}), {"s1", "s2"}),
    ("lt-negative", rule("n2", "<", 0), {"s7"}),
    # ranges on date-time strings (normalised to UTC milliseconds)
    ("date-gt", rule("deployedAt", ">", "2026-11-24T10:00:00Z"), {"s2", "s3"}),
    ("date-ge", rule("deployedAt", ">=", "2026-11-24T10:00:00+00:00"), {"s1", "s2", "s3"}),
    ("date-ge-offset", rule("deployedAt", ">=", "2026-11-24T11:00:00+01:00"), {"s1", "s2", "s3"}),
    ("date-lt-sub-ms", rule("deployedAt", "<", "2026-11-24T10:00:00.0005Z"), {"s1", "s7"}),
    ("date-le-sub-ms", rule("deployedAt", "<=", "2026-11-24T09:59:59.9995Z"), {"s7"}),
    ("date-gt-sub-ms", rule("deployedAt", ">", "2026-11-24T09:59:59.9995Z"), {"s1", "s2", "s3"}),
    (
        "date-between",
        rule("deployedAt", "between", {"from": "2026-11-24", "to": "2026-11-24T23:59:59Z"}),
        {"s1", "s3", "s7"},
    ),
    # isEmpty: missing, null, "", [], {}
    ("isEmpty-string", rule("desc", "isEmpty"), {"s2", "s3", "s4", "s7"}),
    ("isEmpty-object", rule("o", "isEmpty"), ALL_SERVICES - {"s6"}),
    ("isEmpty-array", rule("tags", "isEmpty"), {"s2", "s4", "s6", "s7"}),
    ("isNotEmpty", rule("tags", "isNotEmpty"), {"s1", "s3", "s5"}),
    ("isNotEmpty-false-is-a-value", rule("flag", "isNotEmpty"), {"s1", "s2"}),
    # meta-properties
    ("identifier-eq", rule("$identifier", "=", "s1"), {"s1"}),
    ("identifier-in", rule("$identifier", "in", ["s1", "s2", "nope"]), {"s1", "s2"}),
    ("identifier-contains", rule("$identifier", "contains", "s"), ALL_SERVICES),
    ("title-null", rule("$title", "=", None), {"s3", "s7"}),
    ("title-isEmpty", rule("$title", "isEmpty"), {"s3", "s4", "s7"}),
    ("title-contains-unicode", rule("$title", "contains", "nïc"), {"s5"}),
    ("title-eq-unicode", rule("$title", "=", "Ünïcödé ✓ 🚀"), {"s5"}),
    ("title-notIn", rule("$title", "notIn", ["Billing", None]), {"s1", "s4", "s5", "s6"}),
    ("title-ne", rule("$title", "!=", "Billing"), ALL_SERVICES - {"s2"}),
    ("icon-eq", rule("$icon", "=", "Github"), {"s1"}),
    ("icon-isNotEmpty", rule("$icon", "isNotEmpty"), {"s1"}),
    ("blueprint-eq", rule("$blueprint", "=", SERVICE), ALL_SERVICES),
    ("team-eq-is-membership", rule("$team", "=", "payments"), {"s1", "s2"}),
    ("team-contains", rule("$team", "contains", "ops"), {"s5"}),
    ("team-in", rule("$team", "in", ["ops", "platform"]), {"s1", "s5"}),
    ("team-notIn", rule("$team", "notIn", ["payments"]), ALL_SERVICES - {"s1", "s2"}),
    ("team-ne", rule("$team", "!=", "payments"), ALL_SERVICES - {"s1", "s2"}),
    ("team-isEmpty", rule("$team", "isEmpty"), {"s3", "s4", "s6", "s7"}),
    ("team-isNotEmpty", rule("$team", "isNotEmpty"), {"s1", "s2", "s5"}),
    # timestamps compare at the milliseconds the API shows (s1 was created at .000500)
    ("createdAt-eq-ms", rule("$createdAt", "=", "2026-01-01T00:00:00Z"), {"s1"}),
    ("createdAt-eq-finer-never", rule("$createdAt", "=", "2026-01-01T00:00:00.0005Z"), set()),
    ("createdAt-gt", rule("$createdAt", ">", "2026-01-01T00:00:00Z"), ALL_SERVICES - {"s1"}),
    ("createdAt-le", rule("$createdAt", "<=", "2026-01-01T00:00:00.000Z"), {"s1"}),
    ("createdAt-lt-offset", rule("$createdAt", "<", "2026-02-01T01:00:00+01:00"), {"s1"}),
    ("createdAt-in-offset", rule("$createdAt", "in", ["2026-02-01T01:00:00+01:00"]), {"s2"}),
    ("createdAt-notIn", rule("$createdAt", "notIn", ["2026-02-01T00:00:00Z"]), ALL_SERVICES - {"s2"}),
    (
        "createdAt-between",
        rule("$createdAt", "between", {"from": "2026-01-01", "to": "2026-02-01T00:00:00Z"}),
        {"s1", "s2"},
    ),
    ("updatedAt-ge-ms", rule("$updatedAt", ">=", "2026-06-01T12:00:00.999Z"), {"s1"}),
    ("updatedAt-gt-ms", rule("$updatedAt", ">", "2026-06-01T12:00:00.999Z"), set()),
    ("createdAt-isEmpty", rule("$createdAt", "isEmpty"), set()),
    ("createdAt-isNotEmpty", rule("$createdAt", "isNotEmpty"), ALL_SERVICES),
]


@pytest.mark.parametrize(("case", "body", "expected"), PROPERTY_CASES, ids=[c[0] for c in PROPERTY_CASES])
def test_property_rule(catalog_db: Database, case: str, body: dict[str, Any], expected: set[str]) -> None:
    # Scoped to the service blueprint so the relation-graph entities stay out of the way.
    check(catalog_db, q(rule("$blueprint", "=", SERVICE), body), services(*expected))


def test_nested_and_or(catalog_db: Database) -> None:
    nested = q(
        rule("$blueprint", "=", SERVICE),
        q(
            rule("env", "=", "dev"),
            q(rule("n", ">", 1), rule("desc", "isEmpty")),
            combinator="or",
        ),
    )
    check(catalog_db, nested, services("s1", "s2", "s7"))


def test_empty_combinators(catalog_db: Database) -> None:
    everything = {(d["blueprint"], d["identifier"]) for d in EXAMPLE_DOCS}
    check(catalog_db, q(), everything)
    check(catalog_db, q(combinator="or"), set())
    check(catalog_db, q(q(combinator="or"), rule("$identifier", "=", "s1"), combinator="or"), services("s1"))


def test_nesting_ten_levels_deep(catalog_db: Database) -> None:
    body = rule("$identifier", "=", "s1")
    for _ in range(9):
        body = q(body)
    check(catalog_db, body, services("s1"))


def test_sql_injection_leaves_table_intact(catalog_db: Database) -> None:
    check(catalog_db, q(rule("$identifier", "=", "x'); DELETE FROM entities; --")), set())
    check(catalog_db, q(rule("$title", "contains", "' OR '1'='1")), set())
    with catalog_db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(entities)).scalar_one() == len(EXAMPLE_DOCS)


# ------------------------------------------------------------------------- relatedTo examples


def related(value: str | list[str], **extra: Any) -> dict[str, Any]:
    return {"operator": "relatedTo", "blueprint": NODE, "value": value, **extra}


RELATED_CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    ("upstream-through-cycle", related("n1", direction="upstream"), {"n2", "n3", "n4", "n6"}),
    ("downstream-through-cycle", related("n1", direction="downstream"), {"n2", "n3", "n5"}),
    ("either-direction", related("n1"), {"n2", "n3", "n4", "n5", "n6"}),
    ("required-only", related("n1", direction="upstream", required=True), {"n2", "n3"}),
    ("non-required-only-up", related("n1", direction="upstream", required=False), set()),
    ("non-required-only-down", related("n1", direction="downstream", required=False), {"n5"}),
    ("leaf-upstream", related("n6", direction="upstream"), set()),
    ("leaf-downstream", related("n6", direction="downstream"), {"n4", "n3", "n2", "n1", "n5"}),
    ("many-values", related(["n1", "n2"], direction="upstream"), {"n1", "n2", "n3", "n4", "n6"}),
    ("depth-limit-up", related("c0", direction="upstream"), {f"c{i}" for i in range(1, 11)}),
    ("depth-limit-down", related("c12", direction="downstream"), {f"c{i}" for i in range(2, 12)}),
    ("unknown-entity", related("nope"), set()),
]


@pytest.mark.parametrize(("case", "body", "expected"), RELATED_CASES, ids=[c[0] for c in RELATED_CASES])
def test_related_to(catalog_db: Database, case: str, body: dict[str, Any], expected: set[str]) -> None:
    check(catalog_db, q(body), nodes(*expected))


def test_related_to_wrong_blueprint_matches_nothing(catalog_db: Database) -> None:
    check(catalog_db, q({"operator": "relatedTo", "blueprint": SERVICE, "value": "n1"}), set())


def test_related_to_combined_with_rules(catalog_db: Database) -> None:
    both = q(related("n1", direction="upstream"), rule("$identifier", "in", ["n2", "n4", "n5"]))
    check(catalog_db, both, nodes("n2", "n4"))
    two = q(related("n1", direction="upstream"), related("n1", direction="downstream"))
    check(catalog_db, two, nodes("n2", "n3"))


def test_where_clause_survives_joins_with_the_same_tables(catalog_db: Database) -> None:
    """A caller joining blueprints must not capture the subqueries' tables (they use aliases)."""
    where = compile_query(q(related("n1", direction="upstream", required=True)), catalog_db)
    stmt = (
        sa.select(entities.c.identifier)
        .select_from(entities.join(blueprints, blueprints.c.identifier == entities.c.blueprint))
        .where(where)
    )
    with catalog_db.connect() as conn:
        assert set(conn.execute(stmt).scalars()) == {"n2", "n3"}


# ----------------------------------------------------------------------------- parse errors

PARSE_ERRORS: list[tuple[str, Any, str]] = [
    ("not-an-object", [], "query:"),
    ("bad-combinator", {"combinator": "xor", "rules": []}, "combinator:"),
    ("missing-combinator", {"rules": []}, "combinator:"),
    ("rules-not-list", {"combinator": "and", "rules": {}}, "rules:"),
    ("unknown-top-key", {"combinator": "and", "rules": [], "limit": 3}, "limit:"),
    ("rule-not-object", q("env"), "rules[0]:"),  # type: ignore[arg-type]
    ("unknown-operator", q(rule("a", "=", 1), rule("a", "like", "x")), "rules[1].operator:"),
    ("missing-operator", q({"property": "a", "value": 1}), "rules[0].operator:"),
    ("unknown-key", q({"property": "a", "operator": "=", "value": 1, "extra": 2}), "rules[0].extra:"),
    ("missing-property", q({"operator": "=", "value": 1}), "rules[0].property:"),
    ("bad-property-name", q(rule("a'b", "=", 1)), "rules[0].property:"),
    ("dot-in-property-name", q(rule("a.b", "=", 1)), "rules[0].property:"),
    ("property-name-too-long", q(rule("a" * 101, "=", 1)), "rules[0].property:"),
    ("unknown-meta", q(rule("$owner", "=", "x")), "rules[0].property:"),
    ("in-without-list", q(rule("a", "in", "x")), "rules[0].value:"),
    ("in-bad-element", q(rule("a", "in", [1, [2]])), "rules[0].value[1]:"),
    ("missing-value", q(rule("a", "=")), "rules[0].value:"),
    ("eq-object", q(rule("a", "=", {"x": 1})), "rules[0].value:"),
    ("gt-string", q(rule("a", ">", "abc")), "rules[0].value:"),
    ("gt-bool", q(rule("a", ">", True)), "rules[0].value:"),
    ("gt-null", q(rule("a", ">", None)), "rules[0].value:"),
    ("between-not-object", q(rule("a", "between", [1, 2])), "rules[0].value:"),
    ("between-missing-to", q(rule("a", "between", {"from": 1})), "rules[0].value:"),
    ("between-mixed", q(rule("a", "between", {"from": 1, "to": "2026-01-01"})), "rules[0].value:"),
    ("between-extra-key", q(rule("a", "between", {"from": 1, "to": 2, "preset": "x"})), "rules[0].value.preset:"),
    ("between-bad-from", q(rule("a", "between", {"from": "x", "to": 2})), "rules[0].value.from:"),
    ("isEmpty-with-value", q(rule("a", "isEmpty", 1)), "rules[0].value:"),
    ("contains-null", q(rule("a", "contains", None)), "rules[0].value:"),
    ("nan", q(rule("a", "=", float("nan"))), "rules[0].value:"),
    ("infinity", q(rule("a", "<", float("inf"))), "rules[0].value:"),
    ("huge-int", q(rule("a", "=", 2**64)), "rules[0].value:"),
    ("huge-int-operator", q({"property": "a", "operator": 10**5000}), "rules[0].operator:"),
    ("odd-key", q({"property": "a", "operator": "=", "value": 1, ":": 2}), "rules[0][':']:"),
    ("long-combinator", {"combinator": "x" * 10_000, "rules": []}, "combinator:"),
    ("nul-char", q(rule("a", "=", "a\x00b")), "rules[0].value:"),
    ("lone-surrogate", q(rule("a", "contains", "\ud800")), "rules[0].value:"),
    ("title-number", q(rule("$title", "=", 5)), "rules[0].value:"),
    ("title-range", q(rule("$title", ">", 5)), "rules[0].operator:"),
    ("team-null", q(rule("$team", "in", [None])), "rules[0].value[0]:"),
    ("team-range", q(rule("$team", "between", {"from": 1, "to": 2})), "rules[0].operator:"),
    ("createdAt-contains", q(rule("$createdAt", "contains", "2026")), "rules[0].operator:"),
    ("createdAt-number", q(rule("$createdAt", ">", 5)), "rules[0].value:"),
    ("createdAt-not-date", q(rule("$createdAt", "=", "yesterday")), "rules[0].value:"),
    ("nested-path", q(rule("a", "=", 1), q(rule("b", "in", 3))), "rules[1].rules[0].value:"),
    ("related-missing-blueprint", q({"operator": "relatedTo", "value": "x"}), "rules[0].blueprint:"),
    ("related-empty-list", q(related([])), "rules[0].value:"),
    ("related-bad-element", q(related(["a", 1])), "rules[0].value[1]:"),  # type: ignore[list-item]
    ("related-missing-value", q({"operator": "relatedTo", "blueprint": NODE}), "rules[0].value:"),
    ("related-direction", q(related("a", direction="sideways")), "rules[0].direction:"),
    ("related-required", q(related("a", required="yes")), "rules[0].required:"),
    ("related-unknown-key", q(related("a", property="x")), "rules[0].property:"),
]


@pytest.mark.parametrize(("case", "raw", "path"), PARSE_ERRORS, ids=[c[0] for c in PARSE_ERRORS])
def test_parse_errors_name_the_path(case: str, raw: Any, path: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_query(raw)
    assert caught.value.message.startswith(path), caught.value.message
    assert caught.value.status_code == 422
    assert caught.value.details == {"path": path.rstrip(":")}


def test_depth_limit() -> None:
    body = rule("a", "=", 1)
    for _ in range(10):
        body = q(body)
    parse_query(body)  # ten levels: fine
    with pytest.raises(ValidationFailed, match="nest at most 10"):
        parse_query(q(body))


def test_rule_count_limit() -> None:
    parse_query(q(*[rule("a", "=", i) for i in range(500)]))
    with pytest.raises(ValidationFailed, match=r"^rules\[500\]: a query may hold at most 500 rules"):
        parse_query(q(*[rule("a", "=", i) for i in range(501)]))
    nested = q(*[q(*[rule("a", "=", i) for i in range(99)]) for _ in range(5)])  # 5 + 495 = 500
    parse_query(nested)
    with pytest.raises(ValidationFailed, match="at most 500 rules"):
        parse_query(q(rule("a", "=", 0), nested))


def test_value_count_limit() -> None:
    with pytest.raises(ValidationFailed, match=r"^rules\[0\]\.value: lists are limited"):
        parse_query(q(rule("a", "in", list(range(1001)))))
    with pytest.raises(ValidationFailed, match="at most 10000 values"):
        parse_query(q(*[rule("a", "in", list(range(1000))) for _ in range(11)]))


def test_parsed_models_are_typed_and_frozen() -> None:
    parsed = parse_query(
        q(rule("n", "in", [1, True, None, "1", 2.5]), related("x"), rule("d", "between", {"from": 1, "to": 2}))
    )
    in_rule, related_rule, between_rule = parsed.rules
    assert in_rule.value == (1, True, None, "1", 2.5)  # type: ignore[union-attr]
    assert [type(v) for v in in_rule.value] == [int, bool, type(None), str, float]  # type: ignore[union-attr]
    assert related_rule.value == ("x",)  # type: ignore[union-attr]
    assert between_rule.value.from_ == 1  # type: ignore[union-attr]
    with pytest.raises(Exception, match="frozen"):
        parsed.combinator = "or"  # type: ignore[misc]


def test_canonical_datetime() -> None:
    assert canonical_datetime("2026-11-24T10:00:00Z") == "2026-11-24T10:00:00.000Z"
    assert canonical_datetime("2026-11-24T11:00:00.1239+01:00") == "2026-11-24T10:00:00.123Z"
    assert canonical_datetime("2026-11-24") == "2026-11-24T00:00:00.000Z"
    assert canonical_datetime("0999-01-01T00:00:00Z") == "0999-01-01T00:00:00.000Z"
    with pytest.raises(ValueError, match="not an ISO 8601"):
        canonical_datetime("yesterday")


def test_compile_rejects_unknown_dialect() -> None:
    with pytest.raises(ValueError, match="unsupported database dialect"):
        compile_query_for_dialect(q(), "mysql")


# -------------------------------------------------------------- random dataset + Hypothesis

PROPS = ["s", "n", "b", "arr", "d", "o", "mix"]
STRINGS = ["", "dev", "prod", "Dev", "staging", "1", "ü", "a'b", "x%_", '["a"]', "true", "dev prod"]
DATES = [
    "2026-11-24T10:00:00.000Z",
    "2026-11-24T10:00:00.001Z",
    "2026-11-24T09:59:59.999Z",
    "2025-01-01T00:00:00.000Z",
    "2027-06-30T23:59:59.999Z",
    "0999-12-31T00:00:00.000Z",
]
NUMBERS: list[Any] = [0, 1, -1, 2, 2.5, 10, 1.0, -0.5, 100, 3]
ARRAYS: list[Any] = [[], ["dev"], ["dev", "prod"], [1, 2], [True], ["1", 1], [["dev"]], [{}], [None]]
OBJECTS: list[Any] = [{}, {"a": 1}, {"dev": True}]
POOLS: dict[str, list[Any]] = {
    "s": [*STRINGS, None],
    "n": [*NUMBERS, None, "1"],
    "b": [True, False, None, 1, 0],
    "arr": [*ARRAYS, "dev"],
    "d": [*DATES, "2026-11-24", "not a date", None],
    "o": [*OBJECTS, None, ""],
    "mix": [*STRINGS, *NUMBERS, True, False, None, *ARRAYS, *OBJECTS, *DATES],
}
TEAMS = ["platform", "payments", "ops", "data"]
TITLES = ["Alpha", "beta", "", "Ünï", "x'y"]
INSTANTS = [
    datetime(2026, 1, 1, tzinfo=UTC),
    datetime(2026, 1, 1, 0, 0, 0, 999, tzinfo=UTC),
    datetime(2026, 1, 1, 0, 0, 0, 1000, tzinfo=UTC),
    datetime(2026, 3, 15, 12, 30, 45, 123456, tzinfo=UTC),
    datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
]
INSTANT_TEXTS = [
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00.000999Z",
    "2026-01-01T00:00:00.001Z",
    "2026-01-01T01:00:00.0005+01:00",
    "2026-03-15T12:30:45.123Z",
    "2026-03-15T12:30:45.1235",
    "2026-11-24",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    *DATES,
]
RANDOM_BLUEPRINTS = ["alpha", "beta"]
RANDOM_DEFINITIONS = {
    bp: {
        "identifier": bp,
        "schema": {"properties": {}},
        "relations": {"dep": {"target": "alpha", "required": False}, "req": {"target": "beta", "required": True}},
    }
    for bp in RANDOM_BLUEPRINTS
}


def make_random_dataset(seed: int = 20261124) -> tuple[list[dict[str, Any]], list[Edge]]:
    rng = random.Random(seed)
    docs: list[dict[str, Any]] = []
    for index in range(50):
        bp = RANDOM_BLUEPRINTS[index % 2]
        props = {p: rng.choice(POOLS[p]) for p in PROPS if rng.random() < 0.75}
        created = (
            rng.choice(INSTANTS) if rng.random() < 0.6 else INSTANTS[0] + timedelta(microseconds=rng.randrange(10**12))
        )
        docs.append(
            {
                "blueprint": bp,
                "identifier": f"e{index}",
                "title": rng.choice([*TITLES, None]),
                "icon": rng.choice(["Github", None, ""]),
                "team": rng.sample(TEAMS, rng.randrange(3)),
                "properties": props,
                "createdAt": created,
                "updatedAt": rng.choice(INSTANTS),
            }
        )
    edges: dict[tuple[EntityKey, str, EntityKey], Edge] = {}
    for _ in range(90):
        source, target = rng.choice(docs), rng.choice(docs)
        relation = rng.choice(["dep", "req"])
        key = ((source["blueprint"], source["identifier"]), relation, (target["blueprint"], target["identifier"]))
        edges[key] = Edge(key[0], key[2], relation, relation == "req")
    return docs, list(edges.values())


RANDOM_DOCS, RANDOM_EDGES = make_random_dataset()
RANDOM_RELATIONS = EdgeListRelations(RANDOM_EDGES)


@pytest.fixture(scope="module", params=ENGINES)
def random_db(request: pytest.FixtureRequest) -> Iterator[Database]:
    yield from loaded_database(request, "search_random", RANDOM_DEFINITIONS, RANDOM_DOCS, RANDOM_EDGES)


texts = st.text(alphabet="adevprotsü'%_1 ", max_size=4)
numbers = st.one_of(
    st.sampled_from(NUMBERS),
    st.integers(-3, 12),
    st.floats(-5, 15, allow_nan=False),
    st.sampled_from([2**63 - 1, -(2**63) + 1, 1e308, -1e308, 5e-324]),
)
scalars = st.one_of(st.sampled_from([*STRINGS, True, False, None]), texts, numbers, st.sampled_from(DATES))
dates = st.sampled_from(INSTANT_TEXTS)


def _rule(prop: Any, operator: Any, value: Any = None, *, has_value: bool = True) -> dict[str, Any]:
    body = {"property": prop, "operator": operator}
    if has_value:
        body["value"] = value
    return body


prop_names = st.sampled_from([*PROPS, "missing"])
property_rules = st.one_of(
    st.builds(_rule, prop_names, st.sampled_from(["=", "!="]), scalars),
    st.builds(_rule, prop_names, st.sampled_from(["in", "notIn"]), st.lists(scalars, max_size=4)),
    st.builds(
        _rule, prop_names, st.just("contains"), st.one_of(st.sampled_from(STRINGS), texts, numbers, st.booleans())
    ),
    st.builds(_rule, prop_names, st.sampled_from([">", "<", ">=", "<="]), st.one_of(numbers, dates)),
    st.builds(
        _rule,
        prop_names,
        st.just("between"),
        st.one_of(
            st.builds(lambda a, b: {"from": a, "to": b}, numbers, numbers),
            st.builds(lambda a, b: {"from": a, "to": b}, dates, dates),
        ),
    ),
    st.builds(_rule, prop_names, st.sampled_from(["isEmpty", "isNotEmpty"]), has_value=st.just(False)),
)
meta_strings = st.one_of(st.sampled_from([*TITLES, "e1", "e2", "Github", "alpha", "beta", None]), texts)
string_meta_rules = st.one_of(
    st.builds(
        _rule,
        st.sampled_from(["$identifier", "$title", "$blueprint", "$icon"]),
        st.sampled_from(["=", "!="]),
        meta_strings,
    ),
    st.builds(
        _rule,
        st.sampled_from(["$identifier", "$title", "$blueprint", "$icon"]),
        st.sampled_from(["in", "notIn"]),
        st.lists(meta_strings, max_size=3),
    ),
    st.builds(_rule, st.sampled_from(["$identifier", "$title", "$icon"]), st.just("contains"), texts),
    st.builds(
        _rule,
        st.sampled_from(["$title", "$icon"]),
        st.sampled_from(["isEmpty", "isNotEmpty"]),
        has_value=st.just(False),
    ),
)
team_rules = st.one_of(
    st.builds(_rule, st.just("$team"), st.sampled_from(["=", "!=", "contains"]), st.sampled_from(TEAMS)),
    st.builds(_rule, st.just("$team"), st.sampled_from(["in", "notIn"]), st.lists(st.sampled_from(TEAMS), max_size=3)),
    st.builds(_rule, st.just("$team"), st.sampled_from(["isEmpty", "isNotEmpty"]), has_value=st.just(False)),
)
time_props = st.sampled_from(["$createdAt", "$updatedAt"])
time_rules = st.one_of(
    st.builds(_rule, time_props, st.sampled_from(["=", "!=", ">", "<", ">=", "<="]), dates),
    st.builds(_rule, time_props, st.sampled_from(["in", "notIn"]), st.lists(dates, max_size=3)),
    st.builds(_rule, time_props, st.just("between"), st.builds(lambda a, b: {"from": a, "to": b}, dates, dates)),
)
entity_ids = st.sampled_from([f"e{i}" for i in range(50)] + ["nope"])


def _related(bp: str, value: Any, direction: str | None, required: bool | None) -> dict[str, Any]:
    body: dict[str, Any] = {"operator": "relatedTo", "blueprint": bp, "value": value}
    if direction is not None:
        body["direction"] = direction
    if required is not None:
        body["required"] = required
    return body


related_rules = st.builds(
    _related,
    st.sampled_from(RANDOM_BLUEPRINTS),
    st.one_of(entity_ids, st.lists(entity_ids, min_size=1, max_size=3)),
    st.sampled_from([None, "upstream", "downstream"]),
    st.sampled_from([None, True, False]),
)
leaves = st.one_of(property_rules, property_rules, string_meta_rules, team_rules, time_rules, related_rules)
trees = st.recursive(
    leaves,
    lambda children: st.builds(
        lambda c, r: {"combinator": c, "rules": r},
        st.sampled_from(["and", "or"]),
        st.lists(children, min_size=1, max_size=4),
    ),
    max_leaves=8,
)
queries = st.builds(
    lambda c, r: {"combinator": c, "rules": r}, st.sampled_from(["and", "or"]), st.lists(trees, min_size=1, max_size=4)
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=queries)
def test_sql_agrees_with_reference_evaluator(random_db: Database, raw: dict[str, Any]) -> None:
    try:
        query = parse_query(raw)
    except ValidationFailed:
        assume(False)  # e.g. nested deeper than 10 by chance
        raise
    assert sql_matches(random_db, query) == py_matches(RANDOM_DOCS, RANDOM_RELATIONS, query)


def test_random_dataset_exercises_the_operators(random_db: Database) -> None:
    """Guard against a dataset so sparse that the property test compares empty sets."""
    for body in (
        rule("s", "=", "dev"),
        rule("n", ">", 1),
        rule("arr", "contains", "dev"),
        rule("d", ">=", "2026-11-24T10:00:00Z"),
        rule("mix", "isEmpty"),
        rule("$team", "in", ["ops"]),
        rule("$createdAt", "=", "2026-01-01T00:00:00.001Z"),
        _related("alpha", "e0", None, None),
    ):
        expected = py_matches(RANDOM_DOCS, RANDOM_RELATIONS, q(body))
        assert 0 < len(expected) < len(RANDOM_DOCS), body
        assert sql_matches(random_db, q(body)) == expected


json_ish = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=6),
        st.sampled_from(["\x00", "\ud800", "2026-11-24", "$team", "in", "relatedTo", "and"]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
KEYS = ["property", "operator", "value", "blueprint", "direction", "required", "combinator", "rules", "from", "to"]
OPERATORS = [
    "=",
    "!=",
    "contains",
    "in",
    "notIn",
    ">",
    "<",
    ">=",
    "<=",
    "between",
    "isEmpty",
    "isNotEmpty",
    "relatedTo",
]
PROPERTY_LIKE = [*PROPS, "$identifier", "$title", "$team", "$createdAt", "$nope", "a b", ""]
rule_like = st.fixed_dictionaries(
    {},
    optional={
        "property": st.one_of(st.sampled_from(PROPERTY_LIKE), json_ish),
        "operator": st.one_of(st.sampled_from(OPERATORS), json_ish),
        "value": st.one_of(json_ish, st.builds(lambda a, b: {"from": a, "to": b}, json_ish, json_ish)),
        "blueprint": st.one_of(st.sampled_from(RANDOM_BLUEPRINTS), json_ish),
        "direction": st.one_of(st.sampled_from(["upstream", "downstream"]), json_ish),
        "required": json_ish,
        "extra": json_ish,
    },
)
query_like = st.recursive(
    rule_like,
    lambda children: st.fixed_dictionaries(
        {},
        optional={
            "combinator": st.one_of(st.sampled_from(["and", "or"]), json_ish),
            "rules": st.one_of(st.lists(children, max_size=4), json_ish),
        },
    ),
    max_leaves=10,
)


@settings(max_examples=100, deadline=None)
@given(raw=st.one_of(query_like, json_ish, st.dictionaries(st.sampled_from(KEYS), json_ish)))
def test_parse_raises_only_validation_failed(raw: Any) -> None:
    try:
        query = parse_query(raw)
    except KioskError as exc:
        assert isinstance(exc, ValidationFailed)
        assert exc.message.startswith(exc.details["path"] + ": "), exc.message
        return
    # Whatever parses must also compile on both dialects and evaluate without raising.
    compile_query_for_dialect(query, "sqlite")
    compile_query_for_dialect(query, "postgresql")
    evaluate(query, RANDOM_DOCS[0], RANDOM_RELATIONS)
