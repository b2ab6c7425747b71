"""Bounded batches for background deletes: each batch its own short write transaction, then a rest.

The retention pruners (:mod:`kiosk.receivers.pruner` for received events,
:mod:`kiosk.store.queue_retention` for finished jobs) delete a backlog in batches of at most
``batch`` rows. Each batch is one short transaction, and the round rests after it for as long as
the batch took (``rest`` times that: 1.0 holds the write lock at most half the time): a backlog of
a million rows is cleared over a few minutes without ever holding SQLite's write lock for more
than a batch, and the receivers' writer (which waits on that lock) gets at least every other turn.
A stop request ends the round between batches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, Protocol, TypeVar

__all__ = ["BATCH", "Batching", "Pacer", "RoundReport", "Stopped"]

#: Rows per batch (one transaction): a few milliseconds of SQLite's write lock for typical rows.
BATCH = 500

T = TypeVar("T")
P = ParamSpec("P")


class RoundReport(Protocol):
    """What a round reports beyond its own counts: how many batches it ran, and whether a stop
    request ended it early."""

    batches: int
    stopped: bool


R = TypeVar("R", bound=RoundReport)


class Stopped(Exception):
    """Raised between batches when the round must end (the server is stopping)."""


class Pacer:
    """Runs the batches of one round: counts them, rests after each, and raises :class:`Stopped`
    once ``stop`` is set (checked before each batch and during each rest)."""

    def __init__(self, *, rest: float = 1.0, stop: threading.Event | None = None) -> None:
        self.rest = rest
        self.batches = 0
        self._stop = stop or threading.Event()

    def __call__(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``work`` (one write transaction), then rest in proportion; raise Stopped if asked to."""
        if self._stop.is_set():
            raise Stopped
        started = time.monotonic()
        result = work(*args, **kwargs)
        self.batches += 1
        if self._stop.wait(max(0.0, (time.monotonic() - started) * self.rest)):
            raise Stopped
        return result


@dataclass(frozen=True)
class Batching:
    """How a pruner works through a backlog: ``size`` rows per batch, then a rest of ``rest`` times
    the batch's duration (1.0: the pruner holds the write lock at most half the time; tests pass 0)."""

    size: int = BATCH
    rest: float = 1.0

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError("batch must be positive")

    def run_round(self, report: R, work: Callable[[Pacer], None], stop: threading.Event | None = None) -> R:
        """Run one round, ``work``, its batches paced by a new :class:`Pacer`; a stop request ends it
        between batches (``report.stopped``). Returns ``report``, which ``work`` filled as it went,
        so a stopped round still says what it did."""
        pace = Pacer(rest=self.rest, stop=stop)
        try:
            work(pace)
        except Stopped:
            report.stopped = True
        report.batches = pace.batches
        return report
