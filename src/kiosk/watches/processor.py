"""The event processor: takes accepted events from the job queue and fires their watches' reactions.

The intake stored each event with the names of the watches it matched, recorded those watches'
refreshes, and — when one of them has reactions — left a pending ``receiver_event`` job. This
worker (one thread per kiosk process; several processes share the queue) claims those jobs in
batches and, for each event and each matched watch, fires the watch's reactions (run an action,
upsert an entity); then it settles the jobs and sets the events' processing state in one
transaction per batch.

At least once, and idempotent where it matters: a reaction's outcome is recorded (in
``receiver_event_reactions``) right after it fires, and a retried job skips the reactions already
recorded. A reaction commits on its own before that record (``Runs.start_run`` and
``Catalog.upsert_entity`` each open their own transaction), so a crash exactly between the two
fires it again when the job is retried — which is harmless for both:

* ``runAction`` starts its run with an idempotency key derived from (event id, watch, reaction
  position) (:func:`kiosk.watches.reactions.reaction_key`): the run id follows from the key and is
  inserted "on conflict do nothing", so the repeat returns the run the first attempt stored, with
  no second run and no second delivery, even if two processes fire it at once.
* ``upsertEntity`` merges the same mapped fields into the same entity again: the entity ends the
  same (its ``updatedAt`` moves, and an automation on entity updates may see the second write).

Failures: a reaction that fails for good (the action refuses its inputs, say) is recorded and the
event still counts as processed; a database error retries the whole event with a growing delay
(reactions already recorded are not repeated), and after :data:`MAX_ATTEMPTS` the job is dead and
the event's processing state ``failed``.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from kiosk.store.engine import Database
from kiosk.store.queue import Job, JobQueue, JobResult, utcnow
from kiosk.store.queue_thread import QueueThread
from kiosk.watches import store
from kiosk.watches.events import EVENT_JOB
from kiosk.watches.reactions import Reactor, TransientReactionError, event_document

__all__ = ["EventProcessor"]

log = logging.getLogger("kiosk.watches")

MAX_ATTEMPTS = 8
#: Delay before retry n (seconds): 1, 2, 4 ... capped at 5 minutes.
_BACKOFF_CAP = 300.0
#: Events claimed at once: reactions are real work (a run, an entity write), so the lease must cover
#: a batch of them comfortably, and a retry waits behind no more than this.
BATCH = 32


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(_BACKOFF_CAP, 2.0 ** max(0, attempts - 1)))


class EventProcessor:
    """Processes stored events. ``start()``/``stop()`` for a server; ``run_once()`` for tests."""

    def __init__(
        self,
        db: Database,
        reactor: Reactor,
        *,
        worker_id: str,
        poll_seconds: float = 1.0,
        lease_seconds: float = 120.0,
        batch: int = BATCH,
    ) -> None:
        self.db = db
        self.reactor = reactor
        self.queue = JobQueue(db, worker_id, lease_seconds=lease_seconds)
        self._poll = poll_seconds
        self._batch = batch
        self._thread = QueueThread(self._loop, name="kiosk-event-processor", what="event processor")
        self._next_expiry_check = 0.0

    # ------------------------------------------------------------------------------ control

    def notify(self) -> None:
        """Events were committed in this process: look for them now instead of at the next poll."""
        self._thread.wake.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> bool:
        """Finish the batch in hand and end the thread; True when it ended within ``timeout``."""
        return self._thread.stop(timeout)

    def _loop(self) -> None:
        stopping, wake = self._thread.stopping, self._thread.wake
        while not stopping.is_set():
            wake.clear()
            try:
                processed = self.run_once(self._batch)
            except Exception:
                log.exception("event processor step failed")
                processed = 0
                stopping.wait(min(1.0, self._poll))
            if processed < self._batch:
                wake.wait(self._poll)

    # ----------------------------------------------------------------------------- one round

    def run_once(self, limit: int = BATCH) -> int:
        """Claim up to ``limit`` due events, fire their reactions, record the outcome; how many were claimed."""
        expired = time.monotonic() >= self._next_expiry_check
        if expired:
            self._next_expiry_check = time.monotonic() + self._poll
        jobs = self.queue.claim([EVENT_JOB], limit, expired=expired)
        if not jobs:
            return 0
        ids = [int(job.payload.get("event", 0)) for job in jobs]
        with self.db.connect() as conn:
            events = store.load_events(conn, ids)
            done = store.done_reactions(conn, ids)
        results: list[JobResult] = []
        for job, event_id in zip(jobs, ids, strict=True):
            event = events.get(event_id)
            if event is None:
                results.append(JobResult(job.id, "dead", None, f"event {event_id} no longer exists"))
                continue
            try:
                self._process(event, done)
            except Exception as exc:
                results.append(self._retry_or_give_up(job, exc))
                continue
            results.append(JobResult(job.id, "done"))
        now = utcnow()
        event_of = dict(zip((job.id for job in jobs), ids, strict=True))
        with self.db.begin() as conn:
            held = self.queue.settle(conn, results)
            # Only for jobs still ours: one whose lease ran out belongs to its new holder now.
            for state, outcome in (("done", "done"), ("failed", "dead")):
                finished = [event_of[r.job_id] for r in results if r.status == outcome and r.job_id in held]
                store.mark_events(conn, finished, state, now)
        return len(jobs)

    def _process(self, event: Any, done: set[tuple[int, str, int]]) -> None:
        """Fire the reactions of every watch ``event`` matched (those not fired before)."""
        for match in event.matches or []:
            watch = match.get("watch")
            if not isinstance(watch, str):
                continue
            reactions = self.reactor.reactions(watch)
            for position, reaction in enumerate(reactions):
                if (event.id, watch, position) in done:
                    continue
                data = event_document(event, match, event.payload)
                outcome = self.reactor.react(watch, position, data)
                if outcome.status != "done":
                    log.warning(
                        "watch reaction failed",
                        extra={"watch": watch, "event": event.id, "reaction": reaction.kind, "error": outcome.error},
                    )
                with self.db.begin() as conn:
                    store.record_reaction(
                        conn,
                        event_id=event.id,
                        watch=watch,
                        position=position,
                        kind=reaction.kind,
                        status=outcome.status,
                        run_id=outcome.run_id,
                        entity=outcome.entity,
                        error=outcome.error,
                        at=utcnow(),
                    )
                done.add((event.id, watch, position))

    def _retry_or_give_up(self, job: Job, exc: Exception) -> JobResult:
        reason = str(exc) if isinstance(exc, TransientReactionError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, TransientReactionError):
            log.error("processing a received event failed", exc_info=exc)
        if job.attempts >= MAX_ATTEMPTS:
            return JobResult(job.id, "dead", None, reason)
        return JobResult(job.id, "pending", utcnow() + _backoff(job.attempts), reason)
