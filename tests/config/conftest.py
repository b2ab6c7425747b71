"""The config tests' catalog: kiosk.yaml is applied to a migrated SQLite database of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk.catalog.service import Catalog
from kiosk.store import create_database, upgrade_to_head


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    db = create_database(f"sqlite:///{tmp_path / 'kiosk.db'}")
    upgrade_to_head(db)
    try:
        yield Catalog(db)
    finally:
        db.dispose()
