"""The event pruner on both engines: what goes, what stays, in batches."""

from __future__ import annotations

import threading
from datetime import timedelta

import sqlalchemy as sa
from tests.receivers.pruning import event, events_left, process, store

from kiosk.receivers.pruner import EventPruner
from kiosk.receivers.retention import Policy
from kiosk.receivers.store import list_events
from kiosk.store import Database
from kiosk.store.queue import JobQueue, JobResult, requeue, utcnow
from kiosk.store.tables import receiver_event_reactions, watch_states
from kiosk.watches.events import EVENT_JOB
from kiosk.watches.store import load_states, mark_events, record_reaction


def pruner(db: Database, *, batch: int = 500, **policy: object) -> EventPruner:
    return EventPruner(db, Policy(**policy), batch=batch, rest=0)  # type: ignore[arg-type]


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


def test_the_newest_event_is_kept_so_ids_are_never_reused(db: Database) -> None:
    """SQLite gives a new row the largest id plus one: were the newest events deleted, their ids
    would be handed out again, to events that reactions and watch states would take for the old
    ones. So the newest stays, however old, and the next event's id is higher still."""
    ids = store(db, [event(30 - n) for n in range(4)])
    report = pruner(db, events_per_receiver=1).run()
    assert events_left(db) == {ids[-1]} and report.events_by_age == 3
    [later] = store(db, [event(0)])
    assert later > ids[-1]
