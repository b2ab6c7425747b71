"""Who may report on a run, over real HTTP on both engines: the run's own pipeline with the report
token from its payload, and admins; members are refused (issue 10, item 4). The token is sent to
the pipeline (signed with the rest of the body) but never stored, shown, recorded or logged."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from tests.support.live_kiosk import LiveServer, start_configured_server
from tests.support.live_kiosk import api_error as error
from tests.support.receiver import Received, Receiver, Reply
from tests.support.servers import serving

from kiosk.core.signing import verify_port_webhook, verify_standard_webhook
from kiosk.store.tables import action_run_logs, action_runs, deliveries, delivery_attempts, jobs

SIGNING = "report-signing-secret-7d1"
SECRET_INPUT = "db-password-55e0c2-secret"

CONFIG = """\
egress: {{allowLoopback: true}}
delivery: {{retrySchedule: [0.05, 0.05], timeoutSeconds: 5, signingSecret: {{env: KIOSK_TEST_REPORT_SECRET}}}}
blueprints:
  - identifier: service
entities:
  - {{blueprint: service, identifier: billing}}
actions:
  - identifier: deploy
    trigger: {{type: self-service, operation: DAY-2, blueprintIdentifier: service}}
    invocationMethod: {{type: WEBHOOK, url: "{url}/deploy"}}
  - identifier: templated
    trigger:
      type: self-service
      operation: DAY-2
      blueprintIdentifier: service
      userInputs: {{properties: {{password: {{type: string, format: secret}}}}}}
    invocationMethod:
      type: WEBHOOK
      url: "{url}/templated"
      headers: {{X-Report-Token: "{{{{ .run.reportToken }}}}"}}
      body:
        run: "{{{{ .run.id }}}}"
        token: "{{{{ .run.reportToken }}}}"
        auth: "Bearer {{{{ .run.reportToken }}}}"
        password: "{{{{ .inputs.password }}}}"
"""


@pytest.fixture
def stack(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LiveServer, Receiver]]:
    # The receiver echoes its request: what kiosk records of the answer must still not hold the token.
    receiver = Receiver(lambda _n, request: Reply(200, body=b"got " + request.body))
    monkeypatch.setenv("KIOSK_TEST_REPORT_SECRET", SIGNING)
    with serving(receiver) as base:
        for live in start_configured_server(tmp_path, database_url, CONFIG.format(url=base)):
            yield live, receiver


def start(api: httpx.Client, action: str = "deploy", **properties: Any) -> str:
    r = api.post(f"/v1/actions/{action}/runs", json={"entity": "billing", "properties": properties})
    assert r.status_code == 201, r.text
    return str(r.json()["run"]["id"])


def received(receiver: Receiver, run_id: str, count: int = 1) -> list[Received]:
    """The requests delivered for run ``run_id`` (waiting for ``count`` of them)."""
    return receiver.wait(count, lambda r: run_id.encode() in r.body)


def delivered(live: LiveServer, run_id: str, attempts: int = 1, timeout: float = 20) -> dict[str, Any]:
    """The run's delivery as the API shows it, once delivered ``attempts`` times."""
    deadline = time.monotonic() + timeout
    while True:
        (summary,) = live.admin.get("/v1/deliveries", params={"runId": run_id}).json()["deliveries"]
        shown = dict(live.admin.get(f"/v1/deliveries/{summary['id']}").json()["delivery"])
        if shown["status"] == "delivered" and len(shown["attemptLog"]) >= attempts:
            return shown
        assert time.monotonic() < deadline, shown
        time.sleep(0.05)


def token_of(request: Received) -> str:
    token = str(orjson.loads(request.body)["context"]["reportToken"])
    assert token.startswith("krt_") and token != "krt_****"
    return token


def run_of(live: LiveServer, run_id: str) -> dict[str, Any]:
    return dict(live.admin.get(f"/v1/actions/runs/{run_id}").json()["run"])


def logs_of(live: LiveServer, run_id: str) -> list[dict[str, Any]]:
    return list(live.admin.get(f"/v1/actions/runs/{run_id}/logs").json()["runLogs"])


# --------------------------------------------------------------------------------- members


