"""Self-service actions over real HTTP on loopback, on SQLite and PostgreSQL: definitions, runs
(stored with their delivery), approvals, Port's reporting API, secret inputs, bad input."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from tests.support.kiosk_yaml import kiosk_yaml, self_service_action
from tests.support.live_kiosk import LiveServer, start_configured_server
from tests.support.live_kiosk import api_error as error

from kiosk.logs import redact_text
from kiosk.store.tables import action_run_logs, action_runs, actions, deliveries, jobs
from kiosk.web.app import create_app

CONFIG = kiosk_yaml(
    azureDevOps={"orgs": {"contoso": {"signingSecret": {"env": "KIOSK_TEST_CONTOSO_SECRET"}}}},
    blueprints=[
        {"identifier": "environment"},
        {"identifier": "service", "schema": {"properties": {"lang": {"type": "string"}}}},
    ],
    entities=[
        {"blueprint": "environment", "identifier": "dev"},
        {"blueprint": "environment", "identifier": "prod"},
        {"blueprint": "service", "identifier": "svc-a", "properties": {"lang": "go"}},
        {"blueprint": "service", "identifier": "svc-b"},
    ],
    actions=[
        self_service_action(
            "deploy_service",
            title="Deploy service",
            inputs={
                "environment": {"type": "string", "enum": ["dev", "prod"]},
                "version": {"type": "string", "default": "latest"},
            },
            required=["environment"],
            invocation={"type": "AZURE-DEVOPS", "org": "contoso", "webhook": "port_trigger"},
        )
    ],
)

CREATE_SERVICE: dict[str, Any] = {
    "identifier": "create_service",
    "title": "Create service",
    "trigger": {
        "type": "self-service",
        "operation": "CREATE",
        "blueprintIdentifier": "service",
        "userInputs": {"properties": {"name": {"type": "string"}}, "required": ["name"]},
    },
    "invocationMethod": {
        "type": "WEBHOOK",
        "url": "https://hooks.example.com/create",
        "headers": {"X-Env": "{{ .inputs.name }}-hook"},
        "body": {
            "name": "{{ .inputs.name }}",
            "run": "{{ .run.id }}",
            "inputs": "{{ .inputs }}",
            "text": "made {{ .inputs.name }} by {{ .trigger.by.userId }}",
            "fixed": [1, "two"],
        },
    },
}

ALL_INPUTS: dict[str, Any] = {
    "text": {"type": "string"},
    "count": {"type": "number"},
    "flag": {"type": "boolean"},
    "obj": {"type": "object"},
    "list": {"type": "array"},
    "env": {"type": "string", "format": "entity", "blueprint": "environment"},
    "owner": {"type": "string", "format": "user"},
    "team": {"type": "string", "format": "team"},
    "site": {"type": "string", "format": "url"},
    "mail": {"type": "string", "format": "email"},
    "manifest": {"type": "string", "format": "yaml"},
    "when": {"type": "string", "format": "date-time"},
    "token": {"type": "string", "format": "secret"},
    "size": {"type": "string", "enum": ["s", "m"]},
}
GOOD_VALUES: dict[str, Any] = {
    "text": "hello",
    "count": 2.5,
    "flag": True,
    "obj": {"a": 1},
    "list": [1, "x"],
    "env": "dev",
    "owner": "ana@corp.io",
    "team": "platform",
    "site": "https://example.com",
    "mail": "ana@corp.io",
    "manifest": "a: 1\n",
    "when": "2026-11-24T10:00:00Z",
    "token": "s3cr3t-token-value",
    "size": "m",
}
BAD_VALUES: dict[str, tuple[Any, str]] = {
    "text": (1, "must be a string"),
    "count": ("2", "must be a number"),
    "flag": ("yes", "must be true or false"),
    "obj": ([1], "must be a JSON object"),
    "list": ({}, "must be an array"),
    "env": ("staging", "entity 'staging' of blueprint 'environment' does not exist"),
    "owner": ("ana", "must be a user"),
    "team": ("", "must be a team name"),
    "site": ("example.com", "must be a URL"),
    "mail": ("ana@", "must be an email address"),
    "manifest": ("a: [1", "must be a valid YAML document"),
    "when": ("2026-11-24", "must be a date-time"),
    "token": ("", "must not be empty"),
    "size": ("xl", "must be one of ['s', 'm']"),
}


@pytest.fixture
def live(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    """A kiosk server whose kiosk.yaml configures an Azure DevOps org, a catalog and an action."""
    monkeypatch.setenv("KIOSK_TEST_CONTOSO_SECRET", "contoso-signing-secret")
    yield from start_configured_server(tmp_path, database_url, CONFIG)


def reporter(live: LiveServer, run_id: str) -> httpx.Client:
    """A client holding run ``run_id``'s report token, as its pipeline gets it in the payload."""
    return live.client(live.app.state.report_tokens.token_for(run_id))


