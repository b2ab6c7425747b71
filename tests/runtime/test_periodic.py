"""``Periodic``: the first delay, the interval, an early end, and a prompt stop."""

from __future__ import annotations

import threading
import time

from kiosk.runtime.periodic import Periodic


def test_periodic_waits_its_first_delay_and_stops_at_once() -> None:
    calls: list[float] = []
    task = Periodic("t", 60.0, lambda: bool(calls.append(time.monotonic())), first_delay=30.0).start()
    assert not task.stopping.is_set()
    started = time.monotonic()
    task.stop()
    assert time.monotonic() - started < 5 and calls == [] and task.stopping.is_set()


def test_periodic_runs_again_until_work_says_done() -> None:
    done = threading.Event()
    calls: list[int] = []

    def work() -> bool:
        calls.append(1)
        if len(calls) == 3:
            done.set()
            return True
        return False

    task = Periodic("t", 0.01, work).start()
    assert done.wait(10)
    task.stop()
    assert len(calls) == 3
