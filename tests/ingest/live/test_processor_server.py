"""The processor in a kiosk server: the emulator's own service hooks post to kiosk's endpoint, the
integration runner's processor (started with the server for a WEBHOOKS_ONLY listener) writes the
catalog, and the events API, ``/metrics`` and ``kiosk integrations events`` show what it did."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.emulator.conftest import EmulatorFactory, LiveEmulator, start_emulator
from tests.emulator.hooks.conftest import HOOKS_CONFIG, PROJECT_ID
from tests.support.integrations import integrations_yaml, mapping_resource
from tests.support.live_events import subscribe_with_basic_auth
from tests.support.live_kiosk import LiveServer, configured_settings, start_configured_server
from tests.support.polling import wait_for
from tests.support.servers import free_port, serving
from typer.testing import CliRunner

from kiosk.cli.app import app as cli
from kiosk.web.app import create_app

__all__ = ["start_emulator"]

USER = "kiosk-hooks"
SECRET = "live-processor-secret"
#: Into Ocean's default work-item blueprint (created at start: initializePortResources), under an
#: identifier that is not the item's id.
WORK_ITEMS = mapping_resource(
    "work-item",
    "azureDevopsWorkItem",
    identifier='"item-" + (.id | tostring)',
    title='.fields["System.Title"]',
    relations={"project": ".__projectId"},  # required by the blueprint; made missing (the default)
)


@pytest.fixture
def azure(start_emulator: EmulatorFactory) -> LiveEmulator:
    return start_emulator(config=HOOKS_CONFIG, execute=False)


@pytest.fixture
def kiosk(azure: LiveEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    config = kiosk_yaml(azure, monkeypatch)
    yield from start_configured_server(tmp_path, f"sqlite:///{tmp_path / 'kiosk.db'}", config)


def kiosk_yaml(azure: LiveEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """kiosk.yaml with the integration ``ado`` on the emulator's org: work items, basic auth USER/SECRET."""
    monkeypatch.setenv("LIVE_HOOKS_SECRET", SECRET)
    return integrations_yaml(
        f"{azure.base_url}/fabrikam", resources=[WORK_ITEMS], webhook_secret_variable="LIVE_HOOKS_SECRET"
    ).replace("      webhookSecret:", f"      webhookAuthUsername: {USER}\n      webhookSecret:", 1)


def work_item(kiosk: LiveServer, identifier: str) -> dict[str, Any] | None:
    answer = kiosk.admin.get(f"/v1/blueprints/azureDevopsWorkItem/entities/{identifier}")
    return dict(answer.json()["entity"]) if answer.status_code == 200 else None


def change(azure: LiveEmulator, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = azure.client.request(method, f"/_emulator/orgs/fabrikam/projects/{PROJECT_ID}/{path}", json=body)
    assert answer.status_code in (200, 201), answer.text
    return dict(answer.json()["value"])


def metric(kiosk: LiveServer, line_start: str) -> float:
    text = httpx.get(f"{kiosk.base_url}/metrics").text
    (line,) = [line for line in text.splitlines() if line.startswith(line_start)]
    return float(line.rsplit(" ", 1)[1])


def test_the_catalog_follows_the_emulators_events(
    azure: LiveEmulator, kiosk: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{kiosk.base_url}/hooks/integrations/ado"
    subscribe_with_basic_auth(azure, url, ("workitem.created", "workitem.updated", "workitem.deleted"), USER, SECRET)
    item = change(azure, "POST", "workitems", {"type": "Task", "fields": {"System.Title": "From Azure"}})
    name = f"item-{item['id']}"
    created = wait_for(lambda: work_item(kiosk, name))
    assert created["title"] == "From Azure"

    change(azure, "PATCH", f"workitems/{item['id']}", {"fields": {"System.Title": "Edited in Azure"}})
    wait_for(lambda: (work_item(kiosk, name) or {}).get("title") == "Edited in Azure")
    change(azure, "DELETE", f"workitems/{item['id']}")
    wait_for(lambda: work_item(kiosk, name) is None)

    page = wait_for(
        lambda: (
            (p := kiosk.admin.get("/v1/integration/ado/events").json())["processedByThisProcess"]["processed"] == 3
            and p
        )
    )
    assert page["processing"] is True and page["lagSeconds"] == 0
    assert [e["state"] for e in page["events"]] == ["processed"] * 3
    assert page["processedByThisProcess"]["failed"] == 0 and page["processedByThisProcess"]["lastErrors"] == []
    assert metric(kiosk, 'kiosk_integration_events_handled_total{integration="ado",outcome="processed"}') == 3
    assert metric(kiosk, 'kiosk_integration_events_lag_seconds{integration="ado"}') == 0

    monkeypatch.setenv("KIOSK_URL", kiosk.base_url)
    monkeypatch.setenv("KIOSK_HOME", str(kiosk.settings.home))
    monkeypatch.delenv("KIOSK_CLIENT_ID", raising=False)
    done = CliRunner().invoke(cli, ["integrations", "events", "ado"])
    assert done.exit_code == 0, done.output
    lines = done.output.strip().splitlines()
    assert lines[1] == ("processing: lag 0.0 s; since the server started: 3 processed, 0 skipped, 0 failed, 0 retried")
    assert sum("  processed  workitem." in line for line in lines) == 3


def test_an_event_azure_could_not_deliver_while_kiosk_was_down_arrives_when_it_is_back(
    start_emulator: EmulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Azure's retry schedule at a hundredth: transient retries over ~2.5 s, then one every 12 s.
    azure = start_emulator(config=HOOKS_CONFIG.replace("retryScale: 0.00001", "retryScale: 0.01"), execute=False)
    port = free_port()
    url = f"http://127.0.0.1:{port}/hooks/integrations/ado"
    (subscription,) = subscribe_with_basic_auth(azure, url, ["workitem.created"], USER, SECRET)
    item = change(azure, "POST", "workitems", {"type": "Task", "fields": {"System.Title": "While kiosk was down"}})
    # Nothing listens: Azure's first attempts fail (connection refused) and it keeps retrying.
    wait_for(lambda: _failed_attempts(azure, subscription["id"]) >= 2)

    config = kiosk_yaml(azure, monkeypatch)
    settings = configured_settings(tmp_path, f"sqlite:///{tmp_path / 'kiosk.db'}", config)
    with serving(create_app(settings), port):
        creds = json.loads(Path(settings.credentials_path).read_text())
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as admin:
            token = admin.post("/v1/auth/access_token", json=creds).json()["accessToken"]
            admin.headers["Authorization"] = f"Bearer {token}"

            def stored() -> dict[str, Any] | None:
                answer = admin.get(f"/v1/blueprints/azureDevopsWorkItem/entities/item-{item['id']}")
                return dict(answer.json()["entity"]) if answer.status_code == 200 else None

            entity = wait_for(stored, timeout=60)
    assert entity["title"] == "While kiosk was down"
    answer = azure.client.get(f"/fabrikam/_apis/hooks/subscriptions/{subscription['id']}?api-version=7.1")
    assert answer.json()["status"] == "enabled"  # the success ended any probation


def _failed_attempts(azure: LiveEmulator, subscription_id: str) -> int:
    answer = azure.client.get(
        "/_emulator/hooks/deliveries", params={"subscription": subscription_id, "status": "failed"}
    )
    assert answer.status_code == 200, answer.text
    return len(answer.json()["value"])
