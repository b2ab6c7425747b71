"""kiosk as a real server process, for the tests that kill it, restart it or run two, and for the benchmarks.

:class:`KioskServer` runs ``python -m kiosk.web.server --factory tests.support.kiosk_server:app_factory``
(kiosk's server, one process, so the process we start *is* the server: SIGKILL hits kiosk itself,
not a supervisor; uvicorn with kiosk's deadlines and connection cap, as ``kiosk serve`` runs it) with
``KIOSK_HOME``, ``KIOSK_DATABASE_URL`` and, when given, ``KIOSK_CONFIG`` (a kiosk.yaml) in its
environment, waits for ``/healthz`` and hands out an httpx client with an admin token.

The admin client is either made by the caller's process before the server starts
(:func:`prepare_database`, so several processes can share one database and one token), or, on a
fresh database, the one kiosk creates on its first start and writes to ``$KIOSK_HOME/credentials``.

Test-only knobs, read by :func:`app_factory` from the environment, because kiosk.yaml cannot set
them (see :class:`kiosk.delivery.worker.DeliveryWorker`):

* ``KIOSK_TEST_LEASE_SECONDS``: the job lease of the delivery worker and of the integrations'
  resyncs. kiosk itself uses ``max(60, 6 * delivery.timeoutSeconds)`` and 60 s, so a test of
  recovery after a crash would otherwise wait a minute for the dead process's leases to expire.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from tests.support.processes import wait_until_answering
from tests.support.servers import free_port

if TYPE_CHECKING:
    from fastapi import FastAPI

ROOT = Path(__file__).resolve().parents[2]
LEASE_ENV = "KIOSK_TEST_LEASE_SECONDS"
#: The master key every server process gets (processes sharing a database must share their key; each
#: has its own KIOSK_HOME, so a generated key file would differ). ``env`` may override it.
TEST_SECRET_KEY = "kiosk-test-master-key-" + "0123456789abcdef" * 2


def app_factory() -> FastAPI:
    """kiosk's app as ``kiosk serve`` builds it, plus the test knobs above."""
    from kiosk.runtime.tuning import tune_for_server
    from kiosk.settings import Settings
    from kiosk.web.app import create_app

    app = create_app(Settings.from_env())
    lease = os.environ.get(LEASE_ENV)
    if lease:
        # JobQueue.lease is read at every claim; the worker has not started yet (lifespan does that).
        app.state.delivery_worker.queue.lease = timedelta(seconds=float(lease))
        # The integrations' resyncs too: their runner renews its lease every third of it.
        app.state.integrations.queue.lease = timedelta(seconds=float(lease))
    tune_for_server()
    return app


def prepare_database(database_url: str) -> tuple[str, str]:
    """Migrate the database and create an admin client in it; ``(client_id, secret)``."""
    from kiosk.auth.clients import create_client
    from kiosk.store import create_database, upgrade_to_head

    db = create_database(database_url)
    try:
        upgrade_to_head(db)
        return create_client(db, "admin", "kiosk_server")
    finally:
        db.dispose()


