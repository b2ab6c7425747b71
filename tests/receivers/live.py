"""A real kiosk server with receivers on loopback, built exactly as the app factory will build it.

``create_app`` does not call :func:`~kiosk.web.routes.receivers.install_receivers` yet (the lead
wires it into ``kiosk.web.app``); until it does, :func:`start_receiver_server` installs it itself
after ``create_app``, with the same arguments. Once the app factory installs it, this helper sees
``app.state.receivers`` and leaves it alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from tests.servers import serving
from tests.web.live import LiveServer

from kiosk.receivers.urls import receiver_digest
from kiosk.settings import Settings
from kiosk.web.app import create_app
from kiosk.web.routes.receivers import install_receivers


def start_receiver_server(tmp_path: Path, database_url: str, config: str) -> Iterator[LiveServer]:
    (tmp_path / "kiosk.yaml").write_text(config)
    settings = Settings.from_env(
        {
            "KIOSK_HOME": str(tmp_path / "home"),
            "KIOSK_DATABASE_URL": database_url,
            "KIOSK_CONFIG": str(tmp_path / "kiosk.yaml"),
        }
    )
    app = create_app(settings)
    stop: Callable[[], None] | None = None
    if not hasattr(app.state, "receivers"):
        stop = install_receivers(
            app,
            db=app.state.db,
            config=app.state.config,
            secrets=app.state.config_secrets,
            runs=app.state.runs,
            catalog=app.state.catalog,
        )
    try:
        with serving(app) as base:
            creds = json.loads(Path(settings.credentials_path).read_text())
            live = LiveServer(base, settings, httpx.Client(base_url=base, timeout=60), app)
            live.admin.headers["Authorization"] = "Bearer " + live.token_for(creds["clientId"], creds["clientSecret"])
            try:
                yield live
            finally:
                live.admin.close()
                if stop is not None:
                    stop()
    finally:
        if stop is not None:
            stop()


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