def rows(live: LiveServer, table: sa.Table) -> list[Any]:
    with live.app.state.db.connect() as conn:
        return list(conn.execute(sa.select(table).order_by(*table.primary_key.columns)).all())


def run(api: httpx.Client, action: str, **body: Any) -> httpx.Response:
    return api.post(f"/v1/actions/{action}/runs", json=body)


def day2(api: httpx.Client, entity: str = "svc-a", **properties: Any) -> dict[str, Any]:
    r = run(api, "deploy_service", entity=entity, properties={"environment": "dev", **properties})
    assert r.status_code == 201, r.text
    return dict(r.json()["run"])


def with_inputs(identifier: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "identifier": identifier,
        "trigger": {
            "type": "self-service",
            "operation": "CREATE",
            "blueprintIdentifier": "service",
            "userInputs": {"properties": properties},
        },
        "invocationMethod": {"type": "AZURE-DEVOPS", "org": "contoso", "webhook": "hook"},
        **extra,
    }


# --------------------------------------------------------------------------------- definitions


def test_action_crud_and_roles(live: LiveServer) -> None:
    api = live.admin
    listed = api.get("/v1/actions").json()
    assert [a["identifier"] for a in listed["actions"]] == ["deploy_service"]  # from kiosk.yaml
    assert listed["actions"][0]["createdBy"] == "config"

    r = api.post("/v1/actions", json=CREATE_SERVICE)
    assert r.status_code == 201, r.text
    created = r.json()["action"]
    assert created["invocationMethod"]["method"] == "POST" and created["createdAt"]
    error(api.post("/v1/actions", json=CREATE_SERVICE), 409, "already exists")
    assert api.get("/v1/actions/create_service").json()["action"]["title"] == "Create service"
    assert [a["identifier"] for a in api.get("/v1/actions", params={"blueprint": "service"}).json()["actions"]] == [
        "create_service",
        "deploy_service",
    ]
    assert api.get("/v1/actions", params={"blueprint": "environment"}).json()["actions"] == []

    changed = {**CREATE_SERVICE, "title": "Create a service"}
    changed.pop("identifier")
    r = api.put("/v1/actions/create_service", json=changed)
    assert r.status_code == 200 and r.json()["action"]["title"] == "Create a service"
    error(api.put("/v1/actions/create_service", json={**CREATE_SERVICE, "identifier": "x"}), 422, "cannot be changed")
    error(api.put("/v1/actions/nope", json=CREATE_SERVICE | {"identifier": "nope"}), 404, "does not exist")

    with live.member() as dev:
        assert dev.get("/v1/actions").status_code == 200
        assert dev.get("/v1/actions/create_service").status_code == 200
        assert error(dev.post("/v1/actions", json=CREATE_SERVICE), 403, "admin")["error"] == "admin_required"
        error(dev.put("/v1/actions/create_service", json=changed), 403, "admin")
        error(dev.delete("/v1/actions/create_service"), 403, "admin")

    assert api.delete("/v1/actions/create_service").json() == {"ok": True}
    error(api.get("/v1/actions/create_service"), 404, "action 'create_service' does not exist")
    error(api.delete("/v1/actions/create_service"), 404, "does not exist")


