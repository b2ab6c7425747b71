"""One retention round on both engines: events and jobs together, in batches, with several pruners."""

from __future__ import annotations

import threading
from datetime import timedelta

import sqlalchemy as sa
from tests.receivers.pruning import event, events_left, store
from tests.store.jobs import age_jobs, finished_job, jobs_left, sentinel_job
from tests.support.threads import run_together

from kiosk.config.model import RetentionConfig
from kiosk.ingest.events import REDELIVERY_WINDOW, event_job_kind
from kiosk.receivers.retention import Policy
from kiosk.receivers.store import store_events
from kiosk.runtime.retention import RetentionPruner, policies
from kiosk.store import Database
from kiosk.store.queue_retention import JobPolicy
from kiosk.store.tables import jobs


def pruner(db: Database, *, batch: int = 500, **policy: object) -> RetentionPruner:
    return RetentionPruner(db, Policy(**policy), batch=batch, rest=0)  # type: ignore[arg-type]


def test_policies_from_config_keep_event_jobs_as_long_as_events() -> None:
    assert policies(RetentionConfig()) == (
        Policy(event_max_age=timedelta(days=7), events_per_receiver=10_000),
        JobPolicy(
            done_max_age=timedelta(days=1),
            dead_max_age=timedelta(days=30),
            done_kept_at_least={"receiver_event": timedelta(days=7)},
        ),
    )
    custom = RetentionConfig.model_validate(
        {"receiverEvents": {"maxAgeDays": 0.5, "maxPerReceiver": 20}, "jobs": {"doneMaxAgeDays": 2}}
    )
    assert policies(custom) == (
        Policy(timedelta(hours=12), 20),
        JobPolicy(timedelta(days=2), timedelta(days=30), {"receiver_event": timedelta(hours=12)}),
    )


def test_live_event_jobs_of_each_integration_outlast_azure_s_redeliveries() -> None:
    _, jobs = policies(RetentionConfig(), ["ado", "ado-two"])
    assert jobs.done_kept_at_least == {
        "receiver_event": timedelta(days=7),
        event_job_kind("ado"): REDELIVERY_WINDOW,
        event_job_kind("ado-two"): REDELIVERY_WINDOW,
    }
    assert jobs.done_max_age < REDELIVERY_WINDOW  # else the rule would change nothing


def test_event_jobs_keep_their_dedupe_key_as_long_as_events_are_kept(db: Database) -> None:
    [first] = store(db, [event(2, key="x")])
    with db.connect() as conn:
        [event_job] = [int(r.id) for r in conn.execute(sa.select(jobs.c.id))]
    age_jobs(db, [event_job], 2)  # done two days ago: older than done jobs are kept (1 day)
    pruner(db).run()
    assert jobs_left(db) == {event_job} and events_left(db) == {first}
    with db.begin() as conn:
        [again] = store_events(conn, [event(0, key="x")])
    assert again.duplicate  # the redelivery is still recognised
    age_jobs(db, [event_job], 8)
    sentinel_job(db)
    pruner(db).run()
    assert event_job not in jobs_left(db)


def test_a_backlog_bigger_than_a_batch_is_pruned_whole(db: Database) -> None:
    old = store(db, [event(9 + n / 100) for n in range(23)])
    many = store(db, [event(1, receiver="busy") for _ in range(17)])
    waiting = store(db, [event(20, react=True) for _ in range(5)])
    kept = store(db, [event(1) for _ in range(2)])
    finished = [finished_job(db, "delivery", "done", 3) for _ in range(11)]
    sentinel_job(db)
    report = pruner(db, batch=4, events_per_receiver=3).run()
    assert events_left(db) == set(waiting) | set(many[-3:]) | set(kept)
    assert report.events_by_age == len(old) and report.events_by_cap == 14
    assert not set(finished) & jobs_left(db) and report.jobs["done"] == 11
    assert report.batches > 10


def test_a_stop_request_ends_the_round_before_the_jobs(db: Database) -> None:
    store(db, [event(9) for _ in range(6)])
    finished_job(db, "delivery", "done", 3)
    sentinel_job(db)
    before = jobs_left(db)
    stop = threading.Event()
    stop.set()
    report = pruner(db, batch=2).run(stop=stop)
    assert report.stopped and report.deleted == 0 and len(events_left(db)) == 6 and jobs_left(db) == before


def test_several_pruners_at_once_share_the_work(db: Database) -> None:
    old = store(db, [event(9, receiver=f"r{n % 3}") for n in range(120)])
    recent = store(db, [event(1, receiver=f"r{n % 3}") for n in range(30)])
    finished = {finished_job(db, "delivery", "done", 2 + n / 100) for n in range(40)}
    sentinel_job(db)
    reports, errors = run_together(lambda: pruner(db, batch=7, events_per_receiver=5).run(), 3, timeout=120)
    assert errors == []
    left = events_left(db)
    assert not left & set(old) and len(left) == 15 and left <= set(recent)
    assert sum(r.events_by_age + r.events_by_cap for r in reports) == 120 + 15
    assert not jobs_left(db) & finished and sum(r.jobs["done"] for r in reports) == 40
