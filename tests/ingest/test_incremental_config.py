"""``incrementalSyncInterval``: in kiosk.yaml next to ``scheduledResyncInterval``, from Ocean's
environment, shorter than the full resync's interval (a clear error otherwise) — and the CLI's
``kiosk integrations resync NAME --incremental --once`` against the emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from tests.emulator.conftest import CONFIG, PAT, EmulatorFactory, LiveEmulator, start_emulator
from tests.support.azure_sdk import with_generated_org
from tests.support.config_files import config_error, write_config
from tests.support.integrations import OCEAN_PROJECTS_AND_REPOSITORIES, integrations_yaml, mapping_resource
from tests.support.live_kiosk import start_configured_server
from tests.support.polling import wait_for
from typer.testing import CliRunner

from kiosk.cli.app import app
from kiosk.config import KioskConfig, load_config
from kiosk.config.integrations import resolve_integrations
from kiosk.errors import ConfigError
from kiosk.ingest.config import IntegrationSpec, ocean_environment

__all__ = ["start_emulator"]

BASE = {
    "identifier": "ado",
    "type": "azure-devops",
    "config": {"organizationUrl": "https://dev.azure.com/contoso", "personalAccessToken": {"env": "ADO_PAT"}},
}


def kiosk_yaml(
    organization_url: str, *, interval: int | None, incremental: int | None, pat_env: str = "ADO_PAT"
) -> str:
    lines = [
        "integrations:",
        "  - identifier: ado",
        "    type: azure-devops",
        "    config:",
        f"      organizationUrl: {organization_url}",
        f"      personalAccessToken: {{env: {pat_env}}}",
    ]
    if interval is not None:
        lines.append(f"    scheduledResyncInterval: {interval}")
    if incremental is not None:
        lines.append(f"    incrementalSyncInterval: {incremental}")
    return "\n".join(lines) + "\n"


def test_the_setting_is_off_unless_set_and_at_least_a_minute() -> None:
    assert IntegrationSpec.model_validate(BASE).incrementalSyncInterval is None
    assert IntegrationSpec.model_validate({**BASE, "incrementalSyncInterval": 5}).incrementalSyncInterval == 5
    assert IntegrationSpec.model_validate({**BASE, "incrementalSyncInterval": "5"}).incrementalSyncInterval == 5
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        IntegrationSpec.model_validate({**BASE, "incrementalSyncInterval": 0})


@pytest.mark.parametrize("incremental", [60, 90])
def test_it_must_be_shorter_than_the_full_resync_interval(incremental: int) -> None:
    with pytest.raises(ValidationError) as info:
        IntegrationSpec.model_validate({**BASE, "scheduledResyncInterval": 60, "incrementalSyncInterval": incremental})
    assert (
        f"incrementalSyncInterval ({incremental} minutes) must be shorter than scheduledResyncInterval (60 minutes)"
        in str(info.value)
    )
    spec = IntegrationSpec.model_validate({**BASE, "scheduledResyncInterval": 60, "incrementalSyncInterval": 59})
    assert (spec.scheduledResyncInterval, spec.incrementalSyncInterval) == (60, 59)


def test_kiosk_yaml_names_the_file_and_the_problem(tmp_path: Path) -> None:
    error = config_error(tmp_path, kiosk_yaml("https://dev.azure.com/contoso", interval=10, incremental=30))
    assert "kiosk.yaml" in error.message
    assert "incrementalSyncInterval (30 minutes) must be shorter than scheduledResyncInterval (10 minutes)" in (
        error.message
    )
    loaded = load_config(
        write_config(tmp_path, kiosk_yaml("https://dev.azure.com/contoso", interval=10, incremental=3))
    )
    [integration] = resolve_integrations(loaded, env={"ADO_PAT": "x"}, base_dir=tmp_path)
    assert integration.spec.incrementalSyncInterval == 3


def test_oceans_environment_variable_sets_it(tmp_path: Path) -> None:
    env = {
        "OCEAN__INTEGRATION__IDENTIFIER": "ado",
        "OCEAN__INTEGRATION__CONFIG__ORGANIZATION_URL": "https://dev.azure.com/contoso",
        "OCEAN__INTEGRATION__CONFIG__PERSONAL_ACCESS_TOKEN": "a-pat",
        "OCEAN__SCHEDULED_RESYNC_INTERVAL": "60",
        "OCEAN__INCREMENTAL_SYNC_INTERVAL": "15",
    }
    environment = ocean_environment(env)
    assert environment is not None and environment.item["incrementalSyncInterval"] == "15"
    assert environment.sources[("incrementalSyncInterval",)] == "OCEAN__INCREMENTAL_SYNC_INTERVAL"
    [integration] = resolve_integrations(KioskConfig(), env=env, base_dir=tmp_path)
    assert integration.spec.incrementalSyncInterval == 15
    with pytest.raises(ConfigError, match="must be shorter than scheduledResyncInterval"):
        resolve_integrations(KioskConfig(), env={**env, "OCEAN__INCREMENTAL_SYNC_INTERVAL": "60"}, base_dir=tmp_path)


# ------------------------------------------------------------------------------------------------ CLI


@pytest.fixture
def azure(start_emulator: EmulatorFactory) -> LiveEmulator:
    return start_emulator(config=with_generated_org(CONFIG, projects=2, repos=3, workitems=12), execute=False)


def test_resync_incremental_once_runs_a_pass_here(
    azure: LiveEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIOSK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KIOSK_DATABASE_URL", raising=False)
    monkeypatch.setenv("ADO_PAT", PAT)
    monkeypatch.setenv("COLUMNS", "300")  # the tables unwrapped
    config = write_config(tmp_path, kiosk_yaml(f"{azure.base_url}/fabrikam", interval=60, incremental=5))
    monkeypatch.setenv("KIOSK_CONFIG", str(config))
    cli = CliRunner()

    # Never read fully: both resources of the default mapping (work-item, release) are skipped, no failure.
    first = cli.invoke(app, ["integrations", "resync", "ado", "--once", "--incremental"])
    assert first.exit_code == 0, first.output
    assert first.output.strip().splitlines()[-1] == (
        "ado: incremental completed — 0 read, 0 written, 0 unchanged, 0 failed, 2 resource(s) skipped"
    )
    assert "no cursor yet" in first.output

    full = cli.invoke(app, ["integrations", "resync", "ado", "--once"])
    assert full.exit_code == 0, full.output

    org = azure.organisation()
    item = org.work_items[min(org.work_items)]
    changed = azure.client.patch(
        f"/_emulator/orgs/fabrikam/projects/{item.project_id}/workitems/{item.id}",
        json={"fields": {"System.Title": "changed since the resync"}},
    )
    assert changed.status_code == 200, changed.text
    second = cli.invoke(app, ["integrations", "resync", "ado", "--once", "--incremental"])
    assert second.exit_code == 0, second.output
    assert second.output.strip().splitlines()[-1] == (
        "ado: incremental completed — 1 read, 1 written, 0 unchanged, 0 failed, 0 resource(s) skipped"
    )
    assert "work-item" in second.output and "completed" in second.output


def test_resync_incremental_through_the_api_and_status_shows_the_pass(
    azure: LiveEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    work_items = mapping_resource("work-item", "azureDevopsWorkItem", identifier=".id | tostring", title=".id")
    config = integrations_yaml(f"{azure.base_url}/fabrikam", resources=[*OCEAN_PROJECTS_AND_REPOSITORIES, work_items])
    for live in start_configured_server(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", config):
        monkeypatch.setenv("KIOSK_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("KIOSK_URL", live.base_url)
        monkeypatch.delenv("KIOSK_CLIENT_ID", raising=False)
        cli = CliRunner()
        asked = cli.invoke(app, ["integrations", "resync", "ado", "--incremental"])
        assert asked.exit_code == 0, asked.output
        assert "ado: incremental pass queued" in asked.output

        def passed(admin: Any = live.admin) -> Any:
            detail = admin.get("/v1/integration/ado").json()["integration"]["kiosk"]
            return detail["incremental"] if detail["incremental"] and detail["incremental"]["finished_at"] else None

        state = wait_for(passed, timeout=60)
        assert state["status"] == "completed" and state["trigger"] == "manual"
        assert [(r["kind"], r["status"]) for r in state["organizations"][0]["resources"]] == [("work-item", "skipped")]
        assert live.admin.get("/v1/integration/ado").json()["integration"]["kiosk"]["state"] is None  # no resync
        shown = cli.invoke(app, ["integrations", "status", "ado"])
        assert shown.exit_code == 0, shown.output
        assert "ado incremental: completed (trigger manual" in shown.output and "no cursor yet" in shown.output
        refused = live.admin.post("/v1/integration/ado/resync", params={"incremental": "sometimes"})
        assert refused.status_code == 422
