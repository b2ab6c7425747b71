"""Receiver intake: accepted-and-stored events per second, against a bare endpoint on the same stack.

kiosk runs as in production (uvicorn, one worker, its own process, loopback) with one ``azure``
receiver and ``--watches`` watches, each on its own image repository; every event is an ACR push
(distinct ``id``, so none is a duplicate) that matches exactly one watch. A 200 from the receiver
means the event, the watch's refresh (``lastRefreshedAt``) and the event's job (the dedupe key)
were committed before the reply. The watches have no reactions, so the event processor has
nothing to do: this measures the intake.

Baseline, interleaved with the measured rounds on the same server: a bare ASGI endpoint mounted in
the same app the way the receivers are (a :class:`~kiosk.web.lane.WebhookLane` in front of the
middleware stack, same uvicorn) that reads the body and answers 200 — the ceiling of the HTTP
stack itself on this machine. Load: ``--concurrency`` keep-alive connections
from a hand-rolled HTTP/1.1 client (:mod:`bench.common`), each sending its own distinct events.

Then the matching cost: the same measurement against a server holding 10,000 watches, as a ratio
to the ``--watches`` figure (target: within a factor of 2).

    python -m bench.receivers [--engine sqlite|postgres|both] [--total 20000] [--concurrency 64]
                              [--rounds 3] [--watches 10] [--big-watches 10000] [--quick]
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from bench.common import (
    Databases,
    _connection,
    base_parser,
    median,
    percentile,
    ratio,
    raw_request,
    report,
    selected_engines,
)
from tests.support.kiosk_server import KioskServer

if TYPE_CHECKING:
    from fastapi import FastAPI

SECRET = "bench-receiver-secret"  # a benchmark's throwaway secret
RECEIVER = "bench"
HOST = "bench.azurecr.io"


# -- the app uvicorn imports in the server process ------------------------------------------------


class BareEndpoint:
    """Reads the body, answers 200 ``{}``: the cheapest honest webhook endpoint on kiosk's stack."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})


def app_factory() -> FastAPI:
    """kiosk's app as the tests' server builds it (:func:`tests.support.kiosk_server.app_factory`),
    plus the bare route."""
    from tests.support.kiosk_server import app_factory as kiosk_app_factory

    from kiosk.web.lane import WebhookLane

    app = kiosk_app_factory()
    # In a lane of its own, as the receivers' endpoint is in kiosk's (kiosk.web.lane): both skip the
    # middleware stack the same way, so the comparison is of the work behind them.
    app.add_middleware(WebhookLane, prefix="/bare", endpoint=BareEndpoint(), metrics=app.state.metrics)
    return app


def receiver_server(database_url: str, home: Path, watches: int) -> KioskServer:
    """A :class:`~tests.support.kiosk_server.KioskServer` (not started) with this module's factory and
    a kiosk.yaml of one receiver and ``watches`` watches."""
    config_path = home / "kiosk.yaml"
    lines = ["receivers:", f"  - {{name: {RECEIVER}, type: azure, secret: {{env: BENCH_RECEIVER_SECRET}}}}"]
    # Every event of every round must still be stored when the bench counts them: kiosk's
    # default keeps 10,000 per receiver, and the pruner would thin the rounds mid-run.
    lines.append("retention: {receiverEvents: {maxPerReceiver: 1000000}}")
    lines.append("watches:")
    lines += [f"  - {{name: w{n}, subscriptions: [{{image: {HOST}/app-{n}, tags: ['1.*']}}]}}" for n in range(watches)]
    config_path.write_text("\n".join(lines) + "\n")
    return KioskServer(
        home,
        database_url,
        config_path,
        startup_timeout=300.0,
        factory="bench.receivers:app_factory",
        env={"BENCH_RECEIVER_SECRET": SECRET},
        client_timeout=600.0,
    )


# -- load -----------------------------------------------------------------------------------------


def push_requests(path: str, count: int, watches: int, prefix: str) -> list[bytes]:
    """``count`` distinct ACR pushes (unique ids), each matching exactly one watch."""
    from kiosk.receivers.urls import receiver_digest

    digest = receiver_digest(None, RECEIVER, SECRET)
    target = path.format(digest=digest)
    out = []
    for n in range(count):
        body = orjson.dumps(
            {
                "id": f"{prefix}-{n}-{uuid.uuid4().hex[:8]}",
                "timestamp": "2026-11-24T12:00:00Z",
                "action": "push",
                "target": {
                    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "size": 524,
                    "digest": "sha256:" + "ab" * 32,
                    "length": 524,
                    "repository": f"app-{n % watches}",
                    "tag": f"1.{n}.0",
                },
                "request": {"id": uuid.uuid4().hex, "host": HOST, "method": "PUT", "useragent": "docker/27.0"},
            }
        )
        headers = {"Content-Type": "application/json", "User-Agent": "AzureContainerRegistry/1.0"}
        out.append(raw_request("POST", target, body, headers))
    return out


