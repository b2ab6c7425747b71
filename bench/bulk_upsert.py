"""Bulk upsert throughput: entities/s through ``POST /v1/blueprints/{bp}/entities/bulk``.

The blueprint has 10 properties (string, enum, number, boolean, url and date-time) and two
single relations to small target blueprints, whose entities are created first. N entities (default
100,000) go in batches of 20,000 (Port's per-call limit) through httpx to a kiosk server on
loopback. Each of 3 runs uses a fresh database and a fresh server; the median run is reported.

Baseline, same run, same engine: the plain ``executemany`` of the same rows through the raw
driver (sqlite3 / psycopg) into a fresh schema built by ``kiosk.store.upgrade_to_head`` — one row
per entity into ``entities`` (properties and team JSON-serialised, timestamps) plus one row per
relation edge into ``entity_relations``, committed per 20,000, ids assigned by the client. It is
the floor a server cannot go under: no HTTP, no validation, no upsert, no id lookups. Its time
includes building the rows from the entity dicts, as the server must.

    python -m bench.bulk_upsert [--n 100000] [--runs 3] [--engine sqlite|postgres|both] [--quick]
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from bench.common import (
    BULK_BATCH,
    Databases,
    base_parser,
    chunks,
    median,
    migrate,
    report,
    selected_engines,
    sqlite_path,
)

SERVICE = "bench_service"
DOMAIN = "bench_domain"
OWNER = "bench_owner"
N_DOMAINS = 10
N_OWNERS = 50
LANGUAGES = ["python", "go", "java", "typescript", "rust", "csharp"]
LIFECYCLES = ["production", "staging", "development", "deprecated"]

TARGET_BLUEPRINTS: list[dict[str, Any]] = [
    {
        "identifier": DOMAIN,
        "title": "Bench domain",
        "schema": {"properties": {"description": {"type": "string", "title": "Description"}}, "required": []},
        "relations": {},
    },
    {
        "identifier": OWNER,
        "title": "Bench owner",
        "schema": {"properties": {"email": {"type": "string", "format": "email", "title": "Email"}}, "required": []},
        "relations": {},
    },
]

SERVICE_BLUEPRINT: dict[str, Any] = {
    "identifier": SERVICE,
    "title": "Bench service",
    "schema": {
        "properties": {
            "description": {"type": "string", "title": "Description"},
            "repository": {"type": "string", "format": "url", "title": "Repository"},
            "language": {"type": "string", "enum": LANGUAGES, "title": "Language"},
            "lifecycle": {"type": "string", "enum": LIFECYCLES, "title": "Lifecycle"},
            "port": {"type": "number", "title": "Port"},
            "replicas": {"type": "number", "title": "Replicas"},
            "coverage": {"type": "number", "title": "Coverage"},
            "onCall": {"type": "boolean", "title": "On call"},
            "public": {"type": "boolean", "title": "Public"},
            "lastDeploy": {"type": "string", "format": "date-time", "title": "Last deploy"},
        },
        "required": ["language", "lifecycle"],
    },
    "relations": {
        "domain": {"target": DOMAIN, "title": "Domain", "required": False, "many": False},
        "owner": {"target": OWNER, "title": "Owner", "required": False, "many": False},
    },
}


def target_entities() -> dict[str, list[dict[str, Any]]]:
    return {
        DOMAIN: [
            {"identifier": f"domain-{i}", "title": f"Domain {i}", "properties": {"description": f"domain {i}"}}
            for i in range(N_DOMAINS)
        ],
        OWNER: [
            {"identifier": f"owner-{i}", "title": f"Owner {i}", "properties": {"email": f"owner{i}@example.com"}}
            for i in range(N_OWNERS)
        ],
    }


def service_entities(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    entities = []
    for i in range(n):
        entities.append(
            {
                "identifier": f"svc-{i:07d}",
                "title": f"Service {i}",
                "properties": {
                    "description": f"service number {i} of the bulk benchmark",
                    "repository": f"https://dev.azure.com/contoso/project/_git/svc-{i}",
                    "language": rng.choice(LANGUAGES),
                    "lifecycle": rng.choice(LIFECYCLES),
                    "port": rng.randrange(1024, 65535),
                    "replicas": rng.randrange(1, 12),
                    "coverage": round(rng.random() * 100, 2),
                    "onCall": rng.random() < 0.5,
                    "public": rng.random() < 0.2,
                    "lastDeploy": (start + timedelta(minutes=rng.randrange(500_000))).isoformat(),
                },
                "relations": {
                    "domain": f"domain-{rng.randrange(N_DOMAINS)}",
                    "owner": f"owner-{rng.randrange(N_OWNERS)}",
                },
            }
        )
    return entities


# -- kiosk ----------------------------------------------------------------------------------------


def kiosk_run(databases: Databases, entities: Sequence[dict[str, Any]]) -> float:
    """One run on a fresh database and server: entities/s over the bulk calls alone."""
    with databases.server() as server:
        for document in [*TARGET_BLUEPRINTS, SERVICE_BLUEPRINT]:
            server.expect(server.post_json("/v1/blueprints", document), 201)
        for blueprint, targets in target_entities().items():
            path = f"/v1/blueprints/{blueprint}/entities/bulk"
            server.expect(server.post_json(path, {"entities": targets}, upsert="true"), 200)
        # Encoded before the clock starts: the client's JSON encoding is not the server's cost.
        bodies = [orjson.dumps({"entities": list(batch)}) for batch in chunks(entities, BULK_BATCH)]
        path = f"/v1/blueprints/{SERVICE}/entities/bulk"
        stored = 0
        started = time.perf_counter()
        for body in bodies:
            result = server.expect(server.post_raw(path, body, upsert="true", merge="false"), 200)
            if result.get("errors"):
                raise RuntimeError(f"bulk call rejected entities: {result['errors'][:3]}")
            stored += len(result["entities"])
        elapsed = time.perf_counter() - started
    if stored != len(entities):
        raise RuntimeError(f"kiosk stored {stored} of {len(entities)} entities")
    return len(entities) / elapsed


# -- baseline: plain executemany through the raw driver -------------------------------------------

ENTITY_COLUMNS = (
    "id, blueprint, identifier, title, icon, team, properties, created_at, updated_at, created_by, updated_by"
)
EDGE_COLUMNS = "entity_id, relation, target_id, position"
BLUEPRINT_COLUMNS = "identifier, definition, created_at, updated_at, created_by, updated_by"


class RawSqlite:
    placeholder = "?"
    jsonb = ""

    def __init__(self, url: str) -> None:
        self.conn = sqlite3.connect(sqlite_path(url))
        # The pragmas kiosk's engine sets on every connection (kiosk.store.engine).
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            "busy_timeout=10000",
            "cache_size=-65536",
            "temp_store=MEMORY",
        ):
            self.conn.execute(f"PRAGMA {pragma}")

    @staticmethod
    def timestamp(moment: datetime) -> Any:
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")  # how SQLAlchemy stores DateTime in SQLite

    def executemany(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        self.conn.executemany(statement, rows)

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


class RawPostgres:
    placeholder = "%s"
    jsonb = "::jsonb"

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url)

    @staticmethod
    def timestamp(moment: datetime) -> Any:
        return moment

    def executemany(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(statement, rows)

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


def _insert(raw: RawSqlite | RawPostgres, table: str, columns: str, json_columns: Collection[int] = ()) -> str:
    count = len(columns.split(","))
    values = ", ".join(raw.placeholder + (raw.jsonb if i in json_columns else "") for i in range(count))
    return f"INSERT INTO {table} ({columns}) VALUES ({values})"


def baseline_run(databases: Databases, engine: str, entities: Sequence[dict[str, Any]]) -> float:
    """One run on a fresh schema: entities/s (each with its edge rows) through executemany."""
    url = databases.fresh()
    migrate(url)
    raw: RawSqlite | RawPostgres = RawSqlite(url) if engine == "sqlite" else RawPostgres(url)
    try:
        now = raw.timestamp(datetime.now(UTC))
        insert_blueprint = _insert(raw, "blueprints", BLUEPRINT_COLUMNS, {1})
        insert_entity = _insert(raw, "entities", ENTITY_COLUMNS, {5, 6})
        insert_edge = _insert(raw, "entity_relations", EDGE_COLUMNS)
        raw.executemany(
            insert_blueprint,
            [
                (bp["identifier"], orjson.dumps(bp).decode(), now, now, "bench", "bench")
                for bp in [*TARGET_BLUEPRINTS, SERVICE_BLUEPRINT]
            ],
        )
        ids: dict[tuple[str, str], int] = {}
        next_id = 1
        target_rows = []
        for blueprint, targets in target_entities().items():
            for target in targets:
                ids[blueprint, target["identifier"]] = next_id
                target_rows.append(
                    (
                        next_id,
                        blueprint,
                        target["identifier"],
                        target["title"],
                        None,
                        "[]",
                        orjson.dumps(target["properties"]).decode(),
                        now,
                        now,
                        "bench",
                        "bench",
                    )
                )
                next_id += 1
        raw.executemany(insert_entity, target_rows)
        raw.commit()
        relation_targets = {name: spec["target"] for name, spec in SERVICE_BLUEPRINT["relations"].items()}

        started = time.perf_counter()
        for batch in chunks(entities, BULK_BATCH):
            entity_rows = []
            edge_rows = []
            for entity in batch:
                entity_rows.append(
                    (
                        next_id,
                        SERVICE,
                        entity["identifier"],
                        entity["title"],
                        None,
                        "[]",
                        orjson.dumps(entity["properties"]).decode(),
                        now,
                        now,
                        "bench",
                        "bench",
                    )
                )
                for relation, target in entity["relations"].items():
                    edge_rows.append((next_id, relation, ids[relation_targets[relation], target], 0))
                next_id += 1
            raw.executemany(insert_entity, entity_rows)
            raw.executemany(insert_edge, edge_rows)
            raw.commit()
        elapsed = time.perf_counter() - started
    finally:
        raw.close()
    return len(entities) / elapsed


# -- main -----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=None, help="entities per run (default 100,000; 5,000 quick)")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement; the median is reported")
    args = parser.parse_args(argv)
    n = args.n or (5_000 if args.quick else 100_000)
    entities = service_entities(n)
    print(f"bulk upsert: {n:,} entities in batches of {BULK_BATCH:,}, median of {args.runs} runs", flush=True)
    for engine in selected_engines(args.engine):
        with Databases(engine) as databases:
            kiosk_rates = []
            baseline_rates = []
            for run in range(args.runs):
                kiosk_rates.append(kiosk_run(databases, entities))
                baseline_rates.append(baseline_run(databases, engine, entities))
                print(
                    f"  {engine} run {run + 1}: kiosk {kiosk_rates[-1]:,.0f} entities/s, "
                    f"baseline {baseline_rates[-1]:,.0f} rows/s",
                    flush=True,
                )
            report(
                f"{engine}: kiosk",
                median(kiosk_rates),
                "entities/s",
                "baseline",
                median(baseline_rates),
                "rows/s",
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
