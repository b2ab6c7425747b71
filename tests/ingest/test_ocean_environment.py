"""Ocean's OCEAN__ environment variables, read as Ocean reads them, into an ``integrations:`` item."""

from __future__ import annotations

from typing import Any

import pytest

from kiosk.ingest.config import (
    DEFAULT_IDENTIFIER,
    IntegrationSpec,
    OceanEnvironmentError,
    deep_merge,
    ocean_environment,
)

HELM_ENV = {
    "OCEAN__INTEGRATION__IDENTIFIER": "ado",
    "OCEAN__INTEGRATION__TYPE": "Azure-DevOps",
    "OCEAN__INTEGRATION__CONFIG__ORGANIZATION_URL": "https://dev.azure.com/contoso/",
    "OCEAN__INTEGRATION__CONFIG__PERSONAL_ACCESS_TOKEN": "pat-value-never-copied",
    "OCEAN__INTEGRATION__CONFIG__IS_PROJECTS_LIMITED": "false",
    "OCEAN__INTEGRATION__CONFIG__EXCLUDED_TAGS": '["archived", "legacy"]',
    "OCEAN__INTEGRATION__CONFIG__WEBHOOK_SECRET": "hook-secret-never-copied",
    "OCEAN__EVENT_LISTENER__TYPE": "ONCE",
    "OCEAN__SCHEDULED_RESYNC_INTERVAL": "90",
    "OCEAN__INITIALIZE_PORT_RESOURCES": "False",
    "OCEAN__SEND_RAW_DATA_EXAMPLES": "no",
    # Ocean's connection to Port: kiosk is the catalog, so these mean nothing here.
    "OCEAN__PORT__CLIENT_ID": "x",
    "OCEAN__PORT__BASE_URL": "https://api.getport.io",
    "PATH": "/usr/bin",
}


def test_helm_style_variables_become_an_integration_item() -> None:
    environment = ocean_environment(HELM_ENV)
    assert environment is not None
    assert environment.identifier == "ado"
    assert environment.item == {
        "identifier": "ado",
        "type": "azure-devops",
        "config": {
            "organizationUrl": "https://dev.azure.com/contoso/",
            "personalAccessToken": {"env": "OCEAN__INTEGRATION__CONFIG__PERSONAL_ACCESS_TOKEN"},
            "isProjectsLimited": "false",
            "excludedTags": ["archived", "legacy"],
            "webhookSecret": {"env": "OCEAN__INTEGRATION__CONFIG__WEBHOOK_SECRET"},
        },
        "eventListener": {"type": "ONCE"},
        "scheduledResyncInterval": "90",
        "initializePortResources": "False",
        "sendRawDataExamples": "no",
    }
    spec = IntegrationSpec.model_validate(environment.item)
    assert spec.config.organization_urls() == ["https://dev.azure.com/contoso"]
    assert spec.config.isProjectsLimited is False
    assert spec.scheduledResyncInterval == 90
    assert spec.initializePortResources is False
    assert spec.sendRawDataExamples is False
    assert spec.eventListener.type == "ONCE"
    assert "never-copied" not in repr(spec) + str(environment)


def test_no_ocean_variable_means_no_integration() -> None:
    assert ocean_environment({"PATH": "/usr/bin", "OCEAN__PORT__CLIENT_SECRET": "s"}) is None


def test_names_are_matched_without_case_and_the_identifier_defaults_to_oceans() -> None:
    environment = ocean_environment({"ocean__integration__config__organization_url": "https://dev.azure.com/c"})
    assert environment is not None
    assert environment.identifier == DEFAULT_IDENTIFIER
    assert environment.item["config"] == {"organizationUrl": "https://dev.azure.com/c"}
    assert environment.sources == {("config", "organizationUrl"): "ocean__integration__config__organization_url"}


def test_organization_urls_take_json_or_a_comma_list_as_ocean_does() -> None:
    as_json = ocean_environment(
        {"OCEAN__INTEGRATION__CONFIG__ORGANIZATION_URLS": '["https://a.example/x", "https://b.example/y/"]'}
    )
    as_text = ocean_environment(
        {"OCEAN__INTEGRATION__CONFIG__ORGANIZATION_URLS": "https://a.example/x, https://b.example/y/"}
    )
    assert as_json is not None and as_text is not None
    for environment in (as_json, as_text):
        item = {**environment.item, "config": {**environment.item["config"], "personalAccessToken": {"env": "P"}}}
        spec = IntegrationSpec.model_validate(item)
        assert spec.config.organization_urls() == ["https://a.example/x", "https://b.example/y"]


def test_ocean_base_url_is_the_app_host_and_wins_as_in_ocean() -> None:
    environment = ocean_environment(
        {
            "OCEAN__BASE_URL": "https://kiosk.example.com",
            "OCEAN__INTEGRATION__CONFIG__APP_HOST": "https://old.example.com",
        }
    )
    assert environment is not None
    assert environment.item["config"]["appHost"] == "https://kiosk.example.com"


def test_an_unknown_integration_setting_is_refused_naming_the_variable() -> None:
    with pytest.raises(OceanEnvironmentError) as info:
        ocean_environment({"OCEAN__INTEGRATION__CONFIG__ORGANISATION_URL": "https://dev.azure.com/c"})
    message = str(info.value)
    assert message.startswith("environment variable OCEAN__INTEGRATION__CONFIG__ORGANISATION_URL: unknown")
    assert "OCEAN__INTEGRATION__CONFIG__ORGANIZATION_URL," in message


def test_source_of_names_the_variables_under_and_above_a_place() -> None:
    environment = ocean_environment(HELM_ENV)
    assert environment is not None
    assert environment.source_of(("config",)) == [
        "OCEAN__INTEGRATION__CONFIG__EXCLUDED_TAGS",
        "OCEAN__INTEGRATION__CONFIG__IS_PROJECTS_LIMITED",
        "OCEAN__INTEGRATION__CONFIG__ORGANIZATION_URL",
        "OCEAN__INTEGRATION__CONFIG__PERSONAL_ACCESS_TOKEN",
        "OCEAN__INTEGRATION__CONFIG__WEBHOOK_SECRET",
    ]
    assert environment.source_of(("scheduledResyncInterval",)) == ["OCEAN__SCHEDULED_RESYNC_INTERVAL"]
    assert environment.source_of(("config", "excludedTags", "0")) == ["OCEAN__INTEGRATION__CONFIG__EXCLUDED_TAGS"]


def test_deep_merge_sets_keys_and_replaces_references_and_organizations_whole() -> None:
    base: dict[str, Any] = {
        "identifier": "ado",
        "config": {"organizationUrls": ["https://a.example"], "personalAccessToken": {"file": "pat"}},
        "scheduledResyncInterval": 60,
    }
    over = {"config": {"organizationUrl": "https://b.example", "personalAccessToken": {"env": "PAT"}}}
    assert deep_merge(base, over) == {
        "identifier": "ado",
        "config": {"organizationUrl": "https://b.example", "personalAccessToken": {"env": "PAT"}},
        "scheduledResyncInterval": 60,
    }
    assert base["config"]["organizationUrls"] == ["https://a.example"]  # the base is not changed
