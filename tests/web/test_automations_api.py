"""Automations over real HTTP on loopback, on SQLite and PostgreSQL: Port automation documents in
kiosk.yaml and through /v1/actions, entity and run events firing signed webhooks at a receiver,
conditions, payloads and templates, no recursion, no run by hand; and end to end through the
Azure DevOps emulator (an entity created in the catalog runs a pipeline that reports back)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from tests.support.azure_stack import PIPELINE_HEAD, kiosk_and_emulator
from tests.support.kiosk_yaml import kiosk_yaml, self_service_action
from tests.support.live_kiosk import LiveServer, start_configured_server
from tests.support.live_kiosk import api_error as error
from tests.support.polling import wait_for
from tests.support.receiver import Received, Receiver
from tests.support.servers import serving

from kiosk.store.tables import action_runs, deliveries, jobs


def automation(identifier: str, event: dict[str, Any], path: str, **extra: Any) -> dict[str, Any]:
    return {
        "identifier": identifier,
        "trigger": {"type": "automation", "event": event, **extra.pop("trigger", {})},
        "invocationMethod": {"type": "WEBHOOK", "url": path, **extra.pop("invocation", {})},
        **extra,
    }


def config(hooks: str) -> str:
    """``deploy`` run by hand and an automation on production services, both delivering to ``hooks``."""
    return kiosk_yaml(
        egress={"allowLoopback": True},
        delivery={"signingSecret": {"env": "KIOSK_TEST_WEBHOOK_SECRET"}, "retrySchedule": [0.05, 0.1]},
        blueprints=[
            {
                "identifier": "service",
                "schema": {
                    "properties": {
                        "lifecycle": {"type": "string", "enum": ["development", "production"]},
                        "lang": {"type": "string"},
                    }
                },
            }
        ],
        entities=[{"blueprint": "service", "identifier": "svc-a", "properties": {"lifecycle": "development"}}],
        actions=[
            self_service_action(
                "deploy",
                title="Deploy",
                inputs={"token": {"type": "string", "format": "secret"}},
                invocation={"type": "WEBHOOK", "url": f"{hooks}/deploy"},
            ),
            automation(
                "notify_prod_service",
                {"type": "ENTITY_UPDATED", "blueprintIdentifier": "service"},
                f"{hooks}/production",
                title="Tell the pipeline about production services",
                trigger={
                    "condition": {
                        "type": "JQ",
                        "expressions": ['.diff.after.properties.lifecycle == "production"'],
                        "combinator": "and",
                    }
                },
                publish=True,
            ),
        ],
    )


@dataclass
class Setup:
    live: LiveServer
    hooks: Receiver
    hooks_url: str

    @property
    def api(self) -> httpx.Client:
        return self.live.admin

    def url(self, path: str) -> str:
        return self.hooks_url + path

    def webhooks(self, path: str, count: int = 1) -> list[Received]:
        """The webhooks that reached ``path``, once ``count`` of them have."""
        return self.hooks.wait(count, lambda r: r.path == path)

    def add(self, doc: dict[str, Any]) -> None:
        doc["invocationMethod"]["url"] = self.url(doc["invocationMethod"]["url"])
        r = self.api.post("/v1/actions", json=doc)
        assert r.status_code == 201, r.text

    def automation_runs(self, action: str) -> list[dict[str, Any]]:
        runs = self.api.get("/v1/actions/runs", params={"action": action}).json()["runs"]
        return list(reversed(runs))  # oldest first

    def rows(self, table: sa.Table) -> list[Any]:
        with self.live.app.state.db.connect() as conn:
            return list(conn.execute(sa.select(table)).all())


@pytest.fixture
def setup(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    monkeypatch.setenv("KIOSK_TEST_WEBHOOK_SECRET", "automation-signing-secret")
    hooks = Receiver()
    with serving(hooks) as hooks_url:
        for live in start_configured_server(tmp_path, database_url, config(hooks_url)):
            yield Setup(live, hooks, hooks_url)


def patch_service(setup: Setup, identifier: str, **properties: Any) -> None:
    r = setup.api.patch(f"/v1/blueprints/service/entities/{identifier}", json={"properties": properties})
    assert r.status_code == 200, r.text


# --------------------------------------------------------------------------------- definitions


def test_port_automations_in_kiosk_yaml_and_through_the_api(setup: Setup) -> None:
    listed = {a["identifier"]: a for a in setup.api.get("/v1/actions").json()["actions"]}
    assert listed["notify_prod_service"]["trigger"]["event"] == {
        "type": "ENTITY_UPDATED",
        "blueprintIdentifier": "service",
    }
    assert listed["notify_prod_service"]["createdBy"] == "config"
    setup.add(automation("on_run", {"type": "ANY_RUN_CHANGE", "actionIdentifier": "deploy"}, "/runs"))
    by_blueprint = setup.api.get("/v1/actions", params={"blueprint": "service"}).json()["actions"]
    assert [a["identifier"] for a in by_blueprint] == ["deploy", "notify_prod_service"]

    changed = automation("on_run", {"type": "RUN_UPDATED", "actionIdentifier": "deploy"}, setup.url("/runs"))
    r = setup.api.put("/v1/actions/on_run", json=changed)
    assert r.status_code == 200 and r.json()["action"]["trigger"]["event"]["type"] == "RUN_UPDATED"

    bad_condition = automation(
        "x",
        {"type": "ENTITY_CREATED", "blueprintIdentifier": "service"},
        setup.url("/x"),
        trigger={"condition": {"type": "JQ", "expressions": [".a |"]}},
    )
    body = error(setup.api.post("/v1/actions", json=bad_condition), 422, "not a valid jq expression")
    assert body["details"]["field"] == "trigger.condition.expressions[0]"
    body = error(
        setup.api.post(
            "/v1/actions", json=automation("x", {"type": "RUN_CREATED", "actionIdentifier": "on_run"}, setup.url("/x"))
        ),
        422,
        "is an automation",
    )
    assert body["details"]["field"] == "trigger.event.actionIdentifier"
    error(
        setup.api.post(
            "/v1/actions",
            json=automation("x", {"type": "ENTITY_CREATED", "blueprintIdentifier": "nope"}, setup.url("/x")),
        ),
        422,
        "blueprint 'nope' does not exist",
    )


def test_an_automation_cannot_be_run_by_hand(setup: Setup) -> None:
    body = error(setup.api.post("/v1/actions/notify_prod_service/runs", json={}), 422, "is an automation")
    assert body["error"] == "action_is_automation"
    assert setup.rows(action_runs) == []


# --------------------------------------------------------------------------------- entity events


def test_entity_events_fire_signed_webhooks_with_port_payloads(setup: Setup) -> None:
    setup.add(automation("created", {"type": "ENTITY_CREATED", "blueprintIdentifier": "service"}, "/created"))
    setup.add(automation("deleted", {"type": "ENTITY_DELETED", "blueprintIdentifier": "service"}, "/deleted"))
    r = setup.api.post("/v1/blueprints/service/entities", json={"identifier": "svc-b", "properties": {"lang": "go"}})
    assert r.status_code == 201, r.text

    (got,) = setup.webhooks("/created")
    body = got.json()
    (run,) = setup.automation_runs("created")
    assert run["source"] == "AUTOMATION" and run["entity"] == {"identifier": "svc-b"}
    assert body["resourceType"] == "entity" and body["status"] == "TRIGGERED"
    assert body["trigger"]["origin"] == "AUTOMATION"
    assert body["context"] == {
        "blueprintIdentifier": "service",
        "entityIdentifier": "svc-b",
        "runId": run["id"],
        # the automation run's report token, for its pipeline to report with (filled in at send time)
        "reportToken": setup.live.app.state.report_tokens.token_for(run["id"]),
    }
    assert body["event"]["type"] == "ENTITY_CREATED" and body["event"]["diff"]["before"] is None
    assert body["event"]["diff"]["after"]["properties"] == {"lang": "go"}
    assert got.headers["webhook-signature"].startswith("v1,") and got.headers["x-port-signature"].startswith("v1,")

    assert setup.api.delete("/v1/blueprints/service/entities/svc-b").status_code == 200
    (gone,) = setup.webhooks("/deleted")
    diff = gone.json()["event"]["diff"]
    assert diff["after"] is None and diff["before"]["identifier"] == "svc-b"
    deadline = time.monotonic() + 10
    while any(d.status != "delivered" for d in setup.rows(deliveries)):
        assert time.monotonic() < deadline, setup.rows(deliveries)
        time.sleep(0.05)
    assert {d.source for d in setup.rows(deliveries)} == {"automation"}


def test_a_condition_on_before_and_after(setup: Setup) -> None:
    patch_service(setup, "svc-a", lang="go")  # still development: the kiosk.yaml automation stays quiet
    patch_service(setup, "svc-a", lifecycle="production")
    patch_service(setup, "svc-a", lang="rust")  # production already before: the condition is on after only
    got = setup.webhooks("/production", count=2)
    diffs = [
        (g.json()["event"]["diff"]["before"]["properties"], g.json()["event"]["diff"]["after"]["properties"])
        for g in got
    ]
    assert diffs == [
        ({"lifecycle": "development", "lang": "go"}, {"lifecycle": "production", "lang": "go"}),
        ({"lifecycle": "production", "lang": "go"}, {"lifecycle": "production", "lang": "rust"}),
    ]


def test_or_combinator_and_a_jq_body_template(setup: Setup) -> None:
    setup.add(
        automation(
            "langs",
            {"type": "ANY_ENTITY_CHANGE", "blueprintIdentifier": "service"},
            "/langs",
            trigger={
                "condition": {
                    "type": "JQ",
                    "expressions": ['.entity.properties.lang == "go"', '.entity.properties.lang == "rust"'],
                    "combinator": "or",
                }
            },
            invocation={
                "headers": {"X-Service": "{{ .entity.identifier }}"},
                "body": {
                    "service": "{{ .entity.identifier }}",
                    "what": "{{ .event.type }}",
                    "lang": "{{ .diff.after.properties.lang }}",
                    "runId": "{{ .run.id }}",
                    "by": "{{ .trigger.by.userId }}",
                },
            },
        )
    )
    r = setup.api.post(
        "/v1/blueprints/service/entities/bulk",
        json={
            "entities": [
                {"identifier": i, "properties": {"lang": lang}}
                for i, lang in (("a", "go"), ("b", "java"), ("c", "rust"))
            ]
        },
    )
    assert r.status_code in (200, 207), r.text
    got = setup.webhooks("/langs", count=2)
    runs = {run["entity"]["identifier"]: run for run in setup.automation_runs("langs")}
    assert sorted(runs) == ["a", "c"]
    bodies = sorted((g.json() for g in got), key=lambda b: b["service"])
    assert bodies[0] == {
        "service": "a",
        "what": "ENTITY_CREATED",
        "lang": "go",
        "runId": runs["a"]["id"],
        "by": runs["a"]["createdBy"],
    }
    assert {g.headers["x-service"] for g in got} == {"a", "c"}


def test_an_entity_refused_by_validation_fires_nothing(setup: Setup) -> None:
    setup.add(automation("any", {"type": "ANY_ENTITY_CHANGE", "blueprintIdentifier": "service"}, "/any"))
    error(
        setup.api.post("/v1/blueprints/service/entities", json={"identifier": "x", "properties": {"lifecycle": "old"}}),
        422,
        "lifecycle",
    )
    error(
        setup.api.patch("/v1/blueprints/service/entities/svc-a", json={"properties": {"lifecycle": "old"}}),
        422,
        "lifecycle",
    )
    assert setup.rows(action_runs) == [] and setup.rows(deliveries) == [] and setup.rows(jobs) == []


# --------------------------------------------------------------------------------- run events


def test_run_events_fire_and_automation_runs_do_not(setup: Setup) -> None:
    setup.add(automation("run_created", {"type": "RUN_CREATED", "actionIdentifier": "deploy"}, "/run-created"))
    setup.add(
        automation(
            "run_done",
            {"type": "RUN_UPDATED", "actionIdentifier": "deploy"},
            "/run-done",
            trigger={"condition": {"type": "JQ", "expressions": ['.diff.after.status == "SUCCESS"']}},
            invocation={"body": {"deployRun": "{{ .diff.after.id }}", "status": "{{ .diff.after.status }}"}},
        )
    )
    r = setup.api.post("/v1/actions/deploy/runs", json={"entity": "svc-a", "properties": {"token": "hunter2-api"}})
    assert r.status_code == 201, r.text
    deploy_run = r.json()["run"]["id"]
    (created,) = setup.webhooks("/run-created")
    assert created.json()["resourceType"] == "run" and created.json()["event"]["type"] == "RUN_CREATED"
    assert created.json()["event"]["diff"]["after"]["id"] == deploy_run
    assert created.json()["event"]["diff"]["after"]["properties"] == {"token": "****"}
    assert "hunter2-api" not in orjson.dumps(created.json()).decode()

    assert setup.api.patch(f"/v1/actions/runs/{deploy_run}", json={"statusLabel": "building"}).status_code == 200
    assert setup.api.patch(f"/v1/actions/runs/{deploy_run}", json={"status": "SUCCESS"}).status_code == 200
    (done,) = setup.webhooks("/run-done")
    assert done.json() == {"deployRun": deploy_run, "status": "SUCCESS"}

    # The automation runs report back like any run; their changes fire nothing (depth 1).
    for run in [*setup.automation_runs("run_created"), *setup.automation_runs("run_done")]:
        assert setup.api.patch(f"/v1/actions/runs/{run['id']}", json={"status": "SUCCESS"}).status_code == 200
    time.sleep(0.3)
    assert len(setup.hooks.requests) == 3  # deploy's own webhook, run_created, run_done
    assert len(setup.automation_runs("run_created")) == len(setup.automation_runs("run_done")) == 1


# --------------------------------------------------------------------------------- end to end

PIPELINE = (
    PIPELINE_HEAD
    + """\
