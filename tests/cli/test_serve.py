"""``kiosk serve`` and ``kiosk apply``: the server's wiring, apply end to end, one-line errors."""

from __future__ import annotations

import stat
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kiosk.cli.app import app

DEMO = Path(__file__).resolve().parents[2] / "src" / "kiosk" / "demo" / "kiosk.yaml"

runner = CliRunner()


def test_bad_config_is_one_line_error(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "kiosk.yaml"
    bad.write_text(
        textwrap.dedent("""\
        blueprints:
          - identifier: service
          - title: no identifier
        """)
    )
    result = runner.invoke(app, ["apply", "--config", str(bad)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {bad}:3: blueprints[1].identifier: field required\n"
    assert "Traceback" not in result.output


def test_apply_without_a_config_says_how_to_give_one(home: Path) -> None:
    result = runner.invoke(app, ["apply"])
    assert result.exit_code == 2
    assert result.stderr == "error: no config to apply: pass --config FILE or set KIOSK_CONFIG\n"


def test_apply_demo_config(home: Path) -> None:
    result = runner.invoke(app, ["apply", "--config", str(DEMO)])
    assert result.exit_code == 0, result.output
    assert "created" in result.stdout and "checkout" in result.stdout
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert (home / "kiosk.db").exists()

    again = runner.invoke(app, ["apply"], env={"KIOSK_CONFIG": str(DEMO)})
    assert again.exit_code == 0, again.output
    assert "0 created, 0 updated" in again.stdout


def test_serve_runs_uvicorn_with_the_app_and_graceful_shutdown(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from kiosk.web.server import GuardedHttpProtocol

    seen: dict[str, Any] = {}
    fake_web = types.ModuleType("kiosk.web.app")

    def create_app(settings: Any) -> str:
        seen["settings"] = settings
        return "the-app"

    fake_web.create_app = create_app  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kiosk.web.app", fake_web)

    def run(server: uvicorn.Server, sockets: Any = None) -> None:
        config = server.config
        seen.update(app=config.app, host=config.host, port=config.port, log_level=config.log_level)
        seen.update(timeout_graceful_shutdown=config.timeout_graceful_shutdown, log_config=config.log_config)
        seen.update(http=config.http)

    monkeypatch.setattr(uvicorn.Server, "run", run)
    monkeypatch.setenv("KIOSK_CONFIG", str(tmp_path / "from-env.yaml"))

    result = runner.invoke(app, ["serve", "--config", str(DEMO), "--port", "9123", "--log-level", "warning"])
    assert result.exit_code == 0, result.output
    assert seen["app"] == "the-app"
    assert seen["settings"].config_path == DEMO  # --config wins over KIOSK_CONFIG
    assert seen["settings"].home == home
    assert (seen["host"], seen["port"], seen["log_level"]) == ("127.0.0.1", 9123, "warning")
    assert seen["timeout_graceful_shutdown"] == 10
    assert seen["log_config"] is None  # kiosk's redacting handler stays in charge
    assert seen["http"] is GuardedHttpProtocol  # kiosk's server: deadlines for slow clients, a connection cap


def test_serve_startup_failure_is_one_line(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kiosk.errors import ConfigError

    fake_web = types.ModuleType("kiosk.web.app")

    def create_app(settings: Any) -> str:
        raise ConfigError("kiosk.yaml:3: entities[0].blueprint: blueprint 'ghost' does not exist")

    fake_web.create_app = create_app  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kiosk.web.app", fake_web)
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    assert result.stderr.endswith("error: kiosk.yaml:3: entities[0].blueprint: blueprint 'ghost' does not exist\n")
