"""``kiosk sign`` and ``kiosk send``: the checksum of the minified body, POSTed over real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.emulator.conftest import PAT, EmulatorFactory, start_emulator
from typer.testing import CliRunner

from kiosk.cli import app

__all__ = ["start_emulator"]  # the emulator fixture, used by the send tests

PRETTY = '{\n  "resource": {"message": {"title": "Hello, world!", "subtitle": "I\'m using WebHooks!"}}\n}\n'
MINIFIED = b'{"resource":{"message":{"title":"Hello, world!","subtitle":"I\'m using WebHooks!"}}}'
CHECKSUM = "750D33212D3AD4932CC390819050734831A0A94F"


@pytest.fixture
def body(tmp_path: Path) -> Path:
    path = tmp_path / "body.json"
    path.write_text(PRETTY)
    return path


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append({"path": self.path, "headers": dict(self.headers), "body": data})
            status = 500 if "missing" in self.path else 200
            self.send_response(status)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_sign_minifies_then_signs(body: Path) -> None:
    result = CliRunner().invoke(app, ["sign", "--secret", "secret", str(body)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == CHECKSUM
    raw = CliRunner().invoke(app, ["sign", "--raw", str(body)], env={"KIOSK_WEBHOOK_SECRET": "secret"})
    assert raw.exit_code == 0 and raw.output.strip() != CHECKSUM


def test_sign_refuses_a_file_that_is_not_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    result = CliRunner().invoke(app, ["sign", "--secret", "s", str(bad)])
    assert result.exit_code != 0 and "not valid JSON" in result.output
    assert "Traceback" not in result.output


def test_send_posts_the_signed_minified_bytes(body: Path, receiver: tuple[str, list[dict[str, Any]]]) -> None:
    base, seen = receiver
    url = f"{base}/org/_apis/public/distributedtask/webhooks/IncomingWH?api-version=6.0-preview"
    result = CliRunner().invoke(app, ["send", url, str(body), "--secret", "secret", "--header", "X-WH-Checksum"])
    assert result.exit_code == 0, result.output
    assert "HTTP 200" in result.output
    assert seen[0]["body"] == MINIFIED
    assert seen[0]["headers"]["X-WH-Checksum"] == CHECKSUM
    assert "secret" not in result.output


def test_send_fails_on_an_error_answer(body: Path, receiver: tuple[str, list[dict[str, Any]]]) -> None:
    base, _ = receiver
    result = CliRunner().invoke(app, ["send", f"{base}/missing", str(body), "--secret", "secret"])
    assert result.exit_code == 1 and "HTTP 500" in result.output


def test_send_reports_an_unreachable_url_in_one_line(body: Path) -> None:
    result = CliRunner().invoke(app, ["send", "http://127.0.0.1:9/x", str(body), "--secret", "s"])
    assert result.exit_code == 1
    assert "could not reach" in result.output and "Traceback" not in result.output


def test_send_reads_why_from_the_emulator_with_the_orgs_pat(body: Path, start_emulator: EmulatorFactory) -> None:
    emulator = start_emulator(execute=False)
    url = f"{emulator.base_url}/fabrikam/_apis/public/distributedtask/webhooks/IncomingWH?api-version=6.0-preview"
    command = ["send", url, str(body), "--secret", "secret", "--header", "X-WH-Checksum"]
    without = CliRunner().invoke(app, command, env={"AZURE_DEVOPS_EXT_PAT": None})
    assert without.exit_code == 0 and "HTTP 200" in without.output
    assert "pass --pat (or $AZURE_DEVOPS_EXT_PAT) to read what it queued" in without.output
    wrong = CliRunner().invoke(app, [*command, "--pat", "wrong"], env={"AZURE_DEVOPS_EXT_PAT": None})
    assert "its record could not be read (HTTP 401)" in wrong.output
    with_pat = CliRunner().invoke(app, command, env={"AZURE_DEVOPS_EXT_PAT": PAT})
    assert with_pat.exit_code == 0, with_pat.output
    assert "1 run(s) queued" in with_pat.output and "/_emulator/runs/fabrikam/3/log" in with_pat.output
    assert PAT not in with_pat.output


# ---------------------------------------------------------------------------- kiosk emulator


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


# ---------------------------------------------------------------------------- kiosk pipeline expand | run

WEBHOOK_PIPELINE = """\
resources:
  webhooks:
    - webhook: WebHook
      connection: IncomingWH
      filters:
        - path: resource.message.title
          value: Hello, world!
steps:
- template: steps/say.yml
  parameters:
    text: ${{ parameters.WebHook.resource.message.title }}
"""
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
