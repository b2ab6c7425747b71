"""Sustained webhook deliveries per second, against bare httpx POSTs of the same bodies.

A receiver answering 200 runs in its own process (kiosk.web.server, a bare ASGI app) on
loopback. For each engine, a fresh database gets ``--total`` deliveries (enqueued beforehand, not
timed); a :class:`~kiosk.delivery.worker.DeliveryWorker` with ``--workers`` sender threads then
drains them: claim, sign (Standard Webhooks + Port headers), POST, record the attempt, update the
delivery and its job. The figure is deliveries per second from start to the last one recorded as
delivered. The baseline, interleaved with the measured rounds, is the same number of bare httpx
POSTs of the same bodies from one ``httpx.Client`` with the same number of threads: a yardstick for
the machine's speed during the run. It is no longer the ceiling of kiosk's own HTTP client: the
sender now uses :mod:`kiosk.delivery.http1` (keep-alive HTTP/1.1 over ``http.client``), which on its
own sends about three times as many POSTs per second as httpx here, so a ratio above 1 is possible.
Target: ≥ 1,000 deliveries/s on SQLite.

Also printed: the latency from commit + ``notify()`` to "delivered" for single deliveries on an
idle worker.

    python -m bench.delivery [--engine sqlite|postgres|both] [--total 5000] [--workers 4] [--rounds 3] [--quick]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
from bench.common import ROOT, Databases, base_parser, median, percentile, report, selected_engines
from tests.support.deliveries import new_delivery
from tests.support.processes import wait_until_answering

from kiosk.delivery.config import DeliveryConfig, EgressConfig
from kiosk.delivery.outbox import Signing
from kiosk.delivery.worker import DeliveryWorker, FinalOutcome
from kiosk.store import create_database, upgrade_to_head

SECRET = "bench-signing-secret"  # a benchmark's throwaway key
LATENCY_SAMPLES = 50


# -- the receiver, imported by uvicorn in its own process -----------------------------------------


async def receiver_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read the body, answer 200 "ok": the cheapest honest webhook receiver."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class Receiver:
    def __init__(self) -> None:
        from tests.support.servers import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        command = [sys.executable, "-m", "kiosk.web.server", "bench.delivery:receiver_app", "--app-dir", str(ROOT)]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        self.process = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ))
        try:
            wait_until_answering(self.url, self.process, timeout=60)  # it answers any method
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=30)


# -- the measured rounds --------------------------------------------------------------------------


def bodies(count: int) -> list[bytes]:
    """Distinct action-run payloads of about 600 bytes, as kiosk sends them."""
    return [
        orjson.dumps(
            {
                "action": "deploy_service",
                "resourceType": "run",
                "status": "TRIGGER",
                "trigger": {"by": {"userId": "bench@example.com"}, "origin": "UI", "at": "2026-11-24T12:00:00Z"},
                "context": {"entity": f"service-{n}", "blueprint": "service", "runId": f"r_{n:012x}"},
                "payload": {"entity": {"identifier": f"service-{n}", "title": f"Service {n}"}},
                "properties": {"environment": "production", "version": f"1.{n}.0", "region": "westeurope"},
            }
        )
        for n in range(count)
    ]


def enqueue(conn: Any, url: str, body: bytes) -> None:
    """One signed JSON webhook to ``url``, in the caller's transaction."""
    new_delivery(conn, url, body=body, signing=Signing("webhook", "webhook"), run_id=None)


def enqueue_all(db: Any, url: str, payloads: list[bytes]) -> None:
    with db.begin() as conn:
        for body in payloads:
            enqueue(conn, url, body)


def kiosk_round(database_url: str, url: str, payloads: list[bytes], workers: int) -> float:
    """Deliveries per second draining ``payloads`` (enqueued first, untimed)."""
    db = create_database(database_url)
    upgrade_to_head(db)
    enqueue_all(db, url, payloads)
    done = threading.Event()
    delivered = 0
    failed: list[FinalOutcome] = []

    def on_final(outcome: FinalOutcome) -> None:
        nonlocal delivered
        if outcome.status == "delivered":
            delivered += 1
        else:
            failed.append(outcome)
        if delivered + len(failed) == len(payloads):
            done.set()

    config = DeliveryConfig(workers=workers, timeoutSeconds=15)
    worker = DeliveryWorker(
        db, config, EgressConfig(allowLoopback=True), {"webhook": SECRET}.get, on_final=on_final, poll_seconds=0.05
    )
    started = time.perf_counter()
    worker.start()
    finished = done.wait(600)
    elapsed = time.perf_counter() - started
    worker.stop(30)
    db.dispose()
    if not finished or failed:
        raise RuntimeError(f"{delivered}/{len(payloads)} delivered; failures: {failed[:3]}")
    return len(payloads) / elapsed


