"""The runner keeps integrations' subscriptions: at start (ten restarts, three processes at once: one
each), after a mapping change, and again when Azure could not be reached; never for ONCE."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from tests.emulator.conftest import LiveEmulator
from tests.ingest.hooks.conftest import (
    APP_HOST,
    KINDS,
    azure,
    hooked_integration,
    keys,
    listed,
    project_ids,
    sqlite_db,
    start_emulator,
)
from tests.support.integrations import mapping_resource
from tests.support.polling import wait_for

from kiosk.azure.ratelimit import RetryPolicy
from kiosk.catalog.service import Catalog
from kiosk.ingest.config import Integration
from kiosk.ingest.hooks.catalogue import events_for_kinds
from kiosk.ingest.hooks.reconcile import HookReconciler
from kiosk.ingest.store import IngestStore
from kiosk.runtime.integrations import IntegrationRunner
from kiosk.store import Database

__all__ = ["azure", "sqlite_db", "start_emulator"]

URL = f"{APP_HOST}/hooks/integrations/ado"


@pytest.fixture
def runners() -> Iterator[list[IntegrationRunner]]:
    started: list[IntegrationRunner] = []
    yield started
    for runner in started:
        runner.stop(10)


def runner_for(db: Database, integration: Integration, **options: float) -> IntegrationRunner:
    return IntegrationRunner(db, IngestStore(db, Catalog(db)), [integration], poll_seconds=0.05, **options)


def expected(emulator: LiveEmulator, kinds: tuple[str, ...] = KINDS) -> list[tuple[str, str, str]]:
    return sorted((p, e.publisher_id, e.event_type) for p in project_ids(emulator) for e in events_for_kinds(kinds))


def test_ten_restarts_leave_one_of_each(azure: LiveEmulator, sqlite_db: Database) -> None:
    integration = hooked_integration(f"{azure.base_url}/fabrikam")
    ids: set[str] | None = None
    for restart in range(10):
        runner = runner_for(sqlite_db, integration).start()
        try:
            wait_for(lambda r=runner: "ado" in r.hook_reports, timeout=30)  # type: ignore[misc]
        finally:
            runner.stop(10)
        assert runner.hook_reports["ado"].changes == (restart == 0)
        assert keys(listed(azure), URL) == expected(azure)
        now = {s["id"] for s in listed(azure)}
        assert ids is None or now == ids
        ids = now


def test_three_processes_starting_at_once_make_one_of_each(
    azure: LiveEmulator, db: Database, runners: list[IntegrationRunner]
) -> None:
    integration = hooked_integration(f"{azure.base_url}/fabrikam")
    runners.extend(runner_for(db, integration) for _ in range(3))
    gate = threading.Barrier(3)

    def start(runner: IntegrationRunner) -> None:
        gate.wait()
        runner.start()

    threads = [threading.Thread(target=start, args=(r,)) for r in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    wait_for(lambda: all("ado" in r.hook_reports for r in runners), timeout=60)
    assert keys(listed(azure), URL) == expected(azure)
    created = sorted(len(r.hook_reports["ado"].organizations[0].plan.of("create")) for r in runners)
    assert created == [0, 0, len(expected(azure))]


def test_a_mapping_change_reconciles_again(
    azure: LiveEmulator, sqlite_db: Database, runners: list[IntegrationRunner]
) -> None:
    integration = hooked_integration(f"{azure.base_url}/fabrikam", kinds=("build",))
    runner = runner_for(sqlite_db, integration).start()
    runners.append(runner)
    wait_for(lambda: keys(listed(azure), URL) == expected(azure, ("build",)), timeout=30)
    runner.store.save_mapping("ado", {"resources": [mapping_resource("work-item", "thing")]}, actor="test")
    runner.hooks_changed("ado")
    wait_for(lambda: keys(listed(azure), URL) == expected(azure, ("work-item",)), timeout=30)


def test_azure_unreachable_at_start_is_retried(
    azure: LiveEmulator, sqlite_db: Database, runners: list[IntegrationRunner], caplog: pytest.LogCaptureFixture
) -> None:
    rule = {"pathRegex": "^/fabrikam/_apis/hooks/subscriptions$", "method": "GET", "errorRate": 1, "errorStatus": 500}
    assert azure.client.put("/_emulator/switches", json={"faults": [rule]}).status_code == 200
    integration = hooked_integration(f"{azure.base_url}/fabrikam", kinds=("build",))
    hooks = HookReconciler(sqlite_db, public_url=None, rest_options={"retry": RetryPolicy(max_attempts=1)})
    runner = IntegrationRunner(
        sqlite_db, IngestStore(sqlite_db, Catalog(sqlite_db)), [integration], hooks=hooks, hooks_retry_seconds=0.2
    )
    caplog.set_level("WARNING", logger="kiosk.integrations")
    runners.append(runner.start())
    wait_for(lambda: "cannot reconcile the service-hook subscriptions yet" in caplog.text, timeout=30)
    assert azure.client.put("/_emulator/switches", json={"faults": []}).status_code == 200
    wait_for(lambda: keys(listed(azure), URL) == expected(azure, ("build",)), timeout=30)


def test_once_and_no_url_keep_no_subscriptions(azure: LiveEmulator, sqlite_db: Database) -> None:
    org = f"{azure.base_url}/fabrikam"
    runner = runner_for(sqlite_db, hooked_integration(org))
    assert runner.keeps_hooks(hooked_integration(org))
    assert not runner.keeps_hooks(hooked_integration(org, listener="ONCE"))
    assert runner.keeps_hooks(hooked_integration(org, listener="POLLING"))
    assert not runner.keeps_hooks(hooked_integration(org, app_host=None))
    public = IntegrationRunner(
        sqlite_db, IngestStore(sqlite_db, Catalog(sqlite_db)), [], public_url="https://kiosk.example.com"
    )
    assert public.keeps_hooks(hooked_integration(org, app_host=None))
