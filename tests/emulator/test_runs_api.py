"""The Runs, Pipelines and Build APIs of the emulator, and its own management routes, over real HTTP."""

from __future__ import annotations

import base64
import time

import httpx
import pytest
from tests.emulator.conftest import CONFIG, EmulatorFactory, LiveEmulator
from tests.support.pipelines import SEED_BODY, SEED_CHECKSUM

PARAMETERIZED = """\
parameters:
  - name: greeting
    type: string
    default: hello
  - name: stages
    type: object
    default: [one, two]
name: run-$(Rev:r)-${{ parameters.greeting }}
stages:
- ${{ each s in parameters.stages }}:
  - stage: ${{ s }}
    jobs:
    - job: say
      steps:
      - script: echo "${{ parameters.greeting }} from ${{ s }} as $(Build.BuildNumber)"
"""

RUNS = "/fabrikam/web/_apis/pipelines/1/runs?api-version=7.1"


def test_projects_and_pipelines_have_azures_shapes(emulator: LiveEmulator) -> None:
    projects = emulator.client.get("/fabrikam/_apis/projects?api-version=7.1").json()
    assert projects["count"] == 1
    (project,) = projects["value"]
    assert project["name"] == "web" and project["state"] == "wellFormed"
    pipelines = emulator.client.get("/fabrikam/web/_apis/pipelines?api-version=7.1").json()
    (pipeline,) = pipelines["value"]
    assert {"id": 1, "name": "hello", "folder": "\\", "revision": 1}.items() <= pipeline.items()
    assert pipeline["configuration"]["path"] == "azure-pipelines.yml"
    by_id = emulator.client.get(f"/fabrikam/{project['id']}/_apis/pipelines/1?api-version=7.1")
    assert by_id.json()["name"] == "hello"


def test_preview_returns_the_final_yaml_and_queues_nothing(start_emulator: EmulatorFactory) -> None:
    emulator = start_emulator(pipeline=PARAMETERIZED)
    response = emulator.client.post(RUNS, json={"previewRun": True, "templateParameters": {"greeting": "hi"}})
    assert response.status_code == 200, response.text
    final = response.json()["finalYaml"]
    assert "stage: one" in final and "stage: two" in final
    assert 'echo "hi from two as $(Build.BuildNumber)"' in final
    assert emulator.client.get(RUNS).json()["count"] == 0


def test_preview_of_an_override_that_does_not_expand_is_azures_400(emulator: LiveEmulator) -> None:
    override = "steps:\n- script: echo ${{ parameters.missing.x }\n"
    response = emulator.client.post(RUNS, json={"previewRun": True, "yamlOverride": override})
    assert response.status_code == 400
    body = response.json()
    assert body["typeKey"] == "PipelineValidationException"
    assert body["message"].startswith("/azure-pipelines.yml (Line: 2, Col: ")


def test_a_manual_run_is_named_executed_and_logged(start_emulator: EmulatorFactory) -> None:
    emulator = start_emulator(pipeline=PARAMETERIZED)
    first = emulator.client.post(RUNS, json={"templateParameters": {"greeting": "hey"}}).json()
    second = emulator.client.post(RUNS, json={}).json()
    assert (first["name"], second["name"]) == ("run-1-hey", "run-1-hello")
    assert first["state"] == "inProgress" and first["pipeline"]["id"] == 1
    for run in (first, second):
        emulator.wait_for_run(run["id"])
    done = emulator.client.get(f"/fabrikam/web/_apis/pipelines/1/runs/{first['id']}?api-version=7.1").json()
    assert (done["state"], done["result"]) == ("completed", "succeeded")
    assert "finishedDate" in done and "stage: one" in done["finalYaml"]
    assert done["_links"]["web"]["href"].endswith(f"_build/results?buildId={first['id']}")
    listed = emulator.client.get(RUNS).json()
    assert [r["id"] for r in listed["value"]] == [second["id"], first["id"]]

    logs = emulator.client.get(
        f"/fabrikam/web/_apis/pipelines/1/runs/{first['id']}/logs?api-version=7.1&$expand=signedContent"
    ).json()["logs"]
    assert logs and all(log["lineCount"] > 0 for log in logs)
    texts = [emulator.client.get(log["signedContent"]["url"] + "?api-version=7.1").text for log in logs]
    assert any("hey from two as run-1-hey" in text for text in texts)
    timeline = emulator.client.get(f"/fabrikam/web/_apis/build/builds/{first['id']}/timeline?api-version=7.1").json()
    kinds = {(r["type"], r["identifier"]) for r in timeline["records"]}
    assert {("Stage", "one"), ("Stage", "two")} <= kinds
    assert all(r["result"] == "succeeded" for r in timeline["records"] if r["type"] == "Stage")


