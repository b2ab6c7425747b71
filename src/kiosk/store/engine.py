"""Engine factory: one place that knows how SQLite and PostgreSQL differ at connect time.

SQLite is the embedded default (WAL so readers never block the writer, foreign keys on, a busy
timeout so concurrent writers queue instead of failing). PostgreSQL is used when the URL says
so; plain ``postgresql://`` URLs are mapped to the psycopg 3 driver.

The engine is synchronous on purpose: the hot paths are bulk ``executemany`` calls, which the
sync drivers run fastest, and FastAPI runs them in its thread pool.

A SQLite database file is private to its owner (0600): it holds the catalog, runs, deliveries and
client digests. It is created so (SQLite gives its ``-wal`` and ``-shm`` files the database file's
mode), and a file left looser by an older version is repaired, with a warning, when it is opened.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("kiosk.store")

#: Execution option marking a connection that will write (SQLite then uses BEGIN IMMEDIATE).
WRITE_OPTION = "kiosk_write"


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def normalise_database_url(url: str) -> str:
    """Map the URL forms users type to the drivers kiosk ships with."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _on_sqlite_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


@dataclass(frozen=True)
class Database:
    """An engine plus the facts about it that the query builders need."""

    engine: Engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on any error."""
        with self.engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            try:
                with conn.begin():
                    yield conn
            finally:
                _release_writer(conn)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


#: Files of one SQLite database: the file itself, its write-ahead log and its shared-memory index.
SQLITE_SUFFIXES = ("", "-wal", "-shm")


def private_sqlite_files(url: str) -> None:
    """Create the SQLite file of ``url`` with mode 0600 if it does not exist yet, and set the file,
    its ``-wal`` and ``-shm`` to 0600 where they are looser (with a warning naming each one)."""
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.parent.is_dir():
        with contextlib.suppress(FileExistsError):  # an empty file is a valid SQLite database
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for suffix in SQLITE_SUFFIXES:
        file = path.with_name(path.name + suffix)
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            log.warning(
                "the database file was readable by others; setting it to 0600",
                extra={"path": str(file), "mode": oct(mode)},
            )
            os.chmod(file, 0o600)


def create_database(url: str) -> Database:
    """Create the engine for ``url`` (``sqlite:///path`` or ``postgresql://...``)."""
    url = normalise_database_url(url)
    json_codec: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}  # both engines
    if url.startswith("sqlite"):
        private_sqlite_files(url)
        engine = sa.create_engine(
            url,
            **json_codec,
            pool_size=8,
            max_overflow=8,
            connect_args={"check_same_thread": False, "timeout": 10},
        )
        sa.event.listen(engine, "connect", _on_sqlite_connect)
        # pysqlite's own transaction handling defers BEGIN; make SQLAlchemy issue it so
        # reads inside a write transaction see a consistent snapshot.
        sa.event.listen(engine, "begin", _sqlite_begin)
        _disable_pysqlite_autobegin(engine)
    elif url.startswith("postgresql"):
        engine = sa.create_engine(
            url,
            **json_codec,
            pool_size=10,
            max_overflow=10,
            pool_pre_ping=True,
        )
    else:
        raise ValueError(f"unsupported database URL scheme in {url.split(':', 1)[0]!r}: use sqlite or postgresql")
    return Database(engine)


#: The process's writers of one SQLite engine queue here before SQLite's own write lock (see
#: :func:`_sqlite_begin`); keyed by the engine.
_WRITERS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_WRITERS_LOCK = threading.Lock()
#: How long a writer waits in the process's queue before it asks SQLite anyway (whose busy_timeout
#: then decides): a transaction opened inside another one of the same thread must not hang.
_WRITER_WAIT_SECONDS = 10.0
_HOLDS_WRITER = "kiosk_holds_writer"


def _writer_lock(engine: Engine) -> threading.Lock:
    with _WRITERS_LOCK:
        lock = _WRITERS.get(engine)
        if lock is None:
            lock = _WRITERS[engine] = threading.Lock()
        return lock


def _sqlite_begin(conn: Connection) -> None:
    """BEGIN IMMEDIATE for writes: take the write lock up front and wait for it (busy_timeout),
    instead of failing with SQLITE_BUSY when a read transaction later tries to upgrade.

    The process's own writers first queue on a lock of the engine's, held until the transaction
    has committed or rolled back (:meth:`Database.begin`, :meth:`HeldConnection.transaction`):
    SQLite's busy handler waits by sleeping in growing steps (up to 100 ms), so writers of one
    process contending through it — the endpoint's group commit, the event processor's writes and
    settles, a resync — each lost tens of milliseconds per write; a lock hands the turn over at
    once. Other processes still meet through SQLite's lock."""
    write = conn.get_execution_options().get(WRITE_OPTION, False)
    if not write:
        conn.exec_driver_sql("BEGIN")
        return
    lock = _writer_lock(conn.engine)
    held = lock.acquire(timeout=_WRITER_WAIT_SECONDS)
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        if held:
            lock.release()
        raise
    if held:
        conn.info[_HOLDS_WRITER] = lock


def _release_writer(conn: Connection) -> None:
    """After the write transaction committed or rolled back (not before: SQLite's lock is held
    until then): the next writer of this process may begin."""
    lock = conn.info.pop(_HOLDS_WRITER, None)
    if lock is not None:
        lock.release()


def _disable_pysqlite_autobegin(engine: Engine) -> None:
    """Let the 'begin' listener own BEGIN (the documented pysqlite recipe)."""

    @sa.event.listens_for(engine, "connect")
    def _isolation(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.isolation_level = None


class HeldConnection:
    """A write connection one background thread keeps from transaction to transaction.

    A pool checkout per transaction costs a liveness round trip on PostgreSQL; a worker thread that
    writes in a loop (the delivery dispatcher, the receivers' event writer) keeps one connection
    instead. After any error the connection is dropped and the next transaction opens a fresh one.
    Not thread-safe: one owner thread.
    """

    def __init__(self, db: Database, name: str) -> None:
        self.db = db
        self.name = name
        self._conn: Connection | None = None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        if self._conn is None:
            self._conn = self.db.engine.connect().execution_options(**{WRITE_OPTION: True})
        conn = self._conn
        try:
            with conn.begin():
                yield conn
        except BaseException as exc:
            _release_writer(conn)  # while the connection is open: its info holds the turn
            if isinstance(exc, Exception):
                self.close()
            raise
        _release_writer(conn)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                log.debug("closing the %s's connection failed", self.name, exc_info=True)
