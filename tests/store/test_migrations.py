"""Migrations build exactly the schema ``tables.py`` declares, on both engines."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from kiosk.store import Database, create_database, upgrade_to_head
from kiosk.store.tables import metadata


def test_migrations_match_the_table_definitions(db: Database) -> None:
    upgrade_to_head(db)  # a second run is a no-op
    with db.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    db = create_database(f"sqlite:///{tmp_path / 'k.db'}")
    upgrade_to_head(db)
    with db.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    db.dispose()
