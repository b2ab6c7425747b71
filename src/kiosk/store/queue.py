"""The durable job queue: one table (``jobs``) for every kind of work that must not be lost.

Producers call :func:`enqueue` (or :func:`enqueue_many` for a batch, one statement per 500 jobs)
inside their own transaction, so a job exists exactly when the thing that caused it was stored (an
action run and its delivery commit together or not at all). This module is the one place that
writes jobs. Workers use a :class:`JobQueue`:

* :meth:`JobQueue.claim` takes due jobs — ``pending`` ones whose ``run_after`` has come, and
  ``running`` ones whose lease (``locked_until``) has expired because their worker died — oldest
  first, in one short transaction that marks them ``running``, stamps the worker id and the lease,
  and counts the attempt. On PostgreSQL the rows are picked with ``FOR UPDATE SKIP LOCKED``, so
  several processes on several machines claim concurrently and never the same job; on SQLite the
  write transaction (``BEGIN IMMEDIATE``) serialises claimers.
* :meth:`JobQueue.complete`, :meth:`JobQueue.retry` and :meth:`JobQueue.dead` (or
  :meth:`JobQueue.settle` for a batch, inside the caller's transaction) end a claim. They apply
  only while this worker still holds the lease: a job whose lease ran out and was claimed by
  someone else is left to its new holder, and the call says so by returning False.

Finished jobs are deleted by :func:`prune_jobs` (the queue's retention, see
:mod:`kiosk.store.queue_retention`): ``done`` and ``dead`` ones only, never pending or leased ones.

Delivery is at least once: a job is finished only by its holder's explicit call, so a worker that
dies mid-job leaves a lease that expires and the job runs again. Work must therefore be
idempotent or carry an idempotency key (deliveries carry ``webhook-id``).

Times are the application's clock in UTC. On SQLite the column type stores them without offset,
so comparisons are plain text comparisons of one format; values read back are made aware again.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from kiosk.store.engine import Database
from kiosk.store.tables import jobs

__all__ = [
    "DEAD",
    "DONE",
    "PENDING",
    "RUNNING",
    "Job",
    "JobQueue",
    "JobResult",
    "NewJob",
    "aware",
    "db_time",
    "driver_time",
    "enqueue",
    "enqueue_many",
    "find_job",
    "json_time",
    "prune_jobs",
    "requeue",
    "rows_from_json",
    "unfinished_payloads",
    "utcnow",
]

PENDING = "pending"
RUNNING = "running"
DONE = "done"
DEAD = "dead"

#: The longest error text kept on a job row; the full story lives with the work (delivery attempts).
MAX_ERROR = 2_000
#: Rows per multi-row INSERT of :func:`enqueue_many`: 8 parameters each stays far below both
#: engines' parameter limits (SQLite 32,766, PostgreSQL 65,535).
_ROWS_PER_INSERT = 500


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were stored as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass(frozen=True)
class Job:
    """A claimed job. ``attempts`` counts claims, this one included."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    dedupe_key: str | None


@dataclass(frozen=True)
class JobResult:
    """How a claimed job ended: ``done``, ``pending`` again at ``run_after`` (a retry), or ``dead``."""

    job_id: int
    status: Literal["done", "pending", "dead"]
    run_after: datetime | None = None
    error: str | None = None


def enqueue(
    conn: Connection,
    kind: str,
    payload: dict[str, Any],
    *,
    run_after: datetime | None = None,
    dedupe_key: str | None = None,
) -> int | None:
    """Add a job inside the caller's transaction; its id, or None when ``(kind, dedupe_key)`` exists.

    The duplicate check is the unique constraint with ``ON CONFLICT DO NOTHING``, which leaves the
    caller's transaction usable on PostgreSQL (a raised IntegrityError would abort it). Jobs without
    a ``dedupe_key`` never collide (NULLs are distinct in a unique constraint on both engines).

    The job is visible to workers once the caller commits; in-process workers can then be woken
    at once with :meth:`JobQueue.notify` instead of waiting for their next poll.
    """
    now = utcnow()
    values = {
        "kind": kind,
        "payload": payload,
        "status": PENDING,
        "attempts": 0,
        "run_after": run_after or now,
        "dedupe_key": dedupe_key,
        "created_at": now,
        "updated_at": now,
    }
    statement = _ENQUEUE_POSTGRES if conn.dialect.name == "postgresql" else _ENQUEUE_SQLITE
    row = conn.execute(statement, values).first()
    return None if row is None else int(row.id)