def latency_round(database_url: str, url: str, payloads: list[bytes], workers: int) -> list[float]:
    """Seconds from commit + notify() to the delivery recorded as delivered, one at a time, idle worker."""
    db = create_database(database_url)
    upgrade_to_head(db)
    arrived = threading.Event()
    worker = DeliveryWorker(
        db,
        DeliveryConfig(workers=workers),
        EgressConfig(allowLoopback=True),
        {"webhook": SECRET}.get,
        on_final=lambda outcome: arrived.set(),
        poll_seconds=30,
    )
    worker.start()
    samples = []
    try:
        for body in payloads[:LATENCY_SAMPLES]:
            arrived.clear()
            time.sleep(0.01)  # let the worker go idle
            started = time.perf_counter()
            with db.begin() as conn:
                enqueue(conn, url, body)
            worker.notify()
            if not arrived.wait(30):
                raise RuntimeError("a delivery did not arrive")
            samples.append(time.perf_counter() - started)
    finally:
        worker.stop(30)
        db.dispose()
    return samples


def baseline_round(url: str, payloads: list[bytes], workers: int) -> float:
    """Bare POSTs per second: the same bodies, one httpx.Client, the same number of threads."""
    limits = httpx.Limits(max_connections=workers * 2, max_keepalive_connections=workers * 2)
    with httpx.Client(limits=limits, timeout=15, trust_env=False) as client:

        def post(body: bytes) -> int:
            return client.post(url, content=body, headers={"Content-Type": "application/json"}).status_code

        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            statuses = set(pool.map(post, payloads))
        elapsed = time.perf_counter() - started
    if statuses != {200}:
        raise RuntimeError(f"receiver answered {statuses}")
    return len(payloads) / elapsed


def _rates(values: list[float]) -> str:
    return ", ".join(f"{v:,.0f}" for v in values)


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--total", type=int, default=5000, help="deliveries per round")
    parser.add_argument("--workers", type=int, default=4, help="sender threads (and baseline threads)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians reported)")
    args = parser.parse_args(argv)
    if args.quick:
        args.total, args.rounds = 500, 1
    payloads = bodies(args.total)
    receiver = Receiver()
    verdicts: list[str] = []
    try:
        baseline_round(receiver.url, payloads[:200], args.workers)  # warm-up
        for engine in selected_engines(args.engine):
            with Databases(engine) as databases:
                kiosk_round(databases.fresh(), receiver.url, payloads[:200], args.workers)  # warm-up
                rates, baselines = [], []
                for _ in range(args.rounds):
                    baselines.append(baseline_round(receiver.url, payloads, args.workers))
                    rates.append(kiosk_round(databases.fresh(), receiver.url, payloads, args.workers))
                latencies = latency_round(databases.fresh(), receiver.url, payloads, args.workers)
            rate, base = median(rates), median(baselines)
            print(
                f"{engine}: {args.rounds} round(s) of {args.total} deliveries, {args.workers} workers; "
                f"rounds {_rates(rates)} /s; baselines {_rates(baselines)} /s"
            )
            report(f"{engine}: kiosk", rate, "deliveries/s", "bare httpx", base, "POSTs/s")
            print(
                f"{engine}: commit+notify -> delivered: p50 {percentile(latencies, 50) * 1000:.1f} ms, "
                f"p95 {percentile(latencies, 95) * 1000:.1f} ms ({len(latencies)} single deliveries)"
            )
            if engine == "sqlite":
                verdicts.append(f"target >= 1,000 deliveries/s on SQLite: {'met' if rate >= 1000 else 'NOT met'}")
    finally:
        receiver.stop()
    for verdict in verdicts:
        print(verdict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
