"""Search latency: ``POST /v1/entities/search`` on an indexed property, against two baselines.

N entities (default 100,000) are loaded through the bulk API into a blueprint with two string
properties of the same cardinality (~100 distinct values, drawn independently): ``bucketIndexed``
carries ``"x-kiosk-index": true`` (kiosk builds an expression index on it), ``bucketPlain`` does
not. Then S searches (default 200) are sent, each with the ``$blueprint`` rule and one ``=`` rule on
a random value, asking for one page of 100 (``--limit``), and the median and p95 latency reported.

Baselines, same run, same server, interleaved with the measured searches so drift hits all alike:
the same search on the NON-indexed property (what the index buys), and a bare ``GET /healthz``
round trip (the floor: HTTP, routing and the event loop, no database).

    python -m bench.search [--n 100000] [--searches 200] [--limit 100] [--engine ...] [--quick]
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

import orjson
from bench.common import (
    BULK_BATCH,
    Databases,
    base_parser,
    chunks,
    median,
    percentile,
    ratio,
    selected_engines,
)
from tests.support.kiosk_server import KioskServer

BLUEPRINT = "bench_search"
CARDINALITY = 100
#: A page a UI shows. At the server's default page (1,000) encoding the ~1,000 matching entities
#: dominates the latency and hides what the index does; ``--limit 0`` measures that instead.
DEFAULT_LIMIT = 100
VALUES = [f"bucket-{i:03d}" for i in range(CARDINALITY)]

SEARCH_BLUEPRINT: dict[str, Any] = {
    "identifier": BLUEPRINT,
    "title": "Bench search",
    "schema": {
        "properties": {
            "bucketIndexed": {"type": "string", "title": "Bucket (indexed)", "x-kiosk-index": True},
            "bucketPlain": {"type": "string", "title": "Bucket (not indexed)"},
            "score": {"type": "number", "title": "Score"},
            "active": {"type": "boolean", "title": "Active"},
            "description": {"type": "string", "title": "Description"},
        },
        "required": [],
    },
    "relations": {},
}


def entities(n: int, seed: int = 11) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "identifier": f"item-{i:07d}",
            "title": f"Item {i}",
            "properties": {
                "bucketIndexed": rng.choice(VALUES),
                "bucketPlain": rng.choice(VALUES),
                "score": round(rng.random() * 1000, 3),
                "active": rng.random() < 0.7,
                "description": f"entity {i} of the search benchmark",
            },
            "relations": {},
        }
        for i in range(n)
    ]


def search_body(prop: str, value: str) -> bytes:
    return orjson.dumps(
        {
            "combinator": "and",
            "rules": [
                {"property": "$blueprint", "operator": "=", "value": BLUEPRINT},
                {"property": prop, "operator": "=", "value": value},
            ],
        }
    )


def load(server: KioskServer, items: Sequence[dict[str, Any]]) -> float:
    server.expect(server.post_json("/v1/blueprints", SEARCH_BLUEPRINT), 201)
    bodies = [orjson.dumps({"entities": list(batch)}) for batch in chunks(items, BULK_BATCH)]
    started = time.perf_counter()
    for body in bodies:
        result = server.expect(server.post_raw(f"/v1/blueprints/{BLUEPRINT}/entities/bulk", body, upsert="true"))
        if result.get("errors"):
            raise RuntimeError(f"bulk call rejected entities: {result['errors'][:3]}")
    return len(items) / (time.perf_counter() - started)


def timed_search(server: KioskServer, body: bytes, params: dict[str, Any]) -> tuple[float, int]:
    started = time.perf_counter()
    response = server.post_raw("/v1/entities/search", body, **params)
    elapsed = time.perf_counter() - started
    result = server.expect(response)
    return elapsed, len(result["entities"])


def timed_healthz(server: KioskServer) -> float:
    started = time.perf_counter()
    response = server.client.get("/healthz")
    elapsed = time.perf_counter() - started
    server.expect(response)
    return elapsed


def run_engine(engine: str, items: Sequence[dict[str, Any]], searches: int, limit: int | None) -> None:
    params: dict[str, Any] = {} if limit is None else {"limit": limit}
    rng = random.Random(5)
    with Databases(engine) as databases, databases.server() as server:
        rate = load(server, items)
        print(f"  {engine}: loaded {len(items):,} entities at {rate:,.0f} entities/s", flush=True)
        for value in VALUES[:10]:  # warm-up: connections, caches, first-query planning
            timed_search(server, search_body("bucketIndexed", value), params)
            timed_search(server, search_body("bucketPlain", value), params)
            timed_healthz(server)
        indexed: list[float] = []
        plain: list[float] = []
        health: list[float] = []
        returned = 0
        for _ in range(searches):
            value = rng.choice(VALUES)
            elapsed, count = timed_search(server, search_body("bucketIndexed", value), params)
            indexed.append(elapsed)
            returned += count
            elapsed, plain_count = timed_search(server, search_body("bucketPlain", value), params)
            plain.append(elapsed)
            health.append(timed_healthz(server))
            if count == 0 or plain_count == 0:
                raise RuntimeError(f"search for {value!r} found nothing: is the data loaded?")
    ms = 1000.0
    print(
        f"{engine}: indexed search median {median(indexed) * ms:.1f} ms, p95 {percentile(indexed, 95) * ms:.1f} ms "
        f"({returned / searches:,.0f} entities per response); "
        f"non-indexed median {median(plain) * ms:.1f} ms, p95 {percentile(plain, 95) * ms:.1f} ms; "
        f"healthz median {median(health) * ms:.2f} ms",
        flush=True,
    )
    print(
        f"{engine}: ratio non-indexed/indexed {ratio(median(plain), median(indexed)):.2f} (median), "
        f"{ratio(percentile(plain, 95), percentile(indexed, 95)):.2f} (p95); "
        f"ratio indexed/healthz {ratio(median(indexed), median(health)):.1f} (median)",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=None, help="entities loaded (default 100,000; 5,000 quick)")
    parser.add_argument("--searches", type=int, default=None, help="measured searches (default 200; 40 quick)")
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"page size, ?limit= (default {DEFAULT_LIMIT}; 0: the server's)",
    )
    args = parser.parse_args(argv)
    n = args.n or (5_000 if args.quick else 100_000)
    searches = args.searches or (40 if args.quick else 200)
    items = entities(n)
    print(
        f"search: {n:,} entities, {CARDINALITY} distinct values per bucket property, {searches} searches, "
        f"limit={args.limit or 'server default'}",
        flush=True,
    )
    for engine in selected_engines(args.engine):
        run_engine(engine, items, searches, args.limit or None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
