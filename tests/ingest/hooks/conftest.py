"""An emulated organisation with service hooks, integrations that subscribe in it, and readers of
what the emulator holds (the subscriptions, as Azure lists them)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from tests.emulator.conftest import CONFIG, EmulatorFactory, LiveEmulator, start_emulator
from tests.support.azure_sdk import with_generated_org
from tests.support.integrations import mapping_resource

from kiosk.config.secrets import Secret
from kiosk.ingest.config import Integration, IntegrationSpec
from kiosk.ingest.hooks.catalogue import KIND_EVENTS
from kiosk.ingest.mapping import parse_port_app_config
from kiosk.store import Database, create_database, upgrade_to_head

__all__ = ["start_emulator"]

#: Kinds of each publisher: work items (tfs, 5 events), pipeline runs (pipelines, 1), deployments (rm, 2).
KINDS = ("work-item", "pipeline-run", "release-deployment")
EVENTS_PER_SCOPE = sum(len(KIND_EVENTS[kind]) for kind in KINDS)
APP_HOST = "http://127.0.0.1:9/kiosk"
SECRET = "s3cret-one"
PAT = "fabrikam-test-pat"


@pytest.fixture
def azure(start_emulator: EmulatorFactory) -> LiveEmulator:
    """fabrikam with three projects (``web`` and two generated), runs not executed."""
    return start_emulator(config=with_generated_org(CONFIG, projects=2, repos=1, workitems=1, users=2), execute=False)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    database = create_database(f"sqlite:///{tmp_path / 'hooks.db'}")
    upgrade_to_head(database)
    try:
        yield database
    finally:
        database.dispose()


def hooked_integration(
    organization_url: str,
    *,
    identifier: str = "ado",
    kinds: Sequence[str] = KINDS,
    secret: str | None = SECRET,
    app_host: str | None = APP_HOST,
    projects_limited: bool = True,
    excluded_tags: Sequence[str] = (),
    listener: str = "WEBHOOKS_ONLY",
) -> Integration:
    """An integration of ``kinds`` reading ``organization_url``, posting events to ``app_host``."""
    config: dict[str, Any] = {
        "organizationUrl": organization_url,
        "personalAccessToken": {"env": "UNUSED"},
        "isProjectsLimited": projects_limited,
        "excludedTags": list(excluded_tags),
    }
    if app_host is not None:
        config["appHost"] = app_host
    spec = IntegrationSpec.model_validate(
        {"identifier": identifier, "type": "azure-devops", "config": config, "eventListener": {"type": listener}}
    )
    mapping = parse_port_app_config({"resources": [mapping_resource(kind, "thing") for kind in kinds]})
    return Integration(
        spec=spec,
        mapping=mapping,
        mapping_source="test",
        personal_access_token=Secret(PAT),
        webhook_secret=None if secret is None else Secret(secret),
    )


def listed(emulator: LiveEmulator, org: str = "fabrikam") -> list[dict[str, Any]]:
    """Every subscription of ``org``, as the list route answers it."""
    answer = emulator.client.get(f"/{org}/_apis/hooks/subscriptions", params={"api-version": "7.1"})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["value"])


def keys(subscriptions: Sequence[Mapping[str, Any]], url: str) -> list[tuple[str, str, str]]:
    """(projectId or '', publisher, event type) of the subscriptions posting to ``url``, sorted, twins kept."""
    return sorted(
        (s["publisherInputs"].get("projectId", ""), s["publisherId"], s["eventType"])
        for s in subscriptions
        if s["consumerInputs"].get("url") == url
    )


def project_ids(emulator: LiveEmulator) -> list[str]:
    answer = emulator.client.get("/fabrikam/_apis/projects", params={"api-version": "7.1"})
    return sorted(p["id"] for p in answer.json()["value"])


def subscribe(emulator: LiveEmulator, body: Mapping[str, Any]) -> dict[str, Any]:
    """Create a subscription as someone else would (the emulator's API)."""
    answer = emulator.client.post("/fabrikam/_apis/hooks/subscriptions", params={"api-version": "7.1"}, json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())
