"""The reconcile lease and the fingerprints, on SQLite and PostgreSQL; concurrent appliers against the
emulator leave exactly one subscription per (scope, publisher, event type)."""

from __future__ import annotations

import threading
import time

import pytest
from tests.emulator.conftest import LiveEmulator
from tests.ingest.hooks.conftest import APP_HOST, KINDS, hooked_integration, keys, listed, project_ids

from kiosk.ingest.hooks.catalogue import events_for_kinds
from kiosk.ingest.hooks.reconcile import HookReconciler, HooksBusy, ReconcileReport
from kiosk.ingest.hooks.store import HookLease, HookStore, hooks_job_kind
from kiosk.store import Database


def test_one_holder_at_a_time_and_an_expired_lease_is_taken_over(db: Database) -> None:
    first, second = HookLease(db, "ado"), HookLease(db, "ado")
    other = HookLease(db, "another")
    assert first.try_acquire() and first.held
    assert not second.try_acquire() and not second.held
    assert second.holder_until() is not None
    assert other.try_acquire()  # another integration's lease is its own
    first.release()
    assert second.try_acquire()
    second.release()
    assert second.holder_until() is None
    short, late = HookLease(db, "ado", lease_seconds=0.05), HookLease(db, "ado")
    assert short.try_acquire()
    time.sleep(0.2)
    assert late.try_acquire()  # the holder stalled past its lease
    assert not short.extend()
    assert late.extend()
    assert hooks_job_kind("ado").startswith("integration.hooks.") and len(hooks_job_kind("x" * 100)) <= 50


def test_fingerprints_are_per_integration_and_organisation(db: Database) -> None:
    store = HookStore(db)
    assert store.fingerprint("ado", "https://a") is None
    store.save_fingerprint("ado", "https://a", "one")
    store.save_fingerprint("ado", "https://a", "two")
    store.save_fingerprint("ado", "https://b", "three")
    assert (store.fingerprint("ado", "https://a"), store.fingerprint("ado", "https://b")) == ("two", "three")
    store.forget("ado", "https://a")
    assert store.fingerprint("ado", "https://a") is None and store.fingerprint("other", "https://b") is None


def test_three_concurrent_appliers_leave_exactly_one_of_each(azure: LiveEmulator, db: Database) -> None:
    integration = hooked_integration(f"{azure.base_url}/fabrikam")
    reports: list[ReconcileReport] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def applier() -> None:
        found = HookReconciler(db, public_url=None, poll_seconds=0.02)
        target = found.target(integration)
        start.wait()
        try:
            reports.append(found.run(target, apply=True))
        except BaseException as exc:  # reported below, with the others' outcome
            errors.append(exc)

    threads = [threading.Thread(target=applier) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    url = f"{APP_HOST}/hooks/integrations/ado"
    want = sorted((p, e.publisher_id, e.event_type) for p in project_ids(azure) for e in events_for_kinds(KINDS))
    assert keys(listed(azure), url) == want  # one each: no twin
    made = sorted(len(r.organizations[0].plan.of("create")) for r in reports)
    assert made == [0, 0, len(want)]  # one applier made them all, the others found them


def test_an_apply_waits_for_the_holder_then_gives_up_saying_so(azure: LiveEmulator, db: Database) -> None:
    integration = hooked_integration(f"{azure.base_url}/fabrikam")
    holder = HookLease(db, "ado")
    assert holder.try_acquire()
    waiting = HookReconciler(db, public_url=None, wait_seconds=0.3, poll_seconds=0.05)
    with pytest.raises(HooksBusy) as busy:
        waiting.run(waiting.target(integration), apply=True)
    assert "another kiosk process is reconciling its subscriptions (its lease runs to" in str(busy.value)
    assert listed(azure) == []
    holder.release()
    assert waiting.run(waiting.target(integration), apply=True).changes
