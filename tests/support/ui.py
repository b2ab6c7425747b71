"""Helpers for the UI tests: a kiosk app in process (no lifespan: no background work), reading the
hidden tokens of its forms, and signing in as a local user the way a browser does."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kiosk.settings import Settings
from kiosk.web.app import create_app

#: The origin the in-process client presents (plain http on loopback: cookies without Secure).
BASE = "http://127.0.0.1:8000"
PASSWORD = "correct horse battery staple"


def ui_app(tmp_path: Path, database_url: str, config: str | None = None) -> FastAPI:
    """kiosk's app on ``database_url``, with ``config`` as its kiosk.yaml when given."""
    env = {"KIOSK_HOME": str(tmp_path / "home"), "KIOSK_DATABASE_URL": database_url}
    if config is not None:
        (tmp_path / "kiosk.yaml").write_text(config)
        env["KIOSK_CONFIG"] = str(tmp_path / "kiosk.yaml")
    return create_app(Settings.from_env(env))


def browser(app: FastAPI, base_url: str = BASE) -> TestClient:
    """A client that keeps cookies and does not follow redirects (the tests look at each one)."""
    return TestClient(app, base_url=base_url, follow_redirects=False)


def hidden_field(html: str, name: str) -> str:
    """The value of the hidden input ``name`` in ``html`` (the first one)."""
    found = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', html)
    assert found, f"no hidden field {name!r} in the page"
    return found.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD, next_path: str = "/") -> httpx.Response:
    """Open the sign-in form and post it from the portal's own origin; the POST's answer."""
    form = client.get("/ui/sign-in", params={"next": next_path})
    assert form.status_code == 200, form.text
    return client.post(
        "/ui/sign-in",
        data={
            "csrf_token": hidden_field(form.text, "csrf_token"),
            "email": email,
            "password": password,
            "next": next_path,
        },
        headers={"Origin": str(client.base_url).rstrip("/")},
    )
