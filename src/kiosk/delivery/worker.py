"""The delivery worker: takes due delivery jobs from the queue, sends them, records every attempt.

Threads: one dispatcher plus a pool of ``workers`` sender threads.

* The sender threads only make HTTP calls (blocking ones, see :mod:`kiosk.delivery.http1`), so ``workers`` is the
  number of requests in flight at once.
* The dispatcher alone touches the database: it claims jobs in batches (one short transaction for
  many jobs), hands them to the pool, and records finished attempts in batches — one transaction
  per batch, after the HTTP calls, never held open during one. Each attempt's three writes (its
  ``delivery_attempts`` row, the ``deliveries`` row, the job) are in the same transaction, so a
  crash leaves all or none of them. One writer also means SQLite's single write lock is never
  contended by the worker's own threads, which is what keeps throughput up (bench/delivery.py).

A delivery is marked delivered only after a 2xx. A worker killed mid-attempt leaves its jobs
leased; after the lease expires any worker claims them again (at least once: receivers dedupe on
``webhook-id``). The lease is several times the request timeout, so a live worker never loses a job
to a slow receiver.

``notify()`` wakes the dispatcher at once after a producer commits a delivery in this process;
without it new work (from other processes, retries, expired leases) is found by polling.

Sealed bodies (a run's secret inputs inside, see :mod:`kiosk.delivery.outbox`) are opened by the
sender thread just before the attempt, with the server's
:class:`~kiosk.actions.secrets.SecretBox`, and live in clear only in that thread's memory: the
secret values are masked in the answer and error recorded for the attempt, and a body that does
not open is a permanent failure that names no content.

A run's **report token** is never stored: its body (and headers) hold the placeholder ``krt_****``
where the token goes, and the sender thread puts the run's token in its place (opening a sealed
body first), so the signature covers the bytes the pipeline receives; the token is masked in the
attempt's record like a secret input (:mod:`kiosk.actions.report_tokens`).

A **synchronized** delivery (a WEBHOOK action with ``synchronized: true``) carries its run's
result: when it is delivered (2xx) the run is finished SUCCESS in the same transaction that
records the attempt, so the two cannot disagree after a crash. A run already finished (the
receiver reported first) is left alone. When it dies, ``on_final``'s owner fails the run as for
any delivery (:func:`kiosk.actions.runs.fail_run_for_delivery` words it for a webhook).
"""

from __future__ import annotations

import heapq
import logging
import os
import queue as queue_module
import secrets as secrets_module
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiosk.actions.inputs import MASK
from kiosk.actions.report_tokens import ReportTokens
from kiosk.actions.runs import RunListener, succeed_run_for_delivery
from kiosk.actions.secrets import OpenedBody, SecretBox, mask_text
from kiosk.delivery import schedule
from kiosk.delivery.config import DeliveryConfig, EgressConfig
from kiosk.delivery.outbox import (
    DELIVERY_JOB,
    AttemptRecord,
    Delivery,
    DeliveryUpdate,
    load_deliveries,
    record_attempts,
)
from kiosk.delivery.sender import Attempt, create_transport, send
from kiosk.store.engine import Database, HeldConnection
from kiosk.store.queue import Job, JobQueue, JobResult, utcnow
from kiosk.store.queue_thread import QueueThread
from kiosk.store.tables import delivery_attempts

__all__ = ["DeliveryWorker", "FinalOutcome", "SecretLookup"]

log = logging.getLogger(__name__)

#: Looks up a signing secret by reference (``"webhook"``, ``"azureDevOps:myorg"``); None if unknown.
SecretLookup = Callable[[str], str | None]

#: How often an idle worker looks for work nobody told it about (other processes, due retries).
DEFAULT_POLL_SECONDS = 1.0
#: Claimed jobs per sender thread. More than one so the threads never wait for the dispatcher;
#: several so claims and records happen in batches (each batch is one transaction).
BACKLOG = 4
#: Longest a finished attempt waits to be recorded with others (seconds).
LINGER = 0.003


