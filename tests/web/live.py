"""A real kiosk server on loopback for the API tests: uvicorn in a thread, httpx as the client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI
from tests.servers import serving

from kiosk.settings import Settings
from kiosk.web.app import create_app


@dataclass
class LiveServer:
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


def start_server(settings: Settings) -> Iterator[LiveServer]:
    app = create_app(settings)
    with serving(app) as base:
        creds = json.loads(Path(settings.credentials_path).read_text())
        live = LiveServer(base, settings, httpx.Client(base_url=base, timeout=60), app)
        live.admin.headers["Authorization"] = "Bearer " + live.token_for(creds["clientId"], creds["clientSecret"])
        try:
            yield live
        finally:
            live.admin.close()