class KioskServer:
    """One kiosk server process on loopback. ``start()`` may be called again after ``kill()``/``stop()``
    (same port, same database): a restart.

    ``admin`` is the ``(client_id, secret)`` the client authenticates with; without it, the one kiosk
    wrote to ``home/credentials`` on its first start. ``factory`` is the ``module:function`` the
    server builds the app with (one that wraps :func:`app_factory`, say, to instrument it).
    ``client_timeout`` is the read timeout of :attr:`client` (benchmarks send big bulk calls)."""

    def __init__(
        self,
        home: Path,
        database_url: str,
        config_path: Path | None = None,
        admin: tuple[str, str] | None = None,
        *,
        env: dict[str, str] | None = None,
        startup_timeout: float = 60.0,
        factory: str = "tests.support.kiosk_server:app_factory",
        preexec_fn: Callable[[], None] | None = None,
        client_timeout: float = 30.0,
    ) -> None:
        self.home = home
        self.database_url = database_url
        self.config_path = config_path
        self.admin = admin
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.factory = factory
        #: Run in the child before it starts (e.g. ``resource.setrlimit`` for a low fd limit).
        self.preexec_fn = preexec_fn
        self.client_timeout = client_timeout
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> KioskServer:
        """Launch and wait until it answers ``/healthz``."""
        self.launch()
        self.wait_ready()
        return self

    def launch(self) -> None:
        """Start the process without waiting for it (start several, then ``wait_ready()`` each)."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("this kiosk process is already running")
        self.home.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "KIOSK_SECRET_KEY": TEST_SECRET_KEY,
            **self.extra_env,
            "KIOSK_HOME": str(self.home),
            "KIOSK_DATABASE_URL": self.database_url,
        }
        if self.config_path is not None:
            env["KIOSK_CONFIG"] = str(self.config_path)
        command = [sys.executable, "-m", "kiosk.web.server", self.factory, "--factory", "--app-dir", str(ROOT)]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=self.preexec_fn,  # sets resource limits in the child (tests of fd exhaustion)
            )

    def wait_ready(self) -> None:
        try:
            self._wait_healthy()
        except BaseException:
            self.kill()
            raise

    def _wait_healthy(self) -> None:
        if self.process is None:
            raise RuntimeError("not launched")
        wait_until_answering(
            f"{self.base_url}/healthz", self.process, timeout=self.startup_timeout, interval=0.05, log=self.output
        )

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("not started")
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown, no lease handed back, nothing flushed. Waits until it is gone."""
        self._close_client()
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (a graceful stop), SIGKILL if it does not end within 30 s."""
        self._close_client()
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- talking to it --------------------------------------------------------------------------

    def token(self) -> str:
        if self.admin is not None:
            client_id, secret = self.admin
        else:
            credentials = json.loads((self.home / "credentials").read_text())
            client_id, secret = credentials["clientId"], credentials["clientSecret"]
        response = httpx.post(
            f"{self.base_url}/v1/auth/access_token", json={"clientId": client_id, "clientSecret": secret}, timeout=30
        )
        response.raise_for_status()
        return str(response.json()["accessToken"])

    @property
    def client(self) -> httpx.Client:
        """An httpx client with an admin token (made on first use after each start)."""
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.base_url,
                headers={"Authorization": f"Bearer {self.token()}"},
                timeout=httpx.Timeout(self.client_timeout, connect=5.0),
            )
        return self._client

    def post_json(self, path: str, payload: Any, **params: Any) -> httpx.Response:
        return self.post_raw(path, orjson.dumps(payload), **params)

    def post_raw(self, path: str, body: bytes, **params: Any) -> httpx.Response:
        """POST an already-serialised JSON body (so a benchmark's timing leaves out the client's encoding)."""
        return self.client.post(path, content=body, params=params, headers={"Content-Type": "application/json"})

    @staticmethod
    def expect(response: httpx.Response, *statuses: int) -> Any:
        """The decoded body, or an error that shows what the server said."""
        if response.status_code not in (statuses or (200,)):
            raise RuntimeError(
                f"{response.request.method} {response.request.url.path} -> {response.status_code}: "
                f"{response.text[:2000]}"
            )
        return orjson.loads(response.content)

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> KioskServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def fresh_kiosk(directory: Path, config: str = "{}\n", **options: Any) -> KioskServer:
    """A :class:`KioskServer` (not started) on a new SQLite database under ``directory``, with
    ``config`` as its kiosk.yaml; ``options`` go to :class:`KioskServer` (``env``, ``preexec_fn``...)."""
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "kiosk.yaml"
    config_path.write_text(config)
    database_url = f"sqlite:///{directory / 'kiosk.db'}"
    return KioskServer(directory / "home", database_url, config_path, prepare_database(database_url), **options)
