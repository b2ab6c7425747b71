"""The durable job queue, on SQLite and PostgreSQL: enqueue, dedupe, claim, leases, finishing, pruning."""

from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from kiosk.store import Database, create_database
from kiosk.store.queue import (
    Job,
    JobQueue,
    JobResult,
    NewJob,
    aware,
    enqueue,
    enqueue_many,
    find_job,
    prune_jobs,
    requeue,
    unfinished_payloads,
    utcnow,
)
from kiosk.store.tables import jobs, server_state


def _status(db: Database, job_id: int) -> tuple[str, int, str | None]:
    with db.connect() as conn:
        row = conn.execute(sa.select(jobs.c.status, jobs.c.attempts, jobs.c.locked_by).where(jobs.c.id == job_id)).one()
    return row.status, row.attempts, row.locked_by


def _enqueue(db: Database, count: int, kind: str = "k") -> list[int]:
    with db.begin() as conn:
        ids = [enqueue(conn, kind, {"n": n}) for n in range(count)]
    assert all(i is not None for i in ids)
    return [i for i in ids if i is not None]


def test_enqueue_then_claim(db: Database) -> None:
    with db.begin() as conn:
        job_id = enqueue(conn, "delivery", {"delivery": "msg_1"}, dedupe_key="msg_1")
    queue = JobQueue(db, "w1")
    [job] = queue.claim(["delivery"])
    assert isinstance(job, Job)
    assert (job.id, job.kind, job.payload, job.attempts, job.dedupe_key) == (
        job_id,
        "delivery",
        {"delivery": "msg_1"},
        1,
        "msg_1",
    )
    assert job.created_at.tzinfo is not None
    assert _status(db, job.id) == ("running", 1, "w1")
    assert queue.claim(["delivery"]) == []  # leased: nobody else gets it


def test_enqueue_is_part_of_the_callers_transaction(db: Database) -> None:
    with pytest.raises(RuntimeError), db.begin() as conn:
        enqueue(conn, "k", {})
        raise RuntimeError("the caller fails after enqueueing")
    assert JobQueue(db, "w").claim(["k"]) == []


def test_duplicate_dedupe_key_enqueues_nothing_and_keeps_the_transaction_usable(db: Database) -> None:
    with db.begin() as conn:
        first = enqueue(conn, "event", {"n": 1}, dedupe_key="evt-1")
        second = enqueue(conn, "event", {"n": 2}, dedupe_key="evt-1")
        other_kind = enqueue(conn, "resync", {"n": 3}, dedupe_key="evt-1")
        # The transaction goes on after the duplicate (on PostgreSQL an IntegrityError would abort it).
        conn.execute(sa.insert(server_state).values(key="after", value="duplicate"))
    assert first is not None
    assert second is None
    assert other_kind is not None and other_kind != first
    with db.connect() as conn:
        assert (
            conn.execute(sa.select(server_state.c.value).where(server_state.c.key == "after")).scalar() == "duplicate"
        )
        payloads = conn.execute(sa.select(jobs.c.payload).where(jobs.c.kind == "event")).scalars().all()
    assert payloads == [{"n": 1}]
    # A duplicate in a later transaction is refused just the same; jobs without a key never collide.
    with db.begin() as conn:
        assert enqueue(conn, "event", {"n": 4}, dedupe_key="evt-1") is None
        assert enqueue(conn, "event", {"n": 5}) is not None
        assert enqueue(conn, "event", {"n": 6}) is not None


def test_claims_due_jobs_of_the_asked_kinds_oldest_first(db: Database) -> None:
    with db.begin() as conn:
        base = utcnow()
        late = enqueue(conn, "k", {"n": "late"}, run_after=base - timedelta(seconds=1))
        early = enqueue(conn, "k", {"n": "early"}, run_after=base - timedelta(seconds=10))
        future = enqueue(conn, "k", {"n": "future"}, run_after=base + timedelta(hours=1))
        enqueue(conn, "other", {"n": "other kind"})
    queue = JobQueue(db, "w")
    claimed = queue.claim(["k"], limit=10)
    assert [j.id for j in claimed] == [early, late]
    assert future not in [j.id for j in claimed]
    assert [j.kind for j in queue.claim(["other", "k"])] == ["other"]