def test_kiosk_yaml_actions_are_applied_idempotently(live: LiveServer) -> None:
    before = rows(live, actions)
    create_app(live.settings).state.db.dispose()  # a restart applies the same file again
    assert rows(live, actions) == before


@pytest.mark.parametrize(
    ("change", "status", "fragment", "field"),
    [
        ({"trigger": {"type": "self-service", "operation": "CREATE"}}, 422, "blueprintIdentifier", None),
        (
            {"trigger": {**CREATE_SERVICE["trigger"], "blueprintIdentifier": "team"}},
            422,
            "trigger.blueprintIdentifier: blueprint 'team' does not exist",
            "trigger.blueprintIdentifier",
        ),
        (
            {"invocationMethod": {"type": "AZURE-DEVOPS", "org": "initech", "webhook": "w"}},
            422,
            "Azure DevOps org 'initech' is not configured under azureDevOps.orgs",
            "invocationMethod.org",
        ),
        ({"invocationMethod": {"type": "GITHUB", "org": "o", "repo": "r"}}, 422, "invocationMethod", None),
        (
            {"invocationMethod": {"type": "WEBHOOK", "url": "https://x.io", "headers": {"X-Port-Signature": "x"}}},
            422,
            "'X-Port-Signature' is set by kiosk",
            "invocationMethod.headers",
        ),
        ({"requiredApproval": "yes"}, 422, "requiredApproval", None),
        ({"identifier": "runs"}, 422, "reserved", None),
        ({"colour": "red"}, 422, "colour", None),
    ],
)
def test_invalid_actions_are_422_naming_the_field(
    live: LiveServer, change: dict[str, Any], status: int, fragment: str, field: str | None
) -> None:
    before = rows(live, actions)
    body = error(live.admin.post("/v1/actions", json={**CREATE_SERVICE, **change}), status, fragment)
    if field:
        assert body["details"]["field"] == field
    assert rows(live, actions) == before


def test_entity_inputs_need_an_existing_blueprint(live: LiveServer) -> None:
    doc = with_inputs("pick", {"svc": {"type": "string", "format": "entity", "blueprint": "cluster"}})
    body = error(live.admin.post("/v1/actions", json=doc), 422, "blueprint 'cluster' (of format 'entity')")
    assert body["details"]["field"] == "trigger.userInputs.properties.svc"


# --------------------------------------------------------------------------------- runs


def test_every_input_type_and_format_over_http(live: LiveServer) -> None:
    api = live.admin
    assert api.post("/v1/actions", json=with_inputs("all_inputs", ALL_INPUTS)).status_code == 201
    r = run(api, "all_inputs", properties=GOOD_VALUES)
    assert r.status_code == 201, r.text
    stored = r.json()["run"]["properties"]
    assert stored == {**GOOD_VALUES, "token": "****", "when": "2026-11-24T10:00:00.000Z"}
    for name, (value, fragment) in BAD_VALUES.items():
        body = error(run(api, "all_inputs", properties={**GOOD_VALUES, name: value}), 422, fragment)
        assert body["message"].startswith(f"properties.{name}"), body
        assert body["details"]["field"] == f"properties.{name}"
    body = error(run(api, "all_inputs", properties={**GOOD_VALUES, "extra": 1}), 422, "no input 'extra'")
    assert body["error"] == "unknown_input"
    # the entity exists, but of another blueprint
    body = error(run(api, "all_inputs", properties={**GOOD_VALUES, "env": "svc-a"}), 422, "of blueprint 'service'")
    assert body["details"]["field"] == "properties.env"
    assert len(rows(live, action_runs)) == 1


