"""The scheduler of kiosk's periodic work: one daemon thread per task, sleeping on an Event.

Periodic tasks are derived from config and the database, so they need no durable queue: if the
server stops halfway, the next start does the same work again. Each sleeps on an Event, so
``stop()`` returns at once (long work checks :attr:`Periodic.stopping` between its steps).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["Periodic"]

log = logging.getLogger("kiosk.background")


class Periodic:
    """Call ``work()`` after ``first_delay`` seconds (default: at once), then every ``interval`` seconds
    until stopped; ``work`` returns True to stop early."""

    def __init__(self, name: str, interval: float, work: Callable[[], bool], *, first_delay: float = 0.0) -> None:
        self.name = name
        self.interval = interval
        self.first_delay = first_delay
        self._work = work
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"kiosk-{name}", daemon=True)

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    @property
    def stopping(self) -> threading.Event:
        """Set once :meth:`stop` is called: long work waits on it between steps, to end promptly."""
        return self._stop

    def _loop(self) -> None:
        if self.first_delay > 0 and self._stop.wait(self.first_delay):
            return
        while not self._stop.is_set():
            try:
                if self._work():
                    return
            except Exception:  # one failed round must not end the loop
                log.exception("background task %s failed", self.name)
            self._stop.wait(self.interval)
