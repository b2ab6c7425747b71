"""A real kiosk server on loopback for the API tests: uvicorn in a thread, httpx as the client."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from kiosk.settings import Settings
from kiosk.web.app import create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    base_url: str
    settings: Settings
    admin: httpx.Client
    server: uvicorn.Server

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
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("kiosk test server did not start")
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    creds = json.loads(Path(settings.credentials_path).read_text())
    live = LiveServer(base, settings, httpx.Client(base_url=base, timeout=60), server)
    live.admin.headers["Authorization"] = "Bearer " + live.token_for(creds["clientId"], creds["clientSecret"])
    try:
        yield live
    finally:
        live.admin.close()
        server.should_exit = True
        thread.join(timeout=20)
