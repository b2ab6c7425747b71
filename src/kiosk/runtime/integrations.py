"""Running the integrations' resyncs: when (the schedule), where (one process at a time) and how.

**When.** Each integration's ``eventListener`` decides (:func:`schedule_for`): POLLING resyncs at
start, on request and every ``scheduledResyncInterval`` minutes when set; ONCE resyncs once at
start; WEBHOOKS_ONLY only on request. The next scheduled resync is saved in the state
(``nextResync``), so every process and the API show it.

**Where.** A resync is a job of kiosk's durable queue (:mod:`kiosk.store.queue`): one row per
integration, of its own kind (:func:`resync_job_kind`) with the integration as dedupe key. A
request (:func:`request_resync`) makes that row due — or, when it is already due or running,
coalesces into it — so however many processes and clients ask, there is at most one resync of
an integration queued and one running. A worker claims the row with a lease, renews the lease
while the resync runs, and settles it at the end; a recurring integration's row goes back to
pending at the next scheduled time. A process killed mid-resync leaves a lease that expires: the
resync runs again, in another process or at the next start (:meth:`IntegrationRunner.start` asks
for one). On PostgreSQL several processes claim with ``FOR UPDATE SKIP LOCKED``, on SQLite the
write transaction serialises them; either way one holds the lease.

**How.** :class:`IntegrationRunner` is the server's service (started and stopped by
:class:`kiosk.runtime.background.Background`): a thread that claims due resyncs of the
integrations this process knows, each run in a thread of its own with its own event loop
(:class:`kiosk.ingest.resync.Resyncer` is async). ``kiosk integrations resync NAME --once`` uses
the same runner without its thread (:meth:`IntegrationRunner.run_now`), so a resync from the
command line also takes the lease and never runs beside a server's.

**Incremental passes.** With ``incrementalSyncInterval`` (listener POLLING), each integration also
has an incremental job of its own kind (:func:`incremental_job_kind`): every interval, one pass
(:class:`kiosk.ingest.incremental.IncrementalSync`) reads only what changed since its cursors, under
that job's lease — one at a time per integration, across processes. A pass that comes due while a
full resync of the integration holds its lease is skipped (the resync reads everything anyway): its
state says so, and the next pass is scheduled. ``kiosk integrations resync NAME --incremental``
(and the API's resync with ``incremental=true``) asks for one now.

**Service hooks.** An integration with a base URL (``appHost``, else kiosk's ``publicUrl``) whose
listener is not ONCE has its subscriptions reconciled (:mod:`kiosk.ingest.hooks`) at start, again
after its mapping is replaced or reset (:meth:`IntegrationRunner.hooks_changed`), and retried while
Azure cannot be reached. One thread per such integration does it, under the integration's
reconcile lease, so processes started together create each subscription once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiosk.errors import Conflict, NotFound
from kiosk.ingest.config import Integration, IntegrationSpec
from kiosk.ingest.events_queue import EventWriter, event_writer
from kiosk.ingest.hooks.reconcile import HookReconciler, ReconcileReport
from kiosk.ingest.incremental import IncrementalSync
from kiosk.ingest.initialize import initialize_defaults
from kiosk.ingest.live.processor import EventProcessor
from kiosk.ingest.live.visibility import event_lag
from kiosk.ingest.mapping import MappingError, PortAppConfig, parse_port_app_config
from kiosk.ingest.resync import Resyncer
from kiosk.ingest.state import IncrementalState, ResyncState
from kiosk.ingest.store import IngestStore
from kiosk.store import Database
from kiosk.store.queue import (
    PENDING,
    RUNNING,
    Job,
    JobQueue,
    JobResult,
    aware,
    enqueue,
    requeue,
    utcnow,
)
from kiosk.store.queue_thread import QueueThread
from kiosk.store.tables import jobs

__all__ = [
    "INCREMENTAL_JOB_PREFIX",
    "RESYNC_JOB_PREFIX",
    "IntegrationRunner",
    "RequestOutcome",
    "ResyncBusy",
    "RunnerSnapshot",
    "Schedule",
    "effective_mapping",
    "incremental_interval",
    "incremental_job_kind",
    "next_resync_at",
    "request_incremental",
    "request_resync",
    "resync_job_kind",
    "schedule_for",
    "takes_events",
]

log = logging.getLogger("kiosk.integrations")

#: The state of a job this module runs: a resync's or an incremental pass's.
_S = TypeVar("_S", ResyncState, IncrementalState)


@dataclass(frozen=True)
class _LeasedRun(Generic[_S]):
    """What differs between a resync job and an incremental pass's job as
    :meth:`IntegrationRunner._run_leased` runs them: ``what`` it is (in the logs), how its state
    is saved, the run itself (given the mapping in force and a progress callback) and whether the
    integration's default blueprints are created first (a resync's ``initializePortResources``)."""

    what: str
    save: Callable[[_S], None]
    work: Callable[[PortAppConfig, Callable[[_S], None]], Coroutine[Any, Any, _S]]
    initialize: bool


#: Job kinds of resyncs start with this; the rest is a digest of the integration's identifier
#: (identifiers may be 100 characters, a job kind 50), so each process claims only the
#: integrations it is configured with.
RESYNC_JOB_PREFIX = "integration.resync."
#: Job kinds of incremental passes start with this (the rest as for resyncs).
INCREMENTAL_JOB_PREFIX = "integration.incremental."

#: What a request for a resync did: a job made due (``queued``), one already due or leased
#: taken as the answer (``coalesced``), or a resync running now (``running``).
RequestOutcome = Literal["queued", "coalesced", "running"]


def resync_job_kind(identifier: str) -> str:
    """The job kind of ``identifier``'s resyncs (stable across processes and versions)."""
    return RESYNC_JOB_PREFIX + hashlib.sha256(identifier.encode()).hexdigest()[:24]


