"""Fixtures of the ``kiosk`` command tests.

- ``restore_logging`` (autouse): the commands configure logging for the whole process; each test
  gives the next one the state it had.
- ``home``: an empty ``$KIOSK_HOME`` under ``tmp_path`` (SQLite database inside it), with no
  database URL, config or master key inherited from the environment.
- ``body``: a pretty-printed incoming-webhook body, for ``kiosk sign|send`` and ``kiosk pipeline``.
- :func:`emulator_answers`: whether a ``kiosk emulator`` process a test started is up yet.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.logs import logging_restored

PRETTY = '{\n  "resource": {"message": {"title": "Hello, world!", "subtitle": "I\'m using WebHooks!"}}\n}\n'


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The commands configure logging for the process; give the next test the state it had."""
    with logging_restored():
        yield


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("KIOSK_HOME", str(home))
    for name in ("KIOSK_DATABASE_URL", "KIOSK_CONFIG", "KIOSK_SECRET_KEY", "KIOSK_SECRET_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def body(tmp_path: Path) -> Path:
    path = tmp_path / "body.json"
    path.write_text(PRETTY)
    return path


def emulator_answers(base: str, process: subprocess.Popen[bytes]) -> bool:
    """Whether the ``kiosk emulator`` process serving ``base`` answers its health check yet (a check for
    ``wait_for``); if the process has exited, its output is the failure, as there is nothing to wait for."""
    if process.poll() is not None:
        raise AssertionError(f"kiosk emulator exited: {process.communicate()[0].decode(errors='replace')}")
    try:
        return httpx.get(f"{base}/_emulator/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
