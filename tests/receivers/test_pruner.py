"""The retention pruner on both engines: what goes, what stays, in batches, with several pruners."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from kiosk.receivers.intake import EventRecord
from kiosk.receivers.pruner import PruneReport, RetentionPruner
from kiosk.receivers.retention import Policy
from kiosk.receivers.store import list_events, store_events
from kiosk.store import Database
from kiosk.store.queue import JobQueue, JobResult, enqueue, requeue, utcnow
from kiosk.store.tables import jobs, receiver_event_reactions, receiver_events, watch_states
from kiosk.watches.events import EVENT_JOB
from kiosk.watches.store import load_states, mark_events, record_reaction


def ago(days: float) -> datetime:
    return utcnow() - timedelta(days=days)


def event(
    days_ago: float,
    *,
    receiver: str = "acr",
    project: str | None = None,
    react: bool = False,
    key: str | None = None,
    outcome: str = "refreshed",
) -> EventRecord:
    """An accepted event (``react``: its watch has reactions, so it waits for the processor)."""
    accepted = outcome in ("refreshed", "no_match")
    return EventRecord(
        receiver=receiver,
        project=project,
        received_at=ago(days_ago),
        outcome=outcome,
        status_code=200 if outcome != "rejected" else 401,
        sender="acr",
        event_type="push",
        delivery_id=key,
        refreshed=1 if outcome == "refreshed" else 0,
        matches=[{"watch": "checkout", "tag": "1.0"}] if outcome == "refreshed" else [],
        payload='{"n": 1}' if outcome != "rejected" else None,
        accepted=accepted,
        react=react and accepted,
        dedupe_key=None if key is None else f"{receiver}:acr:{key}",
    )


def store(db: Database, records: Sequence[EventRecord]) -> list[int]:
    with db.begin() as conn:
        return [s.event_id for s in store_events(conn, records)]


def events_left(db: Database) -> set[int]:
    with db.connect() as conn:
        return {int(r.id) for r in conn.execute(sa.select(receiver_events.c.id))}


def jobs_left(db: Database) -> set[int]:
    with db.connect() as conn:
        return {int(r.id) for r in conn.execute(sa.select(jobs.c.id))}


def pruner(db: Database, *, batch: int = 500, **policy: object) -> RetentionPruner:
    return RetentionPruner(db, Policy(**policy), batch=batch, rest=0)  # type: ignore[arg-type]


def process(db: Database, event_ids: Sequence[int], *, claimed: JobQueue | None = None) -> None:
    """What the event processor does for these events' jobs: claim, settle done, mark processed."""
    queue = claimed or JobQueue(db, "processor")
    if claimed is None:
        queue.claim([EVENT_JOB], limit=100)
    with db.connect() as conn:
        job_of = {int(r.payload["event"]): int(r.id) for r in conn.execute(sa.select(jobs.c.id, jobs.c.payload))}
    with db.begin() as conn:
        held = queue.settle(conn, [JobResult(job_of[e], "done") for e in event_ids])
        assert held == {job_of[e] for e in event_ids}
        mark_events(conn, list(event_ids), "done", utcnow())


def test_old_processed_events_go_and_recent_ones_stay(db: Database) -> None:
    old = store(db, [event(10), event(8, outcome="no_match"), event(9, outcome="rejected"), event(7.01)])
    recent = store(db, [event(6.9), event(1), event(0)])
    report = pruner(db).run()
    assert events_left(db) == set(recent)
    assert report.events_by_age == len(old) and report.events_by_cap == 0
    assert pruner(db).run().deleted == 0  # nothing left to do


def test_each_receiver_keeps_its_newest_events_up_to_the_cap(db: Database) -> None:
    acr = store(db, [event(1, key=f"a{n}") for n in range(15)])
    payments = store(db, [event(1, project="payments") for _ in range(12)])
    builds = store(db, [event(1, receiver="builds") for _ in range(5)])
    report = pruner(db, events_per_receiver=10).run()
    assert events_left(db) == set(acr[-10:]) | set(payments[-10:]) | set(builds)
    assert report.events_by_cap == 5 + 2 and report.events_by_age == 0