@dataclass(frozen=True)
class FinalOutcome:
    """A delivery that reached a final state; given to ``on_final`` after it is committed."""

    delivery_id: str
    run_id: str | None
    source: str
    status: Literal["delivered", "dead"]
    attempts: int
    status_code: int | None
    error: str | None
    #: Its answer is its run's result (a synchronized WEBHOOK action).
    synchronized: bool = False


@dataclass(frozen=True)
class _Result:
    """One processed job: the attempt made (None when nothing was sent) and the verdict on it."""

    job: Job
    delivery: Delivery | None
    attempt: Attempt | None
    decision: schedule.Decision
    finished_at: datetime


def default_worker_id() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets_module.token_hex(4)}"


class DeliveryWorker:
    """Sends stored deliveries. ``start()``/``stop()`` for a server; ``run_once()`` for tests and scripts.

    ``secrets`` resolves a signing reference to the secret (called per attempt, so a rotated secret
    is used from the next attempt on). ``on_final`` is told about every delivery that ends
    delivered or dead; its exceptions are logged, not raised.

    ``box`` opens sealed bodies; by default the server's (its key read from the database the first
    time a sealed body comes along, so a worker that never meets one never reads it).
    ``run_listener`` (the automations) hears of runs a synchronized delivery finishes.
    ``report_tokens`` fills in the report token of a delivery's run at send time (the server's;
    None sends bodies as stored, for a worker that sends no action runs' deliveries).
    """

    def __init__(
        self,
        db: Database,
        config: DeliveryConfig,
        egress: EgressConfig,
        secrets: SecretLookup,
        *,
        worker_id: str | None = None,
        on_final: Callable[[FinalOutcome], None] | None = None,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        lease_seconds: float | None = None,
        box: SecretBox | None = None,
        run_listener: RunListener | None = None,
        report_tokens: ReportTokens | None = None,
    ) -> None:
        self.db = db
        self._report_tokens = report_tokens
        self._box = box
        self._run_listener = run_listener
        self.config = config
        self.worker_id = worker_id or default_worker_id()
        self._secrets = secrets
        self._on_final = on_final
        self._poll = poll_seconds
        # Claimed jobs queue for a sender thread: BACKLOG per thread. The lease covers waiting behind
        # a full backlog of requests that all time out, and then this one, with a margin.
        self._backlog = BACKLOG * config.workers
        lease = lease_seconds or config.lease_seconds or max(60.0, (BACKLOG + 2) * config.timeout_seconds)
        self.queue = JobQueue(db, self.worker_id, lease_seconds=lease)
        self._transport = create_transport(config, egress)
        self._thread = QueueThread(self._dispatch, name="kiosk-delivery-dispatcher", what="delivery worker")
        self._notified = threading.Event()
        # When the retries this worker scheduled fall due (a heap), so it wakes for them exactly
        # instead of at the next poll.
        self._retries_due: list[datetime] = []
        self._next_expiry_check = 0.0
        self._held = HeldConnection(db, "delivery dispatcher")  # the dispatcher thread's own write connection

    # ------------------------------------------------------------------------------ control

    def notify(self) -> None:
        """Work was committed in this process: look for it now instead of at the next poll."""
        self._notified.set()
        self._thread.wake.set()

    def start(self) -> None:
        """Start the dispatcher and its ``workers`` sender threads."""
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop claiming, let attempts in flight finish and be recorded, hand back unstarted jobs.

        True when everything finished within ``timeout`` seconds; otherwise the stragglers' jobs
        stay leased and are retried by whoever claims them after the lease.
        """
        finished = self._thread.stop(timeout)
        if finished:
            self._transport.close()
        else:
            log.warning("delivery worker did not stop within %.0fs; its leases will expire", timeout)
        return finished

    def close(self) -> None:
        """Release the HTTP connections (for a worker used through ``run_once`` only)."""
        self._transport.close()

    # ----------------------------------------------------------------------------- one round

    def run_once(self, limit: int = 100) -> int:
        """Claim what is due now (up to ``limit``), send it, record it; the number of jobs processed.

        Synchronous, one attempt after another. Not to be mixed with a running ``start()``.
        """
        with self.db.begin() as conn:
            jobs, found = self._claim(conn, limit, expired=True)
        if not jobs:
            return 0
        results = [self._process(job, found.get(_delivery_id(job))) for job in jobs]
        with self.db.begin() as conn:
            finals = self._record(conn, results)
        self._report(finals)
        return len(jobs)

    # ------------------------------------------------------------------------------- pieces

    def _claim(self, conn: Connection, limit: int, *, expired: bool) -> tuple[list[Job], dict[str, Delivery]]:
        """Lease up to ``limit`` due delivery jobs and read their deliveries, in ``conn``'s transaction."""
        jobs = self.queue.claim([DELIVERY_JOB], limit, conn=conn, expired=expired)
        return jobs, (load_deliveries(conn, [_delivery_id(job) for job in jobs]) if jobs else {})

    def _secret_for(self, delivery: Delivery) -> tuple[str | None, str | None]:
        """(secret, error): the signing secret, or why there is none."""
        signing = delivery.signing
        if signing is None:
            return None, None
        try:
            secret = self._secrets(signing.secret_ref)
        except Exception as exc:  # the lookup is the embedder's code; its message could echo a value
            log.error("signing secret lookup failed", extra={"ref": signing.secret_ref, "error": type(exc).__name__})
            return None, f"the signing secret {signing.secret_ref!r} could not be read ({type(exc).__name__})"
        if not secret:
            return None, f"no signing secret is configured for {signing.secret_ref!r}"
        return secret, None

    def _server_box(self) -> SecretBox:
        """The box sealed bodies open with (the server's keys, given by whoever made the worker)."""
        if self._box is None:
            raise ValueError("the seal does not open with this server's key: this worker was given no key")
        return self._box

    def _opened(self, delivery: Delivery) -> tuple[Delivery, tuple[str, ...]]:
        """``delivery`` with its body in clear, and the secret values in it (none if it was not
        sealed); ValueError if a sealed body does not open."""
        if not delivery.sealed:
            return delivery, ()
        opened: OpenedBody = self._server_box().open_body(delivery.id, delivery.body)
        return replace(delivery, body=opened.body, sealed=False), opened.secret_values

    def _with_report_token(self, delivery: Delivery) -> tuple[Delivery, str | None]:
        """``delivery`` (opened) with its run's report token in place of the placeholder, and the
        token (None when there was no placeholder, or no run)."""
        if self._report_tokens is None or delivery.run_id is None:
            return delivery, None
        body, headers, token = self._report_tokens.fill(delivery.run_id, delivery.body, delivery.headers)
        if token is None:
            return delivery, None
        return replace(delivery, body=body, headers=headers), token

    def _process(self, job: Job, delivery: Delivery | None) -> _Result:
        """Make one attempt (the HTTP call happens here, outside any transaction) and judge it.

        Never raises: a bug on this path becomes a failed attempt, retried on the schedule and
        dead-lettered when it runs out, instead of a job that comes back after every lease forever.
        """
        try:
            return self._attempt(job, delivery)
        except Exception as exc:
            log.exception("delivery attempt failed inside kiosk", extra={"delivery": _delivery_id(job)})
            now = utcnow()
            error = f"internal error: {type(exc).__name__}"
            attempt = Attempt(now, 0.0, None, error, None)
            number = delivery.attempts + 1 if delivery is not None else job.attempts
            decision = schedule.decide(
                number, status_code=None, error=error, schedule=self.config.retry_schedule, jitter=0.0, now=now
            )
            return _Result(job, delivery, attempt, decision, now)

    def _attempt(self, job: Job, delivery: Delivery | None) -> _Result:
        if delivery is None:
            decision = schedule.Decision("dead", reason=f"delivery {_delivery_id(job)!r} no longer exists")
            return _Result(job, None, None, decision, utcnow())
        secret, missing = self._secret_for(delivery)
        if missing is not None:
            attempt = Attempt(utcnow(), 0.0, None, missing, None, permanent=True)
        else:
            try:
                clear, secret_values = self._opened(delivery)
            except ValueError as exc:
                # No retry can help (the key changed, the row was tampered with); the text names
                # no content.
                log.error("a sealed delivery body does not open", extra={"delivery": delivery.id})
                attempt = Attempt(utcnow(), 0.0, None, f"cannot send: {exc}", None, permanent=True)
            else:
                clear, report_token = self._with_report_token(clear)
                if report_token is not None:
                    secret_values = (*secret_values, report_token)
                attempt = _masked(
                    send(
                        self._transport,
                        clear,
                        secret,
                        timeout=self.config.timeout_seconds,
                        max_response_bytes=self.config.max_response_bytes,
                    ),
                    secret_values,
                )
        now = utcnow()
        if attempt.permanent:
            decision = schedule.Decision("dead", reason=attempt.error)
        else:
            # The delivery's own count of attempts made, not the job's count of claims: claims a
            # crashed worker never acted on must not use up the retry schedule.
            decision = schedule.decide(
                delivery.attempts + 1,
                status_code=attempt.status_code,
                error=attempt.error,
                timed_out=attempt.timed_out,
                retry_after=attempt.retry_after,
                schedule=self.config.retry_schedule,
                jitter=self.config.jitter,
                now=now,
            )
        return _Result(job, delivery, attempt, decision, now)

    def _record(self, conn: Connection, results: Sequence[_Result]) -> list[FinalOutcome]:
        """Write a batch of finished attempts in ``conn``'s transaction; the final outcomes among them.

        Each attempt's row, its delivery's new state and its job's new state are written together.
        """
        if not results:
            return []
        job_results: list[JobResult] = []
        for r in results:
            d = r.decision
            if d.status == "delivered":
                job_results.append(JobResult(r.job.id, "done"))
            elif d.status == "failed":
                job_results.append(JobResult(r.job.id, "pending", _after(r.finished_at, d.delay), d.reason))
            else:
                job_results.append(JobResult(r.job.id, "dead", None, d.reason))
        attempt_rows: list[tuple[str, AttemptRecord]] = []
        updates: list[DeliveryUpdate] = []
        finals: list[FinalOutcome] = []
        held = self.queue.settle(conn, job_results)
        # Number attempts from what is recorded, not from the claim-time snapshot: a worker whose
        # lease ran out mid-attempt and the one that took over must not both write attempt N.
        ids = sorted({r.delivery.id for r in results if r.delivery is not None})
        rows = conn.execute(
            sa.select(delivery_attempts.c.delivery_id, sa.func.max(delivery_attempts.c.attempt))
            .where(delivery_attempts.c.delivery_id.in_(ids))
            .group_by(delivery_attempts.c.delivery_id)
        ).all()
        recorded: dict[str, int] = {str(row[0]): int(row[1]) for row in rows if row[1] is not None}
        for r in results:
            if r.delivery is None or r.attempt is None:
                continue
            number = max(r.delivery.attempts, recorded.get(r.delivery.id) or 0) + 1
            recorded[r.delivery.id] = number
            a = r.attempt
            attempt_rows.append(
                (
                    r.delivery.id,
                    AttemptRecord(
                        attempt=number,
                        started_at=a.started_at,
                        duration_ms=a.duration_ms,
                        status_code=a.status_code,
                        error=a.error,
                        response_body=a.response_body,
                        worker=self.worker_id,
                    ),
                )
            )
            if r.job.id not in held:
                # Our lease ran out and another worker has the job: the attempt happened and is
                # history, but the delivery's state is the new holder's to write.
                log.warning("delivery lease lost before recording", extra={"delivery": r.delivery.id})
                continue
            d = r.decision
            updates.append(
                DeliveryUpdate(
                    id=r.delivery.id,
                    status=d.status,
                    attempts=number,
                    next_attempt_at=_after(r.finished_at, d.delay) if d.status == "failed" else None,
                    last_status_code=a.status_code,
                    last_error=d.reason if d.status != "delivered" else None,
                    delivered_at=r.finished_at if d.status == "delivered" else None,
                    updated_at=r.finished_at,
                )
            )
            if d.status != "failed":
                finals.append(
                    FinalOutcome(
                        delivery_id=r.delivery.id,
                        run_id=r.delivery.run_id,
                        source=r.delivery.source,
                        status="delivered" if d.status == "delivered" else "dead",
                        attempts=number,
                        status_code=a.status_code,
                        error=d.reason,
                        synchronized=r.delivery.synchronized,
                    )
                )
        record_attempts(conn, attempt_rows, updates)
        for outcome in finals:
            # Same transaction as the attempt's record: a synchronized run and its delivery never
            # disagree. A run already finished (the receiver reported first) is left as it is.
            if outcome.synchronized and outcome.status == "delivered" and outcome.run_id is not None:
                succeed_run_for_delivery(conn, outcome.run_id, outcome.status_code, listener=self._run_listener)
        for r in results:
            if r.decision.status == "dead":
                log.info("delivery is dead", extra={"delivery": _delivery_id(r.job), "reason": r.decision.reason})
        return finals

    def _report(self, finals: Sequence[FinalOutcome]) -> None:
        """After the commit: tell ``on_final``, and look for work a run listener may have queued
        when a synchronized delivery finished its run (an automation's delivery)."""
        if self._run_listener is not None and any(f.synchronized and f.status == "delivered" for f in finals):
            self.notify()
        if self._on_final is None:
            return
        for outcome in finals:
            try:
                self._on_final(outcome)
            except Exception:
                log.exception("on_final callback failed", extra={"delivery": outcome.delivery_id})

    # ------------------------------------------------------------------------ the dispatcher

    def _dispatch(self) -> None:
        """The dispatcher thread: record finished attempts, claim more, hand them out, sleep.

        Finished attempts are recorded in batches of about ``workers`` (or after ``LINGER``
        seconds, or at once when the sender threads are about to run out of work): a cycle costs
        the same few statements whatever its size, so bigger batches mean fewer per delivery.
        """
        workers = self.config.workers
        pool = ThreadPoolExecutor(workers, thread_name_prefix="kiosk-delivery")
        finished: queue_module.SimpleQueue[_Result | BaseException] = queue_module.SimpleQueue()
        in_flight: dict[Future[_Result], Job] = {}
        pending: list[_Result] = []  # finished, not yet recorded
        first_pending = 0.0
        maybe_more = True  # the last claim was full: more may be due right now
        next_poll = 0.0

        stop_requested, wake = self._thread.stopping, self._thread.wake

        def collect(future: Future[_Result]) -> None:
            if not future.cancelled():
                exc = future.exception()
                finished.put(future.result() if exc is None else exc)
            wake.set()

        try:
            while True:
                wake.clear()
                fresh = _drain(finished)
                if fresh and not pending:
                    first_pending = time.monotonic()
                pending += fresh
                for future in [f for f in in_flight if f.done()]:
                    del in_flight[future]
                stopping = stop_requested.is_set()
                if stopping:
                    self._hand_back(in_flight)
                room = 0 if stopping else self._backlog - len(in_flight)
                starving = len(in_flight) <= workers  # no job left waiting for a free sender thread
                told = room > 0 and (self._notified.is_set() or self._retry_due() or time.monotonic() >= next_poll)
                claim = told or (room > 0 and maybe_more and (starving or len(pending) >= workers))
                lingered = time.monotonic() - first_pending >= LINGER
                record = bool(pending) and (stopping or starving or lingered or len(pending) >= workers)
                if claim or record:
                    if claim:
                        self._notified.clear()
                        next_poll = time.monotonic() + self._poll
                    batch, pending = pending, []
                    cycle = self._safely(self._cycle, batch, room if claim else 0)
                    jobs, found = cycle if cycle is not None else ([], {})
                    if claim:
                        maybe_more = len(jobs) == room
                    for job in jobs:
                        future = pool.submit(self._process, job, found.get(_delivery_id(job)))
                        in_flight[future] = job
                        future.add_done_callback(collect)
                    continue
                if stopping and not in_flight and not pending:
                    return
                wait = self._idle_wait(next_poll)
                if pending:
                    wait = min(wait, max(0.0, first_pending + LINGER - time.monotonic()))
                wake.wait(wait)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self._held.close()

    def _cycle(self, results: Sequence[_Result], room: int) -> tuple[list[Job], dict[str, Delivery]]:
        """One transaction: record ``results``, then claim up to ``room`` more jobs with their deliveries.

        Recording and claiming together halves the transactions of a busy worker; the outcomes are
        reported (``on_final``) only after the commit.
        """
        with self._held.transaction() as conn:
            finals = self._record(conn, results)
            claimed = self._claim(conn, room, expired=self._expiry_check_due()) if room > 0 else ([], {})
        for r in results:
            if r.decision.status == "failed":
                heapq.heappush(self._retries_due, _after(r.finished_at, r.decision.delay))
        self._report(finals)
        return claimed

    def _expiry_check_due(self) -> bool:
        """Look for jobs of crashed workers once per poll interval, not in every busy cycle."""
        if time.monotonic() < self._next_expiry_check:
            return False
        self._next_expiry_check = time.monotonic() + self._poll
        return True

    def _retry_due(self) -> bool:
        """Has a retry this worker scheduled come due? (Pops every due one.)"""
        now = utcnow()
        due = False
        while self._retries_due and self._retries_due[0] <= now:
            heapq.heappop(self._retries_due)
            due = True
        return due

    def _idle_wait(self, next_poll: float) -> float:
        wait = max(0.0, next_poll - time.monotonic())
        if self._retries_due:
            wait = min(wait, max(0.0, (self._retries_due[0] - utcnow()).total_seconds()))
        return wait

    def _hand_back(self, in_flight: dict[Future[_Result], Job]) -> None:
        """On stop: cancel claimed jobs not yet started and return them to the queue."""
        unstarted = [job.id for future, job in list(in_flight.items()) if future.cancel()]
        for future in [f for f in in_flight if f.cancelled()]:
            del in_flight[future]
        if unstarted:
            self._safely(self.queue.release, unstarted)

    def _safely(self, step: Callable[..., Any], *args: Any) -> Any:
        """Run a database step of the loop; an error is logged and the loop goes on (leases cover it)."""
        try:
            return step(*args)
        except Exception:
            log.exception("delivery worker step failed")
            time.sleep(min(1.0, self._poll))
            return None


def _drain(finished: queue_module.SimpleQueue[_Result | BaseException]) -> list[_Result]:
    results: list[_Result] = []
    while True:
        try:
            item = finished.get_nowait()
        except queue_module.Empty:
            return results
        if isinstance(item, BaseException):
            log.error("delivery attempt crashed", exc_info=item)
        else:
            results.append(item)


def _masked(attempt: Attempt, secret_values: Sequence[str]) -> Attempt:
    """``attempt`` with the secret values of its body masked in what gets recorded: a receiver
    that echoes its request (or an error that quotes it) must not put them into the attempt row.
    Each value is masked as it is and as it appears inside a JSON string."""
    if not secret_values:
        return attempt
    forms = {form for value in secret_values for form in (value, orjson.dumps(value).decode()[1:-1]) if form}
    return replace(
        attempt,
        response_body=None if attempt.response_body is None else mask_text(attempt.response_body, forms, MASK),
        error=None if attempt.error is None else mask_text(attempt.error, forms, MASK),
    )


def _delivery_id(job: Job) -> str:
    return str(job.payload.get("delivery", ""))


def _after(moment: datetime, delay: float | None) -> datetime:
    return moment + timedelta(seconds=delay or 0.0)
