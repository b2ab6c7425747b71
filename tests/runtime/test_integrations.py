"""Running resyncs: the schedule, requests coalescing on the job queue, one holder at a time (two
runners on one database, SQLite and PostgreSQL), an abandoned lease taken over, a stop handing the
job back — with a recording resync — and one real resync of a generated organisation over HTTP."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.emulator.conftest import CONFIG, PAT, EmulatorFactory, LiveEmulator, start_emulator
from tests.support.azure_sdk import with_generated_org
from tests.support.integrations import azure_devops_integration, integrations_yaml, mapping_resource
from tests.support.kiosk_server import LEASE_ENV, KioskServer, prepare_database
from tests.support.polling import wait_for
from tests.support.resyncs import RecordingResyncer

from kiosk.catalog.service import Catalog
from kiosk.ingest.config import Integration
from kiosk.ingest.store import IngestStore
from kiosk.runtime.background import Background
from kiosk.runtime.integrations import (
    IntegrationRunner,
    ResyncBusy,
    effective_mapping,
    next_resync_at,
    request_resync,
    resync_job_kind,
    schedule_for,
)
from kiosk.store import Database, create_database, upgrade_to_head
from kiosk.store.queue import JobQueue, utcnow
from kiosk.store.tables import jobs

__all__ = ["start_emulator"]

MAPPING: dict[str, Any] = {
    "entityDeletionThreshold": 1,
    "resources": [
        mapping_resource("project", "adoProject", properties={"state": ".state"}),
        mapping_resource("repository", "adoRepo", relations={"project": ".project.id"}),
    ],
}


def make_integration(
    *,
    listener: str = "POLLING",
    interval: int | None = None,
    url: str = "https://dev.azure.com/contoso",
    pat: str = PAT,
    identifier: str = "ado",
    initialize: bool = False,
) -> Integration:
    return azure_devops_integration(
        url, MAPPING, pat=pat, identifier=identifier, listener=listener, interval=interval, initialize=initialize
    )


def job_row(db: Database, identifier: str = "ado") -> Any:
    with db.connect() as conn:
        return conn.execute(sa.select(jobs).where(jobs.c.kind == resync_job_kind(identifier))).one_or_none()


# ------------------------------------------------------------------------------------ schedule


def test_schedule_follows_the_event_listener() -> None:
    polling = make_integration(listener="POLLING", interval=30).spec
    assert schedule_for(polling).at_start and schedule_for(polling).interval == timedelta(minutes=30)
    assert schedule_for(make_integration(listener="POLLING").spec).interval is None
    once = schedule_for(make_integration(listener="ONCE", interval=30).spec)
    assert once.at_start and once.interval is None
    hooks = schedule_for(make_integration(listener="WEBHOOKS_ONLY", interval=30).spec)
    assert not hooks.at_start and hooks.interval is None
    end = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert next_resync_at(polling, end) == datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    assert next_resync_at(make_integration(listener="ONCE", interval=30).spec, end) is None


def test_job_kinds_are_per_integration_and_fit_the_column() -> None:
    long_name = "a" * 100
    assert resync_job_kind("ado") != resync_job_kind("ado2")
    assert resync_job_kind("ado") == resync_job_kind("ado")
    assert len(resync_job_kind(long_name)) <= jobs.c.kind.type.length  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------ requests


def test_requests_coalesce_into_one_job(db: Database) -> None:
    later = utcnow() + timedelta(hours=1)
    with db.begin() as conn:
        assert request_resync(conn, "ado", trigger="schedule", run_after=later) == "queued"
    with db.begin() as conn:
        # Brought forward: the job scheduled in an hour is due now.
        assert request_resync(conn, "ado", trigger="manual") == "queued"
    row = job_row(db)
    assert row.status == "pending" and row.payload == {"integration": "ado", "trigger": "manual"}
    with db.begin() as conn:
        assert request_resync(conn, "ado", trigger="manual") == "coalesced"
        assert request_resync(conn, "ado", trigger="schedule", run_after=later) == "coalesced"
    queue = JobQueue(db, "w1", lease_seconds=30)
    [job] = queue.claim([resync_job_kind("ado")])
    with db.begin() as conn:
        assert request_resync(conn, "ado", trigger="manual") == "running"
    assert queue.complete(job.id)
    with db.begin() as conn:
        assert request_resync(conn, "ado", trigger="manual") == "queued"  # a finished job made due again
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar() == 1


# -------------------------------------------------------------------------------------- runner


def test_start_runs_the_resync_and_schedules_the_next(
    db: Database, store: IngestStore, runners: list[IntegrationRunner]
) -> None:
    resyncer = RecordingResyncer(store)
    runner = IntegrationRunner(
        db, store, [make_integration(interval=45)], resyncer=resyncer, poll_seconds=0.05, lease_seconds=5
    )
    runners.append(runner.start())
    state = wait_for(lambda: (s := store.load_state("ado")) is not None and s.next_resync_at is not None and s)
    assert state.status == "completed" and state.trigger == "start" and state.interval_minutes == 45
    assert state.finished_at is not None
    assert state.next_resync_at == state.finished_at + timedelta(minutes=45)
    row = job_row(db)
    assert row.status == "pending" and row.payload["trigger"] == "schedule"
    assert abs((row.run_after.replace(tzinfo=UTC) - state.next_resync_at).total_seconds()) < 0.001
    assert [(name, trigger) for name, trigger, _ in resyncer.runs] == [("ado", "start")]


@pytest.mark.parametrize(("listener", "at_start"), [("ONCE", True), ("WEBHOOKS_ONLY", False)])
def test_once_and_webhooks_only(
    db: Database, store: IngestStore, runners: list[IntegrationRunner], listener: str, at_start: bool
) -> None:
    resyncer = RecordingResyncer(store)
    runner = IntegrationRunner(
        db, store, [make_integration(listener=listener, interval=5)], resyncer=resyncer, poll_seconds=0.05
    )
    runners.append(runner.start())
    if at_start:
        wait_for(lambda: job_row(db) is not None and job_row(db).status == "done")
        assert [trigger for _, trigger, _ in resyncer.runs] == ["start"]
    else:
        assert job_row(db) is None and resyncer.runs == []
    # On request, both run once more; neither schedules a next one.
    assert runner.request("ado") == "queued"
    wait_for(lambda: len(resyncer.runs) == (2 if at_start else 1) and job_row(db).status == "done")
    state = store.load_state("ado")
    assert state is not None and state.next_resync_at is None and state.trigger == "manual"


def test_two_runners_resync_one_integration_once(database_url: str, runners: list[IntegrationRunner]) -> None:
    """Two processes' runners (two queues, two worker ids, two engines on one database) started
    together: both ask for the start resync, one runs it, once."""
    first_db, second_db = create_database(database_url), create_database(database_url)
    upgrade_to_head(first_db)
    gate = threading.Event()
    try:
        stores = [IngestStore(d, Catalog(d)) for d in (first_db, second_db)]
        resyncers = [RecordingResyncer(s, gate) for s in stores]
        built = [
            IntegrationRunner(d, s, [make_integration(listener="ONCE")], resyncer=r, poll_seconds=0.05, lease_seconds=1)
            for d, s, r in zip((first_db, second_db), stores, resyncers, strict=True)
        ]
        starters = [threading.Thread(target=runner.start) for runner in built]
        runners.extend(built)
        for thread in starters:
            thread.start()
        for thread in starters:
            thread.join()
        wait_for(lambda: any(r.started.is_set() for r in resyncers))
        # Longer than three leases: the holder renews its lease, the other never takes the job.
        gate.wait(3.5)
        assert sum(len(r.runs) for r in resyncers) == 1
        assert built[0].is_running("ado") and built[1].is_running("ado")
        gate.set()
        wait_for(lambda: job_row(first_db).status == "done")
        for runner in built:  # a few more rounds of both: nothing more to run
            runner.request("ado")
        wait_for(lambda: job_row(first_db).status == "done" and sum(len(r.runs) for r in resyncers) == 2)
        assert sum(len(r.runs) for r in resyncers) == 2  # the two requests coalesced into one resync
    finally:
        gate.set()
        for runner in runners:
            runner.stop(timeout=10)
        runners.clear()
        first_db.dispose()
        second_db.dispose()


def test_an_abandoned_resync_is_taken_over(db: Database, store: IngestStore, runners: list[IntegrationRunner]) -> None:
    """A process claimed the resync and died (its lease is never renewed): another runs it again."""
    with db.begin() as conn:
        request_resync(conn, "ado", trigger="manual")
    dead = JobQueue(db, "dead-process", lease_seconds=0.5)
    [job] = dead.claim([resync_job_kind("ado")])
    resyncer = RecordingResyncer(store)
    runner = IntegrationRunner(
        db, store, [make_integration(listener="WEBHOOKS_ONLY")], resyncer=resyncer, poll_seconds=0.05
    )
    runners.append(runner.start())
    wait_for(lambda: job_row(db).status == "done")
    assert [trigger for _, trigger, _ in resyncer.runs] == ["manual"]
    assert job_row(db).attempts == 2  # the dead process's claim and the takeover
    assert not dead.complete(job.id)  # the dead process's late answer changes nothing


def test_stop_aborts_and_hands_the_job_back(db: Database, store: IngestStore) -> None:
    gate = threading.Event()
    resyncer = RecordingResyncer(store, gate)
    runner = IntegrationRunner(db, store, [make_integration(listener="ONCE")], resyncer=resyncer, poll_seconds=0.05)
    runner.start()
    wait_for(resyncer.started.is_set)
    runner.stop(timeout=10)
    state = store.load_state("ado")
    assert state is not None and state.status == "aborted" and state.finished_at is not None
    row = job_row(db)
    assert row.status == "pending" and row.locked_by is None  # the next start runs it again
    # The next start does.
    again = RecordingResyncer(store)
    runner = IntegrationRunner(db, store, [make_integration(listener="ONCE")], resyncer=again, poll_seconds=0.05)
    runner.start()
    try:
        wait_for(lambda: job_row(db).status == "done")
        assert len(again.runs) == 1
    finally:
        runner.stop(timeout=10)


def test_a_stale_scheduled_resync_is_dropped(db: Database, store: IngestStore) -> None:
    """Scheduled under an earlier config with an interval, due after a restart without one: not run."""
    with db.begin() as conn:
        request_resync(conn, "ado", trigger="schedule")
    resyncer = RecordingResyncer(store)
    runner = IntegrationRunner(
        db, store, [make_integration(listener="WEBHOOKS_ONLY")], resyncer=resyncer, poll_seconds=0.05
    )
    runner.start()
    try:
        wait_for(lambda: job_row(db).status == "done")
        assert resyncer.runs == []
    finally:
        runner.stop(timeout=10)


def test_an_error_outside_azure_retries_the_job(db: Database, store: IngestStore) -> None:
    runner = IntegrationRunner(db, store, [make_integration()], resyncer=RecordingResyncer(store, status="raise"))
    before = utcnow()
    with pytest.raises(RuntimeError, match="database went away"):
        runner.run_now("ado")
    state = store.load_state("ado")
    assert state is not None and state.status == "failed" and state.finished_at is not None
    row = job_row(db)
    assert row.status == "pending" and "RuntimeError: the database went away" in row.last_error
    assert row.run_after.replace(tzinfo=UTC) >= before + timedelta(minutes=1)


def test_run_now_refuses_while_another_process_holds_it(db: Database, store: IngestStore) -> None:
    other = JobQueue(db, "server", lease_seconds=60)
    with db.begin() as conn:
        request_resync(conn, "ado", trigger="manual")
    other.claim([resync_job_kind("ado")])
    runner = IntegrationRunner(db, store, [make_integration()], resyncer=RecordingResyncer(store, status="failed"))
    with pytest.raises(ResyncBusy, match="running in another kiosk process"):
        runner.run_now("ado")
    with db.begin() as conn:
        conn.execute(sa.update(jobs).values(status="done", locked_by=None, locked_until=None))
    state = runner.run_now("ado")
    assert state.status == "failed" and state.trigger == "cli"
    assert job_row(db).status == "done"


def test_a_mapping_replaced_through_the_api_is_used(db: Database, store: IngestStore) -> None:
    integration = make_integration()
    replaced = {"resources": [MAPPING["resources"][0]]}
    store.save_mapping("ado", replaced, actor="kc_admin")
    mapping, source = effective_mapping(integration, store)
    assert source == "api" and [r.kind for r in mapping.resources] == ["project"]
    resyncer = RecordingResyncer(store)
    IntegrationRunner(db, store, [integration], resyncer=resyncer).run_now("ado")
    assert resyncer.runs[0][2] == mapping
    store.clear_mapping("ado")
    assert effective_mapping(integration, store) == (integration.mapping, "test")
    # A stored mapping kiosk now refuses is set aside, not half-used.
    store.save_mapping("ado", {"resources": [{"kind": "nope"}]}, actor=None)
    assert effective_mapping(integration, store) == (integration.mapping, "test")


def test_background_stops_the_resyncs_first(db: Database, store: IngestStore) -> None:
    log: list[str] = []

    class Part:
        def __init__(self, name: str) -> None:
            self.name = name

        def start(self) -> None:
            log.append(f"start {self.name}")

        def stop(self) -> None:
            log.append(f"stop {self.name}")

    background = Background(
        db, receivers=Part("receivers"), delivery=Part("delivery"), live_clients=Part("live"), integrations=Part("ado")
    )
    background.start()
    background.stop()
    assert log[3] == "start ado" and log[4] == "stop ado"


# ------------------------------------------------------------------------------ a real resync


def test_a_real_resync_over_http(start_emulator: EmulatorFactory, db: Database, store: IngestStore) -> None:
    """The real engine, run by the runner, against a generated organisation: the default
    blueprints created (initializePortResources), the entities written, the state saved."""
    live = start_emulator(config=with_generated_org(CONFIG, projects=2, repos=4, workitems=5), execute=False)
    integration = make_integration(url=f"{live.base_url}/fabrikam", initialize=False)
    catalog = store.catalog
    catalog.create_blueprint({"identifier": "adoProject", "schema": {"properties": {"state": {"type": "string"}}}})
    catalog.create_blueprint({"identifier": "adoRepo", "relations": {"project": {"target": "adoProject"}}})
    finished: list[str] = []
    runner = IntegrationRunner(db, store, [integration], on_finished=lambda name, s: finished.append(s.status))
    state = runner.run_now("ado")
    assert state.status == "completed", state.to_json()
    org = live.organisation()
    projects, _ = catalog.list_entities("adoProject")
    repos, _ = catalog.list_entities("adoRepo")
    assert {e["identifier"] for e in projects} == set(org.projects)
    assert {e["identifier"] for e in repos} == set(org.repositories)
    assert {e["relations"]["project"] for e in repos} <= set(org.projects)
    assert finished == ["completed"]
    saved = store.load_state("ado")
    assert saved is not None and saved.to_json() == state.to_json()
    assert state.totals()["created"] == len(org.projects) + len(org.repositories)
    assert job_row(db).status == "done"  # POLLING without an interval: nothing scheduled


# ---------------------------------------------------------------------- kiosk server processes

#: The processes' integration: projects and repositories into Ocean's default blueprints.
PROCESS_RESOURCES = [
    mapping_resource("project", "azureDevopsProject"),
    mapping_resource("repository", "azureDevopsRepository", relations={"project": ".project.id"}),
]


def slow_projects(live: LiveEmulator, latency_ms: int) -> None:
    """Every project list answers after ``latency_ms`` (none when 0): a resync lasts long enough to overlap."""
    rules = [{"path": "/*/_apis/projects", "method": "GET", "latencyMs": latency_ms}] if latency_ms else []
    assert live.client.put("/_emulator/switches", json={"faults": rules}).status_code == 200


def resyncs_completed(server: KioskServer) -> float:
    metrics = server.client.get("/metrics").text
    line = 'kiosk_integration_resyncs_total{integration="ado",status="completed"} '
    return sum(float(row[len(line) :]) for row in metrics.splitlines() if row.startswith(line))


def kiosk_processes(tmp_path: Path, database_url: str, emulator: str, listener: str, count: int) -> list[KioskServer]:
    config = tmp_path / "kiosk.yaml"
    config.write_text(integrations_yaml(f"{emulator}/fabrikam", resources=PROCESS_RESOURCES, listener=listener))
    admin = prepare_database(database_url)
    return [KioskServer(tmp_path / f"home{i}", database_url, config, admin, env={LEASE_ENV: "2"}) for i in range(count)]


def test_two_kiosk_processes_resync_once(start_emulator: EmulatorFactory, tmp_path: Path, database_url: str) -> None:
    """Two kiosk servers on one database, each asked for a resync while the other's runs: one
    process runs it, once, and the other's request is answered by it."""
    live = start_emulator(config=with_generated_org(CONFIG, projects=2, repos=3, workitems=2), execute=False)
    slow_projects(live, 1500)
    servers = kiosk_processes(tmp_path, database_url, live.base_url, "WEBHOOKS_ONLY", 2)
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready()
        first = servers[0].client.post("/v1/integration/ado/resync").json()["resync"]
        second = servers[1].client.post("/v1/integration/ado/resync").json()["resync"]
        assert (first, second) in {("queued", "coalesced"), ("queued", "running")}
        state = wait_for(
            lambda: (
                (s := servers[1].client.get("/v1/integration/ado").json()["integration"]["kiosk"]["state"])
                and s["status"] == "completed"
                and s
            ),
            timeout=60,
        )
        assert state["trigger"] == "manual"
        assert sorted(resyncs_completed(server) for server in servers) == [0.0, 1.0]
        projects = servers[0].client.get("/v1/blueprints/azureDevopsProject/entities").json()["entities"]
        assert {p["identifier"] for p in projects} == set(live.organisation().projects)
    finally:
        for server in servers:
            server.stop()


