"""Retention of the durable queue: which finished jobs go (pure rules) and the round that deletes them.

A finished job is deleted once ``done`` for ``done_max_age`` or ``dead`` for ``dead_max_age``
(longer: operators inspect dead letters); pending and leased jobs never are. A kind whose done jobs
must outlive that (``done_kept_at_least``) is kept for the longer of the two ages: a received
event's job carries the dedupe key that recognises the event's redelivery, so the receivers keep
done ``receiver_event`` jobs as long as they keep events (:func:`kiosk.receivers.retention.kept_jobs`).
The newest job of the table is always kept, however old (see :func:`kiosk.store.queue.prune_jobs`).

The settings come from ``retention.jobs`` in kiosk.yaml (:class:`kiosk.config.model.RetentionConfig`,
turned into a :class:`JobPolicy` by :mod:`kiosk.runtime.retention`). :func:`job_rules` decides from
plain values, so the rules are tested without a database; :class:`JobPruner` runs them in bounded
batches (:mod:`kiosk.store.pacing`) with the statement of :func:`kiosk.store.queue.prune_jobs`.
Rounds of several kiosk processes on one database may overlap: on PostgreSQL each batch locks
the rows it picks ``FOR UPDATE SKIP LOCKED``, on SQLite write transactions are serialised anyway,
and every DELETE rechecks status and age, so a job requeued meanwhile is kept.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from kiosk.store.engine import Database
from kiosk.store.pacing import BATCH, Batching, Pacer
from kiosk.store.queue import prune_jobs, utcnow

__all__ = ["JobPolicy", "JobPruner", "JobRule", "PrunedJobs", "job_rules"]


@dataclass(frozen=True)
class JobPolicy:
    """How long finished jobs are kept; ``done_kept_at_least`` keeps the done jobs of some kinds longer."""

    done_max_age: timedelta = timedelta(days=1)
    dead_max_age: timedelta = timedelta(days=30)
    done_kept_at_least: Mapping[str, timedelta] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for age in (self.done_max_age, self.dead_max_age, *self.done_kept_at_least.values()):
            if age <= timedelta(0):
                raise ValueError("retention ages must be positive")


@dataclass(frozen=True)
class JobRule:
    """One pass over the jobs table: delete jobs of ``status`` finished before ``before``,
    of ``kinds`` only (None: every kind) and none of ``skip_kinds``."""

    status: Literal["done", "dead"]
    before: datetime
    kinds: tuple[str, ...] | None = None
    skip_kinds: tuple[str, ...] = ()


def job_rules(policy: JobPolicy, now: datetime) -> list[JobRule]:
    """The passes of a round at ``now``: the done jobs of each longer-kept kind (for the longer of
    its age and ``done_max_age``), the other done jobs, the dead ones."""
    longer = sorted(policy.done_kept_at_least.items())
    rules = [JobRule("done", now - max(policy.done_max_age, age), kinds=(kind,)) for kind, age in longer]
    rules.append(JobRule("done", now - policy.done_max_age, skip_kinds=tuple(kind for kind, _ in longer)))
    rules.append(JobRule("dead", now - policy.dead_max_age))
    return rules


@dataclass
class PrunedJobs:
    """What one round deleted, by status; ``stopped`` when a stop request ended it early."""

    jobs: dict[str, int] = field(default_factory=lambda: {"done": 0, "dead": 0})
    batches: int = 0
    stopped: bool = False

    @property
    def deleted(self) -> int:
        return sum(self.jobs.values())


class JobPruner:
    """Deletes finished jobs past ``policy``, a round (:meth:`run`) at a time, in batches of
    ``batch`` jobs paced by ``rest`` (:class:`kiosk.store.pacing.Batching`)."""

    def __init__(self, db: Database, policy: JobPolicy, *, batch: int = BATCH, rest: float = 1.0) -> None:
        self.db = db
        self.policy = policy
        self.batching = Batching(batch, rest)

    def run(self, now: datetime | None = None, *, stop: threading.Event | None = None) -> PrunedJobs:
        """One round at ``now`` (default: the clock); ``stop`` set ends it between two batches."""
        rules = job_rules(self.policy, now or utcnow())
        report = PrunedJobs()
        return self.batching.run_round(report, lambda pace: self._prune(rules, report, pace), stop)

    def _prune(self, rules: list[JobRule], report: PrunedJobs, pace: Pacer) -> None:
        for rule in rules:
            while True:
                deleted = pace(self._step, rule)
                report.jobs[rule.status] += deleted
                if deleted < self.batching.size:
                    break

    def _step(self, rule: JobRule) -> int:
        with self.db.begin() as conn:
            return prune_jobs(
                conn,
                status=rule.status,
                finished_before=rule.before,
                limit=self.batching.size,
                kinds=rule.kinds,
                skip_kinds=rule.skip_kinds,
            )