def incremental_job_kind(identifier: str) -> str:
    """The job kind of ``identifier``'s incremental passes (another row than its resyncs')."""
    return INCREMENTAL_JOB_PREFIX + hashlib.sha256(identifier.encode()).hexdigest()[:24]


# ------------------------------------------------------------------------------------ schedule


@dataclass(frozen=True)
class Schedule:
    """When an integration resyncs besides on request: at start, and every ``interval``."""

    at_start: bool
    interval: timedelta | None


def schedule_for(spec: IntegrationSpec) -> Schedule:
    """The schedule Ocean's ``eventListener`` gives: POLLING (start + interval), ONCE (start only),
    WEBHOOKS_ONLY (neither: live events and requests only)."""
    listener = spec.eventListener.type
    if listener == "POLLING":
        minutes = spec.scheduledResyncInterval
        return Schedule(at_start=True, interval=None if minutes is None else timedelta(minutes=minutes))
    return Schedule(at_start=listener == "ONCE", interval=None)


def takes_events(spec: IntegrationSpec) -> bool:
    """Whether events can arrive for the integration, so its processor runs: listener POLLING or
    WEBHOOKS_ONLY (ONCE reads once and listens to nothing)."""
    return spec.eventListener.type in ("POLLING", "WEBHOOKS_ONLY")


def incremental_interval(spec: IntegrationSpec) -> timedelta | None:
    """How often incremental passes run: every ``incrementalSyncInterval`` minutes for a POLLING
    listener (the one whose full resyncs are scheduled too); never otherwise, or when unset."""
    minutes = spec.incrementalSyncInterval
    if minutes is None or spec.eventListener.type != "POLLING":
        return None
    return timedelta(minutes=minutes)


def next_resync_at(spec: IntegrationSpec, finished_at: datetime) -> datetime | None:
    """When the resync after one that ended at ``finished_at`` is due, or None (none scheduled)."""
    interval = schedule_for(spec).interval
    return None if interval is None else finished_at + interval


# ------------------------------------------------------------------------------------ requests


def request_resync(
    conn: Connection, identifier: str, *, trigger: str, run_after: datetime | None = None
) -> RequestOutcome:
    """Ask for a resync of ``identifier`` at ``run_after`` (now by default), in the caller's transaction.

    The integration's job row is locked while it is read and changed, so two requests at once
    (two processes starting together) agree: the second finds the first's job due and coalesces.
    A due job keeps its place; a job scheduled later is brought forward; a finished one is made
    pending again; a leased one is left to its holder (``running``).
    """
    return _request_job(conn, resync_job_kind(identifier), identifier, trigger=trigger, run_after=run_after)


