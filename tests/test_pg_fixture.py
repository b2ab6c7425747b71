"""The test databases are real: a real PostgreSQL server, isolated databases, kiosk's schema."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from tests.pg import PostgresNotInstalled, PostgresServer, find_bin_dir

from kiosk.store import Database, create_database

KIOSK_TABLES = {"alembic_version", "blueprints", "entities", "entity_relations", "clients", "server_state"}


@pytest.mark.postgres
def test_server_is_a_real_postgresql(pg_server: PostgresServer) -> None:
    url = pg_server.create_database(f"t_{uuid.uuid4().hex}")
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT version()").fetchone()
    assert row is not None
    assert "PostgreSQL" in row[0]
    assert url.startswith(f"postgresql://postgres@127.0.0.1:{pg_server.port}/t_")


@pytest.mark.postgres
def test_databases_are_isolated(pg_server: PostgresServer) -> None:
    first = pg_server.create_database(f"t_{uuid.uuid4().hex}")
    second = pg_server.create_database(f"t_{uuid.uuid4().hex}")
    with psycopg.connect(first) as conn:
        conn.execute("CREATE TABLE only_here (x int)")
        conn.execute("INSERT INTO only_here VALUES (1)")
    with psycopg.connect(second) as conn:
        row = conn.execute("SELECT to_regclass('only_here')").fetchone()
    assert row == (None,)
    with psycopg.connect(first) as conn:
        assert conn.execute("SELECT count(*) FROM only_here").fetchone() == (1,)


def test_database_url_is_fresh_and_empty(database_url: str) -> None:
    database = create_database(database_url)
    try:
        assert sa.inspect(database.engine).get_table_names() == []
    finally:
        database.dispose()


def test_upgrade_to_head_creates_the_schema(db: Database, database_url: str) -> None:
    expected_dialect = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    assert db.dialect == expected_dialect
    tables = set(sa.inspect(db.engine).get_table_names())
    assert tables >= KIOSK_TABLES
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM entities")).scalar_one() == 0
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    assert version


@pytest.mark.postgres
def test_stop_shuts_the_server_down_and_removes_its_files() -> None:
    server = PostgresServer().start()
    base_dir, port = server.base_dir, server.port
    assert base_dir is not None
    assert (base_dir / "data" / "PG_VERSION").exists()
    server.stop()
    assert not base_dir.exists()
    assert not server.running
    ready = subprocess.run(
        [str(server.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-t", "1"],
        capture_output=True,
        check=False,
    )
    assert ready.returncode != 0
    server.stop()  # a second stop is a no-op


def test_missing_binaries_say_how_to_install_them(tmp_path: Path) -> None:
    with pytest.raises(PostgresNotInstalled, match="make test"):
        find_bin_dir(tmp_path)


def test_the_highest_installed_version_wins(tmp_path: Path) -> None:
    for version in ("9.6", "15", "13"):
        bin_dir = tmp_path / version / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "postgres").touch()
    assert find_bin_dir(tmp_path) == tmp_path / "15" / "bin"
