"""``kiosk integrations``: ``resync --once`` in the foreground against the emulator (no server), and
the API-backed commands against a real kiosk server on loopback reading the emulator's generated org."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.emulator.conftest import CONFIG, EmulatorFactory, LiveEmulator, start_emulator
from tests.support.azure_sdk import with_generated_org
from tests.support.integrations import integrations_yaml, mapping_resource
from tests.support.live_kiosk import LiveServer, start_configured_server
from tests.support.polling import wait_for
from typer.testing import CliRunner

from kiosk.cli.app import app
from kiosk.ingest.state import OrgState, ResourceState, ResyncState
from kiosk.ingest.store import IngestStore
from kiosk.runtime.integrations import request_resync, resync_job_kind
from kiosk.store.queue import JobQueue

__all__ = ["start_emulator"]

PROJECTS: dict[str, Any] = {
    "resources": [mapping_resource("project", "azureDevopsProject", properties={"state": ".name | tonumber"})]
}


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Room for the tables' columns (rich fits them to the terminal, 80 columns under the runner)."""
    monkeypatch.setenv("COLUMNS", "250")


def kiosk(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def azure(start_emulator: EmulatorFactory) -> LiveEmulator:
    return start_emulator(config=with_generated_org(CONFIG, projects=2, repos=3, workitems=4, users=3), execute=False)


def write_config(tmp_path: Path, azure: LiveEmulator, pat_variable: str = "TEST_EMULATOR_PAT") -> Path:
    path = tmp_path / "kiosk.yaml"
    path.write_text(integrations_yaml(f"{azure.base_url}/fabrikam", pat_variable=pat_variable))
    return path


def test_resync_once_in_the_foreground(
    azure: LiveEmulator, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIOSK_CONFIG", str(write_config(tmp_path, azure)))
    done = kiosk("integrations", "resync", "ado", "--once")
    assert done.exit_code == 0, done.output
    summary = done.output.strip().splitlines()[-1]
    assert summary.startswith("ado: completed — ") and "0 failed" in summary, done.output
    assert f"{azure.base_url}/fabrikam: completed" in done.output
    # The second resync of an unchanged organisation writes nothing.
    again = kiosk("integrations", "resync", "ado", "--once")
    assert again.exit_code == 0, again.output
    last = again.output.strip().splitlines()[-1]
    assert " 0 created, 0 updated, " in last and "0 deleted" in last, again.output


def test_resync_once_fails_with_a_revoked_pat(
    azure: LiveEmulator, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REVOKED_PAT", "not-a-valid-pat")
    monkeypatch.setenv("KIOSK_CONFIG", str(write_config(tmp_path, azure, "REVOKED_PAT")))
    done = kiosk("integrations", "resync", "ado", "--once")
    assert done.exit_code == 1, done.output
    assert done.output.strip().splitlines()[-1].startswith("ado: failed")


def test_resync_once_needs_a_config(home: Path) -> None:
    done = kiosk("integrations", "resync", "ado", "--once")
    assert done.exit_code == 2 and "no config" in done.output


@pytest.fixture
def server(azure: LiveEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    config = integrations_yaml(f"{azure.base_url}/fabrikam")
    for live in start_configured_server(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", config):
        monkeypatch.setenv("KIOSK_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("KIOSK_URL", live.base_url)
        monkeypatch.delenv("KIOSK_CLIENT_ID", raising=False)
        yield live


def test_list_resync_status_and_test_mapping(server: LiveServer, azure: LiveEmulator, tmp_path: Path) -> None:
    listed = kiosk("integrations", "list")
    assert listed.exit_code == 0, listed.output
    assert "ado" in listed.output and "WEBHOOKS_ONLY" in listed.output and "never" in listed.output

    never = kiosk("integrations", "status", "ado")
    assert never.exit_code == 0 and "ado: never resynced" in never.output

    asked = kiosk("integrations", "resync", "ado")
    assert asked.exit_code == 0 and "ado: resync queued" in asked.output, asked.output
    state = wait_for(
        lambda: server.admin.get("/v1/integration/ado").json()["integration"]["kiosk"]["state"] or None, timeout=60
    )
    wait_for(
        lambda: server.admin.get("/v1/integration/ado").json()["integration"]["resyncState"]["status"] != "running"
    )
    status = kiosk("integrations", "status", "ado")
    assert status.exit_code == 0, status.output
    assert "ado: completed (trigger manual" in status.output
    for resource in state["organizations"][0]["resources"]:
        assert resource["kind"] in status.output

    listed = kiosk("integrations", "list")
    assert "completed" in listed.output

    org = azure.organisation()
    tried = kiosk("integrations", "test-mapping", "ado", "--kind", "project")
    assert tried.exit_code == 0, tried.output
    assert f"resource 0 (project): {len(org.projects)} example(s)" in tried.output
    assert tried.output.count("    entity {") == len(org.projects)

    custom = tmp_path / "projects.yaml"
    custom.write_text(yaml.safe_dump(PROJECTS))
    failing = kiosk("integrations", "test-mapping", "ado", "--mapping", str(custom))
    assert failing.exit_code == 0, failing.output
    assert failing.output.count("    error properties.state: ") == len(org.projects)


def test_status_follows_a_running_resync(server: LiveServer) -> None:
    """While the saved state says running, ``status`` refreshes from it until the resync ends."""
    store = IngestStore(server.app.state.db, server.app.state.catalog)
    running = ResyncState(
        "ado",
        status="running",
        started_at=datetime.now(UTC),
        trigger="manual",
        organizations=[OrgState(url="https://x/fabrikam", status="running", resources=[ResourceState(0, "project")])],
    )
    store.save_state(running)
    stopped = kiosk("integrations", "status", "ado")  # no process holds it: not followed
    assert stopped.exit_code == 0 and "no kiosk process is running this resync now" in stopped.output
    db = server.app.state.db
    with db.begin() as conn:
        request_resync(conn, "ado", trigger="manual")
    holder = JobQueue(db, "another-process", lease_seconds=60)
    [job] = holder.claim([resync_job_kind("ado")])
    result: list[Any] = []
    follower = threading.Thread(target=lambda: result.append(kiosk("integrations", "status", "ado", "--every", "0.2")))
    follower.start()
    follower.join(1.0)
    assert follower.is_alive()  # still following: the resync runs
    running.status = "completed"
    running.finished_at = datetime.now(UTC)
    running.organizations[0].status = "completed"
    running.organizations[0].resources[0].fetched = 7
    store.save_state(running)
    assert holder.complete(job.id)
    follower.join(30)
    assert not follower.is_alive()
    assert result[0].exit_code == 0, result[0].output
    assert "ado: completed" in result[0].output


def test_mapping_show_set_and_reset(server: LiveServer, tmp_path: Path) -> None:
    shown = kiosk("integrations", "mapping", "ado")
    assert shown.exit_code == 0 and shown.output.startswith("# mapping of ado: "), shown.output
    assert shown.output.splitlines()[0].endswith("kiosk.yaml:9")
    assert yaml.safe_load(shown.output)["resources"][0]["kind"] == "project"

    bad = tmp_path / "bad.yaml"
    bad.write_text("resources:\n  - kind: projects\n")
    refused = kiosk("integrations", "mapping", "ado", "--set", str(bad))
    assert refused.exit_code == 1 and "config.resources[0].kind: unknown kind 'projects'" in refused.output

    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(PROJECTS))
    replaced = kiosk("integrations", "mapping", "ado", "--set", str(good))
    assert replaced.exit_code == 0, replaced.output
    assert "replaced through the API" in replaced.output.splitlines()[0]
    assert yaml.safe_load(replaced.output) == PROJECTS

    both = kiosk("integrations", "mapping", "ado", "--set", str(good), "--reset")
    assert both.exit_code == 1 and "not both" in both.output
    reset = kiosk("integrations", "mapping", "ado", "--reset")
    assert reset.exit_code == 0 and reset.output.splitlines()[0] == shown.output.splitlines()[0]