def test_limit(db: Database) -> None:
    _enqueue(db, 5)
    queue = JobQueue(db, "w")
    assert len(queue.claim(["k"], limit=2)) == 2
    assert len(queue.claim(["k"], limit=10)) == 3
    assert queue.claim(["k"], limit=0) == []
    assert queue.claim([], limit=5) == []


def test_complete_retry_dead_and_requeue(db: Database) -> None:
    a, b, c = _enqueue(db, 3)
    queue = JobQueue(db, "w")
    assert len(queue.claim(["k"])) == 3
    assert queue.complete(a)
    assert queue.retry(b, utcnow() + timedelta(milliseconds=150), "HTTP 500")
    assert queue.dead(c, "410 Gone")
    assert _status(db, a)[0] == "done"
    assert _status(db, b) == ("pending", 1, None)
    assert _status(db, c)[0] == "dead"
    assert queue.claim(["k"]) == []  # b is not due yet; a and c are finished
    time.sleep(0.2)
    [again] = queue.claim(["k"])
    assert (again.id, again.attempts) == (b, 2)
    with db.connect() as conn:
        assert conn.execute(sa.select(jobs.c.last_error).where(jobs.c.id == c)).scalar() == "410 Gone"
    # A dead job comes back by hand, with a fresh attempt count; a running one does not.
    assert queue.requeue(c)
    assert not queue.requeue(b)  # running (claimed above)
    [revived] = queue.claim(["k"])
    assert (revived.id, revived.attempts) == (c, 1)


def test_finishing_a_job_not_held_does_nothing(db: Database) -> None:
    [job_id] = _enqueue(db, 1)
    owner, stranger = JobQueue(db, "owner"), JobQueue(db, "stranger")
    owner.claim(["k"])
    assert not stranger.complete(job_id)
    assert not stranger.dead(job_id, "no")
    assert _status(db, job_id) == ("running", 1, "owner")
    assert owner.complete(job_id)
    assert not owner.complete(job_id)  # already finished


def test_expired_lease_is_claimed_again_and_the_old_holder_cannot_finish_it(db: Database) -> None:
    [job_id] = _enqueue(db, 1)
    crashed = JobQueue(db, "crashed", lease_seconds=0.2)
    assert [j.id for j in crashed.claim(["k"])] == [job_id]
    successor = JobQueue(db, "successor", lease_seconds=30)
    assert successor.claim(["k"]) == []  # the lease still holds
    time.sleep(0.3)
    [job] = successor.claim(["k"])
    assert (job.id, job.attempts) == (job_id, 2)  # the crashed claim counts as an attempt
    assert not crashed.complete(job_id)  # woke up late: its lease is gone
    assert _status(db, job_id) == ("running", 2, "successor")
    assert successor.complete(job_id)
    assert _status(db, job_id)[0] == "done"


def test_extend_keeps_a_long_job(db: Database) -> None:
    [job_id] = _enqueue(db, 1)
    slow = JobQueue(db, "slow", lease_seconds=0.3)
    slow.claim(["k"])
    other = JobQueue(db, "other")
    for _ in range(3):
        time.sleep(0.15)
        assert slow.extend(job_id)
        assert other.claim(["k"]) == []
    assert not other.extend(job_id)
    assert slow.complete(job_id)


def test_release_hands_back_unstarted_jobs(db: Database) -> None:
    ids = _enqueue(db, 2)
    queue = JobQueue(db, "w")
    queue.claim(["k"])
    queue.release(ids)
    assert [_status(db, i) for i in ids] == [("pending", 0, None), ("pending", 0, None)]
    assert [j.attempts for j in JobQueue(db, "w2").claim(["k"])] == [1, 1]


