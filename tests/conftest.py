"""Fixtures shared by the whole test suite.

- ``pg_server`` (session): one throwaway PostgreSQL server (``tests/pg.py``), started the first
  time a test asks for it and stopped at the end of the session.
- ``database_url``: parametrised over ``sqlite`` and ``postgres``, so every test that takes it runs
  on both engines, each time on a fresh, empty database (a file under ``tmp_path``, or a new
  database on the session server). The ``postgres`` cases carry the ``postgres`` marker:
  ``pytest -m "not postgres"`` runs the SQLite half alone.
- ``pg_url``: that new database on the session server alone, for the tests that need PostgreSQL
  itself (two kiosk processes on one database).
- ``db``: a ``kiosk.store.Database`` on that URL, migrated to head, disposed afterwards.

Missing PostgreSQL binaries FAIL the postgres cases (they are never skipped): a silently skipped
engine would hide a missing install step. ``make test`` installs them.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.pg import PostgresNotInstalled, PostgresServer

from kiosk.store import Database, create_database, upgrade_to_head

# Microsoft's azure-devops client caches route discovery under ~/.azure-devops, keyed by URL, and
# reads the directory once, on its first import: whichever test module imports it first, the cache
# is this session's own (an emulator of another run on a reused port would answer from it).
os.environ["AZURE_DEVOPS_CACHE_DIR"] = tempfile.mkdtemp(prefix="kiosk-azure-devops-cache-")

ENGINES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> Iterator[None]:
    """Undo what a command run in-process did to logging (``kiosk emulator`` installs kiosk's
    handler at INFO on the root logger): a later test reading a command's stderr must not see
    another test's log lines."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
    except PostgresNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to a fresh, empty database on each engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kiosk.db'}"
        return
    # Looked up lazily, so a run of SQLite cases alone never starts PostgreSQL.
    yield request.getfixturevalue("pg_url")


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh database on the session's PostgreSQL server, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex}"
    yield pg_server.create_database(name)
    pg_server.drop_database(name)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A ``Database`` on a fresh database with kiosk's schema at the newest migration."""
    database = create_database(database_url)
    try:
        upgrade_to_head(database)
        yield database
    finally:
        database.dispose()
