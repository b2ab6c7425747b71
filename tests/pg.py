"""A throwaway PostgreSQL server for the tests and the benchmarks.

``PostgresServer().start()`` runs Debian's server binaries (the highest version under
``/usr/lib/postgresql/*/bin``) on a free loopback port with its data directory and Unix socket in
a fresh temporary directory, tuned for speed over durability (``fsync=off`` and friends: the data
is thrown away anyway). Databases are made on demand with ``create_database(name)``, which returns
a ``postgresql://postgres@127.0.0.1:<port>/<name>`` URL (trust authentication, no password).

initdb and postgres refuse to run as root, so when we are root both run as the ``postgres`` user
(created by Debian's package) through ``runuser``, and the temporary directory is handed to it.

``stop()`` asks the postmaster for a fast shutdown and removes the directory. It is also
registered with ``atexit``, so a session that dies on an exception leaves no server behind, and
SIGTERM is turned into KeyboardInterrupt (when nothing else handles it) so that ``kill`` unwinds
through the same path.

The binaries are installed by ``make pg-server`` (part of ``make test``); when they are missing,
``PostgresNotInstalled`` says so.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType, TracebackType

import psycopg
from psycopg import sql
from tests.support.servers import free_port

PG_ROOT = Path("/usr/lib/postgresql")
INSTALL_HINT = "run `make test` (or `make pg-server`), which installs Debian's postgresql package"
SERVER_USER = "postgres"

#: Database names we create are plain identifiers; anything else is a caller's mistake.
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresNotInstalled(RuntimeError):
    """No PostgreSQL server binaries were found."""


class PostgresStartError(RuntimeError):
    """initdb or postgres failed; the message carries their output."""


def find_bin_dir(root: Path = PG_ROOT) -> Path:
    """The ``bin`` directory of the highest PostgreSQL version installed under ``root``."""
    found: list[tuple[tuple[int, ...], Path]] = []
    for postgres in root.glob("*/bin/postgres"):
        version = tuple(int(part) for part in re.findall(r"\d+", postgres.parent.parent.name))
        found.append((version, postgres.parent))
    if not found:
        raise PostgresNotInstalled(f"no PostgreSQL server binaries under {root}/*/bin: {INSTALL_HINT}")
    return max(found)[1]


def _unwind_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so fixture teardowns and ``atexit`` still stop the server.

    Python's default SIGTERM handling ends the process at once, running neither. Installed only
    where nobody has claimed SIGTERM yet, and only from the main thread (the only place allowed to).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


class PostgresServer:
    """One PostgreSQL server on loopback, living in a temporary directory until ``stop()``."""

    def __init__(self, bin_dir: Path | None = None, *, startup_timeout: float = 60.0) -> None:
        self.bin_dir = bin_dir if bin_dir is not None else find_bin_dir()
        self.startup_timeout = startup_timeout
        self.run_as_server_user = os.geteuid() == 0
        self.port = 0
        self.base_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> PostgresServer:
        if self._process is not None:
            raise RuntimeError("this PostgresServer is already running")
        self.base_dir = Path(tempfile.mkdtemp(prefix="kiosk-pg-"))
        atexit.register(self.stop)
        _unwind_on_sigterm()
        try:
            self._initdb()
            # The free port may be taken between our probe and postgres binding it: retry.
            for attempt in range(3):
                self.port = free_port()
                if self._launch(last_attempt=attempt == 2):
                    break
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Fast shutdown (roll back open transactions, close sessions), then remove the files."""
        process, self._process = self._process, None
        if process is not None:
            self._shutdown(process)
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None
        atexit.unregister(self.stop)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- databases ---------------------------------------------------------------------------

    def url_for(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self._checked(name))))
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing whatever sessions are still connected to it."""
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self._checked(name))))

    def _admin(self, statement: sql.Composed) -> None:
        if not self.running:
            raise RuntimeError("the PostgreSQL server is not running")
        with psycopg.connect(self.url_for("postgres"), autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)

    @staticmethod
    def _checked(name: str) -> str:
        if not _DATABASE_NAME.match(name):
            raise ValueError(f"not a plain database name: {name!r}")
        return name

    # -- internals ---------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "socket"

    @property
    def log_path(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "postgres.log"

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self.bin_dir / program), *args]
        if self.run_as_server_user:
            return ["runuser", "-u", SERVER_USER, "--", *command]
        return command

    def _initdb(self) -> None:
        assert self.base_dir is not None
        self.data_dir.mkdir()
        self.socket_dir.mkdir()
        if self.run_as_server_user:
            try:
                user = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise PostgresNotInstalled(
                    f"running as root but there is no {SERVER_USER!r} user to run the server as: {INSTALL_HINT}"
                ) from None
            for path in (self.base_dir, self.data_dir, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
        result = subprocess.run(
            self._command(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise PostgresStartError(f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def _launch(self, *, last_attempt: bool) -> bool:
        """Start postgres on ``self.port``; False if it lost the port race and may be retried."""
        command = self._command(
            "postgres",
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        )
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.05
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                log_text = self.log_path.read_text(errors="replace")
                if "could not bind" in log_text.lower() and not last_attempt:
                    return False
                raise PostgresStartError(f"postgres exited during start-up; its log:\n{log_text}")
            if self._is_ready():
                return True
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        raise PostgresStartError(
            f"postgres did not accept connections within {self.startup_timeout:.0f}s; its log:\n"
            + self.log_path.read_text(errors="replace")
        )

    def _is_ready(self) -> bool:
        result = subprocess.run(
            [
                str(self.bin_dir / "pg_isready"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-t",
                "2",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
            check=False,
        )
        return result.returncode == 0

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError, AssertionError):
            return None

    def _shutdown(self, process: subprocess.Popen[bytes]) -> None:
        # Signal the postmaster itself (not runuser, which may sit between us and it):
        # SIGINT = fast shutdown, SIGQUIT = immediate shutdown, SIGKILL as the last resort.
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
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
