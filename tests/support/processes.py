"""Servers the tests and benchmarks start as processes of their own (``kiosk demo``, ``kiosk
emulator``, kiosk's server, an emulator app under load): waiting until one answers over HTTP.

One loop for all of them, so each start-up fails the same way: at once when the process ends
before it answers (with what it logged, when the caller can say), otherwise after ``timeout``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx


def answers_200(status: int) -> bool:
    """A health route's answer once the server is ready."""
    return status == 200


def wait_until_answering(
    url: str,
    process: subprocess.Popen[Any] | None = None,
    *,
    timeout: float = 60.0,
    ready: Callable[[int], bool] = answers_200,
    interval: float = 0.1,
    log: Callable[[], str] | None = None,
) -> None:
    """Poll ``GET url`` until its status is ``ready`` (default: 200). RuntimeError when ``process``
    (the server, if the caller started it) exits first or ``timeout`` seconds pass; the message
    ends with ``log()`` (the server's output) when given."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready(httpx.get(url, timeout=2.0).status_code):
                return
        except httpx.TransportError:
            pass
        if process is not None and process.poll() is not None:
            problem = f"the server exited ({process.returncode}) before {url} answered"
        elif time.monotonic() > deadline:
            problem = f"{url} did not answer within {timeout:g}s"
        else:
            time.sleep(interval)
            continue
        raise RuntimeError(problem + (f":\n{log()}" if log is not None else ""))