def test_create_and_day2_entity_rules(live: LiveServer) -> None:
    api = live.admin
    api.post("/v1/actions", json=CREATE_SERVICE)
    error(
        run(api, "create_service", entity="svc-a", properties={"name": "n"}), 422, "CREATE action; it takes no entity"
    )
    assert run(api, "create_service", properties={"name": "n"}).status_code == 201
    error(run(api, "deploy_service", properties={"environment": "dev"}), 422, "entity is required")
    body = error(run(api, "deploy_service", entity="dev", properties={"environment": "dev"}), 422, "there is one")
    assert body["message"].endswith(
        "entity 'dev' of blueprint 'service' does not exist (there is one of blueprint 'environment')"
    )
    error(run(api, "deploy_service", entity="ghost", properties={"environment": "dev"}), 422, "'ghost'")
    error(run(api, "deploy_service", entity="svc-a", properties={}), 422, "properties.environment is required")
    error(run(api, "no_such_action", properties={}), 404, "action 'no_such_action' does not exist")
    assert len(rows(live, action_runs)) == 1


def test_run_is_stored_with_its_delivery(live: LiveServer) -> None:
    with live.member() as dev:  # members may run actions
        r = run(dev, "deploy_service", entity="svc-a", properties={"environment": "prod"})
    assert r.status_code == 201, r.text
    started = r.json()["run"]
    assert started["id"].startswith("r_") and started["status"] == "IN_PROGRESS"
    assert started["action"] == {"identifier": "deploy_service", "title": "Deploy service"}
    assert started["blueprint"] == {"identifier": "service"} and started["entity"] == {"identifier": "svc-a"}
    assert started["properties"] == {"environment": "prod", "version": "latest"}
    assert started["source"] == "API" and started["requiredApproval"] is False and started["approval"] is None
    assert started["createdBy"].startswith("kc_") and started["endedAt"] is None

    (run_row,) = rows(live, action_runs)
    (delivery,) = rows(live, deliveries)
    (job,) = rows(live, jobs)
    assert run_row.pipeline_run_name == f"kiosk-{started['id']}"
    # The server's delivery worker may already have tried (dev.azure.com is unreachable here).
    assert delivery.run_id == started["id"] and delivery.source == "action" and delivery.status in ("pending", "failed")
    assert job.kind == "delivery" and job.payload == {"delivery": delivery.id} and job.status in ("pending", "running")
    assert delivery.target == {
        "method": "POST",
        "url": "https://dev.azure.com/contoso/_apis/public/distributedtask/webhooks/port_trigger"
        "?api-version=6.0-preview",
        "headers": {"Content-Type": "application/json"},
        "signing": {"scheme": "azure", "secretRef": "azureDevOps:contoso", "header": "X-Port-Signature"},
    }
    body = bytes(delivery.body)
    payload = orjson.loads(body)
    assert body == orjson.dumps(payload)  # minified
    assert payload["action"] == "deploy_service"
    assert (payload["resourceType"], payload["status"]) == ("run", "TRIGGERED")
    # the report token is filled in at send time: the stored body holds only its placeholder
    assert payload["context"] == {
        "entity": "svc-a",
        "blueprint": "service",
        "runId": started["id"],
        "reportToken": "krt_****",
    }
    assert payload["trigger"]["origin"] == "API" and payload["trigger"]["at"] == started["createdAt"]
    assert payload["trigger"]["by"]["userId"] == started["createdBy"]
    assert payload["payload"]["entity"]["identifier"] == "svc-a"
    assert payload["payload"]["entity"]["properties"] == {"lang": "go"}
    assert payload["payload"]["action"] == {
        "invocationMethod": {"type": "AZURE-DEVOPS", "org": "contoso", "webhook": "port_trigger"},
        "trigger": "DAY-2",
    }
    assert payload["payload"]["properties"] == {"environment": "prod", "version": "latest"}


