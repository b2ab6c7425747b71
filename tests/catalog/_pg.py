"""A throwaway PostgreSQL 15 server for the catalog search/index tests.

Stop-gap until these modules move to the shared ``pg_server`` fixture in ``tests/conftest.py``;
delete this file then. Debian's binaries live in ``/usr/lib/postgresql/15/bin``. initdb and
postgres refuse to run as root, so as root both run as ``postgres`` through ``runuser`` in a
temporary directory handed to that user. Trust authentication on loopback, ``fsync=off``: the data
is thrown away. ``stop()`` signals the postmaster itself (its pid file), not ``runuser``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

BIN = Path("/usr/lib/postgresql/15/bin")
SERVER_USER = "postgres"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPostgres:
    """One server with one database, ``url``; use as a context manager."""

    def __init__(self, database: str = "kiosk_test") -> None:
        self.database = database
        self.base = Path(tempfile.mkdtemp(prefix="kiosk-catalog-pg-"))
        self.data = self.base / "data"
        self.sockets = self.base / "sock"
        self.log = self.base / "postgres.log"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Another empty database on this server (``name`` is a plain identifier); returns its URL."""
        assert name.isidentifier() and name.islower(), name
        with psycopg.connect(self.url_for("postgres"), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def _cmd(self, program: str, *args: str) -> list[str]:
        command = [str(BIN / program), *args]
        return ["runuser", "-u", SERVER_USER, "--", *command] if self.as_root else command

    def start(self) -> LocalPostgres:
        self.data.mkdir()
        self.sockets.mkdir()
        if self.as_root:
            user = pwd.getpwnam(SERVER_USER)
            for path in (self.base, self.data, self.sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
        subprocess.run(
            self._cmd(
                "initdb",
                *("-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8"),
                *("--no-locale", "--no-sync"),
            ),
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self._cmd(
                    "postgres",
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.sockets),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        while True:
            if self.process.poll() is not None:
                raise RuntimeError("postgres exited during start-up:\n" + self.log.read_text(errors="replace"))
            try:
                with psycopg.connect(admin, autocommit=True, connect_timeout=2) as conn:
                    conn.execute(f'CREATE DATABASE "{self.database}"')
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            for sig, wait in ((signal.SIGINT, 30.0), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 10.0)):
                if process.poll() is not None:
                    break
                pid = self._postmaster_pid()
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if pid is not None:
                        os.kill(pid, sig)
                    else:
                        process.send_signal(sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=wait)
        shutil.rmtree(self.base, ignore_errors=True)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def __enter__(self) -> LocalPostgres:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
