"""Receiver tests' helpers: a kiosk server with a kiosk.yaml on loopback, receiver paths, polling."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.web.live import LiveServer, start_server

from kiosk.receivers.urls import receiver_digest
from kiosk.settings import Settings


def start_receiver_server(tmp_path: Path, database_url: str, config: str) -> Iterator[LiveServer]:
    """kiosk with ``config`` as its kiosk.yaml (the app factory installs the receivers)."""
    (tmp_path / "kiosk.yaml").write_text(config)
    settings = Settings.from_env(
        {
            "KIOSK_HOME": str(tmp_path / "home"),
            "KIOSK_DATABASE_URL": database_url,
            "KIOSK_CONFIG": str(tmp_path / "kiosk.yaml"),
        }
    )
    yield from start_server(settings)


def hook_path(name: str, secret: str, *, project: str | None = None, kind: str = "azure") -> str:
    return f"/webhooks/{kind}/{receiver_digest(project, name, secret)}"


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll ``check`` until it returns something truthy (the event processor works in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        time.sleep(0.05)