def test_runs_can_be_canceled(start_emulator: EmulatorFactory) -> None:
    emulator = start_emulator(pipeline="steps:\n- script: sleep 30\n")
    run = emulator.client.post(RUNS, json={}).json()
    time.sleep(0.5)  # let the step start: cancel must kill a running process, not just skip a queued run
    update = emulator.client.patch(
        f"/fabrikam/web/_apis/build/builds/{run['id']}?api-version=7.1", json={"status": "Cancelling"}
    )
    assert update.status_code == 200
    started = time.monotonic()
    build = emulator.wait_for_run(run["id"])
    assert (build["status"], build["result"]) == ("completed", "canceled")
    assert time.monotonic() - started < 15


def test_queued_only_runs_are_completed_by_hand(start_emulator: EmulatorFactory) -> None:
    emulator = start_emulator(execute=False)
    response = emulator.trigger("IncomingWH", SEED_BODY, {"X-WH-Checksum": SEED_CHECKSUM})
    run_id = int(response.headers["X-Kiosk-Queued-Runs"])
    time.sleep(0.3)
    build = emulator.client.get(f"/fabrikam/web/_apis/build/builds/{run_id}?api-version=7.1").json()
    assert build["status"] == "inProgress"
    done = emulator.client.post(f"/_emulator/runs/fabrikam/{run_id}/complete", json={"result": "failed"})
    assert done.json()["result"] == "failed"
    again = emulator.client.post(f"/_emulator/runs/fabrikam/{run_id}/complete", json={"result": "succeeded"})
    assert again.status_code == 409


def test_connections_and_pipelines_can_be_added_through_the_api(emulator: LiveEmulator) -> None:
    created = emulator.client.post(
        "/_emulator/orgs/contoso/projects/ops/connections",
        json={"name": "deploy", "webhookName": "deploy-hook", "secret": "s3cr3t-value", "header": "X-Port-Signature"},
    )
    assert created.status_code == 201
    assert "s3cr3t-value" not in created.text and created.json()["hasSecret"] is True
    pipeline = emulator.client.post(
        "/_emulator/orgs/contoso/projects/ops/pipelines",
        json={
            "name": "deploy",
            "yaml": "resources:\n  webhooks:\n  - webhook: port\n    connection: deploy\n"
            "steps:\n- template: steps/echo.yml\n  parameters: {text: '${{ parameters.port.service }}'}\n",
            "files": {
                "steps/echo.yml": "parameters:\n- name: text\nsteps:\n- script: echo deploying ${{ parameters.text }}\n"
            },
        },
    )
    assert pipeline.status_code == 201, pipeline.text
    from kiosk.core.signing import sign_azure_checksum

    body = b'{"service":"billing"}'
    response = emulator.trigger(
        "deploy-hook", body, {"X-Port-Signature": sign_azure_checksum("s3cr3t-value", body)}, org="contoso"
    )
    run_id = int(response.headers["X-Kiosk-Queued-Runs"])
    assert emulator.wait_for_run(run_id, org="contoso", project="ops")["result"] == "succeeded"
    assert "deploying billing" in emulator.run_log(run_id, org="contoso")


