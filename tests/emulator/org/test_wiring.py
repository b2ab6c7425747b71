"""A generated org in the emulator: ``generate:`` in the config, ``kiosk emulator --generate``, bootstrap."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.emulator.conftest import CONFIG, EmulatorFactory
from tests.support.servers import free_port
from typer.testing import CliRunner

from kiosk.cli.app import app
from kiosk.cli.demo import DEMO_DIR
from kiosk.emulator.config import GenerateSpec, load_emulator_config, parse_generate_option
from kiosk.emulator.errors import AzureError
from kiosk.errors import ConfigError

ORG = "orgs:\n- name: acme\n  personalAccessTokens: [{env: PAT}]\n"
GENERATED = CONFIG.replace(
    "    personalAccessTokens: [{env: TEST_EMULATOR_PAT}]\n",
    "    personalAccessTokens: [{env: TEST_EMULATOR_PAT}]\n"
    "    generate: {projects: 3, repos: 8, workitems: 50, seed: 7}\n",
)


def test_generate_under_an_org_in_the_config(tmp_path: Path) -> None:
    config = load_emulator_config(
        _write(tmp_path, ORG + "  generate: {projects: 2, repos: 5, workitems: 40, seed: 7, pullRequests: 1}\n")
    )
    assert config.orgs[0].generate == GenerateSpec(projects=2, repos=5, workitems=40, seed=7, pull_requests=1)
    assert load_emulator_config(_write(tmp_path, ORG)).orgs[0].generate is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("  generate: {projects: -1}\n", "emulator.yaml:4: orgs[0].generate.projects"),
        ("  generate: {repo: 3}\n", "emulator.yaml:4: orgs[0].generate.repo"),
        ("  generate: {projects: 0, repos: 3}\n", "repos and workitems need at least one project"),
        ("  generate: {workitems: many}\n", "emulator.yaml:4: orgs[0].generate.workitems"),
    ],
)
def test_generate_errors_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_emulator_config(_write(tmp_path, ORG + text))


def test_the_generate_option_parses_like_the_config() -> None:
    spec = parse_generate_option("projects=50,repos=2000, workitems=100_000,seed=7,pull_requests=2")
    assert spec == GenerateSpec(projects=50, repos=2000, workitems=100_000, seed=7, pull_requests=2)
    assert parse_generate_option("") == GenerateSpec()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("projects", "'projects' is not one of projects=N"),
        ("colour=3", "'colour=3' is not one of"),
        ("repos=lots", "repos must be a whole number, not 'lots'"),
        ("workitems=-5", "--generate: workitems: Input should be greater than or equal to 0"),
    ],
)
def test_the_generate_option_names_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_generate_option(text)


def test_configured_and_generated_projects_share_the_organisation(start_emulator: EmulatorFactory) -> None:
    live = start_emulator(config=GENERATED, execute=False)
    emulator = live.server.emulator
    org = emulator.organisation("FABRIKAM")
    web = org.project("WEB")
    assert web is not None and web.configured
    assert web.id == emulator.project("fabrikam", "web").id  # the id its pipelines are served with
    generated = [p for p in org.projects.values() if not p.configured]
    assert len(generated) == 3 and len(org.work_items) == 50
    assert all(r.remote_url.startswith(live.base_url + "/fabrikam/") for r in org.repositories.values())
    assert live.client.get("/_emulator/healthz").status_code == 200
    with pytest.raises(AzureError) as caught:
        emulator.organisation("nobody")
    assert caught.value.status == 404


def test_an_org_without_generate_holds_its_configured_projects(start_emulator: EmulatorFactory) -> None:
    org = start_emulator(execute=False).server.emulator.organisation("fabrikam")
    assert [p.name for p in org.projects.values()] == ["web"]
    assert not org.repositories and not org.work_items


def test_kiosk_emulator_refuses_a_bad_generate_option(tmp_path: Path) -> None:
    path = _write(tmp_path, ORG)
    result = CliRunner().invoke(
        app,
        ["emulator", "--config", str(path), "--port", "0", "--no-execute", "--generate", "repos=lots"],
        env={"PAT": "x"},
    )
    assert result.exit_code != 0
    assert "--generate: repos must be a whole number, not 'lots'" in result.output


def test_kiosk_emulator_generate_serves_a_generated_org(tmp_path: Path) -> None:
    path = _write(tmp_path, ORG)
    port = free_port()
    command = [sys.executable, "-m", "kiosk", "emulator", "--config", str(path), "--port", str(port), "--no-execute"]
    command += ["--generate", "projects=4,repos=12,workitems=300,seed=3", "--work-dir", str(tmp_path / "work")]
    env = {**os.environ, "PAT": "the-pat", "KIOSK_HOME": str(tmp_path / "home")}
    process = subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        assert process.stdout is not None
        banner = []
        for line in process.stdout:
            banner.append(line.decode())
            if line.startswith(b"  why no run"):
                break
        text = "".join(banner)
        assert "org acme: 4 projects, " in text and "300 work items (generated)" in text, text
        health = _wait_healthy(f"http://127.0.0.1:{port}/_emulator/healthz", process)
        assert health == 200
    finally:
        process.terminate()
        process.communicate(timeout=30)


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> int:
    for _ in range(600):
        if process.poll() is not None:
            raise AssertionError("kiosk emulator exited")
        try:
            return httpx.get(url, timeout=2).status_code
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("kiosk emulator did not answer")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "emulator.yaml"
    path.write_text(text)
    return path


def test_the_demo_org_is_a_small_generated_one() -> None:
    config = load_emulator_config(DEMO_DIR / "emulator.yaml")
    assert config.orgs[0].generate == GenerateSpec(projects=3, repos=20, workitems=200, seed=7)