- script: |
    echo "registering $SERVICE ($EVENT)"
  env:
    SERVICE: ${{ parameters.port.context.entityIdentifier }}
    EVENT: ${{ parameters.port.event.type }}
- script: |
    set -eo pipefail
    curl -sf -X PATCH "$KIOSK_URL/v1/actions/runs/$RUN_ID" -H "Authorization: Bearer $REPORT_TOKEN" \\
      -H 'Content-Type: application/json' -d '{"status":"SUCCESS","statusLabel":"registered"}' > /dev/null
    echo "reported SUCCESS to kiosk"
  env:
    KIOSK_URL: $(kioskUrl)
    RUN_ID: ${{ parameters.port.context.runId }}
    REPORT_TOKEN: ${{ parameters.port.context.reportToken }}
"""
)

KIOSK = """\
azureDevOps:
  orgs:
    fabrikam:
      baseUrl: {emulator_url}
      signingSecret: {{env: E2E_SIGNING_SECRET}}
egress: {{allowLoopback: true}}
delivery: {{retrySchedule: [0.05, 0.1, 0.2], timeoutSeconds: 5}}
blueprints:
  - identifier: service
actions:
  - identifier: register_service
    title: Register new services
    trigger:
      type: automation
      event: {{type: ENTITY_CREATED, blueprintIdentifier: service}}
    invocationMethod: {{type: AZURE-DEVOPS, org: fabrikam, webhook: kiosk}}