def drive(port: int, requests: Sequence[bytes], concurrency: int) -> tuple[float, list[float], dict[int, int]]:
    """Send every request once over ``concurrency`` keep-alive connections, each its own share.

    (``bench.common.hammer`` sends the same request list on every connection, which here would
    make most events duplicates; this reuses its per-connection loop with distinct shares.)
    """
    shares = [list(requests[i::concurrency]) for i in range(concurrency)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def run() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(_connection(port, share, len(share), latencies, statuses) for share in shares if share))
        return time.perf_counter() - started

    elapsed = asyncio.run(run())
    return len(requests) / elapsed, latencies, statuses


def wait_until_processed(database_url: str, timeout: float = 120.0) -> None:
    """Let the event processor drain the backlog of one round before the next starts."""
    import sqlalchemy as sa

    from kiosk.store import create_database

    db = create_database(database_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with db.connect() as conn:
                pending = conn.execute(sa.text("SELECT count(*) FROM receiver_events WHERE processing = 'pending'"))
                if pending.scalar() == 0:
                    return
            time.sleep(0.2)
        raise RuntimeError("the event processor did not drain the backlog")
    finally:
        db.dispose()


def stored_events(database_url: str) -> int:
    import sqlalchemy as sa

    from kiosk.store import create_database

    db = create_database(database_url)
    try:
        with db.connect() as conn:
            return int(
                conn.execute(sa.text("SELECT count(*) FROM receiver_events WHERE outcome = 'refreshed'")).scalar() or 0
            )
    finally:
        db.dispose()


def measure(
    server: KioskServer, url: str, *, total: int, concurrency: int, rounds: int, watches: int, label: str
) -> dict[str, Any]:
    """Interleaved rounds of the bare endpoint and the receiver; medians of each."""
    drive(server.port, push_requests("/bare/azure/{digest}", min(total, 2000), watches, "warm-bare"), concurrency)
    drive(server.port, push_requests("/webhooks/azure/{digest}", min(total, 2000), watches, "warm"), concurrency)
    wait_until_processed(url)
    before = stored_events(url)
    bare: list[tuple[float, float, float]] = []
    kiosk: list[tuple[float, float, float]] = []
    for r in range(rounds):
        rate, lat, statuses = drive(
            server.port, push_requests("/bare/azure/{digest}", total, watches, f"b{r}"), concurrency
        )
        assert statuses == {200: total}, statuses
        bare.append((rate, percentile(lat, 50) * 1000, percentile(lat, 99) * 1000))
        rate, lat, statuses = drive(
            server.port, push_requests("/webhooks/azure/{digest}", total, watches, f"k{r}"), concurrency
        )
        if statuses != {200: total}:
            raise RuntimeError(f"receiver answered {statuses}; server log:\n{server.output()[-3000:]}")
        kiosk.append((rate, percentile(lat, 50) * 1000, percentile(lat, 99) * 1000))
        wait_until_processed(url)
    stored = stored_events(url) - before
    if stored != rounds * total:
        raise RuntimeError(f"{stored} events stored for {rounds * total} accepted")

    def med(values: list[tuple[float, float, float]], i: int) -> float:
        return median([v[i] for v in values])

    figures = {
        "rate": med(kiosk, 0),
        "p50": med(kiosk, 1),
        "p99": med(kiosk, 2),
        "bare": med(bare, 0),
        "bare_p50": med(bare, 1),
        "bare_p99": med(bare, 2),
    }
    report(f"{label}: stored events/s", figures["rate"], "", "bare endpoint/s", figures["bare"], "")
    print(
        f"  latency p50/p99 ms: receiver {figures['p50']:.1f} / {figures['p99']:.1f}, "
        f"bare {figures['bare_p50']:.1f} / {figures['bare_p99']:.1f}; {stored:,} events stored, all 200",
        flush=True,
    )
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--total", type=int, default=20_000, help="events per round")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--watches", type=int, default=10)
    parser.add_argument("--big-watches", type=int, default=10_000)
    args = parser.parse_args(argv)
    if args.quick:
        args.total, args.rounds, args.big_watches = 3000, 1, 2000
    print(
        f"receiver intake: {args.total:,} events per round, {args.concurrency} connections, {args.rounds} round(s); "
        f"cores: {os.cpu_count()}",
        flush=True,
    )
    for engine in selected_engines(args.engine):
        with Databases(engine) as dbs:
            figures = {}
            for watches in (args.watches, args.big_watches):
                url = dbs.fresh()
                with receiver_server(url, dbs.home(), watches) as server:
                    figures[watches] = measure(
                        server,
                        url,
                        total=args.total,
                        concurrency=args.concurrency,
                        rounds=args.rounds,
                        watches=watches,
                        label=f"[{engine}, {watches:,} watches]",
                    )
            small, big = figures[args.watches], figures[args.big_watches]
            print(
                f"[{engine}] matching cost: {big['rate']:,.0f} events/s with {args.big_watches:,} watches vs "
                f"{small['rate']:,.0f} with {args.watches:,}: ratio {ratio(big['rate'], small['rate']):.2f} "
                f"(target ≥ 0.50)",
                flush=True,
            )


if __name__ == "__main__":
    main()
