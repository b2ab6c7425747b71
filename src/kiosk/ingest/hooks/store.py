"""The database side of reconciling subscriptions: the applied-inputs fingerprints, and the lease.

**Fingerprints** (``integration_hooks``): per integration and organisation, the fingerprint of the
consumer inputs last applied there (:mod:`kiosk.ingest.hooks.fingerprint`).

**The lease.** Two reconcilers of one integration at once would both find a subscription missing
and both create it. So reconciling takes the integration's lease in kiosk's job queue, as resyncs
do (:mod:`kiosk.runtime.integrations`): one job row per integration, of kind
:func:`hooks_job_kind` with the integration as dedupe key, made due and claimed in one
transaction. On PostgreSQL the row is locked while it is read and claimed; on SQLite the write
transaction serialises claimers; either way one holds the lease and the others wait for its end,
then find nothing left to do. A process killed while holding it leaves a lease that expires.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from kiosk.store import Database
from kiosk.store.queue import RUNNING, Job, JobQueue, enqueue, requeue
from kiosk.store.tables import integration_hooks, jobs

__all__ = ["HOOKS_JOB_PREFIX", "HookLease", "HookStore", "hooks_job_kind"]

#: Job kinds of subscription reconciling start with this; the rest is a digest of the identifier.
HOOKS_JOB_PREFIX = "integration.hooks."


def hooks_job_kind(identifier: str) -> str:
    """The job kind of ``identifier``'s reconciling (stable across processes and versions)."""
    return HOOKS_JOB_PREFIX + hashlib.sha256(identifier.encode()).hexdigest()[:24]


class HookStore:
    """Fingerprints of applied consumer inputs, by integration and organisation URL."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def fingerprint(self, integration: str, organization: str) -> str | None:
        with self.db.connect() as conn:
            row = conn.execute(
                sa.select(integration_hooks.c.fingerprint).where(
                    integration_hooks.c.integration == integration,
                    integration_hooks.c.organization == organization,
                )
            ).first()
        return None if row is None else str(row.fingerprint)

    def save_fingerprint(self, integration: str, organization: str, fingerprint: str) -> None:
        values = {
            "integration": integration,
            "organization": organization,
            "fingerprint": fingerprint,
            "applied_at": datetime.now(UTC),
        }
        with self.db.begin() as conn:
            insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            statement = insert(integration_hooks).values(**values)
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["integration", "organization"],
                    set_={"fingerprint": statement.excluded.fingerprint, "applied_at": statement.excluded.applied_at},
                )
            )

    def forget(self, integration: str, organization: str) -> None:
        """Drop the fingerprint: the next reconcile updates every subscription it keeps."""
        with self.db.begin() as conn:
            conn.execute(
                sa.delete(integration_hooks).where(
                    integration_hooks.c.integration == integration,
                    integration_hooks.c.organization == organization,
                )
            )


@dataclass(frozen=True)
class _Held:
    job: Job


class HookLease:
    """One integration's reconcile lease (see the module docstring). Not thread-safe: one per holder."""

    def __init__(self, db: Database, identifier: str, *, lease_seconds: float = 120.0) -> None:
        self.identifier = identifier
        self.kind = hooks_job_kind(identifier)
        worker = f"{socket.gethostname()}:{os.getpid()}:hooks:{secrets.token_hex(3)}"
        self.queue = JobQueue(db, worker, lease_seconds=lease_seconds)
        self._held: _Held | None = None

    @property
    def held(self) -> bool:
        return self._held is not None

    def try_acquire(self) -> bool:
        """Take the lease when no one holds it; False when another holder has it (nothing changed)."""
        if self._held is not None:
            return True
        with self.queue.db.begin() as conn:
            row = conn.execute(
                sa.select(jobs.c.id, jobs.c.status)
                .where(jobs.c.kind == self.kind, jobs.c.dedupe_key == self.identifier)
                .with_for_update()
            ).first()
            payload = {"integration": self.identifier}
            if row is None:
                enqueue(conn, self.kind, payload, dedupe_key=self.identifier)
            elif row.status != RUNNING:
                requeue(conn, int(row.id), payload=payload)
            claimed = self.queue.claim([self.kind], 1, conn=conn)
        if not claimed:
            return False
        self._held = _Held(claimed[0])
        return True

    def extend(self) -> bool:
        """Renew the lease; False when it was lost (expired and taken by another holder)."""
        return self._held is not None and self.queue.extend(self._held.job.id)

    def release(self) -> None:
        """End the hold (the job is done; the next reconciler makes it due again)."""
        if self._held is None:
            return
        held, self._held = self._held, None
        self.queue.complete(held.job.id)

    def holder_until(self) -> datetime | None:
        """When another holder's lease runs out (None when no one holds it)."""
        with self.queue.db.connect() as conn:
            row = conn.execute(
                sa.select(jobs.c.locked_until).where(
                    jobs.c.kind == self.kind, jobs.c.dedupe_key == self.identifier, jobs.c.status == RUNNING
                )
            ).first()
        if row is None or row.locked_until is None:
            return None
        until: datetime = row.locked_until
        return until if until.tzinfo is not None else until.replace(tzinfo=UTC)
