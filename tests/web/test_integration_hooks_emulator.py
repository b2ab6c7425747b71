"""The wire shape, proved by the emulator's own service-hook delivery: subscriptions pointing at
kiosk's integration endpoint, changes made through ``/_emulator`` routes, and the events arriving
as jobs (once, whatever the number of subscriptions delivering them), wrong credentials refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.emulator.conftest import EmulatorFactory, LiveEmulator, start_emulator
from tests.emulator.hooks.conftest import HOOKS_CONFIG, PROJECT_ID, subscribe
from tests.support.live_events import subscribe_with_basic_auth
from tests.support.live_kiosk import LiveServer, start_configured_server
from tests.support.polling import wait_for

from kiosk.emulator.hooks.subscriptions import collection_id
from kiosk.ingest.events import event_job_kind
from kiosk.store.tables import jobs

__all__ = ["start_emulator"]

USER = "kiosk-hooks"
SECRET = "emulator-hook-secret"


@pytest.fixture
def azure(start_emulator: EmulatorFactory) -> LiveEmulator:
    return start_emulator(config=HOOKS_CONFIG, execute=False)


@pytest.fixture
def kiosk(azure: LiveEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("HOOKS_E2E_SECRET", SECRET)
    config = (
        "integrations:\n"
        "  - identifier: ado\n"
        "    type: azure-devops\n"
        "    config:\n"
        f"      organizationUrl: {azure.base_url}/fabrikam\n"
        "      personalAccessToken: {env: TEST_EMULATOR_PAT}\n"
        "      webhookSecret: {env: HOOKS_E2E_SECRET}\n"
        f"      webhookAuthUsername: {USER}\n"
        "    eventListener: {type: WEBHOOKS_ONLY}\n"
    )
    for server in start_configured_server(tmp_path, f"sqlite:///{tmp_path / 'kiosk.db'}", config):
        # The intake alone: stored events stay as stored (processing is tests/ingest/live's).
        for processor in server.app.state.integrations.event_processors.values():
            processor.stop()
        yield server


def stored_events(kiosk: LiveServer) -> list[dict[str, Any]]:
    with kiosk.app.state.db.connect() as conn:
        rows = conn.execute(
            sa.select(jobs.c.payload).where(jobs.c.kind == event_job_kind("ado")).order_by(jobs.c.id)
        ).all()
    return [dict(row.payload) for row in rows]


def deliveries(azure: LiveEmulator, subscription_id: str) -> list[dict[str, Any]]:
    answer = azure.client.get("/_emulator/hooks/deliveries", params={"subscription": subscription_id})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["value"])


def test_the_emulators_deliveries_arrive_as_jobs(azure: LiveEmulator, kiosk: LiveServer) -> None:
    url = f"{kiosk.base_url}/hooks/integrations/ado"
    # A project-scoped subscription (whole resources) and an org-scoped one (minimal resources):
    # both deliver the same events, with the same ids.
    (scoped,) = subscribe_with_basic_auth(azure, url, ["workitem.created"], USER, SECRET)
    org_wide = subscribe(azure, url, "workitem.created", basicAuthUsername=USER, basicAuthPassword=SECRET)
    wrong = subscribe(azure, url, "workitem.created", basicAuthUsername=USER, basicAuthPassword="not-it")
    created = azure.client.post(
        f"/_emulator/orgs/fabrikam/projects/{PROJECT_ID}/workitems",
        json={"type": "Task", "fields": {"System.Title": "Live event"}},
    )
    assert created.status_code == 201, created.text
    item = created.json()["value"]
    (sent,) = created.json()["events"]

    wait_for(lambda: len(deliveries(azure, scoped["id"])) >= 1 and len(deliveries(azure, org_wide["id"])) >= 1)
    wait_for(lambda: len(deliveries(azure, wrong["id"])) >= 1)
    (event,) = stored_events(kiosk)
    assert event["eventId"] == sent["id"] and event["eventType"] == "workitem.created" == sent["eventType"]
    assert event["objectKey"] == f"work-item:{item['id']}@{collection_id('fabrikam')}"
    body = event["event"]
    assert body["id"] == sent["id"] and body["publisherId"] == "tfs"
    assert body["resource"]["id"] == item["id"]
    assert body["subscriptionId"] in (scoped["id"], org_wide["id"])
    # Both subscriptions got a 200: one stored the event, the other was recognised as its duplicate.
    statuses = sorted(d["response"]["status"] for s in (scoped, org_wide) for d in deliveries(azure, s["id"]))
    assert statuses == [200, 200]
    answers = sorted(d["response"]["body"] for s in (scoped, org_wide) for d in deliveries(azure, s["id"]))
    assert any('"duplicate":true' in a for a in answers) and any('"duplicate":false' in a for a in answers)
    # The subscription with the wrong password was refused, as Azure would learn.
    assert {d["response"]["status"] for d in deliveries(azure, wrong["id"])} == {401}

    page = kiosk.admin.get("/v1/integration/ado/events").json()
    assert [(e["eventId"], e["state"]) for e in page["events"]] == [(sent["id"], "pending")]
    assert page["receivedByThisProcess"]["duplicates"] == 1
    assert page["receivedByThisProcess"]["refused"]["auth"] >= 1


def test_a_push_and_a_repository_event_are_keyed_by_the_repository(azure: LiveEmulator, kiosk: LiveServer) -> None:
    url = f"{kiosk.base_url}/hooks/integrations/ado"
    subscribe_with_basic_auth(azure, url, ("git.repo.created", "git.push"), USER, SECRET)
    prefix = f"/_emulator/orgs/fabrikam/projects/{PROJECT_ID}"
    repo = azure.client.post(f"{prefix}/repositories", json={"name": "live-events"})
    assert repo.status_code == 201, repo.text
    repository_id = repo.json()["value"]["id"]
    push = azure.client.post(
        f"{prefix}/repositories/{repository_id}/pushes",
        json={"branch": "main", "changes": [{"path": "README.md", "content": "hello"}]},
    )
    assert push.status_code == 201, push.text
    wanted = {e["id"] for e in repo.json()["events"] + push.json()["events"]}
    wait_for(lambda: {e["eventId"] for e in stored_events(kiosk)} >= wanted)
    keys = {e["eventType"]: e["objectKey"] for e in stored_events(kiosk) if e["eventId"] in wanted}
    expected = f"repository:{repository_id}@{collection_id('fabrikam')}"
    assert keys == {"git.repo.created": expected, "git.push": expected}