def test_settle_a_batch_in_the_callers_transaction(db: Database) -> None:
    a, b, c = _enqueue(db, 3)
    mine = JobQueue(db, "mine", lease_seconds=0.2)
    mine.claim(["k"], limit=2)  # a and b
    time.sleep(0.3)
    JobQueue(db, "thief").claim(["k"], limit=1)  # b's lease has expired... (a's too; the oldest goes first)
    with db.begin() as conn:
        held = mine.settle(conn, [JobResult(a, "done"), JobResult(b, "dead", None, "x"), JobResult(c, "done")])
    # "thief" took the oldest expired job (a); mine still holds b only; c was never claimed.
    assert held == {b}
    assert _status(db, a)[2] == "thief"
    assert _status(db, b)[0] == "dead"
    assert _status(db, c)[0] == "pending"


def test_find_and_requeue_by_dedupe_key(db: Database) -> None:
    with db.begin() as conn:
        job_id = enqueue(conn, "delivery", {}, dedupe_key="msg_a")
        assert find_job(conn, "delivery", "msg_a") == (job_id, "pending")
        assert find_job(conn, "delivery", "msg_b") is None
    queue = JobQueue(db, "w")
    [job] = queue.claim(["delivery"])
    with db.begin() as conn:
        assert not requeue(conn, job.id)  # running
    queue.complete(job.id)
    with db.begin() as conn:
        assert requeue(conn, job.id)
        assert find_job(conn, "delivery", "msg_a") == (job_id, "pending")


