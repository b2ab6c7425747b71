"""The live-event processor of one integration: its received events claimed, read again, mapped
and written, in order per object.

**Claiming, as a stream.** The events are jobs of the integration's kind (:func:`event_job_kind`),
claimed with the queue's lease (:class:`~kiosk.store.queue.JobQueue`), oldest first, by a thread of
the processor's own with its own event loop — never the server's. Claims are made whenever there
is room (:attr:`EventProcessor.batch` events held at most) and something may be due: the endpoint
stored events in this process, held events were settled, or the poll. Each object (the event's
``objectKey``) has one *lane*, a task that runs its events one after the other, oldest first; an
event claimed for an object whose lane is running joins that lane, so objects never wait for each
other, nor for a batch's slowest (:attr:`EventProcessor.concurrency` events are processed at once
across the lanes). An event whose object has an older event unfinished elsewhere — waiting for a
retry, or held by another process — is handed back for later (:meth:`JobQueue.defer`) rather than
run before it; so is the rest of a lane after an event that failed and is to be retried. Finished
events are settled together, a few milliseconds apart, in one transaction.

**One event.** An event of a type kiosk does not know (``known: false``), or that no resource of
the mapping cares about, is completed with the reason as its note. Otherwise, for each resource
of the mapping whose kind the event type changes (:mod:`kiosk.ingest.live.registry`), the kind's
handler reads the objects again from Azure (the payload is not trusted for content) and
:func:`~kiosk.ingest.live.apply.apply_refetched` maps, writes and deletes — with the same marks,
under the same resource hashes, as the resync, so the next resync stays cheap.

**Failures.** An Azure error that outlived the client's own retries, the database failing, or any
other error (an answer not understood) retries the event with exponential backoff, up to
:attr:`EventProcessor.max_attempts` claims; then it is dead (failed) with its error. An event
that cannot succeed however often it is tried — an envelope naming no object, an item the mapping
fails on, an entity the catalog refuses — is dead at once with the reason. Counters and the last
errors are kept per processor (:class:`EventStats`), for ``/metrics`` and the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa

from kiosk.azure.rest import AzureDevOpsRest
from kiosk.ingest.config import Integration
from kiosk.ingest.events import event_job_kind
from kiosk.ingest.fetch.base import FetchContext
from kiosk.ingest.live.apply import ApplyFailed, PreparedResource, apply_refetched, prepare_resources
from kiosk.ingest.live.event_fields import MalformedEvent
from kiosk.ingest.live.model import REPOSITORY_GONE
from kiosk.ingest.live.registry import handlers_for, read_subject
from kiosk.ingest.mapping import PortAppConfig
from kiosk.ingest.resync import resource_hash
from kiosk.ingest.store import IngestStore, Source
from kiosk.store.engine import Database
from kiosk.store.queue import PENDING, RUNNING, Job, JobQueue, JobResult, utcnow
from kiosk.store.queue_thread import QueueThread
from kiosk.store.tables import jobs

__all__ = ["LAST_ERRORS", "EventFailure", "EventProcessor", "EventStats", "backoff_delay", "event_organization"]

log = logging.getLogger("kiosk.ingest.live")

#: How many of the latest failures each processor keeps for the API.
LAST_ERRORS: Final = 20

RestFactory = Callable[[str, str], AzureDevOpsRest]


@dataclass(frozen=True)
class EventFailure:
    """One failure of an event: when, which event, why, and whether it is retried."""

    at: datetime
    job_id: int
    event_id: str | None
    event_type: str | None
    error: str
    retried: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "id": self.job_id,
            "eventId": self.event_id,
            "eventType": self.event_type,
            "error": self.error,
            "retried": self.retried,
        }


@dataclass
class EventStats:
    """What one processor did since it started: events processed, skipped (unknown type or no
    resource for it), failed for good, retried; and the last failures."""

    processed: int = 0
    skipped: int = 0
    failed: int = 0
    retried: int = 0
    last_errors: deque[EventFailure] = field(default_factory=lambda: deque(maxlen=LAST_ERRORS))
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, outcome: str) -> None:
        with self.lock:
            setattr(self, outcome, getattr(self, outcome) + 1)

    def failure(self, failure: EventFailure) -> None:
        with self.lock:
            if failure.retried:
                self.retried += 1
            else:
                self.failed += 1
            self.last_errors.append(failure)

    def to_json(self) -> dict[str, Any]:
        with self.lock:
            return {
                "processed": self.processed,
                "skipped": self.skipped,
                "failed": self.failed,
                "retried": self.retried,
                "lastErrors": [failure.to_json() for failure in reversed(self.last_errors)],
            }


def backoff_delay(attempts: int, base: float, ceiling: float) -> float:
    """Seconds before the retry of an event claimed ``attempts`` times: ``base`` doubled per
    attempt, at most ``ceiling``."""
    return float(min(ceiling, base * 2.0 ** max(0, attempts - 1)))


def _normalized(url: str) -> str:
    return url.rstrip("/").lower()


def event_organization(event: Mapping[str, Any], organizations: Sequence[str]) -> str:
    """Which of ``organizations`` (the integration's URLs) the envelope comes from: the one its
    ``resourceContainers`` collection (or account) ``baseUrl`` names; the only one when the
    integration reads one organisation and the envelope names none. :class:`MalformedEvent` else."""
    containers = event.get("resourceContainers")
    named: list[str] = []
    if isinstance(containers, Mapping):
        for name in ("collection", "account"):
            container = containers.get(name)
            base = container.get("baseUrl") if isinstance(container, Mapping) else None
            if isinstance(base, str) and base.strip():
                named.append(_normalized(base))
    for url in organizations:
        if _normalized(url) in named:
            return url
    if not named and len(organizations) == 1:
        return organizations[0]
    shown = named[0] if named else "none"
    raise MalformedEvent(f"the event comes from an organisation this integration does not read ({shown})")


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:events:{secrets.token_hex(3)}"


class EventProcessor:
    """Processes ``integration``'s received events (see the module docstring).

    ``mapping()`` gives the mapping in force (the one replaced through the API, else kiosk.yaml's);
    ``prepare()`` runs before the first claim, and again until it succeeds (the runner creates the
    default blueprints there, as before a resync); ``rest_options`` go to each organisation's
    client (tests shorten its retries), or ``rest_factory`` replaces it. At most ``batch`` events
    are held at once and ``concurrency`` processed at once — sized for Azure's latency (a read
    again takes 0.1 to 0.3 s there: 32 in flight keep up with 100 to 300 events/s); an event is
    tried ``max_attempts`` times, ``backoff_seconds`` doubling between tries up to
    ``backoff_max_seconds``; ``poll_seconds`` is how soon events another process stored (or a
    retry come due) are seen when nobody wakes the processor.
    """

    def __init__(
        self,
        db: Database,
        store: IngestStore,
        integration: Integration,
        *,
        mapping: Callable[[], PortAppConfig] | None = None,
        prepare: Callable[[], None] | None = None,
        rest_options: Mapping[str, Any] | None = None,
        rest_factory: RestFactory | None = None,
        worker_id: str | None = None,
        lease_seconds: float = 120.0,
        poll_seconds: float = 2.0,
        batch: int = 200,
        concurrency: int = 32,
        max_attempts: int = 5,
        backoff_seconds: float = 2.0,
        backoff_max_seconds: float = 300.0,
        order_wait_seconds: float = 0.5,
    ) -> None:
        if max_attempts < 1 or batch < 1 or concurrency < 1:
            raise ValueError("max_attempts, batch and concurrency must be at least 1")
        self.db = db
        self.store = store
        self.integration = integration
        self.identifier = integration.identifier
        self.kind = event_job_kind(integration.identifier)
        self.queue = JobQueue(db, worker_id or _worker_id(), lease_seconds=lease_seconds)
        self.stats = EventStats()
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.order_wait_seconds = order_wait_seconds
        self._mapping = mapping or (lambda: integration.mapping)
        self._prepare = prepare
        self._rest_options = dict(rest_options or {})
        self._rest_factory = rest_factory
        self._thread = QueueThread(self._serve, name=f"kiosk-events-{self.identifier}"[:60], what="event processor")
        self._prepared: tuple[str, list[PreparedResource]] | None = None
        self._stream_running: _Stream | None = None

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> EventProcessor:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop claiming; the events being processed are finished first (up to ``timeout`` s), the
        others held are handed back."""
        self._thread.stopping.set()
        self._kick_stream()
        return self._thread.stop(timeout)

    def notify(self) -> None:
        """Events were stored in this process: look at once."""
        self._thread.wake.set()
        self._kick_stream()

    def _kick_stream(self) -> None:
        stream = self._stream_running
        if stream is not None:
            with contextlib.suppress(RuntimeError):  # its loop just closed
                stream.loop.call_soon_threadsafe(stream.kick.set)

    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            clients: dict[str, AzureDevOpsRest] = {}
            while not self._thread.stopping.is_set():
                try:
                    await self._stream(stack, clients, until_idle=False)
                except Exception:  # the database unreachable, or a bug: said, and tried again
                    log.exception("event processing failed", extra={"integration": self.identifier})
                    await asyncio.to_thread(self._thread.wake.wait, self.poll_seconds)

    async def drain(self, *, rounds: int = 100) -> int:
        """Process the events due now until none is left (or ``rounds`` claims were made), in the
        caller's loop (the command line and the tests); how many events were claimed."""
        async with contextlib.AsyncExitStack() as stack:
            clients: dict[str, AzureDevOpsRest] = {}
            return await self._stream(stack, clients, until_idle=True, claims=rounds)

    # ------------------------------------------------------------------------------ the stream

    def _client(self, organization_url: str) -> AzureDevOpsRest:
        pat = self.integration.personal_access_token.reveal()
        if self._rest_factory is not None:
            return self._rest_factory(organization_url, pat)
        return AzureDevOpsRest(organization_url, pat, **self._rest_options)

    def _resources(self) -> list[PreparedResource]:
        """The mapping's resources prepared, again only when the mapping or the blueprints changed."""
        config = self._mapping()
        excluded = tuple(self.integration.spec.config.excludedTags)
        context = self.store.blueprints_fingerprint() + "|" + "\x1f".join(excluded)
        signature = "\x1e".join(resource_hash(i, r, config, context) for i, r in enumerate(config.resources))
        if self._prepared is None or self._prepared[0] != signature:
            self._prepared = (signature, prepare_resources(config, context))
        return self._prepared[1]

    async def _stream(
        self,
        stack: contextlib.AsyncExitStack,
        clients: dict[str, AzureDevOpsRest],
        *,
        until_idle: bool,
        claims: int | None = None,
    ) -> int:
        """Claim and process events as a stream until the processor stops (``until_idle``: until
        nothing is due and nothing runs, or ``claims`` claims were made); how many were claimed.

        At most :attr:`batch` events are held at once; a claim is made whenever there is room and
        something may be due (an event stored in this process, an object's lane finished, or the
        poll). Each object has one *lane*, a task that runs its events one after the other, oldest
        first; an event claimed for an object whose lane is running joins its queue. At most
        :attr:`concurrency` events are being processed at once, across the lanes.
        """
        stream = _Stream(self, stack, clients, asyncio.get_running_loop(), eager=until_idle)
        self._stream_running = stream
        heartbeat = asyncio.create_task(self._keep_leases(stream))
        settler = asyncio.create_task(stream.settler())
        claimed_total = 0
        made = 0
        last_claim = 0.0
        try:
            while until_idle or not self._thread.stopping.is_set():
                stream.kick.clear()
                self._thread.wake.clear()
                if self._prepare is not None:
                    await asyncio.to_thread(self._prepare)
                    self._prepare = None
                room = self.batch - len(stream.held)
                if room <= 0:  # saturated: a lane or a settle frees room and kicks
                    stream.full = True
                    await stream.wait(self.poll_seconds)
                    continue
                gap = last_claim + CLAIM_SPACING - time.monotonic()
                if gap > 0:  # events stored meanwhile are claimed together, not one claim each
                    await asyncio.sleep(gap)
                last_claim = time.monotonic()
                claimed = await asyncio.to_thread(self.queue.claim, [self.kind], room)
                made += 1
                started = await stream.dispatch(claimed) if claimed else 0
                claimed_total += len(claimed)
                stream.full = len(claimed) == room
                if until_idle:
                    if claims is not None and made >= claims:
                        break
                    if not stream.lanes and not started and not stream.full:
                        break
                if stream.full:
                    continue  # more may be due at once: claim again as soon as there is room
                await stream.wait(self.poll_seconds)
        finally:
            self._stream_running = None
            await stream.close()
            # Not cancelled: a settle under way in its thread would go on after stop() returned.
            stream.stop_settling()
            await settler
            await stream.flush()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        return claimed_total

    async def _keep_leases(self, stream: _Stream) -> None:
        """Renew the leases of the held events every third of the lease (Azure slow to answer, a
        client retrying): an event still held is never claimed by another worker."""
        beat = self.queue.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(beat)
            held = sorted(stream.held)
            if held:
                await asyncio.to_thread(self.queue.extend_many, held)

    def _waiting(self, firsts: Mapping[str, int]) -> set[str]:
        """The object keys of ``firsts`` (key → the first claimed event's job id) that have an older
        event not finished: pending (a retry to come) or held by another worker. (This worker's own
        held events of those objects are done and only await their settling: a running lane takes
        every event of its object.)

        One indexed query for the unfinished events older than the newest of ``firsts`` — a few:
        claims take the oldest due events first — whose object keys are read only for those rows.
        """
        if not firsts:
            return set()
        key_of = jobs.c.payload["objectKey"].as_string()
        bound = max(firsts.values())
        # One status per query: so both engines find the rows by the (status, run_after) index,
        # not by scanning every job of the kind (processed ones are kept for two days).
        queries = [
            sa.select(jobs.c.id, key_of.label("key")).where(
                jobs.c.status == PENDING, jobs.c.kind == self.kind, jobs.c.id < bound
            ),
            sa.select(jobs.c.id, key_of.label("key")).where(
                jobs.c.status == RUNNING,
                jobs.c.kind == self.kind,
                jobs.c.id < bound,
                jobs.c.locked_by != self.queue.worker_id,
            ),
        ]
        out: set[str] = set()
        with self.db.connect() as conn:
            for query in queries:
                for row in conn.execute(query):
                    first = firsts.get(str(row.key))
                    if first is not None and int(row.id) < first:
                        out.add(str(row.key))
        return out

    # ------------------------------------------------------------------------------ one event

    async def _one(self, job: Job, stream: _Stream) -> datetime | None:
        """Process one claimed event and settle its job; when it is to be retried, when."""
        payload = job.payload
        event_type = str(payload.get("eventType") or "")
        event = payload.get("event")
        if not payload.get("known"):
            stream.finish(job.id, f"skipped: kiosk does not process events of type {event_type!r}")
            self.stats.count("skipped")
            return None
        handlers = handlers_for(event_type)
        prepared, config = stream.resources()
        chosen = [p for p in prepared if p.resource.kind in handlers]
        if not chosen:
            kinds = ", ".join(sorted(handlers)) or "none"
            stream.finish(job.id, f"skipped: no resource of the mapping is of a kind {event_type} changes ({kinds})")
            self.stats.count("skipped")
            return None
        started = time.monotonic()
        try:
            if not isinstance(event, dict):
                raise MalformedEvent("the stored event has no envelope")
            organization = event_organization(event, self.integration.spec.config.organization_urls())
            source = Source(self.identifier, organization)
            ctx = stream.context(organization)
            repositories = [p for p in prepared if p.resource.kind == "repository"]
            answers = [
                (resource, await handlers[resource.resource.kind](ctx, resource.resource, event)) for resource in chosen
            ]
            # The children of a gone repository are found by their relation to its entity, so
            # they go first: deleting the repository's entity takes those relations with it.
            answers.sort(key=lambda answer: not any(REPOSITORY_GONE in item for item in answer[1].gone))
            for resource, refetched in answers:
                await apply_refetched(self.store, source, config, resource, refetched, repositories)
        except (MalformedEvent, ApplyFailed) as exc:
            await self._failed(job, f"{type(exc).__name__}: {exc}", retry_at=None)
            stream.held.discard(job.id)
            return None
        except Exception as exc:  # Azure (after the client's retries), the database, or an answer not understood
            error = f"{type(exc).__name__}: {exc}"
            stream.held.discard(job.id)
            if job.attempts >= self.max_attempts:
                await self._failed(job, f"{error} (after {job.attempts} attempts)", retry_at=None)
                return None
            delay = backoff_delay(job.attempts, self.backoff_seconds, self.backoff_max_seconds)
            retry_at = utcnow() + timedelta(seconds=delay)
            await self._failed(job, error, retry_at=retry_at)
            return retry_at
        stream.finish(job.id)
        self.stats.count("processed")
        log.debug(
            "event processed in %.3f s",
            time.monotonic() - started,
            extra={"integration": self.identifier, "event_type": event_type, "event_id": payload.get("eventId")},
        )
        return None

    async def _failed(self, job: Job, error: str, *, retry_at: datetime | None) -> None:
        payload = job.payload
        if retry_at is None:
            await asyncio.to_thread(self.queue.dead, job.id, error)
        else:
            await asyncio.to_thread(self.queue.retry, job.id, retry_at, error)
        self.stats.failure(
            EventFailure(
                at=utcnow(),
                job_id=job.id,
                event_id=payload.get("eventId"),
                event_type=payload.get("eventType"),
                error=error,
                retried=retry_at is not None,
            )
        )
        log.warning(
            "event %s: %s",
            "retried later" if retry_at is not None else "failed",
            error,
            extra={"integration": self.identifier, "event_type": payload.get("eventType")},
        )


#: How long an organisation's :class:`FetchContext` (its cached project and repository lists) serves
#: the events of a stream before a fresh one reads them again: a project or repository created
#: meanwhile is seen within this many seconds.
CONTEXT_SECONDS: Final = 2.0
#: How long finished events wait to be settled together (one transaction for all of them).
SETTLE_SECONDS: Final = 0.005
#: The least time between two claims: under a stream of events each stored batch would otherwise
#: be claimed on its own (a write transaction each, beside the endpoint's and the entities').
CLAIM_SPACING: Final = 0.01


def _superseded(earlier: Job, later: Job) -> bool:
    """Whether processing ``later`` gives all that processing ``earlier`` would (both read only the
    current state of the same object with the same handlers: :func:`read_subject`)."""
    if not (earlier.payload.get("known") and later.payload.get("known")):
        return False
    first, second = earlier.payload.get("event"), later.payload.get("event")
    if not isinstance(first, dict) or not isinstance(second, dict):
        return False
    subject = read_subject(str(earlier.payload.get("eventType") or ""), first)
    return subject is not None and subject == read_subject(str(later.payload.get("eventType") or ""), second)


@dataclass
class _Lane:
    """The events of one object held by this worker, run one after the other, oldest first."""

    jobs: deque[Job]
    task: asyncio.Task[None] | None = None


class _Stream:
    """One run of :meth:`EventProcessor._stream`: the lanes, the events held, and the finished
    events waiting to be settled (a batch per transaction, :data:`SETTLE_SECONDS` apart at most)."""

    def __init__(
        self,
        processor: EventProcessor,
        stack: contextlib.AsyncExitStack,
        clients: dict[str, AzureDevOpsRest],
        loop: asyncio.AbstractEventLoop,
        *,
        eager: bool = False,
    ) -> None:
        """``eager``: every lane that ends kicks the claiming loop (draining: to see it is idle);
        otherwise only when the stream is full (events stored here kick it themselves)."""
        self.processor = processor
        self.eager = eager
        self.stack = stack
        self.clients = clients
        self.loop = loop
        self.kick = asyncio.Event()
        self.lanes: dict[str, _Lane] = {}
        #: Claimed and not yet settled (queued in a lane, running, or finished and to settle).
        self.held: set[int] = set()
        #: The last claim filled the room there was: more may be due.
        self.full = False
        self.closing = False
        self.gate = asyncio.Semaphore(processor.concurrency)
        self._finished: list[JobResult] = []
        self._to_settle = asyncio.Event()
        self._settling_stopped = asyncio.Event()
        self._contexts: dict[str, tuple[float, FetchContext]] = {}
        self._prepared: tuple[list[PreparedResource], PortAppConfig] | None = None

    # -------------------------------------------------------------------------- what events use

    def resources(self) -> tuple[list[PreparedResource], PortAppConfig]:
        """The mapping's prepared resources and the mapping, as of the latest claim."""
        if self._prepared is None:
            raise RuntimeError("no claim prepared the resources yet")
        return self._prepared

    def context(self, organization: str) -> FetchContext:
        """The organisation's fetch context, made again every :data:`CONTEXT_SECONDS`."""
        now = time.monotonic()
        found = self._contexts.get(organization)
        if found is not None and now - found[0] < CONTEXT_SECONDS:
            return found[1]
        client = self.clients.get(organization)
        if client is None:
            client = self.clients[organization] = self.processor._client(organization)
            self.stack.push_async_callback(client.aclose)
        excluded = tuple(self.processor.integration.spec.config.excludedTags)
        ctx = FetchContext(client, organization, excluded_tags=excluded)
        self._contexts[organization] = (now, ctx)
        return ctx

    # ------------------------------------------------------------------------------- claiming

    async def dispatch(self, claimed: list[Job]) -> int:
        """Put claimed events in their objects' lanes, starting a lane for each object that has
        none (unless an older event of it is unfinished elsewhere: then its events are handed back
        for a little later); how many lanes were started."""
        processor = self.processor
        prepared = await asyncio.to_thread(processor._resources)
        self._prepared = (prepared, processor._mapping())
        new: dict[str, list[Job]] = {}
        for job in sorted(claimed, key=lambda j: j.id):
            self.held.add(job.id)
            key = job.payload.get("objectKey")
            lane_key = key if isinstance(key, str) else f"#{job.id}"  # no object: a lane of its own
            lane = self.lanes.get(lane_key)
            if lane is not None:
                lane.jobs.append(job)
            else:
                new.setdefault(lane_key, []).append(job)
        firsts = {key: group[0].id for key, group in new.items() if not key.startswith("#")}
        waiting = await asyncio.to_thread(processor._waiting, firsts)
        if waiting:
            later = utcnow() + timedelta(seconds=processor.order_wait_seconds)
            deferred = [job.id for key in waiting for job in new.pop(key)]
            await asyncio.to_thread(processor.queue.defer, deferred, later)
            self.held.difference_update(deferred)
        for key, group in new.items():
            lane = _Lane(deque(group))
            self.lanes[key] = lane
            lane.task = asyncio.create_task(self._run_lane(key, lane))
        return len(new)

    async def wait(self, seconds: float) -> None:
        """Until something may be due: a kick (events stored here, room freed, stopping) or ``seconds``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.kick.wait(), seconds)

    # ---------------------------------------------------------------------------------- lanes

    async def _run_lane(self, key: str, lane: _Lane) -> None:
        processor = self.processor
        try:
            while lane.jobs:
                if self.closing:
                    rest = [job.id for job in lane.jobs]
                    lane.jobs.clear()
                    await asyncio.to_thread(processor.queue.release, rest)
                    self.held.difference_update(rest)
                    break
                job = lane.jobs.popleft()
                while lane.jobs and _superseded(job, lane.jobs[0]):
                    # The next event of the object reads what this one would: one read serves both.
                    later = lane.jobs.popleft()
                    self.finish(job.id, f"superseded by event {later.id}: the object was read once for both")
                    processor.stats.count("processed")
                    job = later
                async with self.gate:
                    retry_at = await processor._one(job, self)
                if retry_at is not None and lane.jobs:
                    # The rest of the object's events wait for this one's retry.
                    rest = [later.id for later in lane.jobs]
                    lane.jobs.clear()
                    until = retry_at + timedelta(seconds=processor.order_wait_seconds)
                    await asyncio.to_thread(processor.queue.defer, rest, until)
                    self.held.difference_update(rest)
        except Exception:  # the database failing under the hand-back: the leases expire and others retry
            log.exception("an object's events could not be processed", extra={"integration": processor.identifier})
        finally:
            del self.lanes[key]
            if self.eager or self.full:
                self.kick.set()

    async def close(self) -> None:
        """Let the lanes finish the event each is processing and hand their others back."""
        self.closing = True
        tasks = [lane.task for lane in self.lanes.values() if lane.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------------------- settling

    def finish(self, job_id: int, note: str | None = None) -> None:
        """The event is done (with ``note`` when skipped): settled with the others finishing now."""
        self._finished.append(JobResult(job_id, "done", None, note))
        self._to_settle.set()

    async def settler(self) -> None:
        """Settle finished events in batches, as they come, until :meth:`stop_settling` (the
        settle under way finished first)."""
        while not self._settling_stopped.is_set():
            await self._to_settle.wait()
            await self._pause(SETTLE_SECONDS)
            self._to_settle.clear()
            if not await self.flush():
                await self._pause(self.processor.poll_seconds)

    def stop_settling(self) -> None:
        self._settling_stopped.set()
        self._to_settle.set()

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when settling stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settling_stopped.wait(), seconds)

    async def flush(self) -> bool:
        """Settle every finished event now (one transaction); on a database error (False) they
        wait for the next flush, their leases renewed meanwhile."""
        if not self._finished:
            return True
        batch, self._finished = self._finished, []
        processor = self.processor
        try:
            await asyncio.to_thread(self._settle, batch)
        except Exception:
            log.exception(
                "settling %d processed events failed", len(batch), extra={"integration": processor.identifier}
            )
            self._finished[:0] = batch
            self._to_settle.set()
            return False
        self.held.difference_update(result.job_id for result in batch)
        if self.full:
            self.kick.set()  # room again
        return True

    def _settle(self, results: list[JobResult]) -> None:
        with self.processor.db.begin() as conn:
            self.processor.queue.settle(conn, results)
