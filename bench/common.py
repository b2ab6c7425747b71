"""Shared machinery for the benchmarks: databases, a real kiosk server, statistics, reporting.

Each benchmark starts kiosk the way it runs in production — kiosk's server (uvicorn with its
deadlines and connection cap, ``kiosk.web.server``), one process, on loopback — against a fresh
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
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from tests.pg import PostgresServer

if TYPE_CHECKING:
    from fastapi import FastAPI

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("sqlite", "postgres")
#: Port's limit on entities per bulk call, and kiosk's.
BULK_BATCH = 20_000


# -- the app factory the server process imports ------------------------------------------------


def app_factory() -> FastAPI:
    """Build kiosk's app from ``KIOSK_HOME`` and ``KIOSK_DATABASE_URL`` (and nothing else)."""
    from kiosk.settings import Settings
    from kiosk.web.app import create_app
    from kiosk.web.runtime import tune_for_server

    env = {name: os.environ[name] for name in ("KIOSK_HOME", "KIOSK_DATABASE_URL")}
    app = create_app(Settings.from_env(env))
    tune_for_server()  # as `kiosk serve` does
    return app


# -- command line ---------------------------------------------------------------------------------


def base_parser(description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--engine", choices=[*ENGINES, "both"], default="both", help="database engine(s)")
    parser.add_argument("--quick", action="store_true", help="a small smoke-test size")
    return parser


def selected_engines(choice: str) -> list[str]:
    return list(ENGINES) if choice == "both" else [choice]


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


# -- a real kiosk server --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class KioskServer:
    """``python -m kiosk.web.server --factory bench.common:app_factory`` on loopback, with an admin token ready."""

    def __init__(
        self,
        database_url: str,
        home: Path,
        *,
        startup_timeout: float = 120.0,
        factory: str = "bench.common:app_factory",
        env: dict[str, str] | None = None,
    ) -> None:
        self.database_url = database_url
        self.home = home
        self.factory = factory
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "server.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None

    def start(self) -> KioskServer:
        env = {**os.environ, "KIOSK_HOME": str(self.home), "KIOSK_DATABASE_URL": self.database_url, **self.extra_env}
        # kiosk's server (uvicorn with kiosk's deadlines and connection cap), as `kiosk serve` runs it.
        command = [sys.executable, "-m", "kiosk.web.server", self.factory, "--factory", "--app-dir", str(ROOT)]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        try:
            self._wait_healthy()
            self._client = httpx.Client(
                base_url=self.base_url,
                headers={"Authorization": f"Bearer {self._token()}"},
                timeout=httpx.Timeout(600.0, connect=10.0),
            )
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"kiosk exited during start-up; its output:\n{self.output()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"kiosk was not healthy within {self.startup_timeout:.0f}s:\n{self.output()}")

    def _token(self) -> str:
        credentials = orjson.loads((self.home / "credentials").read_bytes())
        response = httpx.post(
            f"{self.base_url}/v1/auth/access_token",
            json={"clientId": credentials["clientId"], "clientSecret": credentials["clientSecret"]},
            timeout=30.0,
        )
        response.raise_for_status()
        return str(response.json()["accessToken"])

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            raise RuntimeError("the server is not started")
        return self._client

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def post_json(self, path: str, payload: Any, **params: Any) -> httpx.Response:
        return self.post_raw(path, orjson.dumps(payload), **params)

    def post_raw(self, path: str, body: bytes, **params: Any) -> httpx.Response:
        """POST an already-serialised JSON body (so timing leaves out the client's encoding)."""
        return self.client.post(path, content=body, params=params, headers={"Content-Type": "application/json"})

    def expect(self, response: httpx.Response, *statuses: int) -> Any:
        """The decoded body, or an error that shows what the server said."""
        if response.status_code not in (statuses or (200,)):
            raise RuntimeError(
                f"{response.request.method} {response.request.url.path} -> {response.status_code}: "
                f"{response.text[:2000]}"
            )
        return orjson.loads(response.content)

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def __enter__(self) -> KioskServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# -- statistics and reporting ---------------------------------------------------------------------


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
