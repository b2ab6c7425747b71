"""The webhook lane over real HTTP: its paths skip the stack yet keep metrics and a JSON 500."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client import generate_latest
from tests.support.servers import serving

from kiosk.web.lane import WebhookLane
from kiosk.web.metrics import Metrics


async def answer(send: Any, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


async def stack(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Stands for the app's middleware stack: says it was reached."""
    if scope["type"] != "http":
        return
    await answer(send, 404, f"stack:{scope['path']}")


async def endpoint(scope: dict[str, Any], receive: Any, send: Any) -> None:
    params = scope["path_params"]
    if params["digest"] == "boom":
        raise RuntimeError("the endpoint broke")
    await answer(send, 200, f"lane:{params['type']}:{params['digest']}")


def test_lane_paths_skip_the_stack_and_keep_metrics_and_errors() -> None:
    metrics = Metrics()
    app = WebhookLane(stack, prefix="/webhooks", endpoint=endpoint, metrics=metrics)
    with serving(app) as base, httpx.Client(base_url=base) as client:
        assert client.post("/webhooks/azure/abc", content=b"{}").text == "lane:azure:abc"
        # Not exactly two segments under the prefix, or not under it: down the stack as before.
        for path in ("/webhooks/azure", "/webhooks/azure/abc/more", "/webhooks//abc", "/webhooksx/a/b", "/v1/x"):
            r = client.post(path, content=b"{}")
            assert (r.status_code, r.text) == (404, f"stack:{path}"), path
        broken = client.post("/webhooks/azure/boom", content=b"{}")
        assert broken.status_code == 500 and broken.json() == {"error": "internal server error"}
    exposed = generate_latest(metrics.registry).decode()
    assert 'kiosk_http_requests_total{method="POST",route="/webhooks/{type}/{digest}",status="200"} 1.0' in exposed
    assert 'kiosk_http_requests_total{method="POST",route="/webhooks/{type}/{digest}",status="500"} 1.0' in exposed
    assert "abc" not in exposed  # the digest (a secret's hash) never becomes a label
