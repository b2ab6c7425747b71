"""Fixtures the ingest tests share: a catalog holding the test module's ``BLUEPRINTS``, and the
integration store over it (a module defining its own ``catalog`` or ``store`` fixture overrides them)."""

from __future__ import annotations

import pytest
from tests.support.integrations import create_blueprints

from kiosk.catalog.service import Catalog
from kiosk.ingest.store import IngestStore
from kiosk.store.engine import Database


@pytest.fixture
def catalog(db: Database, request: pytest.FixtureRequest) -> Catalog:
    """A catalog with the blueprints the test module names ``BLUEPRINTS`` (none when it names none)."""
    catalog = Catalog(db)
    create_blueprints(catalog, getattr(request.module, "BLUEPRINTS", []), actor="test")
    return catalog


@pytest.fixture
def store(db: Database, catalog: Catalog) -> IngestStore:
    return IngestStore(db, catalog)