def request_incremental(
    conn: Connection, identifier: str, *, trigger: str, run_after: datetime | None = None
) -> RequestOutcome:
    """Ask for an incremental pass of ``identifier``, as :func:`request_resync` asks for a resync
    (its own job row: a pass and a resync are queued, and coalesce, apart)."""
    return _request_job(conn, incremental_job_kind(identifier), identifier, trigger=trigger, run_after=run_after)


def _request_job(
    conn: Connection, kind: str, identifier: str, *, trigger: str, run_after: datetime | None
) -> RequestOutcome:
    """Make ``identifier``'s job of ``kind`` due at ``run_after`` (see :func:`request_resync`)."""
    when = run_after or utcnow()
    payload = {"integration": identifier, "trigger": trigger}
    row = conn.execute(
        sa.select(jobs.c.id, jobs.c.status, jobs.c.run_after)
        .where(jobs.c.kind == kind, jobs.c.dedupe_key == identifier)
        .with_for_update()
    ).first()
    if row is None:
        created = enqueue(conn, kind, payload, run_after=when, dedupe_key=identifier)
        return "coalesced" if created is None else "queued"
    if row.status == RUNNING:
        return "running"
    if row.status == PENDING and aware(row.run_after) <= when:
        return "coalesced"
    requeue(conn, int(row.id), run_after=when, payload=payload)
    return "queued"


class ResyncBusy(Conflict):
    """Another process holds the lease of this integration's resync."""


def effective_mapping(integration: Integration, store: IngestStore) -> tuple[PortAppConfig, str]:
    """The mapping a resync of ``integration`` uses and where it comes from: the one replaced through
    the API when there is one (``api``), else kiosk.yaml's (its source). A stored replacement that no
    longer parses (kiosk was upgraded and refuses it now) is logged and set aside, never half-used."""
    stored = store.load_mapping(integration.identifier)
    if stored is not None:
        document, _, _ = stored
        try:
            return parse_port_app_config(document), "api"
        except MappingError as exc:
            log.warning(
                "the mapping of integration %s replaced through the API is invalid, using %s: %s",
                integration.identifier,
                integration.mapping_source,
                exc,
            )
    return integration.mapping, integration.mapping_source


def _mapping_in_force(integration: Integration, store: IngestStore) -> PortAppConfig:
    """The mapping events are processed with: the resync's (:func:`effective_mapping`)."""
    return effective_mapping(integration, store)[0]


# -------------------------------------------------------------------------------------- runner


@dataclass(frozen=True)
class RunnerSnapshot:
    """One integration as ``/metrics`` shows it: its saved state and whether a resync holds its lease."""

    identifier: str
    state: ResyncState | None
    running: bool


@dataclass
class _Running:
    """A resync (or incremental pass) this process runs: its thread, and its loop and task once
    they exist (to cancel it)."""

    job: Job
    thread: threading.Thread | None = None
    loop: asyncio.AbstractEventLoop | None = None
    task: asyncio.Task[Any] | None = None
    ready: threading.Event = field(default_factory=threading.Event)


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:resync:{secrets.token_hex(3)}"