def test_jq_body_template(live: LiveServer) -> None:
    api = live.admin
    api.post("/v1/actions", json=CREATE_SERVICE)
    started = run(api, "create_service", properties={"name": "billing"}).json()["run"]
    (delivery,) = rows(live, deliveries)
    assert orjson.loads(delivery.body) == {
        "name": "billing",
        "run": started["id"],
        "inputs": {"name": "billing"},
        "text": f"made billing by {started['createdBy']}",
        "fixed": [1, "two"],
    }
    assert delivery.target["headers"] == {"Content-Type": "application/json", "X-Env": "billing-hook"}
    assert delivery.target["signing"] is None  # no delivery.signingSecret configured

    broken = {**CREATE_SERVICE, "identifier": "broken"}
    broken["invocationMethod"] = {**CREATE_SERVICE["invocationMethod"], "body": {"n": "{{ .inputs.name + 1 }}"}}
    assert api.post("/v1/actions", json=broken).status_code == 201
    body = error(run(api, "broken", properties={"name": "x"}), 422, "the template '{{ .inputs.name + 1 }}' failed")
    assert body["details"]["field"] == "invocationMethod.body.n"
    assert len(rows(live, action_runs)) == 1 and len(rows(live, deliveries)) == 1  # nothing stored


def test_approval_flow(live: LiveServer) -> None:
    api = live.admin
    gated = {**CREATE_SERVICE, "identifier": "gated", "requiredApproval": True}
    gated["trigger"] = {
        **CREATE_SERVICE["trigger"],
        "userInputs": {
            "properties": {"name": {"type": "string"}, "token": {"type": "string", "format": "secret"}},
            "required": ["name"],
        },
    }
    gated["invocationMethod"] = {"type": "WEBHOOK", "url": "https://hooks.example.com/g"}
    assert api.post("/v1/actions", json=gated).status_code == 201
    with live.member() as dev:
        first = run(dev, "gated", properties={"name": "one"}).json()["run"]
        second = run(dev, "gated", properties={"name": "two", "token": "approval-secret-1"}).json()["run"]
        assert first["status"] == "WAITING_FOR_APPROVAL" and first["requiredApproval"] is True
        assert rows(live, deliveries) == []
        assert error(dev.post(f"/v1/actions/runs/{first['id']}/approve"), 403, "admin")["error"] == "admin_required"
        error(dev.post(f"/v1/actions/runs/{first['id']}/decline", json={}), 403, "admin")
    # a waiting run takes no reports
    error(api.patch(f"/v1/actions/runs/{first['id']}", json={"status": "SUCCESS"}), 409, "waiting for approval")

    declined = api.post(f"/v1/actions/runs/{first['id']}/decline", json={"reason": "not today"}).json()["run"]
    assert declined["status"] == "DECLINED" and declined["statusLabel"] == "declined: not today"
    assert declined["approval"]["decision"] == "DECLINED" and declined["approval"]["reason"] == "not today"
    assert declined["endedAt"] and rows(live, deliveries) == []
    error(api.post(f"/v1/actions/runs/{first['id']}/approve"), 409, "already finished (DECLINED)")
    error(api.post(f"/v1/actions/runs/{first['id']}/decline"), 409, "already finished")

    approved = api.post(f"/v1/actions/runs/{second['id']}/approve").json()["run"]
    assert approved["status"] == "IN_PROGRESS" and approved["approval"]["decision"] == "APPROVED"
    assert approved["approval"]["decidedBy"].startswith("kc_") and approved["properties"]["token"] == "****"
    (delivery,) = rows(live, deliveries)
    assert delivery.run_id == second["id"]
    # the body is built at approval, with the secret input the pipeline needs, and stored sealed
    assert delivery.target["sealed"] is True and b"approval-secret-1" not in delivery.body
    opened = live.app.state.runs.box.open_body(delivery.id, delivery.body)
    assert orjson.loads(opened.body)["payload"]["properties"] == {"name": "two", "token": "approval-secret-1"}
    error(api.post(f"/v1/actions/runs/{second['id']}/approve"), 409, "is IN_PROGRESS, not waiting")
    error(api.post("/v1/actions/runs/r_0123/approve"), 404, "does not exist")
    error(api.post(f"/v1/actions/runs/{second['id']}/decline", json={"why": 1}), 422, "why")


