"""``kiosk integrations hooks NAME [--check|--apply]`` against the emulator, from kiosk.yaml (no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.emulator.conftest import CONFIG, EmulatorFactory, LiveEmulator, start_emulator
from tests.support.azure_sdk import with_generated_org
from tests.support.integrations import integrations_yaml
from typer.testing import CliRunner

from kiosk.cli.app import app
from kiosk.ingest.hooks.catalogue import KIND_EVENTS

__all__ = ["start_emulator"]

PUBLIC_URL = "http://127.0.0.1:9/kiosk"
CONSUMER = f"{PUBLIC_URL}/hooks/integrations/ado"


def kiosk(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def azure(start_emulator: EmulatorFactory) -> LiveEmulator:
    return start_emulator(config=with_generated_org(CONFIG, projects=2, repos=1, workitems=1, users=2), execute=False)


@pytest.fixture
def configured(azure: LiveEmulator, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """kiosk.yaml: kiosk's publicUrl, and integration ``ado`` (projects and repositories) with a webhook secret."""
    monkeypatch.setenv("TEST_HOOK_SECRET", "hook-secret")
    path = tmp_path / "kiosk.yaml"
    integration = integrations_yaml(f"{azure.base_url}/fabrikam", webhook_secret_variable="TEST_HOOK_SECRET")
    path.write_text(f"azureDevOps:\n  publicUrl: {PUBLIC_URL}/\n" + integration)
    monkeypatch.setenv("KIOSK_CONFIG", str(path))
    return path


def ours(azure: LiveEmulator) -> list[dict[str, Any]]:
    answer = azure.client.get("/fabrikam/_apis/hooks/subscriptions", params={"api-version": "7.1"}).json()
    return [s for s in answer["value"] if s["consumerInputs"]["url"] == CONSUMER]


def test_check_prints_the_plan_apply_makes_it_and_then_check_is_clean(azure: LiveEmulator, configured: Path) -> None:
    expected = 3 * len(KIND_EVENTS["repository"])  # three projects, the repository kind's events
    checked = kiosk("integrations", "hooks", "ado")
    assert checked.exit_code == 1, checked.output
    lines = checked.output.splitlines()
    assert lines[0] == f"ado: subscriptions posting to {CONSUMER}"
    assert lines[1] == f"{azure.base_url}/fabrikam: {expected} to create, 0 to update, 0 to delete, 0 kept"
    assert sum(line.startswith("  create tfs git.repo.") for line in lines) == expected
    assert lines[-1] == "ado: changes needed (apply them: kiosk integrations hooks ado --apply)"
    assert ours(azure) == []  # a check changes nothing
    assert kiosk("integrations", "hooks", "ado", "--check").exit_code == 1

    applied = kiosk("integrations", "hooks", "ado", "--apply")
    assert applied.exit_code == 0, applied.output
    made = {s["id"] for s in ours(azure)}
    assert len(made) == expected
    assert sum(line.split(" — created ")[-1] in made for line in applied.output.splitlines()) == expected
    assert applied.output.splitlines()[-1] == f"ado: {expected} change(s) made, 0 failed"

    clean = kiosk("integrations", "hooks", "ado", "--check")
    assert clean.exit_code == 0, clean.output
    assert f"0 to create, 0 to update, 0 to delete, {expected} kept" in clean.output
    assert clean.output.splitlines()[-1] == "ado: the subscriptions match"
    again = kiosk("integrations", "hooks", "ado", "--apply")
    assert again.exit_code == 0 and again.output.splitlines()[-1] == "ado: 0 change(s) made, 0 failed"
    assert {s["id"] for s in ours(azure)} == made


def test_a_listing_failure_is_a_one_line_error(
    azure: LiveEmulator, configured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_EMULATOR_PAT", "a-revoked-pat")  # the integration's PAT, read by the command
    failed = kiosk("integrations", "hooks", "ado", "--apply")
    assert failed.exit_code == 1
    (line,) = failed.output.strip().splitlines()
    assert "cannot list the tfs service-hook subscriptions, so nothing was changed" in line and " 401 " in line
    assert ours(azure) == []


def test_check_and_apply_together_are_refused(configured: Path) -> None:
    both = kiosk("integrations", "hooks", "ado", "--check", "--apply")
    assert both.exit_code != 0 and "not both" in both.output
