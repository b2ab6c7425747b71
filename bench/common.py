"""Shared machinery for the benchmarks: databases, statistics, reporting, a light load generator.

Each benchmark starts kiosk the way it runs in production — kiosk's server (uvicorn with its
deadlines and connection cap, ``kiosk.web.server``), one process, on loopback, through
:class:`tests.support.kiosk_server.KioskServer`, the one the tests use — against a fresh
database: a SQLite file in a temporary directory, or a database on a throwaway PostgreSQL server
(``tests/pg.py``, the one the tests use). It drives the server over HTTP with httpx and prints its
figures next to a baseline measured in the same run, on the same machine and engine, so the ratio
means something even where absolute numbers do not.

Run the scripts from the repository root as modules (``python -m bench.bulk_upsert``) or through
``make bench``.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.pg import PostgresServer
from tests.support.kiosk_server import KioskServer

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("sqlite", "postgres")
#: Port's limit on entities per bulk call, and kiosk's.
BULK_BATCH = 20_000


# -- command line ---------------------------------------------------------------------------------


def base_parser(description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--engine", choices=[*ENGINES, "both"], default="both", help="database engine(s)")
    parser.add_argument("--quick", action="store_true", help="a small smoke-test size")
    return parser


def selected_engines(choice: str) -> list[str]:
    return list(ENGINES) if choice == "both" else [choice]


def load_parser(description: str | None, *, total: int) -> argparse.ArgumentParser:
    """The options of a benchmark that hammers endpoints (:func:`hammer`); read them with :func:`load_args`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--total", type=int, default=total, help="requests per round and endpoint")
    parser.add_argument("--concurrency", type=int, default=8, help="keep-alive connections")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians reported)")
    parser.add_argument("--quick", action="store_true", help="a small smoke-test size")
    return parser


def in_process_parser(description: str | None, *, n: int, n_help: str) -> argparse.ArgumentParser:
    """The options of a benchmark measured inside this process, with no database: ``--n`` items
    (``n_help`` says what they are), ``--rounds`` (the median is reported) and ``--quick``.
    ``--engine`` is accepted and ignored: ``make bench`` passes it to every benchmark."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--n", type=int, default=n, help=n_help)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a small smoke-test size")
    parser.add_argument("--engine", help="ignored (make bench passes it to every bench)")
    return parser


def load_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """The parsed options, ``--quick`` meaning one round of 500 requests."""
    args = parser.parse_args(argv)
    if args.quick:
        args.total, args.rounds = 500, 1
    return args


# -- databases ------------------------------------------------------------------------------------


class Databases:
    """Fresh, empty databases on one engine, all thrown away by ``close()``."""

    def __init__(self, engine: str) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}")
        self.engine = engine
        self.tmp = Path(tempfile.mkdtemp(prefix="kiosk-bench-"))
        self.pg: PostgresServer | None = PostgresServer().start() if engine == "postgres" else None

    def fresh(self) -> str:
        """The URL of a new empty database."""
        name = f"b_{uuid.uuid4().hex}"
        if self.pg is not None:
            return self.pg.create_database(name)
        return f"sqlite:///{self.tmp / name}.db"

    def home(self) -> Path:
        """A new empty ``KIOSK_HOME``."""
        return Path(tempfile.mkdtemp(prefix="home-", dir=self.tmp))

    def server(self, **options: Any) -> KioskServer:
        """A kiosk server (not started) on a new empty database and home, its admin client the one
        kiosk creates on first start; ``options`` go to :class:`~tests.support.kiosk_server.KioskServer`."""
        options = {"startup_timeout": 120.0, "client_timeout": 600.0, **options}
        return KioskServer(self.home(), self.fresh(), **options)

    def close(self) -> None:
        if self.pg is not None:
            self.pg.stop()
            self.pg = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Databases:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def sqlite_path(url: str) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise ValueError(f"not a SQLite file URL: {url}")
    return url[len(prefix) :]


def migrate(url: str) -> None:
    """Build kiosk's schema in an empty database, as the server would at start."""
    from kiosk.store import create_database, upgrade_to_head

    db = create_database(url)
    try:
        upgrade_to_head(db)
    finally:
        db.dispose()


# -- statistics and reporting ---------------------------------------------------------------------


def latency_text(values: Sequence[float]) -> str:
    """``p50 … ms, p99 … ms`` of latencies in seconds."""
    return f"p50 {percentile(values, 50) * 1000:.2f} ms, p99 {percentile(values, 99) * 1000:.2f} ms"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), interpolated linearly between the closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else float("inf")


def report(label: str, value: float, unit: str, baseline_label: str, baseline: float, baseline_unit: str) -> str:
    """Print and return one result line: the figure, its baseline and their ratio."""
    line = (
        f"{label} {_fmt(value)} {unit}, {baseline_label} {_fmt(baseline)} {baseline_unit}, "
        f"ratio {ratio(value, baseline):.2f}"
    )
    print(line, flush=True)
    return line


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# -- a light HTTP/1.1 load generator --------------------------------------------------------------


def raw_request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """One HTTP/1.1 keep-alive request as bytes, built once and sent many times."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _connection(
    port: int, requests: Sequence[bytes], count: int, latencies: list[float], statuses: dict[int, int]
) -> None:
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in range(count):
            started = time.perf_counter()
            writer.write(requests[i % len(requests)])
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


def hammer(
    port: int, requests: Sequence[bytes], *, total: int, concurrency: int
) -> tuple[float, list[float], dict[int, int]]:
    """Send ``total`` requests over ``concurrency`` keep-alive connections (cycling through
    ``requests``); return (requests per second, latencies in seconds, count per status).

    A hand-rolled client because httpx itself would cost more CPU than the server under test on a
    2-core machine; this one only writes prepared bytes and reads status and Content-Length.
    """
    import asyncio

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    share = [total // concurrency + (1 if i < total % concurrency else 0) for i in range(concurrency)]

    async def run() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(_connection(port, requests, n, latencies, statuses) for n in share if n))
        return time.perf_counter() - started

    elapsed = asyncio.run(run())
    return total / elapsed, latencies, statuses