class IntegrationRunner:
    """Claims and runs the resyncs of ``integrations`` (this process's config) from the job queue.

    ``lease_seconds`` bounds how long a killed process keeps an integration (the lease is renewed
    every third of it while a resync runs); ``poll_seconds`` how soon a request from another
    process, or an expired lease, is seen. ``on_finished`` hears of every resync this process
    ended (``/metrics`` counts them).
    """

    def __init__(
        self,
        db: Database,
        store: IngestStore,
        integrations: Sequence[Integration],
        *,
        resyncer: Resyncer | None = None,
        worker_id: str | None = None,
        lease_seconds: float = 60.0,
        poll_seconds: float = 5.0,
        on_finished: Callable[[str, ResyncState], None] | None = None,
        public_url: str | None = None,
        hooks: HookReconciler | None = None,
        hooks_retry_seconds: float = 60.0,
        event_options: dict[str, Any] | None = None,
        incremental: IncrementalSync | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.integrations: dict[str, Integration] = {i.identifier: i for i in integrations}
        self.resyncer = resyncer or Resyncer(store)
        self.incremental = incremental or IncrementalSync(store)
        self.queue = JobQueue(db, worker_id or _worker_id(), lease_seconds=lease_seconds)
        self.poll_seconds = poll_seconds
        self.on_finished = on_finished
        self._kinds = {resync_job_kind(name): name for name in self.integrations}
        self._incremental_kinds = {incremental_job_kind(name): name for name in self.integrations}
        self._running: dict[str, _Running] = {}
        self._passing: dict[str, _Running] = {}  # the incremental passes running here
        self._initialized: set[str] = set()
        # A resync and the integration's event processor may both be first: one creates.
        self._initializing = threading.Lock()
        self._lock = threading.Lock()
        self._thread = QueueThread(self._loop, name="kiosk-resyncs", what="resync runner")
        self.hooks = hooks or HookReconciler(db, public_url=public_url)
        self.hooks_retry_seconds = hooks_retry_seconds
        self._hook_keepers: dict[str, _HookKeeper] = {}
        #: The last reconcile of each integration's subscriptions this process made (its keeper's).
        self.hook_reports: dict[str, ReconcileReport] = {}
        #: The live-event processor of each integration that takes events (listener POLLING or
        #: WEBHOOKS_ONLY), started and stopped with the runner; ``event_options`` go to each.
        self.event_processors: dict[str, EventProcessor] = {
            identifier: EventProcessor(
                db,
                store,
                integration,
                mapping=functools.partial(_mapping_in_force, integration, store),
                prepare=functools.partial(self._initialize, integration),
                **(event_options or {}),
            )
            for identifier, integration in self.integrations.items()
            if takes_events(integration.spec)
        }
        #: The service-hook endpoint's group commit: every integration's events, stored in batches.
        self.event_writer: EventWriter = event_writer(db, self._events_stored)

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> IntegrationRunner:
        """Ask for the start resyncs (POLLING, ONCE), then start claiming."""
        if not self.integrations:
            return self
        with self.db.begin() as conn:
            for identifier, integration in self.integrations.items():
                if schedule_for(integration.spec).at_start:
                    outcome = request_resync(conn, identifier, trigger="start")
                    log.info("resync at start: %s", outcome, extra={"integration": identifier})
                interval = incremental_interval(integration.spec)
                if interval is not None:  # the first pass an interval after the start resync's
                    request_incremental(conn, identifier, trigger="schedule", run_after=utcnow() + interval)
        self.event_writer.start()
        self._thread.start()
        for processor in self.event_processors.values():
            processor.start()
        for identifier, integration in self.integrations.items():
            if self.keeps_hooks(integration):
                keeper = _HookKeeper(self, identifier)
                self._hook_keepers[identifier] = keeper
                keeper.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming, cancel the resyncs running here and hand their jobs back (due now: the
        next start, or another process, runs them again), waiting up to ``timeout`` seconds."""
        self.event_writer.stop(timeout)  # what was handed over is stored; then the processors stop
        self._thread.stop(timeout)
        for keeper in self._hook_keepers.values():
            keeper.stop(timeout)
        for processor in self.event_processors.values():
            processor.stop(timeout)
        with self._lock:
            running = [*self._running.values(), *self._passing.values()]
        for run in running:
            run.ready.wait(timeout)
            if run.loop is not None and run.task is not None:
                # A run that just ended has closed its loop (its thread is leaving): nothing to cancel.
                with contextlib.suppress(RuntimeError):
                    run.loop.call_soon_threadsafe(run.task.cancel)
        for run in running:
            if run.thread is not None:
                run.thread.join(timeout)

    # ------------------------------------------------------------------------------- requests

    def integration(self, identifier: str) -> Integration:
        found = self.integrations.get(identifier)
        if found is None:
            raise NotFound(f"integration {identifier!r} is not configured", code="integration_not_found")
        return found

    def request(self, identifier: str, *, trigger: str = "manual", incremental: bool = False) -> RequestOutcome:
        """Queue a resync of ``identifier`` now (or coalesce into the queued or running one);
        ``incremental``: an incremental pass instead."""
        self.integration(identifier)
        ask = request_incremental if incremental else request_resync
        with self.db.begin() as conn:
            outcome = ask(conn, identifier, trigger=trigger)
        self._thread.wake.set()
        return outcome

    def event_processing(self) -> dict[str, dict[str, float]]:
        """Per integration with a processor: what it handled (this process) and the lag (every
        process's events), for ``/metrics``."""
        lags = event_lag(self.db, list(self.event_processors))
        out: dict[str, dict[str, float]] = {}
        for identifier, processor in self.event_processors.items():
            stats = processor.stats.to_json()
            out[identifier] = {
                **{name: float(stats[name]) for name in ("processed", "skipped", "failed", "retried")},
                "lagSeconds": lags[identifier],
            }
        return out

    def _events_stored(self, identifiers: set[str]) -> None:
        for identifier in identifiers:
            self.events_stored(identifier)

    def events_stored(self, identifier: str) -> None:
        """Events of ``identifier`` were stored in this process: its processor looks at once."""
        processor = self.event_processors.get(identifier)
        if processor is not None:
            processor.notify()

    def keeps_hooks(self, integration: Integration) -> bool:
        """Whether this runner keeps ``integration``'s subscriptions: a base URL, and a listener that is not ONCE."""
        return integration.spec.eventListener.type != "ONCE" and self.hooks.target(integration).url is not None

    def reconcile_hooks(self, identifier: str, *, apply: bool) -> ReconcileReport:
        """Check (or apply) ``identifier``'s subscriptions now, in this thread, with its effective mapping."""
        integration = self.integration(identifier)
        mapping, _ = effective_mapping(integration, self.store)
        return self.hooks.run(self.hooks.target(integration, mapping), apply=apply)

    def hooks_changed(self, identifier: str) -> None:
        """The integration's mapping changed: reconcile its subscriptions again (in the background)."""
        keeper = self._hook_keepers.get(identifier)
        if keeper is not None:
            keeper.changed.set()

    def is_running(self, identifier: str) -> bool:
        """Whether a resync of ``identifier`` holds its lease now, in any process."""
        return identifier in self._leased([identifier])

    def snapshot(self) -> list[RunnerSnapshot]:
        """Every integration's saved state and whether it is running (one read each, for ``/metrics``)."""
        leased = self._leased(list(self.integrations))
        return [RunnerSnapshot(name, self.store.load_state(name), name in leased) for name in sorted(self.integrations)]

    def _leased(self, identifiers: Sequence[str]) -> set[str]:
        kinds = {resync_job_kind(name): name for name in identifiers}
        if not kinds:
            return set()
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(jobs.c.kind).where(
                    jobs.c.kind.in_(list(kinds)), jobs.c.status == RUNNING, jobs.c.locked_until > utcnow()
                )
            )
            return {kinds[str(row.kind)] for row in rows}

    # -------------------------------------------------------------------------------- running

    def run_now(self, identifier: str, *, trigger: str = "cli") -> ResyncState:
        """Run one resync of ``identifier`` in this thread, holding its lease (``--once``).

        Raises :class:`ResyncBusy` when another process holds it: it is running there now.
        """
        self.integration(identifier)
        kind = resync_job_kind(identifier)
        with self.db.begin() as conn:
            request_resync(conn, identifier, trigger=trigger)
            claimed = self.queue.claim([kind], 1, conn=conn)
        if not claimed:
            raise ResyncBusy(
                f"a resync of integration {identifier!r} is running in another kiosk process; "
                "see `kiosk integrations status`",
                code="resync_running",
            )
        state = self.run_job(claimed[0])
        if state is None:
            raise ResyncBusy(f"the resync of integration {identifier!r} was taken over by another process")
        return state

    def _loop(self) -> None:
        while not self._thread.stopping.is_set():
            self._thread.wake.clear()
            try:
                self._claim_and_start()
            except Exception:  # a database hiccup must not end the runner: the next round retries
                log.exception("claiming resyncs failed")
            self._thread.wake.wait(self.poll_seconds)

    def _claim_and_start(self) -> None:
        with self._lock:
            free = [kind for kind, name in self._kinds.items() if name not in self._running]
            free += [kind for kind, name in self._incremental_kinds.items() if name not in self._passing]
        if not free:
            return
        for job in self.queue.claim(free, len(free)):
            run = _Running(job)
            work: Callable[[_Running], object]
            if job.kind in self._incremental_kinds:
                identifier, name, running = self._incremental_kinds[job.kind], "incremental", self._passing
                work = self._pass_job
            else:
                identifier, name, running = self._kinds[job.kind], "resync", self._running
                work = self._resync_job
            thread_name = f"kiosk-{name}-{job.id}"
            arguments = (run, identifier, running, work)
            run.thread = threading.Thread(target=self._in_thread, args=arguments, name=thread_name, daemon=True)
            with self._lock:
                running[identifier] = run
            run.thread.start()

    def _in_thread(
        self, run: _Running, identifier: str, running: dict[str, _Running], work: Callable[[_Running], object]
    ) -> None:
        """The thread of a claimed job (a resync's or an incremental pass's): ``work`` on ``run``,
        then the job is no longer among ``running``."""
        try:
            work(run)
        except Exception:  # noqa: S110 - the job's run logged it and set the job to retry
            pass
        finally:
            run.ready.set()
            with self._lock:
                running.pop(identifier, None)

    def _resync_job(self, run: _Running) -> None:
        if not self._stale_schedule(run.job):
            self.run_job(run.job, run)

    def _stale_schedule(self, job: Job) -> bool:
        """A scheduled resync come due after the config dropped its interval (a restart with
        another ``eventListener``) is not run: the job is finished, the integration waits for a
        request. True when it was such a job."""
        integration = self.integration(str(job.payload["integration"]))
        if job.payload.get("trigger") != "schedule" or schedule_for(integration.spec).interval is not None:
            return False
        self.queue.complete(job.id)
        log.info("scheduled resync dropped: no interval any more", extra={"integration": integration.identifier})
        return True

    def run_job(self, job: Job, run: _Running | None = None) -> ResyncState | None:
        """Run the claimed resync ``job`` to its end and settle it; its final state, or None when the
        lease was lost to another process (which then owns the resync and its state).

        A resync cancelled by :meth:`stop` is saved as ``aborted`` and its job handed back.
        Anything but an Azure error (those are in the state) — the database gone, a bug — retries
        the job after a minute, with the error kept on the job.
        """
        identifier = str(job.payload["integration"])
        integration = self.integration(identifier)
        trigger = str(job.payload.get("trigger") or "manual")

        def work(mapping: PortAppConfig, progress: Callable[[ResyncState], None]) -> Coroutine[Any, Any, ResyncState]:
            return self.resyncer.run(integration, trigger=trigger, on_progress=progress, mapping=mapping)

        state = self._run_leased(
            job, run or _Running(job), integration, _LeasedRun("resync", self.store.save_state, work, initialize=True)
        )
        if state is None:
            return None
        state.next_resync_at = next_resync_at(integration.spec, state.finished_at or utcnow())
        state.interval_minutes = integration.spec.scheduledResyncInterval
        self.store.save_state(state)
        self._settle(job, identifier, state.next_resync_at)
        if self.on_finished is not None:
            self.on_finished(identifier, state)
        log.info(
            "resync %s",
            state.status,
            extra={"integration": identifier, "trigger": trigger, **state.totals()},
        )
        return state

    async def _under_lease(self, job: Job, run: _Running, task: asyncio.Task[Any], outcome: dict[str, Any]) -> Any:
        """Await ``task`` while renewing ``job``'s lease every third of it; when the lease is lost
        to another process, cancel it (``outcome["lost"]``). Its result, or None when cancelled."""
        run.loop, run.task = asyncio.get_running_loop(), task
        run.ready.set()
        beat = self.queue.lease.total_seconds() / 3
        while True:
            done, _ = await asyncio.wait({task}, timeout=beat)
            if done:
                break
            if not await asyncio.to_thread(self.queue.extend, job.id):
                outcome["lost"] = True
                task.cancel()
        try:
            return task.result()
        except asyncio.CancelledError:
            return None

    # ------------------------------------------------------------------------- incremental passes

    def run_incremental_now(self, identifier: str, *, trigger: str = "cli") -> IncrementalState:
        """Run one incremental pass of ``identifier`` in this thread, holding its lease.

        Raises :class:`ResyncBusy` when another process runs a pass of it now."""
        self.integration(identifier)
        with self.db.begin() as conn:
            request_incremental(conn, identifier, trigger=trigger)
            claimed = self.queue.claim([incremental_job_kind(identifier)], 1, conn=conn)
        if not claimed:
            raise ResyncBusy(
                f"an incremental pass of integration {identifier!r} is running in another kiosk process",
                code="incremental_running",
            )
        state = self.run_incremental_job(claimed[0])
        if state is None:
            raise ResyncBusy(f"the incremental pass of integration {identifier!r} was taken over by another process")
        return state

    def _pass_job(self, run: _Running) -> None:
        self.run_incremental_job(run.job, run)

    def run_incremental_job(self, job: Job, run: _Running | None = None) -> IncrementalState | None:
        """Run the claimed incremental ``job`` and settle it; its state, or None when there was
        nothing to run (a scheduled pass whose interval the config dropped) or the lease was lost.

        A pass due while a full resync of the integration holds its lease is not run: its state
        says ``skipped``. A scheduled integration's job goes back to pending an interval later.
        """
        identifier = str(job.payload["integration"])
        integration = self.integration(identifier)
        trigger = str(job.payload.get("trigger") or "manual")
        interval = incremental_interval(integration.spec)
        run = run or _Running(job)
        if trigger == "schedule" and interval is None:
            self.queue.complete(job.id)
            log.info("scheduled incremental pass dropped: no interval any more", extra={"integration": identifier})
            return None
        if self.is_running(identifier):
            now = utcnow()
            state = IncrementalState(
                identifier,
                status="skipped",
                started_at=now,
                finished_at=now,
                trigger=trigger,
                reason="a full resync of the integration was running: it reads everything this pass would",
            )
        else:

            def work(
                mapping: PortAppConfig, progress: Callable[[IncrementalState], None]
            ) -> Coroutine[Any, Any, IncrementalState]:
                return self.incremental.run(integration, trigger=trigger, mapping=mapping, on_progress=progress)

            leased = _LeasedRun("incremental pass", self.store.save_incremental_state, work, initialize=False)
            passed = self._run_leased(job, run, integration, leased)
            if passed is None:
                return None
            state = passed
        state.interval_minutes = integration.spec.incrementalSyncInterval
        state.next_pass_at = None if interval is None else (state.finished_at or utcnow()) + interval
        self.store.save_incremental_state(state)
        self._settle(job, identifier, state.next_pass_at)
        log.info("incremental pass %s", state.status, extra={"integration": identifier, **state.totals()})
        return state

    def _run_leased(self, job: Job, run: _Running, integration: Integration, leased: _LeasedRun[_S]) -> _S | None:
        """Run ``leased``'s work for the claimed ``job`` (a resync or an incremental pass) under
        its lease, with the mapping in force; its final state, or None when it was stopped.

        An error (anything but Azure's, which are in the state) says ``failed`` in the saved
        state, sets the job to retry in a minute and raises. A run cancelled by :meth:`stop` is
        saved as ``aborted`` and its job handed back; one whose lease another process took is
        left to that process.
        """
        identifier = integration.identifier
        outcome: dict[str, Any] = {}
        latest: list[_S] = []

        def progress(state: _S) -> None:
            if not latest:
                latest.append(state)

        async def main() -> _S | None:
            if leased.initialize:
                await asyncio.to_thread(self._initialize, integration)
            mapping, _ = await asyncio.to_thread(effective_mapping, integration, self.store)
            task = asyncio.create_task(leased.work(mapping, progress))
            result: _S | None = await self._under_lease(job, run, task, outcome)
            return result

        try:
            state = asyncio.run(main())
        except Exception as exc:
            run.ready.set()
            log.exception("%s of %s stopped by an error; it is retried in a minute", leased.what, identifier)
            self._stopped_by_error(latest, leased.save)
            self.queue.retry(job.id, utcnow() + timedelta(minutes=1), f"{type(exc).__name__}: {exc}")
            raise
        if state is None:
            self._cancelled(job, identifier, latest, leased, lost=bool(outcome.get("lost")))
        return state

    def _settle(self, job: Job, identifier: str, next_at: datetime | None) -> None:
        """Settle the finished ``job``; when it is still this process's and another run is due
        (``next_at``), it goes back to pending until then, as a scheduled one."""
        with self.db.begin() as conn:
            held = self.queue.settle(conn, [JobResult(job.id, "done")])
            if job.id in held and next_at is not None:
                requeue(conn, job.id, run_after=next_at, payload={"integration": identifier, "trigger": "schedule"})

    def _stopped_by_error(self, latest: Sequence[_S], save: Callable[[_S], None]) -> None:
        """Say ``failed`` in the saved state of a run an error stopped (best effort: the error
        may be the database's), so it does not read ``running`` until the retry."""
        if not latest:
            return
        state = latest[0]
        state.status = "failed"
        state.finished_at = utcnow()
        try:
            save(state)
        except Exception:  # the database itself failed: the job's last_error keeps the story
            log.warning("could not save the failed state of %s", state.integration)

    def _initialize(self, integration: Integration) -> None:
        """``initializePortResources``: the default blueprints, before this process's first resync
        of the integration (Ocean does it at each start; nothing is created when one exists)."""
        with self._initializing:
            if not integration.spec.initializePortResources or integration.identifier in self._initialized:
                return
            outcome = initialize_defaults(self.store.catalog, actor=f"integration:{integration.identifier}")
            if outcome.created:
                log.info(
                    "created the default blueprints: %s",
                    ", ".join(outcome.created),
                    extra={"integration": integration.identifier},
                )
            self._initialized.add(integration.identifier)

    def _cancelled(
        self, job: Job, identifier: str, latest: Sequence[_S], leased: _LeasedRun[_S], *, lost: bool
    ) -> None:
        if lost:
            log.warning("%s of %s lost its lease to another process; stopped here", leased.what, identifier)
            return
        self.queue.release([job.id])
        if latest:
            state = latest[0]
            state.status = "aborted"
            state.finished_at = utcnow()
            leased.save(state)
            if self.on_finished is not None and isinstance(state, ResyncState):
                self.on_finished(identifier, state)
        log.info("%s of %s aborted by the stop; it runs again at the next start", leased.what, identifier)


class _HookKeeper:
    """Reconciles one integration's subscriptions: at start, after each change, and again after a
    failure (Azure unreachable, a listing refused) every ``hooks_retry_seconds`` until it succeeds."""

    def __init__(self, runner: IntegrationRunner, identifier: str) -> None:
        self.runner = runner
        self.identifier = identifier
        self.changed = threading.Event()
        self.stopping = threading.Event()
        self.changed.set()  # the start is the first change
        self._thread = threading.Thread(target=self._loop, name=f"kiosk-hooks-{identifier}"[:60], daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self.stopping.set()
        self.changed.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            self.changed.wait()
            if self.stopping.is_set():
                return
            self.changed.clear()
            try:
                report = self.runner.reconcile_hooks(self.identifier, apply=True)
                self.runner.hook_reports[self.identifier] = report
            except Exception as exc:  # Azure or the database: said, and tried again later
                log.warning(
                    "cannot reconcile the service-hook subscriptions yet: %s",
                    exc,
                    extra={"integration": self.identifier},
                )
                if self.stopping.wait(self.runner.hooks_retry_seconds):
                    return
                self.changed.set()
                continue
            if report.failures:
                log.warning(
                    "%d service-hook subscription change(s) failed; retried in %.0f s",
                    report.failures,
                    self.runner.hooks_retry_seconds,
                    extra={"integration": self.identifier},
                )
                if self.stopping.wait(self.runner.hooks_retry_seconds):
                    return
                self.changed.set()