# Built once with values bound per call: enqueue sits on an action run's latency path, and
# constructing the statement cost more than SQLite takes to run it (the compiled SQL is cached
# by SQLAlchemy either way).
_ENQUEUE_POSTGRES = (
    postgresql.insert(jobs).on_conflict_do_nothing(index_elements=["kind", "dedupe_key"]).returning(jobs.c.id)
)
_ENQUEUE_SQLITE = sqlite.insert(jobs).on_conflict_do_nothing(index_elements=["kind", "dedupe_key"]).returning(jobs.c.id)


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job for :func:`enqueue_many`.

    ``done`` writes it already finished: there is nothing to run, but the row keeps its dedupe key,
    so the same work offered again is recognised (a received event with no reactions).
    """

    kind: str
    payload: dict[str, Any]
    dedupe_key: str | None = None
    run_after: datetime | None = None
    done: bool = False


def _insert_jobs_sql(dialect: str, rows: int) -> str:
    mark = "%s" if dialect == "postgresql" else "?"
    payload = f"CAST({mark} AS jsonb)" if dialect == "postgresql" else mark
    row = f"({mark}, {payload}, {mark}, 0, {mark}, {mark}, {mark}, {mark})"
    return (
        "INSERT INTO jobs (kind, payload, status, attempts, run_after, dedupe_key, created_at, updated_at) "  # noqa: S608
        f"VALUES {', '.join([row] * rows)} ON CONFLICT (kind, dedupe_key) DO NOTHING "
        "RETURNING id, kind, dedupe_key"
    )


def enqueue_many(conn: Connection, new_jobs: Sequence[NewJob]) -> list[int | None]:
    """Add ``new_jobs`` inside the caller's transaction; per job its id, or None when its
    ``(kind, dedupe_key)`` existed already (or came earlier in ``new_jobs``).

    :func:`enqueue` for batches: one multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING`` per 500
    jobs, with values prepared here rather than by SQLAlchemy's per-row type processing — the
    receivers' intake stores its events' jobs through it, on its hot path. Rows are inserted in
    ``(kind, dedupe_key)`` order, so two producers storing the same keys at once take the unique
    index's locks in the same order (PostgreSQL) instead of deadlocking. Jobs without a dedupe key
    get their ids in insertion order: the ids one ``VALUES`` list receives grow in row order (the
    premise of SQLAlchemy's own "insertmanyvalues" when it returns ids in parameter order).
    """
    if not new_jobs:
        return []
    dialect = conn.dialect.name
    now = utcnow()
    stamp = driver_time(dialect, now)
    order = sorted(
        range(len(new_jobs)),
        key=lambda i: (new_jobs[i].kind, new_jobs[i].dedupe_key is None, new_jobs[i].dedupe_key or ""),
    )
    out: list[int | None] = [None] * len(new_jobs)
    for start in range(0, len(order), _ROWS_PER_INSERT):
        chunk = order[start : start + _ROWS_PER_INSERT]
        params: list[Any] = []
        for i in chunk:
            job = new_jobs[i]
            params += (
                job.kind,
                orjson.dumps(job.payload).decode(),
                DONE if job.done else PENDING,
                stamp if job.run_after is None else driver_time(dialect, job.run_after),
                job.dedupe_key,
                stamp,
                stamp,
            )
        keyed: dict[tuple[str, str], int] = {}
        keyless: list[int] = []
        for row in conn.exec_driver_sql(_insert_jobs_sql(dialect, len(chunk)), tuple(params)).all():
            if row[2] is None:
                keyless.append(int(row[0]))
            else:
                keyed[(str(row[1]), str(row[2]))] = int(row[0])
        keyless.sort()
        given = iter(keyless)
        for i in chunk:
            job = new_jobs[i]
            if job.dedupe_key is None:
                out[i] = next(given)
            else:
                # pop: a key repeated within the batch was inserted once, for its first occurrence.
                out[i] = keyed.pop((job.kind, job.dedupe_key), None)
    return out


def find_job(conn: Connection, kind: str, dedupe_key: str) -> tuple[int, str] | None:
    """``(id, status)`` of the job enqueued under ``(kind, dedupe_key)``, if any.

    The row stays locked (PostgreSQL; SQLite's write transaction excludes other writers anyway)
    until the caller's transaction ends: callers look a job up to change it (a redelivery requeues
    it), and the retention pruner must not delete a finished job between that look and the change.
    """
    row = conn.execute(
        sa.select(jobs.c.id, jobs.c.status)
        .where(jobs.c.kind == kind, jobs.c.dedupe_key == dedupe_key)
        .with_for_update()
    ).first()
    return None if row is None else (int(row.id), str(row.status))


def unfinished_payloads(conn: Connection, kind: str) -> list[dict[str, Any]]:
    """The payloads of the jobs of ``kind`` still to run or running (the queue's backlog of that kind).

    For the retention pruner: what a pending or leased job names must not be deleted.
    """
    rows = conn.execute(sa.select(jobs.c.payload).where(jobs.c.status.in_([PENDING, RUNNING]), jobs.c.kind == kind))
    return [dict(r.payload) for r in rows if isinstance(r.payload, dict)]


def prune_jobs(
    conn: Connection,
    *,
    status: Literal["done", "dead"],
    finished_before: datetime,
    limit: int,
    kinds: Sequence[str] | None = None,
    skip_kinds: Sequence[str] = (),
) -> int:
    """Delete up to ``limit`` jobs of ``status`` (done or dead) last changed before ``finished_before``.

    One statement, in the caller's transaction: the caller bounds each transaction with ``limit`` so
    a big backlog never holds SQLite's write lock for long. Only finished jobs: a pending or leased
    job is never deleted, and the status and age are checked again by the DELETE itself, so a job
    requeued meanwhile (a redelivery) is kept. On PostgreSQL the rows are picked ``FOR UPDATE SKIP
    LOCKED``: several kiosk processes prune side by side without waiting on each other, and a job a
    redelivery has locked (:func:`find_job`) is left alone. The newest job of the table is never
    deleted (ids are not to be reused). ``kinds`` limits the jobs to those kinds, ``skip_kinds``
    leaves those kinds out. Returns how many were deleted.
    """
    if status not in (DONE, DEAD):
        raise ValueError(f"only finished jobs are pruned, not {status!r}")
    if limit <= 0:
        return 0
    picked = jobs.alias("picked")
    newest = jobs.alias("newest")
    chosen = sa.select(picked.c.id).where(
        picked.c.status == status,
        # The newest job is always kept: SQLite gives a new row the largest id plus one, so deleting
        # the newest rows would hand their ids out again, and a job id (a worker's claim, its fence)
        # must name one job forever.
        picked.c.id < sa.select(sa.func.max(newest.c.id)).scalar_subquery(),
        # run_after <= updated_at for a finished job: the bound lets the (status, run_after) index
        # end the scan at the cutoff, and the order walks it oldest first.
        picked.c.run_after < finished_before,
        picked.c.updated_at < finished_before,
    )
    if kinds is not None:
        chosen = chosen.where(picked.c.kind.in_(list(kinds)))
    if skip_kinds:
        chosen = chosen.where(picked.c.kind.not_in(list(skip_kinds)))
    # A CTE, not a plain ``IN (subquery)``: PostgreSQL may run a subquery again for each row it
    # deletes, and with SKIP LOCKED each run skips the rows already taken and picks new ones, so the
    # LIMIT would bound nothing. A CTE that locks rows is never inlined: it runs once.
    chosen_cte = (
        chosen.order_by(picked.c.run_after, picked.c.id).limit(limit).with_for_update(skip_locked=True).cte("chosen")
    )
    # Counted from RETURNING: pysqlite reports no rowcount for a statement that starts with WITH.
    deleted = conn.execute(
        sa.delete(jobs)
        .where(
            jobs.c.id.in_(sa.select(chosen_cte.c.id)),
            jobs.c.status == status,
            jobs.c.updated_at < finished_before,
        )
        .returning(jobs.c.id)
    ).all()
    return len(deleted)


def requeue(
    conn: Connection, job_id: int, *, run_after: datetime | None = None, payload: dict[str, Any] | None = None
) -> bool:
    """Make a finished or waiting job due now (or at ``run_after``), with a fresh attempt count (a
    manual redelivery, or a recurring job's next round); ``payload`` replaces its payload when given.

    A ``running`` job is left alone (False): its holder is working on it and will finish it.
    """
    now = utcnow()
    values: dict[str, Any] = {
        "status": PENDING,
        "attempts": 0,
        "run_after": run_after or now,
        "locked_by": None,
        "locked_until": None,
        "last_error": None,
        "updated_at": now,
    }
    if payload is not None:
        values["payload"] = payload
    result = conn.execute(sa.update(jobs).where(jobs.c.id == job_id, jobs.c.status != RUNNING).values(**values))
    return bool(result.rowcount)


def _clip(error: str | None) -> str | None:
    return None if error is None else error[:MAX_ERROR]


class JobQueue:
    """One worker's handle on the queue: claims carry ``worker_id`` and a lease of ``lease_seconds``.

    A worker id must be unique among live workers (the default in the delivery worker is host,
    process id and a random suffix). The lease must outlast the longest job, or the job is claimed
    a second time while still running; long jobs renew it with :meth:`extend`.
    """

    def __init__(self, db: Database, worker_id: str, *, lease_seconds: float = 60.0) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.db = db
        self.worker_id = worker_id
        self.lease = timedelta(seconds=lease_seconds)
        # job id -> attempts at claim time: with locked_by, a fencing token, so a job this worker
        # lost and claimed again (after a stall past its lease) is finished by the newer claim only.
        self._claims: dict[int, int] = {}
        self._claims_lock = threading.Lock()
        self._work = threading.Event()

    # ------------------------------------------------------------------------------- claiming

    def claim(
        self, kinds: Sequence[str], limit: int = 10, *, conn: Connection | None = None, expired: bool = True
    ) -> list[Job]:
        """Take up to ``limit`` due jobs of ``kinds``, oldest first, and lease them to this worker.

        Jobs of crashed workers (lease expired) come first, then pending jobs by ``run_after``.
        ``expired=False`` skips the first kind, for a busy worker that looks for them only now and
        then (each look is one more statement). With ``conn`` the claim is part of the caller's
        (write) transaction.
        """
        if limit <= 0 or not kinds:
            return []
        if conn is None:
            with self.db.begin() as own:
                return self.claim(kinds, limit, conn=own, expired=expired)
        now = utcnow()
        params = {
            "b_kinds": list(kinds),
            "b_now": now,
            "b_limit": limit,
            "b_worker": self.worker_id,
            "b_until": now + self.lease,
        }
        rows: list[Any] = list(conn.execute(_TAKE_EXPIRED, params)) if expired else []
        if len(rows) < limit:
            rows += conn.execute(_TAKE_DUE, {**params, "b_limit": limit - len(rows)})
        rows.sort(key=lambda r: (aware(r.run_after), r.id))
        claimed = [
            Job(
                id=int(r.id),
                kind=str(r.kind),
                payload=dict(r.payload),
                attempts=int(r.attempts),
                created_at=aware(r.created_at),
                dedupe_key=r.dedupe_key,
            )
            for r in rows
        ]
        with self._claims_lock:
            self._claims.update((job.id, job.attempts) for job in claimed)
        return claimed

    # ------------------------------------------------------------------------------ finishing

    def settle(self, conn: Connection, results: Sequence[JobResult]) -> set[int]:
        """Apply ``results`` inside the caller's transaction; the ids this worker still held.

        Jobs whose lease this worker lost are left untouched and are absent from the answer, so the
        caller can skip the rest of its bookkeeping for them in the same transaction.
        """
        if not results:
            return set()
        ids = [r.job_id for r in results]
        with self._claims_lock:
            fences = {job_id: self._claims.get(job_id) for job_id in ids}
        dialect = conn.dialect.name
        rows = [
            {
                "id": r.job_id,
                "status": {"done": DONE, "pending": PENDING, "dead": DEAD}[r.status],
                "run_after": None if r.run_after is None else json_time(dialect, r.run_after),
                "error": _clip(r.error),
                "fence": fences[r.job_id],
            }
            for r in results
        ]
        # One statement for the whole batch, whatever its size: on PostgreSQL every statement is a
        # round trip, and the holder check (status, locked_by, the claim's attempt count) happens in
        # the same UPDATE, so no job changes hands between checking and writing.
        statement = _SETTLE_SQL[dialect]
        params = (db_time(conn, utcnow()), orjson.dumps(rows).decode(), self.worker_id)
        held = {int(row[0]) for row in conn.exec_driver_sql(statement, params)}
        self._forget(ids)
        return held

    def _settle_one(self, result: JobResult, conn: Connection | None) -> bool:
        if conn is not None:
            return result.job_id in self.settle(conn, [result])
        with self.db.begin() as own:
            return result.job_id in self.settle(own, [result])

    def complete(self, job_id: int, *, conn: Connection | None = None) -> bool:
        """The job is done. False when this worker no longer holds its lease (nothing changed)."""
        return self._settle_one(JobResult(job_id, "done"), conn)

    def retry(self, job_id: int, run_after: datetime, error: str, *, conn: Connection | None = None) -> bool:
        """Run the job again at ``run_after``; keeps ``error`` as its last error. False if the lease was lost."""
        return self._settle_one(JobResult(job_id, "pending", run_after, error), conn)

    def dead(self, job_id: int, error: str, *, conn: Connection | None = None) -> bool:
        """Give up on the job for good (a dead letter, until :meth:`requeue`). False if the lease was lost."""
        return self._settle_one(JobResult(job_id, "dead", None, error), conn)

    def release(self, job_ids: Sequence[int]) -> None:
        """Hand back claimed jobs this worker never started (a graceful stop): due now, claim uncounted."""
        self._hand_back(job_ids, None)

    def defer(self, job_ids: Sequence[int], run_after: datetime) -> None:
        """Hand back claimed jobs this worker did not start, due at ``run_after``, claim uncounted:
        :meth:`release` with a later time (a job that must wait for an earlier one of its kind)."""
        self._hand_back(job_ids, run_after)

    def _hand_back(self, job_ids: Sequence[int], run_after: datetime | None) -> None:
        """Jobs this worker holds back to pending (due at ``run_after``, or as they were), the claim
        that took them not counted as an attempt."""
        if not job_ids:
            return
        values: dict[str, Any] = {
            "status": PENDING,
            "attempts": sa.case((jobs.c.attempts > 0, jobs.c.attempts - 1), else_=0),
            "locked_by": None,
            "locked_until": None,
            "updated_at": utcnow(),
        }
        if run_after is not None:
            values["run_after"] = run_after
        with self.db.begin() as conn:
            conn.execute(
                sa.update(jobs)
                .where(jobs.c.id.in_(list(job_ids)), jobs.c.status == RUNNING, jobs.c.locked_by == self.worker_id)
                .values(**values)
            )
        self._forget(job_ids)

    def extend(self, job_id: int) -> bool:
        """Renew the lease of a job this worker holds (for work that runs longer than the lease)."""
        return self.extend_many([job_id]) == 1

    def extend_many(self, job_ids: Sequence[int]) -> int:
        """Renew the leases of the jobs of ``job_ids`` this worker still holds, in one statement per
        500; how many were renewed (a job settled meanwhile is no longer held, and is not)."""
        renewed = 0
        ids = list(job_ids)
        now = utcnow()
        with self.db.begin() as conn:
            for start in range(0, len(ids), 500):
                result = conn.execute(
                    sa.update(jobs)
                    .where(
                        jobs.c.id.in_(ids[start : start + 500]),
                        jobs.c.status == RUNNING,
                        jobs.c.locked_by == self.worker_id,
                    )
                    .values(locked_until=now + self.lease, updated_at=now)
                )
                renewed += result.rowcount
        return renewed

    def requeue(self, job_id: int) -> bool:
        """Manual redelivery of a dead or done job: pending now (see :func:`requeue`)."""
        with self.db.begin() as conn:
            return requeue(conn, job_id)

    def _forget(self, job_ids: Sequence[int]) -> None:
        with self._claims_lock:
            for job_id in job_ids:
                self._claims.pop(job_id, None)

    # -------------------------------------------------------------------------------- waking

    def notify(self) -> None:
        """Tell this process's waiting worker that work was committed (after the producer's commit)."""
        self._work.set()

    def wait_for_work(self, timeout: float) -> bool:
        """Sleep until :meth:`notify` or ``timeout`` seconds; True when notified. Clears the signal.

        Other processes' jobs and expired leases are found by polling: the caller's ``timeout`` is
        the longest they wait.
        """
        notified = self._work.wait(timeout)
        self._work.clear()
        return notified


# ------------------------------------------------------------------------------------------------
# The hot statements, built once: constructing a Core statement costs more than running it.


def _take(picked: sa.Select[tuple[int]]) -> sa.Update:
    """Lease the rows ``picked`` selects to ``b_worker`` until ``b_until``, returning them.

    ``FOR UPDATE SKIP LOCKED`` is rendered on PostgreSQL only; SQLite's write lock already
    excludes other claimers.
    """
    chosen = picked.limit(sa.bindparam("b_limit", type_=sa.Integer)).with_for_update(skip_locked=True).cte("chosen")
    return (
        sa.update(jobs)
        .where(jobs.c.id == chosen.c.id)
        .values(
            status=RUNNING,
            locked_by=sa.bindparam("b_worker", type_=jobs.c.locked_by.type),
            locked_until=sa.bindparam("b_until", type_=jobs.c.locked_until.type),
            attempts=jobs.c.attempts + 1,
            updated_at=sa.bindparam("b_now", type_=jobs.c.updated_at.type),
        )
        .returning(
            jobs.c.id,
            jobs.c.kind,
            jobs.c.payload,
            jobs.c.attempts,
            jobs.c.created_at,
            jobs.c.dedupe_key,
            jobs.c.run_after,
        )
    )


_KINDS: sa.BindParameter[list[str]] = sa.bindparam("b_kinds", expanding=True)
_NOW = sa.bindparam("b_now", type_=jobs.c.run_after.type)

# Each shaped for the (status, run_after) index, which also yields the (run_after, id) order; one
# statement with an OR of both made SQLite scan every job of the kind and sort them.
_TAKE_DUE = _take(
    sa.select(jobs.c.id)
    .where(jobs.c.status == PENDING, jobs.c.run_after <= _NOW, jobs.c.kind.in_(_KINDS))
    .order_by(jobs.c.run_after, jobs.c.id)
)
_TAKE_EXPIRED = _take(
    sa.select(jobs.c.id)
    .where(jobs.c.status == RUNNING, jobs.c.locked_until <= _NOW, jobs.c.kind.in_(_KINDS))
    .order_by(jobs.c.run_after, jobs.c.id)
)


def rows_from_json(dialect: str, columns: Sequence[tuple[str, str]]) -> str:
    """SQL for a derived table ``v`` holding the rows of one JSON-array parameter (one statement per batch).

    ``columns`` are ``(name, PostgreSQL type)`` pairs; names are fixed identifiers, never input.
    On PostgreSQL ``jsonb_to_recordset`` types them; on SQLite ``json_extract`` yields the JSON
    value's own type (timestamps are text in the column's storage format, see :func:`json_time`).
    """
    if dialect == "postgresql":
        spec = ", ".join(f"{name} {pg_type}" for name, pg_type in columns)
        return f"jsonb_to_recordset(CAST(%s AS jsonb)) AS v({spec})"
    picks = ", ".join(f"json_extract(value, '$.{name}') AS {name}" for name, _ in columns)
    return f"(SELECT {picks} FROM json_each(?)) AS v"  # noqa: S608 - fixed column names only


def db_time(conn: Connection, when: datetime) -> Any:
    """A timestamp as a driver-level parameter: SQLite stores SQLAlchemy's text format, PostgreSQL a datetime."""
    return driver_time(conn.dialect.name, when)


def driver_time(dialect: str, when: datetime) -> Any:
    """:func:`db_time` by dialect name, for statements built before a connection is at hand."""
    return _sqlite_time(when) if dialect == "sqlite" else when


def json_time(dialect: str, when: datetime) -> str:
    """A timestamp inside a JSON rows parameter (:func:`rows_from_json`)."""
    return _sqlite_time(when) if dialect == "sqlite" else when.astimezone(UTC).isoformat()


def _sqlite_time(when: datetime) -> str:
    # SQLAlchemy's SQLite DateTime storage format (no offset; kiosk's values are UTC), so values
    # written here compare and read back like those written through the column type. isoformat
    # writes the same text several times faster than strftime (the intake's hot path uses it).
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


_SETTLE_COLUMNS = (
    ("id", "integer"),
    ("status", "text"),
    ("run_after", "timestamptz"),
    ("error", "text"),
    ("fence", "integer"),
)


def _settle_sql(dialect: str) -> str:
    mark = "%s" if dialect == "postgresql" else "?"
    status = "jobs.status" if dialect == "postgresql" else "+jobs.status"
    return (
        f"UPDATE jobs SET status = v.status, run_after = COALESCE(v.run_after, jobs.run_after), "  # noqa: S608
        f"last_error = v.error, locked_by = NULL, locked_until = NULL, updated_at = {mark} "
        f"FROM {rows_from_json(dialect, _SETTLE_COLUMNS)} "
        # SQLite: the unary + keeps the planner off the (status, run_after) index, which would make
        # it scan every running job per row of the batch; the primary key finds each one at once.
        f"WHERE jobs.id = v.id AND {status} = 'running' AND jobs.locked_by = {mark} "
        f"AND (v.fence IS NULL OR jobs.attempts = v.fence) RETURNING jobs.id"
    )


_SETTLE_SQL = {dialect: _settle_sql(dialect) for dialect in ("sqlite", "postgresql")}
