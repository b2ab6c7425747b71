"""``kiosk sign`` and ``kiosk send``: the checksum of the minified body, POSTed over real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.emulator.conftest import PAT, EmulatorFactory, start_emulator
from tests.support.pipelines import SEED_BODY, SEED_CHECKSUM
from typer.testing import CliRunner

from kiosk.cli.app import app

__all__ = ["start_emulator"]  # the emulator fixture, used by the send tests


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
    assert result.output.strip() == SEED_CHECKSUM
    raw = CliRunner().invoke(app, ["sign", "--raw", str(body)], env={"KIOSK_WEBHOOK_SECRET": "secret"})
    assert raw.exit_code == 0 and raw.output.strip() != SEED_CHECKSUM


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
    assert seen[0]["body"] == SEED_BODY
    assert seen[0]["headers"]["X-WH-Checksum"] == SEED_CHECKSUM
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