def test_an_old_unprocessed_event_stays_until_it_is_processed(db: Database) -> None:
    [waiting] = store(db, [event(30, react=True)])
    newer = store(db, [event(1) for _ in range(3)])
    strict = pruner(db, events_per_receiver=1)
    strict.run()
    # Older than the retention and beyond the cap, but its job is pending: kept.
    assert events_left(db) == {waiting, newer[-1]}
    # Leased by the processor (running): still kept.
    queue = JobQueue(db, "processor")
    assert len(queue.claim([EVENT_JOB])) == 1
    strict.run()
    assert events_left(db) == {waiting, newer[-1]}
    process(db, [waiting], claimed=queue)
    strict.run()
    assert events_left(db) == {newer[-1]}


def test_an_event_a_requeued_job_names_is_kept(db: Database) -> None:
    """Processing failed for good (dead job), then the job was requeued by hand: the event's job is
    pending again, so the event stays although its own state says it is finished."""
    [failed] = store(db, [event(30, react=True)])
    queue = JobQueue(db, "processor")
    [job] = queue.claim([EVENT_JOB])
    with db.begin() as conn:
        queue.settle(conn, [JobResult(job.id, "dead", None, "gave up")])
        mark_events(conn, [failed], "failed", utcnow())
        requeue(conn, job.id)
    pruner(db).run()
    assert events_left(db) == {failed}


def test_reaction_records_go_with_their_event_and_watch_states_stay(db: Database) -> None:
    [old, recent] = store(db, [event(8, react=True), event(1, react=True)])
    for event_id in (old, recent):
        with db.begin() as conn:
            record_reaction(
                conn,
                event_id=event_id,
                watch="checkout",
                position=0,
                kind="runAction",
                status="done",
                run_id=f"r_{event_id}",
                entity=None,
                error=None,
                at=utcnow(),
            )
    process(db, [old, recent])
    [newest] = store(db, [event(0, outcome="rejected")])  # the newest event always stays
    with db.connect() as conn:
        before = load_states(conn)
    assert before["checkout"].refreshes == 2 and before["checkout"].last_event_id == recent
    pruner(db, events_per_receiver=1).run(now=utcnow() + timedelta(days=30))
    assert events_left(db) == {newest}
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(receiver_event_reactions)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(watch_states)).scalar() == 1
        assert load_states(conn) == before


def _age_jobs(db: Database, job_ids: Sequence[int], days: float) -> None:
    with db.begin() as conn:
        when = ago(days)
        conn.execute(sa.update(jobs).where(jobs.c.id.in_(list(job_ids))).values(updated_at=when, run_after=when))


def _finish(db: Database, kind: str, status: str, days: float) -> int:
    with db.begin() as conn:
        job_id = enqueue(conn, kind, {"delivery": "msg"})
        assert job_id is not None
        conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(status=status))
    _age_jobs(db, [job_id], days)
    return job_id


def _sentinel_job(db: Database) -> int:
    """A newer job than any other (the newest job of the table is never pruned)."""
    with db.begin() as conn:
        job_id = enqueue(conn, "sentinel", {})
    assert job_id is not None
    return job_id


def test_finished_jobs_go_after_their_periods_and_pending_or_leased_ones_never(db: Database) -> None:
    done_old = _finish(db, "delivery", "done", 2)
    done_new = _finish(db, "delivery", "done", 0.5)
    dead_recent = _finish(db, "delivery", "dead", 2)
    dead_old = _finish(db, "delivery", "dead", 31)
    pending_old = _finish(db, "delivery", "pending", 90)
    with db.begin() as conn:
        leased_old = enqueue(conn, "delivery", {}, run_after=ago(90))
    assert leased_old is not None
    [claimed] = JobQueue(db, "dead-worker", lease_seconds=0.001).claim(["delivery"], limit=1)
    assert claimed.id == pending_old  # the oldest due one; make the other one the leased one
    with db.begin() as conn:
        conn.execute(sa.update(jobs).where(jobs.c.id == pending_old).values(status="pending", locked_by=None))
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.id == leased_old)
            .values(status="running", locked_by="dead-worker", locked_until=ago(80), updated_at=ago(80))
        )
    report = pruner(db).run()
    assert jobs_left(db) == {done_new, dead_recent, pending_old, leased_old}
    assert done_old not in jobs_left(db) and dead_old not in jobs_left(db)
    assert report.jobs == {"done": 1, "dead": 1}