def test_api_errors_are_azure_shaped(emulator: LiveEmulator) -> None:
    for path in (
        "/fabrikam/nope/_apis/pipelines?api-version=7.1",
        "/fabrikam/web/_apis/pipelines/99?api-version=7.1",
        "/fabrikam/web/_apis/build/builds/99?api-version=7.1",
        "/fabrikam/web/_apis/pipelines/abc?api-version=7.1",
        "/fabrikam/web/_apis/pipelines?api-version=99.0",  # (without one a read is served, at 7.1)
    ):
        response = emulator.client.get(path)
        assert 400 <= response.status_code < 500, (path, response.status_code)
        assert set(response.json()) >= {"message", "typeKey"}, path
    bad = emulator.client.post(RUNS, content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()["typeKey"] == "InvalidPayloadException"
    wrong = emulator.client.post(RUNS, json={"templateParameters": "no"})
    assert wrong.status_code == 400 and "templateParameters" in wrong.json()["message"]


def test_a_configured_pat_guards_the_rest_api_but_not_the_webhook(
    start_emulator: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_EMULATOR_PAT", "pat-value")
    emulator = start_emulator(config=CONFIG)  # fabrikam's PAT is $TEST_EMULATOR_PAT
    assert httpx.get(f"{emulator.base_url}/fabrikam/_apis/projects?api-version=7.1").status_code == 401
    basic = base64.b64encode(b":pat-value").decode()
    ok = emulator.client.get("/fabrikam/_apis/projects?api-version=7.1", headers={"Authorization": f"Basic {basic}"})
    assert ok.status_code == 200
    bearer = {"Authorization": "Bearer pat-value"}
    assert emulator.client.get("/_emulator/triggers", headers=bearer).status_code == 200
    anonymous = httpx.post(
        f"{emulator.base_url}/fabrikam/_apis/public/distributedtask/webhooks/IncomingWH?api-version=6.0-preview",
        content=SEED_BODY,
        headers={"Content-Type": "application/json", "X-WH-Checksum": SEED_CHECKSUM},
    )
    assert anonymous.status_code == 200 and anonymous.headers["X-Kiosk-Queued-Runs"]
    response = emulator.trigger("IncomingWH", SEED_BODY, {"X-WH-Checksum": SEED_CHECKSUM})
    assert response.status_code == 200


def test_a_followed_log_streams_lines_while_the_run_is_going(start_emulator: EmulatorFactory) -> None:
    emulator = start_emulator(
        pipeline="steps:\n- checkout: none\n- script: |\n    echo first\n    sleep 1.5\n    echo second\n"
    )
    run = emulator.client.post(RUNS, json={}).json()
    seen: list[tuple[str, str]] = []
    with emulator.client.stream(
        "GET", f"/_emulator/runs/fabrikam/{run['id']}/log", params={"follow": "true"}
    ) as response:
        for line in response.iter_lines():
            state = emulator.client.get(f"/fabrikam/web/_apis/build/builds/{run['id']}?api-version=7.1").json()[
                "status"
            ]
            seen.append((line.split(" ", 1)[-1], state))
    first = next(state for text, state in seen if text == "first")
    assert first == "inProgress"  # it arrived before the run ended
    assert any(text == "second" for text, _ in seen)
    assert seen[-1][0] == "##[section]Finishing: Job"


def test_a_refused_registration_leaves_the_existing_pipeline_alone(emulator: LiveEmulator) -> None:
    route = "/_emulator/orgs/contoso/projects/ops/pipelines"
    assert emulator.client.post(route, json={"name": "p", "yaml": "steps:\n- script: echo one\n"}).status_code == 201
    again = emulator.client.post(route, json={"name": "p", "yaml": "steps:\n- script: echo two\n"})
    assert again.status_code == 409
    escape = emulator.client.post(route, json={"name": "q", "yaml": "steps: []\n", "files": {"../x.yml": "a: 1"}})
    assert escape.status_code == 400 and "escapes" in escape.json()["message"]
    run = emulator.client.post("/contoso/ops/_apis/pipelines/1/runs?api-version=7.1", json={}).json()
    emulator.wait_for_run(run["id"], org="contoso", project="ops")
    log = emulator.run_log(run["id"], org="contoso")
    assert "echo one" in log and "echo two" not in log
