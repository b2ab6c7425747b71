"""``kiosk emulator`` (refuses to start open; works under KIOSK_HOME) and ``kiosk pipeline expand|run``
(offline, on a repo in tmp_path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tests.cli.conftest import emulator_answers
from tests.support.pipelines import SEED_WEBHOOK_RESOURCES
from tests.support.polling import wait_for
from tests.support.servers import free_port
from typer.testing import CliRunner

from kiosk.cli.app import app
from kiosk.cli.demo import DEMO_DIR


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            "orgs:\n  - name: acme\n",
            "org 'acme' has no personalAccessTokens: its REST API would be open to anything",
        ),
        ("settings: {accessToken: {env: X}}\n", "settings.accessToken was replaced by a PAT per org"),
        ("orgs:\n  - name: acme\n    personalAccessTokens: [the-pat]\n", "secrets must be references"),
        ("{}\n", "the emulator serves no org, so no personal access token could open its REST API"),
    ],
)
def test_the_emulator_refuses_to_start_without_a_pat_per_org(tmp_path: Path, config: str, message: str) -> None:
    path = tmp_path / "emulator.yaml"
    path.write_text(config)
    result = CliRunner().invoke(app, ["emulator", "--config", str(path), "--port", "0", "--no-execute"])
    assert result.exit_code != 0
    assert message in " ".join(result.output.split()), result.output
    assert "the-pat" not in result.output and "Traceback" not in result.output


def test_the_emulator_without_a_config_refuses_to_start() -> None:
    result = CliRunner().invoke(app, ["emulator", "--port", "0"])
    assert result.exit_code != 0 and "personalAccessTokens" in result.output


WEBHOOK_PIPELINE = (
    SEED_WEBHOOK_RESOURCES
    + """\
steps:
- template: steps/say.yml
  parameters:
    text: ${{ parameters.WebHook.resource.message.title }}
"""
)
SAY = """\
parameters:
- name: text
  type: string