"""


@dataclass
class Stack:
    kiosk: httpx.Client
    emulator: httpx.Client


@pytest.fixture
def stack(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    with kiosk_and_emulator(
        tmp_path,
        database_url,
        monkeypatch,
        kiosk_yaml=lambda _kiosk_url, emulator_url: KIOSK.format(emulator_url=emulator_url),
        pipeline_name="register",
        pipeline=PIPELINE,
    ) as (kiosk, emulator):
        yield Stack(kiosk, emulator)


def test_an_entity_created_in_the_catalog_runs_a_pipeline(stack: Stack) -> None:
    r = stack.kiosk.post("/v1/blueprints/service/entities", json={"identifier": "billing-api", "title": "Billing"})
    assert r.status_code == 201, r.text

    def finished() -> dict[str, Any] | None:
        runs = stack.kiosk.get("/v1/actions/runs", params={"action": "register_service"}).json()["runs"]
        return runs[0] if runs and runs[0]["status"] in ("SUCCESS", "FAILURE") else None

    run = wait_for(finished, timeout=30)
    assert run["status"] == "SUCCESS" and run["statusLabel"] == "registered", run
    assert run["source"] == "AUTOMATION" and run["entity"] == {"identifier": "billing-api"}
    # The emulator verified the signature, ran the pipeline under the kiosk run's name, and its
    # log shows the entity the event was about.
    runs = stack.emulator.get("/fabrikam/web/_apis/pipelines/1/runs?api-version=7.1").json()["value"]
    (pipeline_run,) = [r for r in runs if r["name"] == f"kiosk-{run['id']}"]
    log = stack.emulator.get(f"/_emulator/runs/fabrikam/{pipeline_run['id']}/log?follow=true").text
    assert "registering billing-api (ENTITY_CREATED)" in log
    assert "reported SUCCESS to kiosk" in log
    (delivery,) = stack.kiosk.get("/v1/deliveries", params={"runId": run["id"]}).json()["deliveries"]
    assert delivery["status"] == "delivered" and delivery["source"] == "automation"
