"""``POST /hooks/azure-devops/{org}``: basic auth on every call, run-state events finish runs."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.support.live_kiosk import LiveServer, start_configured_server

CONFIG = """\
azureDevOps:
  orgs:
    acme:
      serviceHooks: {username: kiosk, password: {env: HOOK_TEST_PASSWORD}}
    other: {}
egress: {allowLoopback: true}  # the action's target refuses connections: its run stays in progress
blueprints:
  - identifier: service
actions:
  - identifier: hello
    trigger: {type: self-service, operation: CREATE, blueprintIdentifier: service}
    invocationMethod: {type: WEBHOOK, url: "http://127.0.0.1:9/none"}
"""


@pytest.fixture
def live(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("HOOK_TEST_PASSWORD", "s3cret-hook")
    yield from start_configured_server(tmp_path, database_url, CONFIG)


HOOK_PASSWORD = "s3cret-hook"


def auth(user: str = "kiosk", password: str = HOOK_PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def event(name: str, state: str = "completed", result: str | None = "succeeded") -> dict[str, Any]:
    run = {"id": 12, "name": name, "state": state, "result": result, "pipeline": {"name": "deploy"}}
    run["_links"] = {"web": {"href": "http://az/web/_build/results?buildId=12"}}
    return {"eventType": "ms.vss-pipelines.run-state-changed-event", "resource": {"run": run}}


def post(live: LiveServer, body: Any, headers: dict[str, str], org: str = "acme") -> httpx.Response:
    with live.client() as c:
        return c.post(f"/hooks/azure-devops/{org}", json=body, headers=headers)


@pytest.mark.parametrize(
    "headers",
    [{}, auth(password="wrong"), auth(user="other"), {"Authorization": "Basic !!!"}, {"Authorization": "Bearer x"}],
)
def test_every_call_needs_the_basic_auth(live: LiveServer, headers: dict[str, str]) -> None:
    response = post(live, event("kiosk-r_1"), headers)
    assert response.status_code == 401 and response.json()["ok"] is False
    assert response.headers["www-authenticate"].startswith("Basic ")  # what Azure's hook sends, not Bearer


def test_an_org_without_hook_auth_takes_no_events(live: LiveServer) -> None:
    assert post(live, event("kiosk-r_1"), auth(), org="other").status_code == 404
    assert post(live, event("kiosk-r_1"), auth(), org="nope").status_code == 404


def test_a_completed_run_finishes_the_matching_kiosk_run_once(live: LiveServer) -> None:
    started = live.admin.post("/v1/actions/hello/runs", json={"properties": {}}).json()["run"]
    name = f"kiosk-{started['id']}"
    assert post(live, event(name, state="inProgress", result=None), auth()).json()["matched"] is False
    first = post(live, event(name), auth())
    assert first.status_code == 200 and first.json()["matched"] is True
    run = live.admin.get(f"/v1/actions/runs/{started['id']}").json()["run"]
    assert run["status"] == "SUCCESS" and run["link"] == ["http://az/web/_build/results?buildId=12"]
    assert run["statusLabel"] == "pipeline deploy run " + name + " succeeded"
    again = post(live, event(name, result="failed"), auth())  # a late duplicate changes nothing
    assert again.json()["matched"] is False
    assert live.admin.get(f"/v1/actions/runs/{started['id']}").json()["run"]["status"] == "SUCCESS"


def test_other_events_are_acknowledged_and_bad_ones_refused(live: LiveServer) -> None:
    assert post(live, {"eventType": "git.push", "resource": {}}, auth()).status_code == 202
    assert post(live, event(""), auth()).status_code == 400
    with live.client() as c:
        bad = c.post("/hooks/azure-devops/acme", content=b"{not json", headers=auth())
    assert bad.status_code == 400


def test_a_deep_event_is_a_400_naming_the_limit(live: LiveServer) -> None:
    body = event("kiosk-r_x")
    body["resource"]["extra"] = "DEEP"
    content = orjson.dumps(body).replace(b'"DEEP"', b"[" * 300 + b"]" * 300)
    with live.client() as c:
        r = c.post("/hooks/azure-devops/acme", content=content, headers={**auth(), "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "json_too_deep" and "64 levels" in r.json()["message"]
