"""Work run in several threads at once, for the tests that race writers against each other."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def run_together(work: Callable[[], T], count: int, *, timeout: float) -> tuple[list[T], list[BaseException]]:
    """Run ``work`` in ``count`` threads that start it at the same moment (a barrier), and join each
    for up to ``timeout`` seconds: what the calls returned, in the order they finished, and what they
    raised. Errors are returned rather than raised so the test asserts on them with the rest."""
    start = threading.Barrier(count)
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            results.append(work())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return results, errors
