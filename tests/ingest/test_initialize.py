"""initializePortResources: Ocean's default blueprints are created once, and never over the user's own."""

from __future__ import annotations

from tests.support.integrations import OCEAN_BLUEPRINT_IDENTIFIERS

from kiosk.catalog.service import Catalog
from kiosk.ingest.defaults import default_blueprints
from kiosk.ingest.initialize import initialize_defaults
from kiosk.store.engine import Database


def test_the_default_blueprints_are_created_in_full_on_an_empty_catalog(db: Database) -> None:
    catalog = Catalog(db)
    outcome = initialize_defaults(catalog, actor="integration:ado")
    assert sorted(outcome.created) == sorted(OCEAN_BLUEPRINT_IDENTIFIERS)
    assert outcome.existing == ()
    stored = {blueprint["identifier"]: blueprint for blueprint in catalog.list_blueprints()}
    assert set(OCEAN_BLUEPRINT_IDENTIFIERS) <= set(stored)
    for blueprint in default_blueprints():
        mine = stored[blueprint["identifier"]]
        assert mine["schema"]["properties"].keys() == blueprint["schema"]["properties"].keys()
        assert mine["relations"].keys() == blueprint["relations"].keys()
        assert mine["mirrorProperties"].keys() == blueprint["mirrorProperties"].keys()
    assert stored["azureDevopsWorkItem"]["relations"]["column"]["target"] == "azureDevopsColumn"
    assert stored["azureDevopsRepository"]["mirrorProperties"]["defaultTeam"]["path"] == "project.defaultTeam"


def test_nothing_is_created_when_one_default_blueprint_exists(db: Database) -> None:
    catalog = Catalog(db)
    catalog.create_blueprint(
        {
            "identifier": "azureDevopsRepository",
            "title": "Mine",
            "schema": {"properties": {"owner": {"type": "string"}}},
        },
        actor="someone",
    )
    outcome = initialize_defaults(catalog, actor="integration:ado")
    assert outcome.created == ()
    assert outcome.existing == ("azureDevopsRepository",)
    stored = {blueprint["identifier"]: blueprint for blueprint in catalog.list_blueprints()}
    assert set(stored) == {"azureDevopsRepository"}
    assert stored["azureDevopsRepository"]["title"] == "Mine"


def test_a_second_start_creates_nothing_more(db: Database) -> None:
    catalog = Catalog(db)
    initialize_defaults(catalog, actor="integration:ado")
    again = initialize_defaults(catalog, actor="integration:ado")
    assert again.created == ()
    assert sorted(again.existing) == sorted(OCEAN_BLUEPRINT_IDENTIFIERS)
