"""The run service on both engines: atomic run + delivery, and finishing runs from outside."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from kiosk.actions import runs as runs_module
from kiosk.actions.runs import (
    Runs,
    describe_duration,
    expire_stale_runs,
    fail_run_for_delivery,
    finish_run,
    finish_run_from_pipeline,
    pipeline_run_name,
)
from kiosk.actions.secrets import SecretBox
from kiosk.actions.service import Actions
from kiosk.catalog.service import Catalog
from kiosk.config.model import AzureDevOpsOrg
from kiosk.config.secrets import SecretRef
from kiosk.store import Database
from kiosk.store.tables import action_run_logs, action_runs, deliveries, jobs

ACTION: dict[str, Any] = {
    "identifier": "deploy",
    "title": "Deploy",
    "trigger": {
        "type": "self-service",
        "operation": "DAY-2",
        "blueprintIdentifier": "service",
        "userInputs": {"properties": {"token": {"type": "string", "format": "secret"}}},
    },
    "invocationMethod": {"type": "AZURE-DEVOPS", "org": "contoso", "webhook": "deploy"},
}


@pytest.fixture
def runs(db: Database) -> Runs:
    catalog = Catalog(db)
    catalog.create_blueprint({"identifier": "service"})
    catalog.upsert_entity("service", {"identifier": "svc-a"})
    actions = Actions(db, azure_orgs={"contoso": AzureDevOpsOrg(signingSecret=SecretRef(env="X"))})
    actions.create_action(ACTION)
    return Runs(db, catalog, actions, SecretBox(bytes(range(32))))


def counts(db: Database) -> tuple[int, int, int]:
    with db.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (action_runs, deliveries, jobs)
        )


def start(runs: Runs, **properties: Any) -> dict[str, Any]:
    return runs.start_run("deploy", {"entity": "svc-a", "properties": properties}, actor="kc_test")


def test_run_and_delivery_commit_together_or_not_at_all(
    runs: Runs, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    notified: list[bool] = []
    runs.notify = lambda: notified.append(True)
    run = start(runs)
    assert run["status"] == "IN_PROGRESS" and notified == [True]
    assert counts(db) == (1, 1, 1)
    with db.connect() as conn:
        delivery = conn.execute(sa.select(deliveries)).one()
        row = conn.execute(sa.select(action_runs)).one()
    assert delivery.run_id == run["id"] and delivery.source == "action"
    assert row.pipeline_run_name == pipeline_run_name(run["id"]) == f"kiosk-{run['id']}"

    real = runs_module.create_delivery

    def create_then_fail(conn: Any, **kwargs: Any) -> str:
        real(conn, **kwargs)
        raise RuntimeError("the queue is gone")

    monkeypatch.setattr(runs_module, "create_delivery", create_then_fail)
    with pytest.raises(RuntimeError):
        start(runs)
    assert counts(db) == (1, 1, 1)  # neither the second run nor its delivery was kept


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
