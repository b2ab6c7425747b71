"""The run service on both engines: atomic run + delivery, and finishing runs from outside."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from tests.actions.deploy_action import AZURE_ORGS, DEPLOY, row_counts
from tests.support.threads import run_together

from kiosk.actions.runs import (
    Runs,
    describe_duration,
    expire_stale_runs,
    fail_run_for_delivery,
    finish_run,
    finish_run_from_pipeline,
    pipeline_run_name,
    run_id_for_key,
    succeed_run_for_delivery,
)
from kiosk.actions.runs import store as run_store
from kiosk.actions.runs.states import is_run_id
from kiosk.actions.secrets import SecretBox
from kiosk.actions.service import Actions
from kiosk.catalog.service import Catalog
from kiosk.errors import Conflict
from kiosk.store import Database
from kiosk.store.tables import action_run_logs, action_runs, deliveries


@pytest.fixture
def runs(db: Database) -> Runs:
    catalog = Catalog(db)
    catalog.create_blueprint({"identifier": "service"})
    catalog.upsert_entity("service", {"identifier": "svc-a"})
    actions = Actions(db, azure_orgs=AZURE_ORGS)
    actions.create_action(DEPLOY)
    return Runs(db, catalog, actions, SecretBox(bytes(range(32))))


def start(runs: Runs, **properties: Any) -> dict[str, Any]:
    return runs.start_run("deploy", {"entity": "svc-a", "properties": properties}, actor="kc_test")


def test_run_and_delivery_commit_together_or_not_at_all(
    runs: Runs, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    notified: list[bool] = []
    runs.notify = lambda: notified.append(True)
    run = start(runs)
    assert run["status"] == "IN_PROGRESS" and notified == [True]
    assert row_counts(db) == (1, 1, 1)
    with db.connect() as conn:
        delivery = conn.execute(sa.select(deliveries)).one()
        row = conn.execute(sa.select(action_runs)).one()
    assert delivery.run_id == run["id"] and delivery.source == "action"
    assert row.pipeline_run_name == pipeline_run_name(run["id"]) == f"kiosk-{run['id']}"

    real = run_store.create_delivery

    def create_then_fail(conn: Any, *args: Any, **kwargs: Any) -> str:
        real(conn, *args, **kwargs)
        raise RuntimeError("the queue is gone")

    monkeypatch.setattr(run_store, "create_delivery", create_then_fail)
    with pytest.raises(RuntimeError):
        start(runs)
    assert row_counts(db) == (1, 1, 1)  # neither the second run nor its delivery was kept


def test_finish_run_from_pipeline(runs: Runs, db: Database) -> None:
    run = start(runs, token="hunter2-finish")
    name = pipeline_run_name(run["id"])
    assert finish_run_from_pipeline(db, "kiosk-r_unknown", "SUCCESS", None, None) is False
    assert finish_run_from_pipeline(db, name, "SUCCESS", "https://dev.azure.com/c/p/_build/results?buildId=7", "done")
    done = runs.get_run(run["id"])
    assert done["status"] == "SUCCESS" and done["statusLabel"] == "done" and done["endedAt"]
    assert done["link"] == ["https://dev.azure.com/c/p/_build/results?buildId=7"]
    with db.connect() as conn:
        assert conn.execute(sa.select(action_runs.c.secrets)).scalar_one() is None  # dropped once finished
    # already finished: nothing changes, whoever reports second
    assert finish_run_from_pipeline(db, name, "FAILURE", None, "late") is False
    assert runs.get_run(run["id"])["status"] == "SUCCESS"
    with pytest.raises(ValueError):
        finish_run_from_pipeline(db, name, "DECLINED", None, None)


def test_finish_in_the_callers_transaction(runs: Runs, db: Database) -> None:
    run = start(runs)
    with db.begin() as conn:
        assert finish_run(conn, run["id"], "FAILURE", label="x", link="https://a.io", log_message="why")
        assert not finish_run(conn, run["id"], "SUCCESS")
    logs, _ = runs.list_logs(run["id"])
    assert [(entry["message"], entry["terminationStatus"]) for entry in logs] == [("why", "FAILURE")]
    assert runs.get_run(run["id"])["link"] == ["https://a.io"]


def test_fail_run_for_delivery(runs: Runs, db: Database) -> None:
    run = start(runs)
    assert fail_run_for_delivery(db, run["id"], "HTTP 404 after 10 attempts")
    failed = runs.get_run(run["id"])
    assert failed["status"] == "FAILURE"
    assert failed["statusLabel"] == "the pipeline could not be triggered: HTTP 404 after 10 attempts"
    assert "HTTP 404" in runs.list_logs(run["id"])[0][0]["message"]
    assert fail_run_for_delivery(db, run["id"], "again") is False
    assert fail_run_for_delivery(db, "r_0000", "unknown") is False


def test_expire_stale_runs(runs: Runs, db: Database) -> None:
    old, fresh, reported = start(runs), start(runs), start(runs)
    runs.add_log(reported["id"], {"message": "step 1 done"})
    past = datetime.now(UTC) - timedelta(hours=3)
    with db.begin() as conn:
        conn.execute(
            sa.update(action_runs)
            .where(action_runs.c.id.in_([old["id"], reported["id"]]))
            .values(created_at=past, updated_at=past)
        )
        # a report an hour ago keeps a run alive
        conn.execute(
            sa.update(action_runs)
            .where(action_runs.c.id == reported["id"])
            .values(updated_at=datetime.now(UTC) - timedelta(hours=1))
        )
    assert expire_stale_runs(db, timedelta(hours=2)) == 1
    expired = runs.get_run(old["id"])
    assert expired["status"] == "FAILURE"
    assert expired["statusLabel"] == "no report from the pipeline within 2 hours"
    assert runs.get_run(fresh["id"])["status"] == "IN_PROGRESS"
    assert runs.get_run(reported["id"])["status"] == "IN_PROGRESS"
    assert expire_stale_runs(db, timedelta(hours=2)) == 0
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(action_run_logs)).scalar_one() == 2


def test_describe_duration() -> None:
    assert describe_duration(timedelta(hours=2)) == "2 hours"
    assert describe_duration(timedelta(minutes=90)) == "1 hour 30 minutes"
    assert describe_duration(timedelta(days=1, hours=1, minutes=1)) == "1 day 1 hour"
    assert describe_duration(timedelta(seconds=1)) == "1 second"
    assert describe_duration(timedelta(0)) == "0 seconds"


SYNC_HOOK: dict[str, Any] = {
    "identifier": "sync_hook",
    "trigger": {"type": "self-service", "operation": "CREATE", "blueprintIdentifier": "service"},
    "invocationMethod": {"type": "WEBHOOK", "url": "https://hooks.example.com/sync", "synchronized": True},
}


def test_secret_inputs_are_sealed_in_the_stored_delivery_body(runs: Runs, db: Database) -> None:
    secret_run = start(runs, token="hunter2-in-the-body")
    plain_run = start(runs)
    with db.connect() as conn:
        stored = {r.run_id: r for r in conn.execute(sa.select(deliveries))}
    sealed, plain = stored[secret_run["id"]], stored[plain_run["id"]]
    assert sealed.target["sealed"] is True and b"hunter2" not in bytes(sealed.body)
    opened = runs.box.open_body(sealed.id, bytes(sealed.body))
    assert orjson.loads(opened.body)["payload"]["properties"] == {"token": "hunter2-in-the-body"}
    assert opened.secret_values == ("hunter2-in-the-body",)
    # no secret, no sealing: the body is the clear JSON, the target as before
    assert "sealed" not in plain.target and orjson.loads(bytes(plain.body))["payload"]["properties"] == {}


def test_a_start_repeated_with_its_idempotency_key_returns_the_first_run(runs: Runs, db: Database) -> None:
    notified: list[bool] = []
    runs.notify = lambda: notified.append(True)
    body = {"entity": "svc-a", "properties": {"token": "idem-secret"}}
    first = runs.start_run("deploy", body, actor="kc_a", idempotency_key="event:7:w:0")
    again = runs.start_run("deploy", body, actor="kc_a", idempotency_key="event:7:w:0")
    assert first["id"] == again["id"] == run_id_for_key("event:7:w:0") and is_run_id(first["id"])
    assert again["status"] == "IN_PROGRESS" and again["properties"] == {"token": "****"}
    assert row_counts(db) == (1, 1, 1) and notified == [True]  # one run, one delivery, one job
    # the run moved on meanwhile: the repeat answers the run as it is now, and changes nothing
    runs.report(first["id"], {"status": "SUCCESS"})
    assert runs.start_run("deploy", body, idempotency_key="event:7:w:0")["status"] == "SUCCESS"
    assert row_counts(db) == (1, 1, 1)
    other = runs.start_run("deploy", body, idempotency_key="event:7:w:1")
    assert other["id"] != first["id"] and row_counts(db) == (2, 2, 2)
    runs.actions.create_action(SYNC_HOOK)
    with pytest.raises(Conflict, match="already started a run of action 'deploy'"):
        runs.start_run("sync_hook", {}, idempotency_key="event:7:w:0")


def test_concurrent_starts_with_one_key_store_one_run(runs: Runs, db: Database) -> None:
    """Starts racing past the "does it exist" check: the primary key and "on conflict do nothing"
    still leave one run and one delivery, and every start answers with that run."""
    checks = threading.Barrier(4)
    real = runs._existing_run

    def check_together(run_id: str, identifier: str) -> dict[str, Any] | None:
        found = real(run_id, identifier)
        if found is None:
            checks.wait(timeout=10)  # all four saw "no run yet" before any inserts
        return found

    runs._existing_run = check_together  # type: ignore[method-assign]

    def go() -> Any:
        return runs.start_run("deploy", {"entity": "svc-a", "properties": {}}, idempotency_key="k")["id"]

    answers, errors = run_together(go, 4, timeout=30)
    assert errors == [] and answers == [run_id_for_key("k")] * 4
    assert row_counts(db) == (1, 1, 1)


def test_synchronized_runs_finish_with_the_webhooks_answer(runs: Runs, db: Database) -> None:
    runs.actions.create_action(SYNC_HOOK)
    ok = runs.start_run("sync_hook", {})
    assert succeed_run_for_delivery(db, ok["id"], 201)
    done = runs.get_run(ok["id"])
    assert done["status"] == "SUCCESS" and done["statusLabel"] == "the webhook answered HTTP 201 Created"
    assert "HTTP 201 Created" in runs.list_logs(ok["id"])[0][0]["message"]
    assert not succeed_run_for_delivery(db, ok["id"], 200)  # finished runs are left alone
    assert not fail_run_for_delivery(db, ok["id"], "late")
    assert runs.get_run(ok["id"])["statusLabel"] == "the webhook answered HTTP 201 Created"

    failed = runs.start_run("sync_hook", {})
    assert fail_run_for_delivery(db, failed["id"], "410 Gone: the receiver asked to stop (after 1 attempt(s))")
    label = runs.get_run(failed["id"])["statusLabel"]
    assert label == "the webhook call failed: 410 Gone: the receiver asked to stop (after 1 attempt(s))"
    # a pipeline that was never triggered keeps its own wording
    pipeline = start(runs)
    assert fail_run_for_delivery(db, pipeline["id"], "HTTP 404")
    assert runs.get_run(pipeline["id"])["statusLabel"] == "the pipeline could not be triggered: HTTP 404"
    with db.connect() as conn:
        targets = {r.run_id: r.target for r in conn.execute(sa.select(deliveries))}
    assert targets[ok["id"]]["synchronized"] is True and "synchronized" not in targets[pipeline["id"]]
