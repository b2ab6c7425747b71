"""The thread of a job-queue consumer: one daemon thread, woken early, stopped with a deadline.

The queue's consumers in a kiosk process — the delivery worker's dispatcher
(:mod:`kiosk.delivery.worker`) and the event processor (:mod:`kiosk.watches.processor`) — each run
their loop in one daemon thread with the same lifecycle: started once, sleeping on :attr:`wake`
between rounds (so a producer's ``notify()`` after a commit in this process finds the work at once
instead of at the next poll), and ended by setting :attr:`stopping` — the loop finishes what it
holds and returns, and :meth:`QueueThread.stop` waits for that up to a deadline.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["QueueThread"]


class QueueThread:
    """Runs ``loop`` in a daemon thread named ``name``; ``what`` names the consumer in errors.

    ``loop`` reads :attr:`stopping` to know when to end, and waits on :attr:`wake` (which it clears
    before each round) instead of sleeping.
    """

    def __init__(self, loop: Callable[[], None], *, name: str, what: str) -> None:
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self._loop = loop
        self._name = name
        self._what = what
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"the {self._what} is already running")
        self.stopping.clear()
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Set :attr:`stopping`, wake the loop and wait for it to end; True when it ended within
        ``timeout`` seconds (or was never started)."""
        thread = self._thread
        if thread is None:
            return True
        self.stopping.set()
        self.wake.set()
        thread.join(timeout)
        self._thread = None
        return not thread.is_alive()
