"""The queue consumers' thread: started once, woken early, stopped with a deadline."""

from __future__ import annotations

import threading
import time

import pytest

from kiosk.store.queue_thread import QueueThread


def test_a_woken_loop_runs_again_and_stop_ends_it() -> None:
    rounds = 0

    def loop() -> None:  # a consumer loop as the delivery worker and the event processor write theirs
        nonlocal rounds
        while not consumer.stopping.is_set():
            consumer.wake.clear()
            rounds += 1
            consumer.wake.wait(60)

    consumer = QueueThread(loop, name="kiosk-test-consumer", what="test consumer")
    consumer.start()
    try:
        with pytest.raises(RuntimeError, match="the test consumer is already running"):
            consumer.start()
        deadline = time.monotonic() + 10
        while rounds < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        consumer.wake.set()
        while rounds < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert rounds == 2
        assert any(t.name == "kiosk-test-consumer" and t.daemon for t in threading.enumerate())
    finally:
        assert consumer.stop(10)
    assert not any(t.name == "kiosk-test-consumer" for t in threading.enumerate())


def test_stop_without_start_is_done_and_it_starts_again_after_a_stop() -> None:
    ended = threading.Event()
    thread = QueueThread(ended.set, name="kiosk-test-once", what="test consumer")
    assert thread.stop(1)
    thread.start()
    assert ended.wait(10)
    assert thread.stop(10)
    ended.clear()
    thread.start()  # stopping was cleared: a restarted loop does not see the old stop request
    assert ended.wait(10)
    assert not thread.stopping.is_set()
    assert thread.stop(10)
