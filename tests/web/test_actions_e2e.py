"""Action runs end to end over real HTTP: kiosk → signed delivery → the emulator verifies the
checksum with the same secret → the pipeline runs → kiosk learns the result, either from the
pipeline's own PATCH or from Azure's run-state service hook. Both engines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.azure_stack import PIPELINE_HEAD, kiosk_and_emulator
from tests.support.kiosk_yaml import kiosk_yaml, self_service_action

DEMO = Path(__file__).resolve().parents[2] / "src" / "kiosk" / "demo" / "pipelines"

QUIET = (
    PIPELINE_HEAD
    + """\
- script: |
    echo "deploying ${{ parameters.port.context.entity }}"
    exit ${{ parameters.port.payload.properties.exitCode }}
"""
)


def kiosk_config(kiosk_url: str, emulator_url: str) -> str:
    """kiosk linked to the emulator's ``fabrikam`` organisation, ``deploy`` triggering its ``kiosk`` webhook."""
    return kiosk_yaml(
        azureDevOps={
            "publicUrl": kiosk_url,
            "orgs": {
                "fabrikam": {
                    "baseUrl": emulator_url,
                    "signingSecret": {"env": "E2E_SIGNING_SECRET"},
                    "pat": {"env": "E2E_PAT"},
                    "serviceHooks": {"username": "kiosk", "password": {"env": "E2E_HOOK_PASSWORD"}},
                }
            },
        },
        egress={"allowLoopback": True},
        delivery={"retrySchedule": [0.05, 0.1, 0.2], "timeoutSeconds": 5},
        blueprints=[{"identifier": "service"}],
        entities=[{"blueprint": "service", "identifier": "billing"}],
        actions=[
            self_service_action(
                "deploy",
                title="Deploy service",
                inputs={
                    "environment": {"type": "string", "enum": ["dev", "prod"]},
                    "version": {"type": "string", "default": "1.0"},
                    "exitCode": {"type": "number", "default": 0},
                },
                required=["environment"],
                invocation={"type": "AZURE-DEVOPS", "org": "fabrikam", "webhook": "kiosk"},
            )
        ],
    )


@dataclass
class Stack:
    kiosk: httpx.Client
    emulator: httpx.Client

    def run(self, **properties: Any) -> str:
        r = self.kiosk.post("/v1/actions/deploy/runs", json={"entity": "billing", "properties": properties})
        assert r.status_code == 201, r.text
        return str(r.json()["run"]["id"])

    def wait(self, run_id: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.kiosk.get(f"/v1/actions/runs/{run_id}").json()["run"]
            if run["status"] in ("SUCCESS", "FAILURE") or time.monotonic() > deadline:
                return dict(run)
            time.sleep(0.1)


def start(tmp_path: Path, database_url: str, pipeline: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    with kiosk_and_emulator(
        tmp_path,
        database_url,
        monkeypatch,
        kiosk_yaml=kiosk_config,
        pipeline_name="deploy",
        pipeline=pipeline,
        env={"E2E_HOOK_PASSWORD": "hook-password"},
    ) as (kiosk, emulator):
        yield Stack(kiosk, emulator)


@pytest.fixture
def reporting(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The demo's deploy pipeline, which reports back with curl."""
    yield from start(tmp_path, database_url, (DEMO / "deploy.yml").read_text(), monkeypatch)


@pytest.fixture
def quiet(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """A pipeline with no reporting step: only the run-state service hook can finish the run."""
    yield from start(tmp_path, database_url, QUIET, monkeypatch)


def test_the_pipeline_reports_success_through_the_portal_api(reporting: Stack) -> None:
    run_id = reporting.run(environment="prod", version="2.3")
    run = reporting.wait(run_id)
    assert run["status"] == "SUCCESS", run
    assert run["statusLabel"] == "deployed"
    assert run["link"] and "/_build/results?buildId=" in run["link"][0]
    logs = reporting.kiosk.get(f"/v1/actions/runs/{run_id}/logs").json()["runLogs"]
    assert any(entry["message"].startswith("deployed by pipeline run kiosk-") for entry in logs)
    # The emulator ran it under the kiosk run's name, with the inputs.
    runs = reporting.emulator.get("/fabrikam/web/_apis/pipelines/1/runs?api-version=7.1").json()["value"]
    (pipeline_run,) = [r for r in runs if r["name"] == f"kiosk-{run_id}"]
    log = reporting.emulator.get(f"/_emulator/runs/fabrikam/{pipeline_run['id']}/log?follow=true").text
    assert "Deploying billing 2.3 to prod" in log
    assert "reported SUCCESS to kiosk" in log
    # Delivered once, signed (the emulator accepted the checksum), attempts recorded.
    (delivery,) = reporting.kiosk.get("/v1/deliveries", params={"runId": run_id}).json()["deliveries"]
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    # The pipeline reported with the run's report token; kiosk shows (and stores) only its placeholder.
    shown = reporting.kiosk.get(f"/v1/deliveries/{delivery['id']}").json()["delivery"]
    assert '"reportToken":"krt_****"' in shown["body"]
    trigger = reporting.emulator.get("/_emulator/triggers").json()["value"][0]
    assert trigger["status"] == 200 and trigger["queuedRuns"] == [pipeline_run["id"]]


def test_the_run_state_service_hook_finishes_a_silent_pipeline(quiet: Stack) -> None:
    deadline = time.monotonic() + 20
    while not quiet.emulator.get("/fabrikam/_apis/hooks/subscriptions?api-version=7.1").json()["count"]:
        assert time.monotonic() < deadline, "kiosk never created its run-state subscription"
        time.sleep(0.1)
    ok = quiet.run(environment="dev")
    failed = quiet.run(environment="dev", exitCode=3)
    done_ok, done_failed = quiet.wait(ok), quiet.wait(failed)
    assert done_ok["status"] == "SUCCESS" and "succeeded" in done_ok["statusLabel"]
    assert done_failed["status"] == "FAILURE" and "failed" in done_failed["statusLabel"]
    assert "/_build/results?buildId=" in done_ok["link"][0]
    # One subscription only, however often kiosk checked.
    subscriptions = quiet.emulator.get("/fabrikam/_apis/hooks/subscriptions?api-version=7.1").json()
    assert subscriptions["count"] == 1
