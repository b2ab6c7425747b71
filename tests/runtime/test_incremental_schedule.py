"""Scheduling incremental passes: their own job per integration, run at the interval under its
lease, skipped while a full resync of the integration runs — with recording passes and resyncs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from tests.support.integrations import azure_devops_integration, mapping_resource
from tests.support.polling import wait_for
from tests.support.resyncs import RecordingResyncer

from kiosk.ingest.config import Integration
from kiosk.ingest.incremental import IncrementalSync
from kiosk.ingest.mapping import PortAppConfig
from kiosk.ingest.resync import Resyncer
from kiosk.ingest.state import IncrementalState
from kiosk.ingest.store import IngestStore
from kiosk.runtime.integrations import (
    IntegrationRunner,
    incremental_interval,
    incremental_job_kind,
    request_incremental,
    resync_job_kind,
)
from kiosk.store import Database
from kiosk.store.queue import utcnow
from kiosk.store.tables import jobs

PAT = "unused"
MAPPING: dict[str, Any] = {
    "resources": [mapping_resource("work-item", "adoWorkItem", identifier=".id | tostring", title=".id")]
}


def make_integration(
    *, listener: str = "POLLING", interval: int | None = 60, incremental: int | None = 5
) -> Integration:
    base = azure_devops_integration(
        "https://dev.azure.com/contoso", MAPPING, pat=PAT, listener=listener, interval=interval
    )
    spec = base.spec.model_validate({**base.spec.model_dump(by_alias=True), "incrementalSyncInterval": incremental})
    return Integration(spec, base.mapping, base.mapping_source, base.personal_access_token)


class RecordingPasses(IncrementalSync):
    """Passes that only record their trigger and save a completed state, as the engine saves it."""

    def __init__(self, store: IngestStore) -> None:
        super().__init__(store)
        self.runs: list[str] = []

    async def run(
        self,
        integration: Integration,
        *,
        trigger: str = "manual",
        on_progress: Callable[[IncrementalState], None] | None = None,
        mapping: PortAppConfig | None = None,
    ) -> IncrementalState:
        self.runs.append(trigger)
        now = datetime.now(UTC)
        state = IncrementalState(integration.identifier, status="completed", started_at=now, finished_at=now)
        state.trigger = trigger
        await asyncio.to_thread(self.store.save_incremental_state, state)
        return state


def passes_runner(
    db: Database, store: IngestStore, integration: Integration, resyncer: Resyncer | None = None
) -> tuple[IntegrationRunner, RecordingPasses]:
    """A runner of ``integration`` with recording passes and, unless given, resyncs that finish at once."""
    passes = RecordingPasses(store)
    runner = IntegrationRunner(
        db,
        store,
        [integration],
        resyncer=resyncer or RecordingResyncer(store),
        incremental=passes,
        poll_seconds=0.05,
        lease_seconds=5,
    )
    return runner, passes


def job(db: Database, kind: str) -> Any:
    with db.connect() as conn:
        return conn.execute(sa.select(jobs).where(jobs.c.kind == kind)).one_or_none()


def test_the_interval_applies_to_polling_only() -> None:
    assert incremental_interval(make_integration().spec) == timedelta(minutes=5)
    assert incremental_interval(make_integration(incremental=None).spec) is None
    assert incremental_interval(make_integration(listener="ONCE").spec) is None
    assert incremental_interval(make_integration(listener="WEBHOOKS_ONLY", interval=None).spec) is None
    assert incremental_job_kind("ado") != resync_job_kind("ado")
    assert len(incremental_job_kind("a" * 100)) <= jobs.c.kind.type.length  # type: ignore[attr-defined]


def test_start_schedules_a_pass_one_interval_later_and_each_pass_the_next(
    db: Database, store: IngestStore, runners: list[IntegrationRunner]
) -> None:
    runner, passes = passes_runner(db, store, make_integration())
    before = utcnow()
    runners.append(runner.start())
    row = wait_for(lambda: job(db, incremental_job_kind("ado")))
    assert row.status == "pending" and row.payload == {"integration": "ado", "trigger": "schedule"}
    due = row.run_after.replace(tzinfo=UTC)
    assert before + timedelta(minutes=5) <= due <= utcnow() + timedelta(minutes=5)
    wait_for(lambda: store.load_state("ado") is not None and store.load_state("ado").status == "completed")  # type: ignore[union-attr]
    wait_for(lambda: not runner.is_running("ado"))  # the start resync settled: a pass now is not skipped
    assert passes.runs == []  # not due yet

    # Due now (as the interval's end makes it): the runner runs it and schedules the next.
    with db.begin() as conn:
        assert request_incremental(conn, "ado", trigger="schedule") == "queued"
    runner._thread.wake.set()
    state = wait_for(lambda: (s := store.load_incremental_state("ado")) is not None and s.next_pass_at and s)
    assert passes.runs == ["schedule"]
    assert state.status == "completed" and state.interval_minutes == 5
    assert state.finished_at is not None and state.next_pass_at == state.finished_at + timedelta(minutes=5)
    row = wait_for(lambda: (r := job(db, incremental_job_kind("ado"))).status == "pending" and r)
    assert abs((row.run_after.replace(tzinfo=UTC) - state.next_pass_at).total_seconds()) < 0.001

    # On request (the CLI's --incremental, the API's incremental=true): run now, and coalesced.
    assert runner.request("ado", incremental=True) == "queued"
    wait_for(lambda: len(passes.runs) == 2)
    assert passes.runs == ["schedule", "manual"]


def test_a_pass_due_while_a_full_resync_runs_is_skipped(
    db: Database, store: IngestStore, runners: list[IntegrationRunner]
) -> None:
    gate = threading.Event()
    resyncer = RecordingResyncer(store, gate)
    runner, passes = passes_runner(db, store, make_integration(), resyncer)
    runners.append(runner.start())
    assert resyncer.started.wait(10)  # the start resync holds its lease
    assert runner.request("ado", incremental=True) == "queued"
    state = wait_for(lambda: store.load_incremental_state("ado"))
    assert state.status == "skipped" and "full resync" in (state.reason or "")
    assert passes.runs == []
    assert state.next_pass_at is not None and state.finished_at is not None
    assert state.next_pass_at == state.finished_at + timedelta(minutes=5)
    row = wait_for(lambda: (r := job(db, incremental_job_kind("ado"))).status == "pending" and r)
    assert row.payload["trigger"] == "schedule"
    gate.set()
    wait_for(lambda: job(db, resync_job_kind("ado")).status != "running")
    # The resync over, a pass runs again.
    assert runner.request("ado", incremental=True) == "queued"
    wait_for(lambda: passes.runs == ["manual"])


def test_no_interval_no_schedule_and_a_stale_scheduled_pass_is_dropped(
    db: Database, store: IngestStore, runners: list[IntegrationRunner]
) -> None:
    runner, passes = passes_runner(db, store, make_integration(incremental=None))
    with db.begin() as conn:  # left by an earlier config that had an interval
        request_incremental(conn, "ado", trigger="schedule")
    runners.append(runner.start())
    wait_for(lambda: job(db, incremental_job_kind("ado")).status == "done")
    assert passes.runs == [] and store.load_incremental_state("ado") is None
