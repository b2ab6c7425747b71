"""Fixtures for the API tests: a live kiosk server per test, on each engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.live_kiosk import LiveServer, start_server

from kiosk.settings import Settings


@pytest.fixture
def live(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """A kiosk server on a fresh database of each engine, with an admin client ready."""
    settings = Settings.from_env({"KIOSK_HOME": str(tmp_path / "home"), "KIOSK_DATABASE_URL": database_url})
    yield from start_server(settings)
