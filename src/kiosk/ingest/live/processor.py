"""The live-event processor of one integration: its received events claimed, read again, mapped
and written, in order per object.

**Claiming.** The events are jobs of the integration's kind (:func:`event_job_kind`), claimed with
the queue's lease (:class:`~kiosk.store.queue.JobQueue`), oldest first, a batch at a time, by a
thread of the processor's own with its own event loop — never the server's. A batch is grouped by
the event's ``objectKey`` (the object it is about): the events of one object run one after the
other, oldest first, those of different objects side by side (:attr:`EventProcessor.concurrency`
groups at once). An event whose object has an older event not finished yet — waiting for a
retry, or held by another process — is handed back for later (:meth:`JobQueue.defer`) rather than
run before it; so is the rest of a group after an event that failed and is to be retried.

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
from kiosk.ingest.live.registry import handlers_for
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
    ``prepare()`` runs before the first event is processed, and again before each round until it
    succeeds (the runner creates the default blueprints there, as before a resync);
    ``rest_options`` go to each organisation's client (tests shorten its retries), or
    ``rest_factory`` replaces it. ``batch`` events are claimed at a time, ``concurrency`` objects
    processed at once; an event is tried ``max_attempts`` times, ``backoff_seconds`` doubling
    between tries up to ``backoff_max_seconds``; ``poll_seconds`` is how soon events another
    process stored (or a retry come due) are seen when nobody wakes the processor.
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
        batch: int = 50,
        concurrency: int = 8,
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

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> EventProcessor:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop claiming; the events being processed are finished first (up to ``timeout`` s)."""
        return self._thread.stop(timeout)

    def notify(self) -> None:
        """Events were stored in this process: look at once."""
        self._thread.wake.set()

    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            clients: dict[str, AzureDevOpsRest] = {}
            while not self._thread.stopping.is_set():
                self._thread.wake.clear()
                try:
                    handled = await self._round(stack, clients)
                except Exception:  # the database unreachable, or a bug: said, and tried again
                    log.exception("event processing round failed", extra={"integration": self.identifier})
                    handled = 0
                if handled == 0:
                    await asyncio.to_thread(self._thread.wake.wait, self.poll_seconds)

    async def drain(self, *, rounds: int = 100) -> int:
        """Process the events due now, round after round, until none is left or ``rounds`` were
        run (the command line and the tests, in the caller's loop); how many were handled."""
        total = 0
        async with contextlib.AsyncExitStack() as stack:
            clients: dict[str, AzureDevOpsRest] = {}
            for _ in range(rounds):
                handled = await self._round(stack, clients)
                if handled == 0:
                    break
                total += handled
        return total

    # ------------------------------------------------------------------------------ a round

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

    async def _round(self, stack: contextlib.AsyncExitStack, clients: dict[str, AzureDevOpsRest]) -> int:
        """Claim a batch and process it; how many events were claimed (0: none due)."""
        if self._prepare is not None:
            await asyncio.to_thread(self._prepare)
            self._prepare = None
        claimed = await asyncio.to_thread(self.queue.claim, [self.kind], self.batch)
        if not claimed:
            return 0
        prepared = await asyncio.to_thread(self._resources)
        config = self._mapping()
        groups: dict[str, list[Job]] = {}
        singles: list[list[Job]] = []
        for job in sorted(claimed, key=lambda j: j.id):
            key = job.payload.get("objectKey")
            if isinstance(key, str):
                groups.setdefault(key, []).append(job)
            else:
                singles.append([job])
        waiting = await asyncio.to_thread(self._waiting, {key: group[0].id for key, group in groups.items()})
        if waiting:
            later = utcnow() + timedelta(seconds=self.order_wait_seconds)
            held = [job.id for key in waiting for job in groups.pop(key)]
            await asyncio.to_thread(self.queue.defer, held, later)
        contexts: dict[str, FetchContext] = {}
        gate = asyncio.Semaphore(self.concurrency)

        def context(organization: str) -> FetchContext:
            found = contexts.get(organization)
            if found is None:
                client = clients.get(organization)
                if client is None:
                    client = clients[organization] = self._client(organization)
                    stack.push_async_callback(client.aclose)
                found = contexts[organization] = FetchContext(
                    client, organization, excluded_tags=tuple(self.integration.spec.config.excludedTags)
                )
            return found

        async def run_group(group: list[Job]) -> None:
            async with gate:
                for index, job in enumerate(group):
                    retry_at = await self._one(job, prepared, config, context)
                    if retry_at is not None and index + 1 < len(group):
                        # The rest of the object's events wait for this one's retry.
                        rest = [later.id for later in group[index + 1 :]]
                        await asyncio.to_thread(
                            self.queue.defer, rest, retry_at + timedelta(seconds=self.order_wait_seconds)
                        )
                        return

        held_ids = [job.id for group in [*groups.values(), *singles] for job in group]
        heartbeat = asyncio.create_task(self._keep_leases(held_ids))
        try:
            await asyncio.gather(*(run_group(group) for group in [*groups.values(), *singles]))
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        return len(claimed)

    async def _keep_leases(self, job_ids: Sequence[int]) -> None:
        """Renew the leases of the round's jobs every third of the lease while it runs (Azure slow
        to answer, a client retrying): a job still held is never claimed by another worker. A job
        already settled is no longer this worker's, and renewing it changes nothing."""
        beat = self.queue.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(beat)
            for job_id in job_ids:
                await asyncio.to_thread(self.queue.extend, job_id)

    def _waiting(self, firsts: Mapping[str, int]) -> set[str]:
        """The object keys of ``firsts`` (key → the first claimed event's job id) that have an older
        event not finished: pending (a retry to come) or held by another worker."""
        if not firsts:
            return set()
        key_of = jobs.c.payload["objectKey"].as_string()
        out: set[str] = set()
        keys = sorted(firsts)
        with self.db.connect() as conn:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                rows = conn.execute(
                    sa.select(key_of.label("key"), sa.func.min(jobs.c.id).label("first"))
                    .where(jobs.c.kind == self.kind, jobs.c.status.in_([PENDING, RUNNING]), key_of.in_(chunk))
                    .group_by(key_of)
                )
                out.update(str(row.key) for row in rows if int(row.first) < firsts[str(row.key)])
        return out

    # ------------------------------------------------------------------------------ one event

    async def _one(
        self,
        job: Job,
        prepared: Sequence[PreparedResource],
        config: PortAppConfig,
        context: Callable[[str], FetchContext],
    ) -> datetime | None:
        """Process one claimed event and settle its job; when it is to be retried, when."""
        payload = job.payload
        event_type = str(payload.get("eventType") or "")
        event = payload.get("event")
        if not payload.get("known"):
            await self._skip(job, f"skipped: kiosk does not process events of type {event_type!r}")
            return None
        handlers = handlers_for(event_type)
        chosen = [p for p in prepared if p.resource.kind in handlers]
        if not chosen:
            kinds = ", ".join(sorted(handlers)) or "none"
            await self._skip(job, f"skipped: no resource of the mapping is of a kind {event_type} changes ({kinds})")
            return None
        started = time.monotonic()
        try:
            if not isinstance(event, dict):
                raise MalformedEvent("the stored event has no envelope")
            organization = event_organization(event, self.integration.spec.config.organization_urls())
            source = Source(self.identifier, organization)
            ctx = context(organization)
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
            return None
        except Exception as exc:  # Azure (after the client's retries), the database, or an answer not understood
            error = f"{type(exc).__name__}: {exc}"
            if job.attempts >= self.max_attempts:
                await self._failed(job, f"{error} (after {job.attempts} attempts)", retry_at=None)
                return None
            delay = backoff_delay(job.attempts, self.backoff_seconds, self.backoff_max_seconds)
            retry_at = utcnow() + timedelta(seconds=delay)
            await self._failed(job, error, retry_at=retry_at)
            return retry_at
        await asyncio.to_thread(self.queue.complete, job.id)
        self.stats.count("processed")
        log.debug(
            "event processed in %.3f s",
            time.monotonic() - started,
            extra={"integration": self.identifier, "event_type": event_type, "event_id": payload.get("eventId")},
        )
        return None

    async def _skip(self, job: Job, reason: str) -> None:
        await asyncio.to_thread(self._complete_with_note, job.id, reason)
        self.stats.count("skipped")

    def _complete_with_note(self, job_id: int, note: str) -> None:
        with self.db.begin() as conn:
            self.queue.settle(conn, [JobResult(job_id, "done", None, note)])

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
