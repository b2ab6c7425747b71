"""The ``kiosk`` command as a whole: its version, help everywhere, ``python -m kiosk`` and its error backstop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import kiosk
from kiosk.cli.app import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.stdout == f"kiosk {kiosk.__version__}\n"


@pytest.mark.parametrize(
    "args",
    [[], ["version"], ["serve"], ["apply"], ["credentials"], ["credentials", "create"], ["credentials", "list"]],
)
def test_every_command_has_help(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout


def test_python_dash_m_kiosk(tmp_path: Path) -> None:
    env = {**os.environ, "KIOSK_HOME": str(tmp_path / "h")}
    out = subprocess.run(
        [sys.executable, "-m", "kiosk", "version"], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode == 0
    assert out.stdout.strip() == f"kiosk {kiosk.__version__}"


def test_main_reports_errors_without_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "KIOSK_HOME": str(tmp_path / "h")}
    out = subprocess.run(
        [sys.executable, "-m", "kiosk", "apply", "--config", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 2
    assert out.stderr == f"error: {tmp_path / 'missing.yaml'}: config file not found\n"