def test_a_killed_process_resyncs_again_at_the_next_start(
    start_emulator: EmulatorFactory, tmp_path: Path, database_url: str
) -> None:
    """SIGKILL mid-resync: nothing hands the job back; its lease expires and the restarted process
    (POLLING: a resync at start) takes it over and finishes it."""
    live = start_emulator(config=with_generated_org(CONFIG, projects=2, repos=3, workitems=2), execute=False)
    slow_projects(live, 3000)
    [server] = kiosk_processes(tmp_path, database_url, live.base_url, "POLLING", 1)
    try:
        server.start()
        wait_for(
            lambda: (
                (s := server.client.get("/v1/integration/ado").json()["integration"]["kiosk"]["state"])
                and s["status"] == "running"
            ),
            timeout=60,
        )
        server.kill()
        db = create_database(database_url)
        try:
            row = job_row(db)
            assert row.status == "running" and row.attempts == 1  # left leased by the dead process
        finally:
            db.dispose()
        slow_projects(live, 0)
        server.start()
        state = wait_for(
            lambda: (
                (s := server.client.get("/v1/integration/ado").json()["integration"]["kiosk"]["state"])
                and s["status"] == "completed"
                and s
            ),
            timeout=60,
        )
        assert state["trigger"] == "start"
        repos = server.client.get("/v1/blueprints/azureDevopsRepository/entities").json()["entities"]
        assert {r["identifier"] for r in repos} == set(live.organisation().repositories)
        db = create_database(database_url)
        try:
            assert job_row(db).status == "done" and job_row(db).attempts == 2
        finally:
            db.dispose()
    finally:
        server.stop()