def test_reporting_api(live: LiveServer) -> None:
    api = live.admin
    started = day2(api)
    url = f"/v1/actions/runs/{started['id']}"
    # the pipeline reports with the run's report token (it reads nothing with it: reads are the admin's)
    with reporter(live, started["id"]) as pipeline:
        r = pipeline.patch(
            url, json={"statusLabel": "building", "link": "https://ci.example.com/1", "externalRunId": "7"}
        )
        assert r.status_code == 200, r.text
        patched = r.json()["run"]
        assert patched["statusLabel"] == "building" and patched["link"] == ["https://ci.example.com/1"]
        assert patched["externalRunId"] == "7" and patched["status"] == "IN_PROGRESS"
        r = pipeline.patch(url, json={"status": "IN_PROGRESS", "link": ["https://a.io/1", "https://a.io/2"]})
        assert r.json()["run"]["link"] == ["https://a.io/1", "https://a.io/2"]

        r = pipeline.post(f"{url}/logs", json={"message": "step 1 done"})
        assert r.status_code == 201 and r.json()["runLog"]["message"] == "step 1 done"
        r = pipeline.post(
            f"{url}/logs", json={"message": "all done", "terminationStatus": "SUCCESS", "statusLabel": "deployed"}
        )
        assert r.status_code == 201 and r.json()["runLog"]["terminationStatus"] == "SUCCESS"

        finished = api.get(url).json()["run"]
        assert finished["status"] == "SUCCESS" and finished["statusLabel"] == "deployed" and finished["endedAt"]
        logs = api.get(f"{url}/logs").json()
        assert [entry["message"] for entry in logs["runLogs"]] == ["step 1 done", "all done"]
        assert logs["runLogs"][0]["runId"] == started["id"] and logs["next"] is None
        page = api.get(f"{url}/logs", params={"limit": 1}).json()
        assert len(page["runLogs"]) == 1 and page["next"]
        rest = api.get(f"{url}/logs", params={"limit": 1, "from": page["next"]}).json()
        assert rest["runLogs"][0]["message"] == "all done"

        # finished: nothing can change it any more
        refused = error(pipeline.patch(url, json={"status": "FAILURE"}), 409, "already finished")
        assert refused["error"] == "run_exhausted"
        error(pipeline.patch(url, json={"summary": "late"}), 409, "already finished (SUCCESS)")
        error(pipeline.post(f"{url}/logs", json={"message": "late"}), 409, "already finished")
        assert len(rows(live, action_run_logs)) == 2

    other = day2(api)
    other_url = f"/v1/actions/runs/{other['id']}"
    with reporter(live, other["id"]) as pipeline:
        for body, fragment in [
            ({"status": "DONE"}, "status must be one of SUCCESS, FAILURE, IN_PROGRESS"),
            ({"status": "DECLINED"}, "status must be one of"),
            ({"state": "SUCCESS"}, "state: unknown field"),
            ({"link": "ci.example.com"}, "link[0] must be an http"),
            ({"link": [1]}, "link must be a URL or a list"),
            ({"statusLabel": 5}, "statusLabel must be a string"),
            ({}, "changes nothing"),
        ]:
            error(pipeline.patch(other_url, json=body), 422, fragment)
        error(pipeline.post(f"{other_url}/logs", json={"terminationStatus": "SUCCESS"}), 422, "message is required")
        error(pipeline.post(f"{other_url}/logs", json={"message": "x", "terminationStatus": "OK"}), 422, "SUCCESS")
        # unknown runs: 404 to an admin (a report token is good for its own run only)
        error(api.patch("/v1/actions/runs/r_00000000", json={"status": "SUCCESS"}), 404, "does not exist")
        error(api.post("/v1/actions/runs/r_00000000/logs", json={"message": "x"}), 404, "does not exist")
        error(api.get("/v1/actions/runs/r_00000000/logs"), 404, "does not exist")
        error(api.get("/v1/actions/runs/not-a-run"), 404, "does not exist")
        r = pipeline.patch(other_url, json={"status": "FAILURE", "summary": "tests failed"})
        assert r.json()["run"]["status"] == "FAILURE" and r.json()["run"]["summary"] == "tests failed"


