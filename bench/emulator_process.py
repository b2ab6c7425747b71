"""An emulator app served in a process of its own, for the benchmarks that load it over HTTP.

The app is built by a factory (``module:function``) and served by kiosk's own server with the
emulator's error body, as ``kiosk emulator`` serves it; the load generator (:func:`bench.common.hammer`)
runs in the benchmark's process, so the two do not share an interpreter.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Mapping

from bench.common import ROOT
from tests.support.processes import wait_until_answering


def serve_emulator_app(factory: str, port: int, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Serve ``factory`` (``module:function`` building an emulator app) on loopback ``port``, with ``env``
    (the factory's settings); wait for it with :func:`wait_until_up`, stop it with :func:`stop_server`."""
    command = [sys.executable, "-m", "kiosk.web.server", factory, "--factory"]
    command += ["--error-body", "kiosk.emulator.errors:server_error_body", "--app-dir", str(ROOT)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return subprocess.Popen(command, cwd=ROOT, env=dict(env))


def wait_until_up(port: int, process: subprocess.Popen[bytes], path: str, *, timeout: float = 120.0) -> None:
    """Until ``path`` answers (any status below 500); RuntimeError if ``process`` ends or ``timeout`` passes."""
    wait_until_answering(f"http://127.0.0.1:{port}{path}", process, timeout=timeout, ready=lambda status: status < 500)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """Stop a server of :func:`serve_emulator_app` as Ctrl-C would (a graceful shutdown)."""
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