def test_event_jobs_keep_their_dedupe_key_as_long_as_events_are_kept(db: Database) -> None:
    [first] = store(db, [event(2, key="x")])
    with db.connect() as conn:
        [event_job] = [int(r.id) for r in conn.execute(sa.select(jobs.c.id))]
    _age_jobs(db, [event_job], 2)  # done two days ago: older than done jobs are kept (1 day)
    pruner(db).run()
    assert jobs_left(db) == {event_job} and events_left(db) == {first}
    with db.begin() as conn:
        [again] = store_events(conn, [event(0, key="x")])
    assert again.duplicate  # the redelivery is still recognised
    _age_jobs(db, [event_job], 8)
    _sentinel_job(db)
    pruner(db).run()
    assert event_job not in jobs_left(db)


def test_a_backlog_bigger_than_a_batch_is_pruned_whole(db: Database) -> None:
    old = store(db, [event(9 + n / 100) for n in range(23)])
    many = store(db, [event(1, receiver="busy") for _ in range(17)])
    waiting = store(db, [event(20, react=True) for _ in range(5)])
    kept = store(db, [event(1) for _ in range(2)])
    finished = [_finish(db, "delivery", "done", 3) for _ in range(11)]
    _sentinel_job(db)
    report = pruner(db, batch=4, events_per_receiver=3).run()
    assert events_left(db) == set(waiting) | set(many[-3:]) | set(kept)
    assert report.events_by_age == len(old) and report.events_by_cap == 14
    assert not set(finished) & jobs_left(db) and report.jobs["done"] == 11
    assert report.batches > 10


def test_listing_works_after_pruning(db: Database) -> None:
    old = store(db, [event(9) for _ in range(4)])
    recent = store(db, [event(1) for _ in range(3)])
    with db.connect() as conn:
        _, cursor = list_events(conn, "acr", None, limit=2)
    assert cursor is not None
    pruner(db).run()
    with db.connect() as conn:
        page, nxt = list_events(conn, "acr", None, limit=2)
        rest, end = list_events(conn, "acr", None, limit=2, cursor=nxt)
        after_old, _ = list_events(conn, "acr", None, cursor=cursor)  # a cursor from before still works
    assert [e["id"] for e in page + rest] == sorted(recent, reverse=True) and end is None
    assert [e["id"] for e in after_old] == sorted(recent, reverse=True)[2:]
    assert not set(old) & {e["id"] for e in page + rest}


def test_a_stop_request_ends_the_round_between_batches(db: Database) -> None:
    store(db, [event(9) for _ in range(6)])
    stop = threading.Event()
    stop.set()
    report = pruner(db, batch=2).run(stop=stop)
    assert report.stopped and report.deleted == 0 and len(events_left(db)) == 6


def test_several_pruners_at_once_share_the_work(db: Database) -> None:
    old = store(db, [event(9, receiver=f"r{n % 3}") for n in range(120)])
    recent = store(db, [event(1, receiver=f"r{n % 3}") for n in range(30)])
    finished = {_finish(db, "delivery", "done", 2 + n / 100) for n in range(40)}
    _sentinel_job(db)
    reports: list[PruneReport] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def run() -> None:
        try:
            start.wait()
            reports.append(pruner(db, batch=7, events_per_receiver=5).run())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    left = events_left(db)
    assert not left & set(old) and len(left) == 15 and left <= set(recent)
    assert sum(r.events_by_age + r.events_by_cap for r in reports) == 120 + 15
    assert not jobs_left(db) & finished and sum(r.jobs["done"] for r in reports) == 40


def test_the_newest_event_is_kept_so_ids_are_never_reused(db: Database) -> None:
    """SQLite gives a new row the largest id plus one: were the newest events deleted, their ids
    would be handed out again, to events that reactions and watch states would take for the old
    ones. So the newest stays, however old, and the next event's id is higher still."""
    ids = store(db, [event(30 - n) for n in range(4)])
    report = pruner(db, events_per_receiver=1).run()
    assert events_left(db) == {ids[-1]} and report.events_by_age == 3
    [later] = store(db, [event(0)])
    assert later > ids[-1]
