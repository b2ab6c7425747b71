"""What the event pruner deletes: the policy as cutoffs, and the choice within each batch. Pure.

The rules (``retention.receiverEvents`` in kiosk.yaml, :class:`kiosk.config.model.RetentionConfig`):

* A received event is deleted once it is older than ``receiverEvents.maxAgeDays``, or once it is
  not among the newest ``receiverEvents.maxPerReceiver`` of its receiver — but **never while it is
  unprocessed**: its processing is pending, or a pending or leased job names it. The sender was told
  it was stored; it must survive until it is processed. (So a receiver may hold more than its cap
  while a backlog waits.) Its reaction records go with it.
* A received event's job carries the dedupe key that recognises the event's redelivery, so done
  ``receiver_event`` jobs are kept as long as events are (:func:`kept_jobs`, handed to the queue's
  own retention, :mod:`kiosk.store.queue_retention`): a redelivery is recognised for as long as
  the event history goes back.
* ``watch_states`` (a watch's last refresh) is never pruned.
* The newest event is always kept, however old: SQLite hands the largest id plus one to a new row,
  so deleting the newest rows would give their ids out again, and an id must name one event forever.

The SQL is elsewhere (:mod:`kiosk.receivers.store`) and the round that runs it is
:mod:`kiosk.receivers.pruner`'s; this module decides, from plain values, so the rules are tested
without a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from kiosk.watches.events import EVENT_JOB

if TYPE_CHECKING:
    from kiosk.config.model import RetentionConfig

__all__ = [
    "Cutoffs",
    "OldBatch",
    "Policy",
    "cutoffs",
    "deletable",
    "kept_jobs",
    "old_batch",
    "over_cap",
    "unprocessed_events",
]


@dataclass(frozen=True)
class Policy:
    """The event retention settings as durations (see the module docstring for what each one keeps)."""

    event_max_age: timedelta = timedelta(days=7)
    events_per_receiver: int = 10_000

    def __post_init__(self) -> None:
        if self.events_per_receiver < 1:
            raise ValueError("events_per_receiver must be at least 1")
        if self.event_max_age <= timedelta(0):
            raise ValueError("retention ages must be positive")

    @classmethod
    def from_config(cls, retention: RetentionConfig) -> Policy:
        return cls(
            event_max_age=timedelta(days=retention.receiverEvents.maxAgeDays),
            events_per_receiver=retention.receiverEvents.maxPerReceiver,
        )


@dataclass(frozen=True)
class Cutoffs:
    """One round's policy at ``now``: what was received before ``events_before`` goes."""

    events_before: datetime
    events_per_receiver: int


def cutoffs(policy: Policy, now: datetime) -> Cutoffs:
    """The cutoffs of a round at ``now`` (one ``now`` for the whole round, so its parts agree)."""
    return Cutoffs(events_before=now - policy.event_max_age, events_per_receiver=policy.events_per_receiver)


def kept_jobs(policy: Policy) -> dict[str, timedelta]:
    """The done jobs the queue's retention must keep longer: an event's job holds its dedupe key,
    so it is kept while the event is, at least (:attr:`kiosk.store.queue_retention.JobPolicy.done_kept_at_least`)."""
    return {EVENT_JOB: policy.event_max_age}


def unprocessed_events(payloads: Iterable[Mapping[str, Any]]) -> frozenset[int]:
    """Event ids named by pending or leased ``receiver_event`` jobs (their payloads): never pruned."""
    out: set[int] = set()
    for payload in payloads:
        event = payload.get("event")
        if isinstance(event, int) and not isinstance(event, bool):
            out.add(event)
    return frozenset(out)


@dataclass(frozen=True)
class OldBatch:
    """What to do with one batch of the walk by age: delete ``delete``; go on after ``last`` when ``more``."""

    delete: list[int]
    more: bool
    last: int


def old_batch(rows: Sequence[tuple[int, datetime]], *, before: datetime, limit: int, keep: frozenset[int]) -> OldBatch:
    """Choose, from a batch of processed events read oldest first (``(id, received at)``), those
    received before ``before`` and not in ``keep``; and whether the walk goes on.

    Ids grow with arrival, so once a batch holds an event young enough to keep, the rest of the
    table is younger still and the walk stops. (Arrival times and ids can disagree by the few
    milliseconds between a request's arrival and its group commit, or by clock skew between kiosk
    processes; an old event behind a young one is then pruned a round later, never too early —
    each event's own time is what is compared.) A short batch is the end of the table.
    """
    delete = [event_id for event_id, received_at in rows if received_at < before and event_id not in keep]
    young = any(received_at >= before for _, received_at in rows)
    last = rows[-1][0] if rows else 0
    return OldBatch(delete, more=len(rows) >= limit and not young, last=last)


def over_cap(counts: Mapping[tuple[str, str], int], cap: int) -> list[tuple[str, str]]:
    """The ``(project, receiver)`` pairs holding more than ``cap`` events, in a stable order."""
    return sorted(key for key, count in counts.items() if count > cap)


def deletable(event_ids: Sequence[int], keep: frozenset[int]) -> list[int]:
    """The ids of a batch beyond a receiver's cap that may go: all but those in ``keep``."""
    return [event_id for event_id in event_ids if event_id not in keep]
