"""The retention pruner: deletes old received events and finished queue jobs, in small batches.

Every kiosk process runs one round every ``retention.intervalMinutes`` (see
:func:`kiosk.web.background.retention_pruner`); what a round deletes is decided by
:mod:`kiosk.receivers.retention` and done with the statements of :mod:`kiosk.receivers.store` and
:func:`kiosk.store.queue.prune_jobs`. A round:

1. reads which events pending or leased ``receiver_event`` jobs name (never deleted, whatever
   their age — with the events' own ``processing`` state, rechecked by every DELETE);
2. walks the events oldest first through the primary key and deletes those past
   ``receiverEvents.maxAgeDays``, stopping at the first batch that holds a young one;
3. for each receiver holding more than ``receiverEvents.maxPerReceiver`` events, deletes the
   processed ones older than its newest ``maxPerReceiver``;
4. deletes finished jobs past their age (done event jobs, other done jobs, dead jobs).

**Bounded batches.** Each batch — at most ``batch`` rows read and deleted — is its own short
transaction, and the round rests between batches for as long as the batch took: a backlog of a
million rows is cleared over a few minutes without ever holding SQLite's write lock for more
than a batch, and the intake's writer (which waits on that lock) gets at least every other turn.
A stop request ends the round between batches.

**Several processes.** Rounds of several kiosk processes on one database may overlap. On
PostgreSQL each batch locks the rows it picks ``FOR UPDATE SKIP LOCKED``, so concurrent rounds
take disjoint rows and never wait on or deadlock with each other (nor with a redelivery that has
locked its job); on SQLite write transactions are serialised anyway. Every DELETE rechecks its own
conditions (processed, finished, old enough), so a row that changed since it was read is kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import ParamSpec, TypeVar

from kiosk.receivers import store
from kiosk.receivers.retention import (
    Cutoffs,
    JobRule,
    Policy,
    cutoffs,
    deletable,
    job_rules,
    old_batch,
    over_cap,
    unprocessed_events,
)
from kiosk.store.engine import Database
from kiosk.store.queue import prune_jobs, unfinished_payloads, utcnow
from kiosk.watches.events import EVENT_JOB

__all__ = ["BATCH", "PruneReport", "RetentionPruner"]

log = logging.getLogger("kiosk.retention")

#: Rows per batch (one transaction): a few milliseconds of SQLite's write lock for typical events.
BATCH = 500

T = TypeVar("T")
P = ParamSpec("P")


@dataclass
class PruneReport:
    """What one round deleted; ``stopped`` when a stop request ended it early."""

    events_by_age: int = 0
    events_by_cap: int = 0
    jobs: dict[str, int] = field(default_factory=lambda: {"done": 0, "dead": 0})
    batches: int = 0
    stopped: bool = False

    @property
    def deleted(self) -> int:
        return self.events_by_age + self.events_by_cap + sum(self.jobs.values())


class _Stop(Exception):
    """Raised between batches when the round must end (the server is stopping)."""


class RetentionPruner:
    """Runs pruning rounds (:meth:`run`) for one policy on one database.

    ``rest`` is the pause after each batch as a multiple of the time the batch took (1.0: the pruner
    holds the write lock at most half the time); tests pass 0.
    """

    def __init__(self, db: Database, policy: Policy, *, batch: int = BATCH, rest: float = 1.0) -> None:
        if batch <= 0:
            raise ValueError("batch must be positive")
        self.db = db
        self.policy = policy
        self.batch = batch
        self.rest = rest

    def run(self, now: datetime | None = None, *, stop: threading.Event | None = None) -> PruneReport:
        """One round at ``now`` (default: the clock); ``stop`` set ends it between two batches."""
        cut = cutoffs(self.policy, now or utcnow())
        report = PruneReport()
        halt = stop or threading.Event()
        try:
            with self.db.connect() as conn:
                keep = unprocessed_events(unfinished_payloads(conn, EVENT_JOB))
            self._by_age(cut, keep, report, halt)
            self._by_cap(cut, keep, report, halt)
            self._jobs(cut, report, halt)
        except _Stop:
            report.stopped = True
        return report

    # -------------------------------------------------------------------------------- batches

    def _batch(
        self, report: PruneReport, halt: threading.Event, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``work`` (one write transaction), then rest in proportion; raise _Stop if asked to."""
        if halt.is_set():
            raise _Stop
        started = time.monotonic()
        result = work(*args, **kwargs)
        report.batches += 1
        if halt.wait(max(0.0, (time.monotonic() - started) * self.rest)):
            raise _Stop
        return result

    def _by_age(self, cut: Cutoffs, keep: frozenset[int], report: PruneReport, halt: threading.Event) -> None:
        after = 0
        while True:
            deleted, more, after = self._batch(report, halt, self._age_step, cut, keep, after)
            report.events_by_age += deleted
            if not more:
                return

    def _age_step(self, cut: Cutoffs, keep: frozenset[int], after: int) -> tuple[int, bool, int]:
        with self.db.begin() as conn:
            rows = store.old_events(conn, after=after, limit=self.batch)
            chosen = old_batch(rows, before=cut.events_before, limit=self.batch, keep=keep)
            return store.delete_events(conn, chosen.delete), chosen.more, chosen.last

    def _by_cap(self, cut: Cutoffs, keep: frozenset[int], report: PruneReport, halt: threading.Event) -> None:
        with self.db.connect() as conn:
            counts = store.receiver_counts(conn)
            floors = {
                key: store.cap_floor(conn, key[0], key[1], cut.events_per_receiver)
                for key in over_cap(counts, cut.events_per_receiver)
            }
        for (project, receiver), floor in floors.items():
            if floor is None:  # pruned below the cap since it was counted
                continue
            after = 0
            while True:
                deleted, read, after = self._batch(report, halt, self._cap_step, project, receiver, floor, keep, after)
                report.events_by_cap += deleted
                if read < self.batch:
                    break

    def _cap_step(
        self, project: str, receiver: str, floor: int, keep: frozenset[int], after: int
    ) -> tuple[int, int, int]:
        with self.db.begin() as conn:
            ids = store.capped_events(conn, project, receiver, below=floor, after=after, limit=self.batch)
            return store.delete_events(conn, deletable(ids, keep)), len(ids), ids[-1] if ids else after

    def _jobs(self, cut: Cutoffs, report: PruneReport, halt: threading.Event) -> None:
        for rule in job_rules(cut):
            while True:
                deleted = self._batch(report, halt, self._job_step, rule)
                report.jobs[rule.status] += deleted
                if deleted < self.batch:
                    break

    def _job_step(self, rule: JobRule) -> int:
        with self.db.begin() as conn:
            return prune_jobs(
                conn,
                status=rule.status,
                finished_before=rule.before,
                limit=self.batch,
                kinds=rule.kinds,
                skip_kinds=rule.skip_kinds,
            )
