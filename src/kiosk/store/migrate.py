"""Run Alembic migrations programmatically, at server start and in ``kiosk apply``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from kiosk.store.engine import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = db.engine
    return cfg


def upgrade_to_head(db: Database) -> None:
    """Bring the schema to the newest revision; a no-op when it is there already."""
    command.upgrade(alembic_config(db), "head")