def test_a_member_cannot_finish_an_admins_run(stack: tuple[LiveServer, Receiver]) -> None:
    """The reproduction: a member's PATCH with SUCCESS and a foreign link was answered 200."""
    live, receiver = stack
    run_id = start(live.admin)
    received(receiver, run_id)
    before = run_of(live, run_id)
    url = f"/v1/actions/runs/{run_id}"
    with live.member() as dev:
        refused = error(
            dev.patch(url, json={"status": "SUCCESS", "link": ["https://evil.example"]}), 403, "members cannot report"
        )
        assert refused["error"] == "report_forbidden" and "report token" in refused["message"]
        error(dev.post(f"{url}/logs", json={"message": "done", "terminationStatus": "SUCCESS"}), 403, "members cannot")
        # Not even on a run the member started itself: a person does not report a pipeline's status.
        own = start(dev)
        error(dev.patch(f"/v1/actions/runs/{own}", json={"status": "FAILURE"}), 403, "members cannot report")
        error(dev.post(f"/v1/actions/runs/{own}/logs", json={"message": "x"}), 403, "members cannot report")
        # Members still read runs and their logs.
        assert dev.get(url).status_code == 200 and dev.get(f"{url}/logs").status_code == 200
    after = run_of(live, run_id)
    assert after == before and after["status"] == "IN_PROGRESS" and after["link"] == []
    assert logs_of(live, run_id) == [] and run_of(live, own)["status"] == "IN_PROGRESS"


def test_admins_report_with_their_api_tokens(stack: tuple[LiveServer, Receiver]) -> None:
    live, _ = stack
    run_id = start(live.admin)
    url = f"/v1/actions/runs/{run_id}"
    assert live.admin.post(f"{url}/logs", json={"message": "checked by hand"}).status_code == 201
    r = live.admin.patch(url, json={"status": "FAILURE", "statusLabel": "stopped by an admin"})
    assert r.status_code == 200, r.text
    assert r.json()["run"]["status"] == "FAILURE"


# --------------------------------------------------------------------------------- the pipeline


def test_the_pipeline_reports_with_the_token_from_its_signed_payload(stack: tuple[LiveServer, Receiver]) -> None:
    live, receiver = stack
    run_id = start(live.admin)
    (request,) = received(receiver, run_id)
    token = token_of(request)
    payload = orjson.loads(request.body)
    assert payload["context"]["runId"] == run_id
    # The token is part of the signed bytes: both signatures verify over the body as received.
    h = request.headers
    assert verify_standard_webhook(
        SIGNING,
        request.body,
        msg_id=h["webhook-id"],
        timestamp=h["webhook-timestamp"],
        signature=h["webhook-signature"],
    )
    assert verify_port_webhook(SIGNING, request.body, timestamp=h["x-port-timestamp"], signature=h["x-port-signature"])

    url = f"/v1/actions/runs/{run_id}"
    with live.client(token) as pipeline:
        r = pipeline.patch(url, json={"statusLabel": "deploying", "link": "https://ci.example.com/7"})
        assert r.status_code == 200, r.text
        assert r.json()["run"]["statusLabel"] == "deploying"
        r = pipeline.post(f"{url}/logs", json={"message": "step 1 done"})
        assert r.status_code == 201, r.text
        r = pipeline.patch(url, json={"status": "SUCCESS", "statusLabel": "deployed"})
        assert r.status_code == 200 and r.json()["run"]["status"] == "SUCCESS", r.text
        # A finished run takes no more reports, from its pipeline or anyone (as before).
        assert error(pipeline.patch(url, json={"status": "FAILURE"}), 409, "already finished")["error"] == (
            "run_exhausted"
        )
        error(pipeline.post(f"{url}/logs", json={"message": "late"}), 409, "already finished")
        # It is no API token: every other route refuses it, reads included.
        for response in (
            pipeline.get(url),
            pipeline.get(f"{url}/logs"),
            pipeline.get("/v1/blueprints"),
            pipeline.get("/v1/deliveries"),
            pipeline.post("/v1/actions/deploy/runs", json={"entity": "billing"}),
            pipeline.post(f"{url}/approve"),
        ):
            assert error(response, 401, "report token")["error"] == "report_token_not_accepted"
    done = run_of(live, run_id)
    assert (done["status"], done["statusLabel"], done["link"]) == ("SUCCESS", "deployed", ["https://ci.example.com/7"])
    assert [entry["message"] for entry in logs_of(live, run_id)] == ["step 1 done"]


def test_a_report_token_is_good_for_its_own_run_only(stack: tuple[LiveServer, Receiver]) -> None:
    live, receiver = stack
    first, second = start(live.admin), start(live.admin)
    token_first = token_of(received(receiver, first)[0])
    token_second = token_of(received(receiver, second)[0])
    assert token_first != token_second
    before = run_of(live, second)
    url = f"/v1/actions/runs/{second}"
    with live.client(token_first) as other_pipeline:
        refused = error(other_pipeline.patch(url, json={"status": "SUCCESS"}), 403, f"for run {first!r}")
        assert refused["error"] == "report_token_for_another_run"
        error(other_pipeline.post(f"{url}/logs", json={"message": "x", "terminationStatus": "FAILURE"}), 403, "own run")
        error(other_pipeline.patch("/v1/actions/runs/r_00000000", json={"status": "SUCCESS"}), 403, "own run")
    # Made-up and altered tokens are not tokens at all.
    prefix, _, mac = token_second.rpartition(".")
    forged = [
        f"{prefix}.{mac[:-2]}{'AA' if not mac.endswith('AA') else 'BB'}",
        f"krt_{second}.",
        f"krt_{second}",
        "krt_****",
        "krt_" + "x" * 300,
    ]
    for token in forged:
        with live.client(token) as forger:
            body = error(forger.patch(url, json={"status": "SUCCESS", "link": ["https://evil.example"]}), 401, "")
            assert body["error"] == "invalid_report_token", token
            error(forger.post(f"{url}/logs", json={"message": "x"}), 401, "report token")
    assert run_of(live, second) == before and logs_of(live, second) == []
    with live.client(token_second) as own_pipeline:
        assert own_pipeline.patch(url, json={"status": "SUCCESS"}).status_code == 200


