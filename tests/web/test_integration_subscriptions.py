"""A kiosk server with ``publicUrl`` keeps its integration's service-hook subscriptions in the emulator:
made at start, changed when the mapping is replaced through the API and when it is reset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.emulator.conftest import CONFIG, EmulatorFactory, LiveEmulator, start_emulator
from tests.support.azure_sdk import with_generated_org
from tests.support.integrations import integrations_yaml, mapping_resource
from tests.support.live_kiosk import LiveServer, start_configured_server
from tests.support.polling import wait_for

from kiosk.ingest.hooks.catalogue import KIND_EVENTS

__all__ = ["start_emulator"]

PUBLIC_URL = "http://127.0.0.1:9/kiosk"
CONSUMER = f"{PUBLIC_URL}/hooks/integrations/ado"


@pytest.fixture
def azure(start_emulator: EmulatorFactory) -> LiveEmulator:
    return start_emulator(config=with_generated_org(CONFIG, projects=1, repos=1, workitems=1, users=2), execute=False)


@pytest.fixture
def live(azure: LiveEmulator, tmp_path: Path) -> Iterator[LiveServer]:
    integration = integrations_yaml(f"{azure.base_url}/fabrikam", webhook_secret_variable="TEST_WEBHOOK_SECRET")
    config = f"azureDevOps:\n  publicUrl: {PUBLIC_URL}\n" + integration
    yield from start_configured_server(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", config)


def event_types(azure: LiveEmulator) -> list[str]:
    """The event types subscribed for the integration, once per project (two projects): sorted, twins kept."""
    answer = azure.client.get("/fabrikam/_apis/hooks/subscriptions", params={"api-version": "7.1"}).json()
    return sorted(s["eventType"] for s in answer["value"] if s["consumerInputs"]["url"] == CONSUMER)


def twice(kind: str) -> list[str]:
    return sorted(KIND_EVENTS[kind] * 2)


def test_made_at_start_and_following_the_mapping(live: LiveServer, azure: LiveEmulator) -> None:
    # kiosk.yaml's mapping: projects (no live events) and repositories.
    wait_for(lambda: event_types(azure) == twice("repository"), timeout=30)
    work_items: dict[str, Any] = {"resources": [mapping_resource("work-item", "azureDevopsWorkItem")]}
    assert live.admin.patch("/v1/integration/ado", json={"config": work_items}).status_code == 200
    wait_for(lambda: event_types(azure) == twice("work-item"), timeout=30)
    assert live.admin.delete("/v1/integration/ado/config").status_code == 200
    wait_for(lambda: event_types(azure) == twice("repository"), timeout=30)
