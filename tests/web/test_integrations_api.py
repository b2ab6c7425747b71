"""The integrations' API over real HTTP: a kiosk server whose kiosk.yaml has an integration reading
the emulator's generated organisation (Ocean's default mapping and blueprints), on each engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.emulator.conftest import CONFIG, PAT, EmulatorFactory, LiveEmulator, start_emulator
from tests.support.azure_sdk import with_generated_org
from tests.support.integrations import integrations_yaml, mapping_resource
from tests.support.live_kiosk import LiveServer, api_error, start_configured_server
from tests.support.polling import wait_for
from tests.web.test_openapi_fuzz import run_schemathesis

__all__ = ["start_emulator"]

PROJECTS_ONLY: dict[str, Any] = {
    "resources": [
        mapping_resource(
            "project",
            "azureDevopsProject",
            properties={"revision": ".revision | tonumber", "state": ".name | tonumber"},
        )
    ]
}


@pytest.fixture
def azure(start_emulator: EmulatorFactory) -> LiveEmulator:
    return start_emulator(config=with_generated_org(CONFIG, projects=2, repos=3, workitems=4, users=3), execute=False)


@pytest.fixture
def live(azure: LiveEmulator, tmp_path: Path, database_url: str) -> Iterator[LiveServer]:
    yield from start_configured_server(
        tmp_path,
        database_url,
        integrations_yaml(f"{azure.base_url}/fabrikam", webhook_secret_variable="TEST_WEBHOOK_SECRET"),
    )


def detail(live: LiveServer) -> dict[str, Any]:
    r = live.admin.get("/v1/integration/ado")
    assert r.status_code == 200, r.text
    return dict(r.json()["integration"])


def test_read_resync_examples_and_metrics(live: LiveServer, azure: LiveEmulator) -> None:
    listed = live.admin.get("/v1/integration").json()["integrations"]
    assert [(i["identifier"], i["installationAppType"]) for i in listed] == [("ado", "azure-devops")]
    assert listed[0]["resyncState"]["status"] is None and listed[0]["kiosk"]["running"] is False

    before = detail(live)
    assert [r["kind"] for r in before["config"]["resources"]] == ["project", "repository"]
    assert before["config"]["resources"][1]["port"]["entity"]["mappings"]["relations"] == {"project": ".project.id"}
    assert before["kiosk"]["settings"]["organizationUrls"] == [f"{azure.base_url}/fabrikam"]
    assert before["kiosk"]["settings"]["webhookSecretSet"] is True
    assert before["kiosk"]["mappingSource"].endswith("kiosk.yaml:10") and before["kiosk"]["state"] is None
    text = live.admin.get("/v1/integration/ado").text
    assert PAT not in text and '"secret"' not in text  # neither the PAT nor the webhook secret

    member = live.member()
    assert member.get("/v1/integration/ado").status_code == 200  # reading: any client
    api_error(member.post("/v1/integration/ado/resync"), 403, "admin")
    api_error(live.admin.get("/v1/integration/nope"), 404, "not configured")

    r = live.admin.post("/v1/integration/ado/resync")
    assert r.status_code == 202 and r.json()["resync"] == "queued", r.text
    done = wait_for(lambda: (d := detail(live))["resyncState"]["status"] in ("completed", "failed") and d, timeout=60)
    assert done["resyncState"]["status"] == "completed", json.dumps(done["kiosk"]["state"])[:3000]
    port = done["resyncState"]
    assert port["lastResyncStart"] < port["lastResyncEnd"] and port["nextResync"] is None
    assert set(port) == {"status", "lastResyncStart", "lastResyncEnd", "nextResync", "intervalInMinuets", "updatedAt"}
    state = done["kiosk"]["state"]
    assert state["trigger"] == "manual" and state["organizations"][0]["status"] == "completed"

    org = azure.organisation()
    projects = live.admin.get("/v1/blueprints/azureDevopsProject/entities").json()["entities"]
    assert {p["identifier"]: p["title"] for p in projects} == {p.id: p.name for p in org.projects.values()}
    repos = live.admin.get("/v1/blueprints/azureDevopsRepository/entities").json()["entities"]
    assert {r["identifier"]: r["relations"]["project"] for r in repos} == {
        r.id: r.project_id for r in org.repositories.values()
    }

    examples = live.admin.get("/v1/integration/ado/kinds/project/examples").json()["examples"]
    assert examples and {e["id"] for e in examples} <= set(org.projects)
    api_error(live.admin.get("/v1/integration/ado/kinds/nope/examples"), 404, "unknown kind")

    tried = member.post("/v1/integration/ado/test-mapping", json={"kind": "project"}).json()["resources"]
    assert [t["kind"] for t in tried] == ["project"]
    mapped = {e["identifier"] for result in tried[0]["results"] for e in result["entities"]}
    assert mapped == {e["id"] for e in examples}

    custom = member.post("/v1/integration/ado/test-mapping", json={"mapping": PROJECTS_ONLY}).json()["resources"]
    [result, *_] = custom[0]["results"]
    # Project names are not numbers: jq's error for that field, the entity not produced.
    assert result["entities"] == []
    assert [f["field"] for f in result["failures"]] == ["properties.state"]
    assert "cannot be parsed as a number" in result["failures"][0]["message"]

    metrics = live.admin.get("/metrics").text
    assert 'kiosk_integration_resyncs_total{integration="ado",status="completed"} 1.0' in metrics
    assert 'kiosk_integration_resync_running{integration="ado"} 0.0' in metrics
    labels = 'integration="ado",kind="project",outcome="written"'
    written = f"kiosk_integration_last_resync_entities{{{labels}}} {len(org.projects)}.0"
    assert written in metrics
    assert 'kiosk_integration_last_resync_duration_seconds{integration="ado",status="completed"}' in metrics


def test_replace_and_reset_the_mapping(live: LiveServer) -> None:
    before = detail(live)
    bad = {"resources": [{"kind": "projects", "port": {"entity": {"mappings": {"identifier": ".id"}}}}]}
    body = api_error(live.admin.patch("/v1/integration/ado", json={"config": bad}), 422, "config.resources[0].kind")
    assert "unknown kind 'projects'" in body["message"] and body["details"][0]["field"] == "config.resources[0].kind"
    api_error(live.admin.patch("/v1/integration/ado", json={"config": "x"}), 422, "config")
    api_error(live.member().patch("/v1/integration/ado", json={"config": PROJECTS_ONLY}), 403, "admin")

    r = live.admin.patch("/v1/integration/ado", json={"config": PROJECTS_ONLY})
    assert r.status_code == 200, r.text
    replaced = r.json()["integration"]
    assert replaced["config"] == PROJECTS_ONLY and replaced["kiosk"]["mappingSource"] == "api"
    assert replaced["kiosk"]["mappingReplaced"]["by"].startswith("kc_")
    assert detail(live)["config"] == PROJECTS_ONLY

    reset = live.admin.delete("/v1/integration/ado/config")
    assert reset.status_code == 200, reset.text
    assert reset.json()["integration"]["kiosk"]["mappingSource"] == before["kiosk"]["mappingSource"]
    assert detail(live)["config"] == before["config"]


def test_schemathesis_on_the_integration_routes(live: LiveServer, tmp_path: Path) -> None:
    """The fuzz test's run (every check) on these routes with an integration configured, so the
    generated requests reach the mapping checks, the examples and the resync requests, not only 404s."""
    run_schemathesis(live, tmp_path, "--include-path-regex", "^/v1/integration")
