"""Real HTTP servers on loopback for the tests and benchmarks: any ASGI app under kiosk's server
(uvicorn) in a thread.

Light on purpose (tests/pg.py and the root conftest import it): kiosk's own app served this way is
in :mod:`tests.support.live_kiosk`; kiosk as a separate process in :mod:`tests.support.kiosk_server`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from kiosk.settings import HttpLimits
from kiosk.web.server import ErrorRenderer, kiosk_error_body, server_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(
    app: Any, port: int | None = None, limits: HttpLimits | None = None, error_body: ErrorRenderer = kiosk_error_body
) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 until the block ends; yields the base URL.

    ``error_body`` shapes what the server itself answers (unparseable requests, timeouts): the
    emulator's tests pass Azure's, as ``kiosk emulator`` does.
    """
    port = port or free_port()
    config = server_config(app, "127.0.0.1", port, limits, log_level="warning", lifespan="on", error_body=error_body)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
