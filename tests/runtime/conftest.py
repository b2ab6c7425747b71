"""Fixtures the runtime tests share: the ingest store on the test database, and the integration
runners a test starts (stopped at its end)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kiosk.catalog.service import Catalog
from kiosk.ingest.store import IngestStore
from kiosk.runtime.integrations import IntegrationRunner
from kiosk.store import Database


@pytest.fixture
def store(db: Database) -> IngestStore:
    return IngestStore(db, Catalog(db))


@pytest.fixture
def runners() -> Iterator[list[IntegrationRunner]]:
    """The runners a test appends here are stopped when it ends, pass or fail."""
    made: list[IntegrationRunner] = []
    yield made
    for runner in made:
        runner.stop(timeout=10)