def test_body_templates_and_headers_place_the_token(stack: tuple[LiveServer, Receiver]) -> None:
    """``.run.reportToken`` in a custom body and header, in a body that is sealed (secret input)."""
    live, receiver = stack
    run_id = start(live.admin, "templated", password=SECRET_INPUT)
    (request,) = received(receiver, run_id)
    body = orjson.loads(request.body)
    token = request.headers["x-report-token"]
    assert token.startswith("krt_") and token != "krt_****"
    assert body == {"run": run_id, "token": token, "auth": f"Bearer {token}", "password": SECRET_INPUT}
    assert verify_standard_webhook(
        SIGNING,
        request.body,
        msg_id=request.headers["webhook-id"],
        timestamp=request.headers["webhook-timestamp"],
        signature=request.headers["webhook-signature"],
    )
    with live.client(token) as pipeline:
        assert pipeline.post(f"/v1/actions/runs/{run_id}/logs", json={"message": "ok"}).status_code == 201
    # Stored: the header with the placeholder, the body sealed (and holding the placeholder inside).
    with live.app.state.db.connect() as conn:
        row = conn.execute(sa.select(deliveries).where(deliveries.c.run_id == run_id)).one()
    assert row.target["headers"]["X-Report-Token"] == "krt_****" and row.target["sealed"] is True
    opened = live.app.state.runs.box.open_body(row.id, bytes(row.body))
    assert orjson.loads(opened.body)["token"] == "krt_****"


def test_the_token_is_never_stored_shown_recorded_or_logged(
    stack: tuple[LiveServer, Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    live, receiver = stack
    answers: list[str] = []

    def keep(r: httpx.Response) -> httpx.Response:
        answers.append(r.text)
        return r

    run_id = start(live.admin)
    (request,) = received(receiver, run_id)
    token = token_of(request)
    shown = delivered(live, run_id)
    answers.append(orjson.dumps(shown).decode())
    # The deliveries API shows the body as stored: the token masked, everything else as sent.
    stored = orjson.loads(shown["body"])
    assert stored["context"]["reportToken"] == "krt_****"
    assert {**stored, "context": {**stored["context"], "reportToken": token}} == orjson.loads(request.body)
    # The receiver echoed the request; the recorded answer has the token masked.
    (attempt,) = shown["attemptLog"]
    assert attempt["responseBody"].startswith("got ") and '"reportToken":"****"' in attempt["responseBody"]

    url = f"/v1/actions/runs/{run_id}"
    with live.client(token) as pipeline:
        # A pipeline that echoes its token into its reports: taken as given (its own business).
        keep(pipeline.post(f"{url}/logs", json={"message": "step one"}))
        keep(pipeline.patch(url, json={"statusLabel": "half way"}))
    keep(live.admin.get(url))
    keep(live.admin.get("/v1/actions/runs"))
    keep(live.admin.get(f"{url}/logs"))
    keep(live.admin.get("/v1/deliveries", params={"runId": run_id}))
    # Redelivered: the same run, the same token, signed afresh over the filled-in body.
    keep(live.admin.post(f"/v1/deliveries/{shown['id']}/redeliver"))
    first, again = received(receiver, run_id, 2)
    assert token_of(again) == token and again.body == first.body
    assert verify_port_webhook(
        SIGNING, again.body, timestamp=again.headers["x-port-timestamp"], signature=again.headers["x-port-signature"]
    )
    answers.append(orjson.dumps(delivered(live, run_id, 2)).decode())
    with live.client(token) as pipeline:
        keep(pipeline.patch(url, json={"status": "SUCCESS"}))

    assert all(token not in text for text in answers)
    mac = token.rpartition(".")[2]
    with live.app.state.db.connect() as conn:
        for table in (action_runs, action_run_logs, deliveries, delivery_attempts, jobs):
            for row in conn.execute(sa.select(table)).all():
                assert mac not in repr(tuple(row)) and mac.encode() not in repr(tuple(row)).encode(), table.name
        raw = bytes(conn.execute(sa.select(deliveries.c.body).where(deliveries.c.run_id == run_id)).scalar_one())
    assert b'"reportToken":"krt_****"' in raw and token.encode() not in raw
    assert mac not in caplog.text