steps:
- script: echo "said ${{ parameters.text }} for $(Build.Reason)"
"""


@pytest.fixture
def repo(tmp_path: Path, body: Path) -> Path:
    root = tmp_path / "repo"
    (root / "steps").mkdir(parents=True)
    (root / "azure-pipelines.yml").write_text(WEBHOOK_PIPELINE)
    (root / "steps" / "say.yml").write_text(SAY)
    return root


def test_expand_prints_the_final_yaml(repo: Path, body: Path) -> None:
    result = CliRunner().invoke(app, ["pipeline", "expand", str(repo / "azure-pipelines.yml"), "--payload", str(body)])
    assert result.exit_code == 0, result.output
    assert 'script: echo "said Hello, world! for $(Build.Reason)"' in result.stdout


def test_expand_says_which_filter_did_not_match(repo: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"resource":{"message":{"title":"Bye"}}}')
    result = CliRunner().invoke(
        app, ["pipeline", "expand", str(repo / "azure-pipelines.yml"), "-w", "WebHook", "-p", str(other)]
    )
    assert result.exit_code == 1
    assert "no run would be queued" in result.stderr
    assert "resource.message.title = 'Hello, world!' did not match: the body has 'Bye'" in result.stderr


def test_expand_names_the_expression_that_broke_the_yaml(tmp_path: Path, body: Path) -> None:
    pipeline = tmp_path / "p.yml"
    pipeline.write_text(
        "resources:\n  webhooks:\n  - webhook: WebHook\n    connection: c\n"
        "steps:\n- script: echo ${{ parameters.WebHook.resource.message }}\n"
    )
    result = CliRunner().invoke(app, ["pipeline", "expand", str(pipeline), "--payload", str(body)])
    assert result.exit_code == 1
    assert "p.yml:6:" in result.stderr
    assert 'in expression "parameters.WebHook.resource.message"' in result.stderr


def test_expand_refuses_an_unknown_alias_and_bad_pairs(repo: Path, body: Path) -> None:
    pipeline = str(repo / "azure-pipelines.yml")
    result = CliRunner().invoke(app, ["pipeline", "expand", pipeline, "-w", "Nope", "-p", str(body)])
    assert result.exit_code == 1 and "has no webhook resource 'Nope' (declared: WebHook)" in result.stderr
    result = CliRunner().invoke(app, ["pipeline", "expand", pipeline, "--parameter", "novalue"])
    assert result.exit_code == 1 and "must be NAME=VALUE" in result.stderr


def test_run_executes_the_steps_and_streams_the_log(repo: Path, body: Path) -> None:
    result = CliRunner().invoke(app, ["pipeline", "run", str(repo / "azure-pipelines.yml"), "--payload", str(body)])
    assert result.exit_code == 0, result.output
    assert "said Hello, world! for ResourceTrigger" in result.stdout
    assert "run result: succeeded" in result.stdout


def test_run_masks_secret_variables_and_fails_with_the_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_TOKEN_SOURCE", "hunter2-token")
    pipeline = tmp_path / "p.yml"
    pipeline.write_text("steps:\n- script: echo token=$(token)\n- script: exit 3\n")
    result = CliRunner().invoke(app, ["pipeline", "run", str(pipeline), "--secret-variable", "token=MY_TOKEN_SOURCE"])
    assert result.exit_code == 1
    assert "token=***" in result.stdout
    assert "hunter2-token" not in result.stdout
    assert "run result: failed" in result.stdout


def _demo_files() -> set[Path]:
    return {path for path in DEMO_DIR.rglob("*") if "__pycache__" not in path.parts}


@pytest.mark.parametrize("chosen", ["KIOSK_HOME", "--work-dir"])
def test_the_emulator_works_under_kiosk_home_never_beside_its_config(tmp_path: Path, chosen: str) -> None:
    """``kiosk emulator --config src/kiosk/demo/emulator.yaml`` once wrote ``src/kiosk/demo/.kiosk-emulator/``
    into the source tree (and into site-packages for an installed kiosk): runs' workspaces and the
    repositories of pipelines registered over HTTP now go under ``$KIOSK_HOME/emulator`` or ``--work-dir``."""
    expected = tmp_path / "home" / "emulator" if chosen == "KIOSK_HOME" else tmp_path / "work"
    before = _demo_files()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "kiosk", "emulator", "--config", str(DEMO_DIR / "emulator.yaml")]
    command += ["--port", str(port), "--execute"]
    if chosen == "--work-dir":
        command += ["--work-dir", str(expected)]
    env = {**os.environ, "KIOSK_HOME": str(tmp_path / "home"), "KIOSK_DEMO_PAT": "demo-pat"}
    env["KIOSK_DEMO_WEBHOOK_SECRET"] = "demo-secret"
    (tmp_path / "cwd").mkdir()
    process = subprocess.Popen(
        command,
        cwd=tmp_path / "cwd",
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        auth = ("", "demo-pat")
        wait_for(lambda: emulator_answers(base, process), timeout=60)
        registered = httpx.post(
            f"{base}/_emulator/orgs/demo/projects/demo/pipelines",
            json={"name": "where", "yaml": "steps:\n- script: touch made-here && echo workspace=$PWD\n"},
            auth=auth,
        )
        assert registered.status_code == 201, registered.text
        runs = f"{base}/demo/demo/_apis/pipelines/{registered.json()['id']}/runs?api-version=7.1"
        run = httpx.post(runs, json={}, auth=auth)
        assert run.status_code == 200, run.text
        build = f"{base}/demo/demo/_apis/build/builds/{run.json()['id']}?api-version=7.1"
        done = wait_for(lambda: (b := httpx.get(build, auth=auth).json())["status"] == "completed" and b)
        assert done["result"] == "succeeded"
        log = httpx.get(f"{base}/_emulator/runs/demo/{run.json()['id']}/log", auth=auth).text
        assert f"workspace={expected / 'runs' / 'demo' / str(run.json()['id'])}" in log, log
        assert [p.name[:6] for p in (expected / "repos" / "demo" / "demo").iterdir()] == ["where-"]
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert _demo_files() == before
    assert not (DEMO_DIR / ".kiosk-emulator").exists()
    assert not (tmp_path / "cwd" / ".kiosk").exists()
