"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.support.live_kiosk import LiveServer

from kiosk.settings import Settings
from kiosk.web.app import create_app


def test_health_ready_metrics_docs(live: LiveServer) -> None:
    with live.client() as anon:
        assert anon.get("/healthz").json()["ok"] is True
        ready = anon.get("/readyz").json()
        assert ready["ok"] is True and ready["database"] in {"sqlite", "postgresql"}
        anon.get("/v1/blueprints")
        metrics = anon.get("/metrics").text
        assert 'kiosk_http_requests_total{method="GET",route="/v1/blueprints",status="401"}' in metrics
        assert anon.get("/docs").status_code == 200
        spec = anon.get("/openapi.json").json()
        assert "/v1/blueprints/{blueprint}/entities/bulk" in spec["paths"]
        assert "BulkBody" in spec["components"]["schemas"]


def test_readyz_reports_an_unreachable_database(live: LiveServer) -> None:
    db = live.app.state.db
    working = db.engine
    # Point the server at a port nothing listens on: a real connection failure, no mock.
    object.__setattr__(db, "engine", sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:9/x"))
    try:
        r = live.admin.get("/readyz")
        assert r.status_code == 503 and r.json()["error"] == "database_unreachable"
    finally:
        object.__setattr__(db, "engine", working)


def test_an_app_that_is_never_served_starts_no_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the app (a config check, a test) must not leave threads polling its database; the
    receivers' writer and processor, like the delivery worker, start with the server's lifespan."""
    (tmp_path / "kiosk.yaml").write_text(
        "receivers:\n  - {name: acr, type: azure, secret: {env: OPS_TEST_RECEIVER_SECRET}}\n"
    )
    monkeypatch.setenv("OPS_TEST_RECEIVER_SECRET", "s" * 32)
    settings = Settings.from_env({"KIOSK_HOME": str(tmp_path / "home"), "KIOSK_CONFIG": str(tmp_path / "kiosk.yaml")})
    before = {t.name for t in threading.enumerate()}
    app = create_app(settings)
    try:
        started = {t.name for t in threading.enumerate()} - before
        assert not {name for name in started if name.startswith("kiosk-")}
    finally:
        app.state.db.dispose()


def test_fastapis_opentelemetry_is_opt_in(tmp_path: Path) -> None:
    """Off unless KIOSK_OTEL asks for it: FastAPI would otherwise ask the global OpenTelemetry
    providers on every request whether they are configured."""
    env = {"KIOSK_HOME": str(tmp_path / "home")}
    assert Settings.from_env(env).otel is False
    assert Settings.from_env({**env, "KIOSK_OTEL": "true"}).otel is True
    for otel, expected in ((False, False), (True, True)):
        app = create_app(Settings.from_env({**env, "KIOSK_OTEL": str(otel).lower()}))
        try:
            flags = app._telemetry  # FastAPI's resolved telemetry settings
            assert (flags["tracing"], flags["metrics"], flags["logs"]) == (expected, expected, expected)
        finally:
            app.state.db.dispose()