def test_secret_inputs_are_never_shown_or_stored_in_clear(live: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "tok-9f8e7d6c5b4a-secret"
    api = live.admin
    assert api.post("/v1/actions", json=with_inputs("with_secret", ALL_INPUTS)).status_code == 201
    answers: list[str] = []

    def keep(r: httpx.Response) -> httpx.Response:
        answers.append(r.text)
        return r

    started = keep(run(api, "with_secret", properties={**GOOD_VALUES, "token": secret})).json()["run"]
    assert started["properties"]["token"] == "****"
    url = f"/v1/actions/runs/{started['id']}"
    keep(api.get(url))
    keep(api.get("/v1/actions/runs"))
    # a pipeline that echoes the secret into its reports gets it masked
    r = keep(api.post(f"{url}/logs", json={"message": f"using token {secret}", "statusLabel": f"t={secret}"}))
    assert r.json()["runLog"]["message"] == "using token ****" and r.json()["runLog"]["statusLabel"] == "t=****"
    keep(api.patch(url, json={"summary": f"summary {secret}"}))
    keep(api.get(f"{url}/logs"))
    # the delivery's body (which the pipeline needs in clear) is withheld by the deliveries API
    (delivery,) = keep(api.get("/v1/deliveries", params={"runId": started["id"]})).json()["deliveries"]
    shown = keep(api.get(f"/v1/deliveries/{delivery['id']}")).json()["delivery"]
    assert shown["body"].startswith("[withheld")
    # a refused secret is not echoed either
    error(keep(run(api, "with_secret", properties={**GOOD_VALUES, "token": 5})), 422, "properties.token")
    error(keep(run(api, "with_secret", properties={**GOOD_VALUES, "token": secret, "x": secret})), 422, "'x'")
    keep(api.patch(url, json={"status": "SUCCESS"}))

    assert all(secret not in text for text in answers)
    (row,) = rows(live, action_runs)
    assert secret not in repr(tuple(row)) and row.secrets is None  # sealed while running, dropped once finished
    assert all(secret not in repr(tuple(entry)) for entry in rows(live, action_run_logs))
    assert secret not in caplog.text
    assert redact_text(f"x {secret} y") == "x *** y"  # registered with the log redaction


def test_secret_is_sealed_while_the_run_is_active(live: LiveServer) -> None:
    secret = "sealed-only-value-123"
    live.admin.post("/v1/actions", json=with_inputs("with_secret", {"token": {"type": "string", "format": "secret"}}))
    run(live.admin, "with_secret", properties={"token": secret})
    (row,) = rows(live, action_runs)
    assert row.properties == {"token": "****"} and row.secrets.startswith("v2:") and secret not in row.secrets


def test_list_runs_filters_and_pages(live: LiveServer) -> None:
    api = live.admin
    api.post("/v1/actions", json=CREATE_SERVICE)
    made = [day2(api, "svc-a"), day2(api, "svc-b"), day2(api, "svc-a")]
    made.append(run(api, "create_service", properties={"name": "n"}).json()["run"])
    api.patch(f"/v1/actions/runs/{made[0]['id']}", json={"status": "SUCCESS"})

    def ids(**params: Any) -> list[str]:
        r = api.get("/v1/actions/runs", params=params)
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["runs"]]

    newest_first = [m["id"] for m in reversed(made)]
    assert ids() == newest_first
    assert ids(action="deploy_service") == newest_first[1:]
    assert ids(entity="svc-a") == [made[2]["id"], made[0]["id"]]
    assert ids(status="SUCCESS") == [made[0]["id"]]
    assert ids(active="true") == newest_first[:3]
    assert ids(active="false") == [made[0]["id"]]
    assert ids(action="deploy_service", entity="svc-a", active="true") == [made[2]["id"]]
    assert ids(blueprint="service") == newest_first
    assert ids(action="nothing_here") == []

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3 if not seen else 1}
        if cursor:
            params["from"] = cursor
        page = api.get("/v1/actions/runs", params=params).json()
        seen += [x["id"] for x in page["runs"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == newest_first

    error(api.get("/v1/actions/runs", params={"from": "garbage"}), 400, "cursor")
    error(api.get("/v1/actions/runs", params={"status": "DONE"}), 422, "status must be one of")
    error(api.get("/v1/actions/runs", params={"entity": "a b"}), 422, "entity must be an entity identifier")
    error(api.get("/v1/actions/runs", params={"limit": 0}), 422, "limit")
    error(api.get("/v1/actions/runs", params={"active": "maybe"}), 422, "active")
    with live.member() as dev:
        assert len(dev.get("/v1/actions/runs").json()["runs"]) == 4


def test_bad_input_is_a_4xx_naming_the_problem(live: LiveServer) -> None:
    api = live.admin
    before = [rows(live, t) for t in (actions, action_runs, deliveries)]
    raw = {"content-type": "application/json"}
    error(api.post("/v1/actions", content=b"{not json", headers=raw), 400, "not valid JSON")
    error(api.post("/v1/actions", content=b"", headers=raw), 400, "empty")
    error(api.post("/v1/actions", content=b"a=b", headers={"content-type": "text/plain"}), 400, "JSON")
    error(api.post("/v1/actions", json=[CREATE_SERVICE]), 422, "must be a JSON object")
    error(api.post("/v1/actions", json={**CREATE_SERVICE, "title": "a\u0000b"}), 400, "NUL")
    error(api.post("/v1/actions/deploy_service/runs", json=["x"]), 422, "JSON object")
    error(api.post("/v1/actions/deploy_service/runs", json={"entity": 5}), 422, "entity must be the identifier")
    error(api.post("/v1/actions/deploy_service/runs", json={"entity": "svc-a", "foo": 1}), 422, "foo: unknown field")
    error(api.post("/v1/actions/deploy_service/runs", json={"entity": "svc-a", "properties": []}), 422, "JSON object")
    error(api.post("/v1/actions/deploy_service/runs", content=b"{", headers=raw), 400, "not valid JSON")
    for path in ("/v1/actions/%00", "/v1/actions/a%00b", "/v1/actions/runs/r_%00", "/v1/actions/" + "x" * 5000):
        r = api.get(path)
        assert r.status_code == 404, (path, r.text)
    error(api.post("/v1/actions/%00/runs", json={}), 404, "does not exist")
    error(api.patch("/v1/actions/runs/%00", json={"status": "SUCCESS"}), 404, "does not exist")
    r = api.get("/v1/actions/runs", params={"entity": "a\x00b"})
    assert r.status_code == 422, r.text
    r = api.get("/v1/actions/runs", params={"action": "a\x00b"})
    assert r.status_code == 422, r.text
    with live.client() as anonymous:
        error(anonymous.get("/v1/actions"), 401, "Bearer")
        error(anonymous.post("/v1/actions/deploy_service/runs", json={}), 401, "Bearer")
        error(anonymous.patch("/v1/actions/runs/r_00", json={"status": "SUCCESS"}), 401, "Bearer")
    assert [rows(live, t) for t in (actions, action_runs, deliveries)] == before
