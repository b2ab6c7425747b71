"""Running one step's process: its own process group, streamed output lines, deadlines and cancel.

The only part of :mod:`kiosk.pipelines` that starts processes. :func:`run_process` runs a
command line in a new process group, hands each output line to a callback as it arrives (stdout
and stderr apart, for ``failOnStderr``), and on a deadline or a cancel stops the whole group:
SIGTERM, then SIGKILL after a short grace.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["Deadline", "ProcessEnd", "run_process", "signal_group"]

_POLL_SECONDS: Final = 0.05
_KILL_GRACE_SECONDS: Final = 1.0
_DRAIN_SECONDS: Final = 1.0
_MAX_LINE_CHARS: Final = 1 << 20


@dataclass(frozen=True)
class Deadline:
    """When a step must stop, and why (the reason becomes :attr:`ProcessEnd.stopped`)."""

    at: float  # time.monotonic()
    reason: str  # "timeout" | "job-timeout"


@dataclass(frozen=True)
class ProcessEnd:
    """How a process ended: its exit code, what stopped it, and whether it left processes behind."""

    exit_code: int
    stopped: str | None  # None | "timeout" | "job-timeout" | "canceled"
    group: int  # its process group id
    leftovers: bool  # processes of its group still alive (started in the background)


class _LineSplitter:
    """Bytes of one stream → complete text lines (UTF-8, undecodable bytes replaced)."""

    def __init__(self, is_stderr: bool) -> None:
        self.is_stderr = is_stderr
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, chunk: bytes) -> list[str]:
        self._pending += self._decoder.decode(chunk)
        *lines, self._pending = self._pending.split("\n")
        if len(self._pending) > _MAX_LINE_CHARS:  # a huge line without newline: flush it anyway
            lines.append(self._pending)
            self._pending = ""
        return [line.removesuffix("\r") for line in lines]

    def finish(self) -> list[str]:
        rest = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return [rest.removesuffix("\r")] if rest else []


def signal_group(group: int, signum: int) -> None:
    """Signal a whole process group; one that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    on_line: Callable[[str, bool], None],
    deadlines: Sequence[Deadline],
    cancel: threading.Event | None,
) -> ProcessEnd:
    """Run ``argv`` in a new process group, streaming its output lines as they come.

    stdout and stderr are read separately (``failOnStderr`` needs to know which is which) and
    passed on in arrival order. When a deadline passes or ``cancel`` is set the whole group gets
    SIGTERM, then SIGKILL after a short grace. Decision: once the main process has exited, output
    is drained for at most a second, so a background process that keeps the pipe open does not
    hold the step (Azure would wait); such leftovers are reported and killed at the end of the job.
    """
    process = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: timeouts kill the children too
    )
    assert process.stdout is not None and process.stderr is not None
    group = process.pid
    splitters = {process.stdout.fileno(): _LineSplitter(False), process.stderr.fileno(): _LineSplitter(True)}
    selector = selectors.DefaultSelector()
    for fd in splitters:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    stopped: str | None = None
    kill_at: float | None = None
    exited_at: float | None = None
    try:
        while True:
            if selector.get_map():
                for key, _ in selector.select(_POLL_SECONDS):
                    _read_available(key.fd, splitters[key.fd], selector, on_line)
            else:
                time.sleep(_POLL_SECONDS)
            now = time.monotonic()
            running = process.poll() is None
            if stopped is None and running:
                stopped = _due(deadlines, cancel, now)
                if stopped is not None:
                    signal_group(group, signal.SIGTERM)
                    kill_at = now + _KILL_GRACE_SECONDS
            if kill_at is not None and now >= kill_at:
                signal_group(group, signal.SIGKILL)
                kill_at = None
            if not running:
                exited_at = now if exited_at is None else exited_at
                if not selector.get_map() or now - exited_at >= _DRAIN_SECONDS:
                    break
    finally:
        for fd, splitter in splitters.items():
            for line in splitter.finish():
                on_line(line, splitter.is_stderr)
            if fd in selector.get_map():
                selector.unregister(fd)
        selector.close()
        process.stdout.close()
        process.stderr.close()
        if stopped is not None or process.poll() is None:
            signal_group(group, signal.SIGKILL)
        process.wait()
    code = process.returncode
    return ProcessEnd(code if code >= 0 else 128 - code, stopped, group, stopped is None and _group_alive(group))


def _read_available(
    fd: int, splitter: _LineSplitter, selector: selectors.BaseSelector, on_line: Callable[[str, bool], None]
) -> None:
    try:
        chunk = os.read(fd, 65536)
    except BlockingIOError:
        return
    if chunk:
        lines = splitter.feed(chunk)
    else:
        selector.unregister(fd)
        lines = splitter.finish()
    for line in lines:
        on_line(line, splitter.is_stderr)


def _due(deadlines: Sequence[Deadline], cancel: threading.Event | None, now: float) -> str | None:
    if cancel is not None and cancel.is_set():
        return "canceled"
    for deadline in deadlines:
        if now >= deadline.at:
            return deadline.reason
    return None
