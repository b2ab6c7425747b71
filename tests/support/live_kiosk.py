"""kiosk's app served on loopback in this process (uvicorn in a thread, :func:`tests.support.servers.serving`),
httpx as the client: the API tests' server, with or without a kiosk.yaml, and the paths its receivers answer on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from tests.support.servers import serving

from kiosk.auth.clients import create_client
from kiosk.receivers.urls import receiver_digest
from kiosk.settings import Settings
from kiosk.web.app import create_app


@dataclass
class LiveServer:
    """A kiosk app served on loopback (uvicorn in a thread), with ``admin``: an httpx client holding
    the admin token from the credentials file kiosk writes on its first start."""

    base_url: str
    settings: Settings
    admin: httpx.Client
    app: FastAPI

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60)

    def token_for(self, client_id: str, secret: str) -> str:
        with self.client() as c:
            r = c.post("/v1/auth/access_token", json={"clientId": client_id, "clientSecret": secret})
            r.raise_for_status()
            return str(r.json()["accessToken"])

    def member(self) -> httpx.Client:
        """A client holding the token of a new member (not admin) client named ``dev``."""
        client_id, secret = create_client(self.app.state.db, "member", "dev")
        return self.client(self.token_for(client_id, secret))


def api_error(r: httpx.Response, status: int, fragment: str) -> dict[str, Any]:
    """kiosk's JSON error body of ``r``, checked: ``status``, ``ok: false``, ``fragment`` in its message."""
    assert r.status_code == status, r.text
    body = r.json()
    assert body["ok"] is False and fragment in body["message"], body
    return dict(body)


def start_server(settings: Settings) -> Iterator[LiveServer]:
    """Serve kiosk's app built from ``settings`` until the generator is closed (a fixture body)."""
    app = create_app(settings)
    with serving(app) as base:
        creds = json.loads(Path(settings.credentials_path).read_text())
        live = LiveServer(base, settings, httpx.Client(base_url=base, timeout=60), app)
        live.admin.headers["Authorization"] = "Bearer " + live.token_for(creds["clientId"], creds["clientSecret"])
        try:
            yield live
        finally:
            live.admin.close()


def configured_settings(tmp_path: Path, database_url: str, config: str) -> Settings:
    """Settings with ``config`` written as ``tmp_path/kiosk.yaml`` and ``tmp_path/home`` as KIOSK_HOME."""
    (tmp_path / "kiosk.yaml").write_text(config)
    return Settings.from_env(
        {
            "KIOSK_HOME": str(tmp_path / "home"),
            "KIOSK_DATABASE_URL": database_url,
            "KIOSK_CONFIG": str(tmp_path / "kiosk.yaml"),
        }
    )


def start_configured_server(tmp_path: Path, database_url: str, config: str) -> Iterator[LiveServer]:
    """kiosk with ``config`` as its kiosk.yaml (the app factory installs its actions, receivers...)."""
    yield from start_server(configured_settings(tmp_path, database_url, config))


def hook_path(name: str, secret: str, *, project: str | None = None, kind: str = "azure") -> str:
    """The path a receiver ``name`` with ``secret`` answers on (``/webhooks/<kind>/<digest>``)."""
    return f"/webhooks/{kind}/{receiver_digest(project, name, secret)}"
