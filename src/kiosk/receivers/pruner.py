"""The event pruner: deletes old received events, in small batches.

Every kiosk process runs one round every ``retention.intervalMinutes``, together with the queue's
own pruner (:mod:`kiosk.store.queue_retention`), as one retention round
(:mod:`kiosk.runtime.retention`); what a round deletes is decided by
:mod:`kiosk.receivers.retention` and done with the statements of :mod:`kiosk.receivers.store`.
A round:

1. reads which events pending or leased ``receiver_event`` jobs name (never deleted, whatever
   their age — with the events' own ``processing`` state, rechecked by every DELETE);
2. walks the events oldest first through the primary key and deletes those past
   ``receiverEvents.maxAgeDays``, stopping at the first batch that holds a young one;
3. for each receiver holding more than ``receiverEvents.maxPerReceiver`` events, deletes the
   processed ones older than its newest ``maxPerReceiver``.

**Bounded batches.** Each batch — at most ``batch`` rows read and deleted — is its own short
transaction followed by a rest (:mod:`kiosk.store.pacing`); a stop request ends the round between
batches.

**Several processes.** Rounds of several kiosk processes on one database may overlap. On
PostgreSQL each batch locks the rows it picks ``FOR UPDATE SKIP LOCKED``, so concurrent rounds
take disjoint rows and never wait on or deadlock with each other; on SQLite write transactions are
serialised anyway. Every DELETE rechecks its own conditions (processed, old enough), so a row that
changed since it was read is kept.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from kiosk.receivers import store
from kiosk.receivers.retention import Cutoffs, Policy, cutoffs, deletable, old_batch, over_cap, unprocessed_events
from kiosk.store.engine import Database
from kiosk.store.pacing import BATCH, Batching, Pacer
from kiosk.store.queue import unfinished_payloads, utcnow
from kiosk.watches.events import EVENT_JOB

__all__ = ["EventPruner", "PrunedEvents"]


@dataclass
class PrunedEvents:
    """What one round deleted; ``stopped`` when a stop request ended it early."""

    events_by_age: int = 0
    events_by_cap: int = 0
    batches: int = 0
    stopped: bool = False

    @property
    def deleted(self) -> int:
        return self.events_by_age + self.events_by_cap


class EventPruner:
    """Runs pruning rounds (:meth:`run`) for one policy on one database. ``batch`` and ``rest``
    size and pace the batches (:class:`kiosk.store.pacing.Batching`); tests pass ``rest=0``."""

    def __init__(self, db: Database, policy: Policy, *, batch: int = BATCH, rest: float = 1.0) -> None:
        self.db = db
        self.policy = policy
        self.batching = Batching(batch, rest)

    def run(self, now: datetime | None = None, *, stop: threading.Event | None = None) -> PrunedEvents:
        """One round at ``now`` (default: the clock); ``stop`` set ends it between two batches."""
        cut = cutoffs(self.policy, now or utcnow())
        report = PrunedEvents()
        return self.batching.run_round(report, lambda pace: self._prune(cut, report, pace), stop)

    def _prune(self, cut: Cutoffs, report: PrunedEvents, pace: Pacer) -> None:
        with self.db.connect() as conn:
            keep = unprocessed_events(unfinished_payloads(conn, EVENT_JOB))
        self._by_age(cut, keep, report, pace)
        self._by_cap(cut, keep, report, pace)

    # -------------------------------------------------------------------------------- batches

    def _by_age(self, cut: Cutoffs, keep: frozenset[int], report: PrunedEvents, pace: Pacer) -> None:
        after = 0
        while True:
            deleted, more, after = pace(self._age_step, cut, keep, after)
            report.events_by_age += deleted
            if not more:
                return

    def _age_step(self, cut: Cutoffs, keep: frozenset[int], after: int) -> tuple[int, bool, int]:
        with self.db.begin() as conn:
            rows = store.old_events(conn, after=after, limit=self.batching.size)
            chosen = old_batch(rows, before=cut.events_before, limit=self.batching.size, keep=keep)
            return store.delete_events(conn, chosen.delete), chosen.more, chosen.last

    def _by_cap(self, cut: Cutoffs, keep: frozenset[int], report: PrunedEvents, pace: Pacer) -> None:
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
                deleted, read, after = pace(self._cap_step, project, receiver, floor, keep, after)
                report.events_by_cap += deleted
                if read < self.batching.size:
                    break

    def _cap_step(
        self, project: str, receiver: str, floor: int, keep: frozenset[int], after: int
    ) -> tuple[int, int, int]:
        with self.db.begin() as conn:
            ids = store.capped_events(conn, project, receiver, below=floor, after=after, limit=self.batching.size)
            return store.delete_events(conn, deletable(ids, keep)), len(ids), ids[-1] if ids else after
