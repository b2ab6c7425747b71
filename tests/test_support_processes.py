"""tests/support/processes.py: waiting for a server started as a process of its own."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from tests.support.processes import wait_until_answering
from tests.support.servers import free_port, serving


async def status_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers ``/ready`` with 200 and anything else with 404."""
    if scope["type"] != "http":
        return
    status = 200 if scope["path"] == "/ready" else 404
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


def test_it_returns_once_the_url_answers_as_asked() -> None:
    with serving(status_app) as base:
        wait_until_answering(f"{base}/ready", timeout=10)
        wait_until_answering(f"{base}/other", timeout=10, ready=lambda status: status < 500)
        with pytest.raises(RuntimeError, match=r"/other did not answer within 0\.3s"):
            wait_until_answering(f"{base}/other", timeout=0.3)


def test_a_server_that_exits_first_fails_at_once_with_its_log() -> None:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait(timeout=30)
    url = f"http://127.0.0.1:{free_port()}/healthz"
    with pytest.raises(RuntimeError) as caught:
        wait_until_answering(url, process, timeout=600, log=lambda: "what it logged")
    assert str(caught.value) == f"the server exited (3) before {url} answered:\nwhat it logged"
