"""One retention round: old received events, then finished queue jobs, at one ``now``.

The receivers prune their events (:mod:`kiosk.receivers.pruner`), the queue its finished jobs
(:mod:`kiosk.store.queue_retention`); this module joins the two under the ``retention:`` section
of kiosk.yaml (:class:`kiosk.config.model.RetentionConfig`), handing the queue the receivers'
rule that an event's job lives as long as the event (:func:`kiosk.receivers.retention.kept_jobs`).
Every kiosk process runs one round every ``intervalMinutes`` (:func:`kiosk.runtime.tasks.retention_pruner`);
rounds of several processes on one database are safe together (see the two pruners).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kiosk.config.model import RetentionConfig
from kiosk.ingest.events import kept_event_jobs
from kiosk.receivers.pruner import EventPruner
from kiosk.receivers.retention import Policy, kept_jobs
from kiosk.store.engine import Database
from kiosk.store.pacing import BATCH
from kiosk.store.queue import utcnow
from kiosk.store.queue_retention import JobPolicy, JobPruner

__all__ = ["PruneReport", "RetentionPruner", "policies"]


def policies(retention: RetentionConfig, integrations: Iterable[str] = ()) -> tuple[Policy, JobPolicy]:
    """The events' policy and the jobs' policy of ``retention:``: done jobs of received events kept
    as long as the events, those of ``integrations``' live events as long as Azure redelivers."""
    events = Policy.from_config(retention)
    jobs = JobPolicy(
        done_max_age=timedelta(days=retention.jobs.doneMaxAgeDays),
        dead_max_age=timedelta(days=retention.jobs.deadMaxAgeDays),
        done_kept_at_least={**kept_jobs(events), **kept_event_jobs(integrations)},
    )
    return events, jobs


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


class RetentionPruner:
    """Runs retention rounds (:meth:`run`): the events' pruner, then the jobs' pruner.

    ``batch`` and ``rest`` are both pruners' (see :mod:`kiosk.store.pacing`); tests pass ``rest=0``.
    """

    def __init__(
        self,
        db: Database,
        events: Policy | None = None,
        jobs: JobPolicy | None = None,
        *,
        batch: int = BATCH,
        rest: float = 1.0,
    ) -> None:
        events = events or Policy()
        # By default the jobs' own defaults, with the receivers' rule: an event's job lives as long as the event.
        jobs = jobs or JobPolicy(done_kept_at_least=kept_jobs(events))
        self.events = EventPruner(db, events, batch=batch, rest=rest)
        self.jobs = JobPruner(db, jobs, batch=batch, rest=rest)

    @classmethod
    def from_config(cls, db: Database, retention: RetentionConfig, integrations: Iterable[str] = ()) -> RetentionPruner:
        return cls(db, *policies(retention, integrations))

    def run(self, now: datetime | None = None, *, stop: threading.Event | None = None) -> PruneReport:
        """One round at ``now`` (default: the clock; one ``now`` for the whole round, so its parts
        agree); ``stop`` set ends it between two batches."""
        at = now or utcnow()
        events = self.events.run(at, stop=stop)
        report = PruneReport(events.events_by_age, events.events_by_cap, batches=events.batches, stopped=events.stopped)
        if events.stopped:
            return report
        jobs = self.jobs.run(at, stop=stop)
        report.jobs = jobs.jobs
        report.batches += jobs.batches
        report.stopped = jobs.stopped
        return report