def test_two_claimers_in_threads_never_get_the_same_job(db: Database) -> None:
    ids = _enqueue(db, 120)
    claimed: dict[str, list[int]] = {}
    start = threading.Barrier(4)

    def claimer(name: str) -> None:
        queue = JobQueue(db, name)
        mine: list[int] = []
        start.wait()
        while batch := queue.claim(["k"], limit=3):
            mine += [job.id for job in batch]
            for job in batch:
                assert queue.complete(job.id)
        claimed[name] = mine

    threads = [threading.Thread(target=claimer, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    every = [job_id for mine in claimed.values() for job_id in mine]
    assert sorted(every) == sorted(ids)  # each job exactly once
    assert len(claimed) == 4


def _claim_in_a_process(url: str, name: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    db = create_database(url)
    queue = JobQueue(db, name)
    mine: list[int] = []
    while batch := queue.claim(["k"], limit=2):
        mine += [job.id for job in batch]
        for job in batch:
            queue.complete(job.id)
    out.put(mine)
    db.dispose()


def test_two_processes_never_get_the_same_job(db: Database, database_url: str) -> None:
    ids = _enqueue(db, 150)
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    processes = [context.Process(target=_claim_in_a_process, args=(database_url, f"p{n}", out)) for n in range(2)]
    for process in processes:
        process.start()
    results = [out.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
    every = [job_id for mine in results for job_id in mine]
    assert sorted(every) == sorted(ids)


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_postgres_claimers_skip_rows_locked_by_an_open_claim(db: Database) -> None:
    """SKIP LOCKED: a claim in progress (not yet committed) neither blocks another claimer nor is shared."""
    ids = _enqueue(db, 5)
    first, second = JobQueue(db, "first"), JobQueue(db, "second")
    with db.begin() as conn:
        held = [j.id for j in first.claim(["k"], limit=2, conn=conn)]
        started = time.monotonic()
        other = [j.id for j in second.claim(["k"], limit=10)]  # its own connection and transaction
        assert time.monotonic() - started < 5
    assert not set(held) & set(other)
    assert sorted(held + other) == sorted(ids)


def test_notify_wakes_a_waiting_worker(db: Database) -> None:
    queue = JobQueue(db, "w")
    assert not queue.wait_for_work(0.01)
    threading.Timer(0.05, queue.notify).start()
    started = time.monotonic()
    assert queue.wait_for_work(5)
    assert time.monotonic() - started < 2
    assert not queue.wait_for_work(0.01)  # the signal was consumed


# ------------------------------------------------------------------------------- enqueue_many


def test_enqueue_many_answers_per_job_in_the_given_order(db: Database) -> None:
    with db.begin() as conn:
        existing = enqueue(conn, "event", {"n": 0}, dedupe_key="b")
    later = utcnow() + timedelta(hours=1)
    batch = [
        NewJob("event", {"n": 1}, dedupe_key="c"),
        NewJob("event", {"n": 2}),  # no key: never a duplicate
        NewJob("event", {"n": 3}, dedupe_key="b"),  # taken by an earlier job
        NewJob("event", {"n": 4}, dedupe_key="a", done=True),
        NewJob("event", {"n": 5}, dedupe_key="c"),  # earlier in this batch
        NewJob("other", {"n": 6}, dedupe_key="b"),  # same key, another kind
        NewJob("event", {"n": 7}, run_after=later),
    ]
    with db.begin() as conn:
        ids = enqueue_many(conn, batch)
    assert [i is None for i in ids] == [False, False, True, False, True, False, False]
    assert existing not in ids
    with db.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(jobs))}
    got = {i: rows[i] for i in ids if i is not None}
    assert [got[i].payload["n"] for i in ids if i is not None] == [1, 2, 4, 6, 7]
    assert [got[i].status for i in ids if i is not None] == ["pending", "pending", "done", "pending", "pending"]
    assert all(r.attempts == 0 and r.created_at is not None for r in got.values())
    assert abs(aware(got[ids[6]].run_after) - later) < timedelta(milliseconds=1)  # type: ignore[index]
    # Pending ones are claimable like any job (the done one is not), due ones only.
    claimed = JobQueue(db, "w").claim(["event", "other"], limit=10)
    assert sorted(job.payload["n"] for job in claimed) == [0, 1, 2, 6]
    with db.begin() as conn:
        assert enqueue_many(conn, []) == []


def test_enqueue_many_spans_several_statements(db: Database) -> None:
    batch = [NewJob("k", {"n": n}, dedupe_key=None if n % 3 else f"key-{n:04d}") for n in range(1203)]
    with db.begin() as conn:
        ids = enqueue_many(conn, batch)
    assert None not in ids and len(set(ids)) == len(ids)
    with db.connect() as conn:
        by_id = {r.id: r.payload["n"] for r in conn.execute(sa.select(jobs.c.id, jobs.c.payload))}
    assert [by_id[i] for i in ids if i is not None] == list(range(1203))


# ------------------------------------------------------------------------------------ pruning


def _age(db: Database, job_ids: list[int], by: timedelta) -> None:
    """Make jobs look finished (and due) ``by`` ago."""
    when = utcnow() - by
    with db.begin() as conn:
        conn.execute(sa.update(jobs).where(jobs.c.id.in_(job_ids)).values(updated_at=when, run_after=when))


def _left(db: Database) -> set[int]:
    with db.connect() as conn:
        return {int(r.id) for r in conn.execute(sa.select(jobs.c.id))}


def test_prune_jobs_deletes_finished_jobs_only_past_their_age(db: Database) -> None:
    pending, running, done_old, done_new, dead_old, other_kind = _enqueue(db, 6)
    queue = JobQueue(db, "w", lease_seconds=0.001)
    claimed = {job.id for job in queue.claim(["k"], limit=6)}
    assert claimed == {pending, running, done_old, done_new, dead_old, other_kind}
    with db.begin() as conn:
        queue.settle(
            conn,
            [
                JobResult(pending, "pending", utcnow() - timedelta(days=5), "retry"),
                JobResult(done_old, "done"),
                JobResult(done_new, "done"),
                JobResult(dead_old, "dead", None, "gave up"),
                JobResult(other_kind, "done"),
            ],
        )
        conn.execute(sa.update(jobs).where(jobs.c.id == other_kind).values(kind="other"))
    # ``running`` keeps its lease, already expired: leased (even expired) is never pruned.
    _age(db, [pending, running, done_old, dead_old, other_kind], timedelta(days=5))
    [newest] = _enqueue(db, 1, kind="newest")
    cutoff = utcnow() - timedelta(days=1)
    with db.begin() as conn:
        assert prune_jobs(conn, status="done", finished_before=cutoff, limit=10, skip_kinds=["other"]) == 1
    assert _left(db) == {pending, running, done_new, dead_old, other_kind, newest}
    with db.begin() as conn:
        assert prune_jobs(conn, status="done", finished_before=cutoff, limit=10, kinds=["other"]) == 1
        assert prune_jobs(conn, status="dead", finished_before=utcnow() - timedelta(days=30), limit=10) == 0
        assert prune_jobs(conn, status="dead", finished_before=cutoff, limit=10) == 1
        assert prune_jobs(conn, status="done", finished_before=cutoff, limit=0) == 0
    assert _left(db) == {pending, running, done_new, newest}
    with db.begin() as conn, pytest.raises(ValueError, match="only finished jobs"):
        prune_jobs(conn, status="pending", finished_before=utcnow(), limit=10)  # type: ignore[arg-type]


def test_prune_jobs_is_bounded_by_its_limit(db: Database) -> None:
    ids = _enqueue(db, 7)
    with db.begin() as conn:
        conn.execute(sa.update(jobs).values(status="done"))
    _age(db, ids, timedelta(days=2))
    [newest] = _enqueue(db, 1)
    counts = []
    while True:
        with db.begin() as conn:
            counts.append(prune_jobs(conn, status="done", finished_before=utcnow(), limit=3))
        if counts[-1] < 3:
            break
    assert counts == [3, 3, 1] and _left(db) == {newest}


def test_the_newest_job_is_kept_so_ids_are_never_reused(db: Database) -> None:
    """SQLite gives a new row the largest id plus one: were the newest job deleted, its id would
    be handed out again. So it stays, however old, and the next job's id is higher still."""
    ids = _enqueue(db, 3)
    with db.begin() as conn:
        conn.execute(sa.update(jobs).values(status="done"))
    _age(db, ids, timedelta(days=2))
    with db.begin() as conn:
        assert prune_jobs(conn, status="done", finished_before=utcnow(), limit=10) == 2
    assert _left(db) == {ids[-1]}
    [later] = _enqueue(db, 1)
    assert later > ids[-1]


def test_a_requeued_job_is_not_pruned(db: Database) -> None:
    """The DELETE checks status and age itself: a job requeued (a redelivery) between a pruner's
    look and its delete stays."""
    [job_id] = _enqueue(db, 1)
    with db.begin() as conn:
        conn.execute(sa.update(jobs).values(status="dead"))
    _age(db, [job_id], timedelta(days=60))
    with db.begin() as conn:
        assert requeue(conn, job_id)
        assert prune_jobs(conn, status="dead", finished_before=utcnow(), limit=10) == 0
    assert _left(db) == {job_id}


def test_unfinished_payloads_are_those_of_pending_and_running_jobs(db: Database) -> None:
    with db.begin() as conn:
        a, b, c = (enqueue(conn, "ev", {"event": n}) for n in (1, 2, 3))
        enqueue(conn, "other", {"event": 9})
    queue = JobQueue(db, "w")
    claimed = [job.id for job in queue.claim(["ev"], limit=2)]
    assert claimed == [a, b]
    queue.complete(a)  # type: ignore[arg-type]
    with db.connect() as conn:
        assert sorted(p["event"] for p in unfinished_payloads(conn, "ev")) == [2, 3]
    assert c is not None


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_postgres_find_job_holds_the_row_against_the_pruner(db: Database) -> None:
    """A redelivery looks its job up, then requeues it: the pruner (SKIP LOCKED) leaves it alone
    in between instead of deleting it under the redelivery's feet, and does not wait for it."""
    [job_id, other] = _enqueue(db, 2, kind="delivery")
    with db.begin() as conn:
        conn.execute(sa.update(jobs).values(status="done"))
    _age(db, [job_id, other], timedelta(days=2))
    _enqueue(db, 1, kind="newest")
    with db.begin() as conn:
        conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(dedupe_key="msg_1"))
    with db.begin() as redelivery:
        assert find_job(redelivery, "delivery", "msg_1") == (job_id, "done")
        started = time.monotonic()
        with db.begin() as pruner:
            assert prune_jobs(pruner, status="done", finished_before=utcnow(), limit=10) == 1
        assert time.monotonic() - started < 5
        assert requeue(redelivery, job_id)
    assert job_id in _left(db) and other not in _left(db)
