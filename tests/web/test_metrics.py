"""Prometheus counting of requests whose client went away mid-body (``kiosk.web.metrics``, ``kiosk.web.lane``).

Such a request used to be counted as a 500 and logged with a traceback (100 of them wrote 0.5 MB
of stderr). Here 100 clients per route send half a body and hang up, against a real server process.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from tests.support.kiosk_server import fresh_kiosk

from kiosk.receivers.urls import receiver_digest

SECRET = "metrics-test-receiver-secret"
CONFIG = """\
receivers:
  - {name: acr, type: azure, secret: {env: METRICS_TEST_RECEIVER_SECRET}}
"""
CLIENTS = 100
WAIT = 60.0


def samples(base_url: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one metric in ``/metrics``: labels (sorted) -> value."""
    text = httpx.get(f"{base_url}/metrics", timeout=WAIT).text
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def abort_mid_body(port: int, path: str, token: str | None = None) -> None:
    """Send the headers of a 2,000-byte JSON POST and 10 bytes of its body, then hang up."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: kiosk\r\nContent-Type: application/json\r\n{auth}Content-Length: 2000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(head.encode() + b'{"entities')


def test_clients_gone_mid_body_are_client_aborts_not_500s(tmp_path: Path) -> None:
    env = {"METRICS_TEST_RECEIVER_SECRET": SECRET}
    with fresh_kiosk(tmp_path, CONFIG, env=env) as server:
        token = server.token()
        routes = {
            "/v1/auth/access_token": ("/v1/auth/access_token", None),
            "/v1/blueprints/{blueprint}/entities/bulk": ("/v1/blueprints/service/entities/bulk", token),
            "/webhooks/{type}/{digest}": (f"/webhooks/azure/{receiver_digest(None, 'acr', SECRET)}", None),
        }
        for path, auth in routes.values():
            for _ in range(CLIENTS):
                abort_mid_body(server.port, path, auth)

        deadline = time.monotonic() + WAIT
        expected = {(("method", "POST"), ("route", route)): float(CLIENTS) for route in routes}
        while (aborts := samples(server.base_url, "kiosk_http_client_aborts_total")) != expected:
            assert time.monotonic() < deadline, aborts
            time.sleep(0.2)

        answered = samples(server.base_url, "kiosk_http_requests_total")
        assert not [labels for labels in answered if ("status", "500") in labels], answered
        token_request = (("method", "POST"), ("route", "/v1/auth/access_token"), ("status", "200"))
        assert answered.pop(token_request) == 1.0  # the token above; none of the aborted requests
        assert not [labels for labels in answered if dict(labels)["route"] in routes], answered
        assert httpx.get(f"{server.base_url}/healthz", timeout=WAIT).status_code == 200
    output = server.output()
    assert "Traceback" not in output
    assert "Exception in ASGI application" not in output
