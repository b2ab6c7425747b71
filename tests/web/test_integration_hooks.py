"""``POST /hooks/integrations/{identifier}`` over real HTTP, on both engines: basic auth always,
the event durable before the 200, a redelivery recognised, bad input a 4xx JSON naming the
problem; what was received in ``/metrics``, ``GET /v1/integration/{id}/events`` and
``kiosk integrations events``."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from tests.support.live_kiosk import LiveServer, api_error, configured_settings, start_server
from tests.web.test_openapi_fuzz import run_schemathesis
from typer.testing import CliRunner

from kiosk.cli.app import app as cli
from kiosk.ingest.events import event_job_kind
from kiosk.settings import Settings
from kiosk.store.tables import jobs

USER = "kiosk-hooks"
SECRET = "s3cret-events"
MAX_BODY = 64 * 1024

CONFIG = """\
integrations:
  - identifier: ado
    type: azure-devops
    config:
      organizationUrl: http://127.0.0.1:9/contoso
      personalAccessToken: {env: HOOKS_TEST_PAT}
      webhookSecret: {env: HOOKS_TEST_SECRET}
      webhookAuthUsername: kiosk-hooks
    eventListener: {type: WEBHOOKS_ONLY}
  - identifier: nosecret
    type: azure-devops
    config:
      organizationUrl: http://127.0.0.1:9/contoso
      personalAccessToken: {env: HOOKS_TEST_PAT}
    eventListener: {type: WEBHOOKS_ONLY}
"""


@pytest.fixture
def live(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("HOOKS_TEST_PAT", "unused-pat")
    monkeypatch.setenv("HOOKS_TEST_SECRET", SECRET)
    settings = configured_settings(tmp_path, database_url, CONFIG)
    # A small body limit, so an oversize event is cheap to send.
    settings = Settings.from_env(
        {
            "KIOSK_HOME": str(settings.home),
            "KIOSK_DATABASE_URL": database_url,
            "KIOSK_CONFIG": str(tmp_path / "kiosk.yaml"),
            "KIOSK_MAX_BODY_BYTES": str(MAX_BODY),
        }
    )
    for server in start_server(settings):
        # The intake alone: stored events stay as stored (processing is tests/ingest/live's).
        for processor in server.app.state.integrations.event_processors.values():
            processor.stop()
        yield server


def auth(user: str = USER, password: str = SECRET) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def work_item_event(event_id: str = "0f6c6d1e-1111-4000-8000-000000000001", item: int = 42) -> dict[str, Any]:
    """A workitem.created envelope as Azure sends it to a project-scoped subscription."""
    return {
        "subscriptionId": "2b1f0c9e-2222-4000-8000-000000000002",
        "notificationId": 1,
        "id": event_id,
        "eventType": "workitem.created",
        "publisherId": "tfs",
        "message": {"text": "Task #42 created"},
        "resource": {"id": item, "rev": 1, "fields": {"System.Title": "Checkout"}},
        "resourceVersion": "1.0",
        "resourceContainers": {"collection": {"id": "coll-1"}, "project": {"id": "proj-1"}},
        "createdDate": "2026-12-06T12:00:00.0000000Z",
    }


def post(live: LiveServer, body: Any, headers: dict[str, str], identifier: str = "ado") -> httpx.Response:
    with live.client() as c:
        if isinstance(body, bytes):
            return c.post(f"/hooks/integrations/{identifier}", content=body, headers=headers)
        return c.post(f"/hooks/integrations/{identifier}", json=body, headers=headers)


def event_jobs(live: LiveServer, identifier: str = "ado") -> list[dict[str, Any]]:
    """The integration's event jobs in the database, as a fresh connection reads them."""
    with live.app.state.db.connect() as conn:
        rows = conn.execute(
            sa.select(jobs.c.id, jobs.c.status, jobs.c.dedupe_key, jobs.c.payload)
            .where(jobs.c.kind == event_job_kind(identifier))
            .order_by(jobs.c.id)
        )
        return [dict(row._mapping) for row in rows]


def metric(live: LiveServer, line_start: str) -> float:
    text = httpx.get(f"{live.base_url}/metrics").text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)]
    assert len(values) == 1, (line_start, [line for line in text.splitlines() if "integration_events" in line])
    return values[0]


# ------------------------------------------------------------------------------- authentication


@pytest.mark.parametrize(
    "headers",
    [
        {},
        auth(password="wrong"),
        auth(user="port"),
        auth(user="", password=SECRET),
        auth(password=""),
        auth(password=SECRET + "x"),
        {"Authorization": "Basic !!!"},
        {"Authorization": "Basic " + base64.b64encode(SECRET.encode()).decode()},  # no colon
        {"Authorization": f"Bearer {SECRET}"},
        {"Authorization": ""},
    ],
)
def test_every_call_needs_the_integrations_basic_auth(live: LiveServer, headers: dict[str, str]) -> None:
    r = post(live, work_item_event(), headers)
    api_error(r, 401, "need its basic auth (webhookAuthUsername and webhookSecret)")
    assert r.json()["error"] == "unauthorized"
    assert r.headers["www-authenticate"].startswith("Basic realm=")
    assert event_jobs(live) == []


def test_credentials_are_checked_before_the_body_is_read(live: LiveServer) -> None:
    r = post(live, b"{not json", {"Content-Type": "application/json"})
    api_error(r, 401, "basic auth")


def test_an_integration_without_a_webhook_secret_refuses_every_call(live: LiveServer) -> None:
    for headers in ({}, auth(), auth(user="port", password="")):
        r = post(live, work_item_event(), headers, identifier="nosecret")
        api_error(r, 403, "has no webhookSecret configured, so it accepts no events")
        assert r.json()["error"] == "webhook_secret_not_set"
    assert event_jobs(live, "nosecret") == []


def test_an_unknown_integration_is_a_404(live: LiveServer) -> None:
    r = post(live, work_item_event(), auth(), identifier="nope")
    assert api_error(r, 404, "integration 'nope' is not configured")["error"] == "integration_not_found"


# ------------------------------------------------------------------------------------ storing


def test_an_event_is_stored_before_the_200_and_a_redelivery_adds_no_job(live: LiveServer) -> None:
    body = work_item_event()
    first = post(live, body, auth())
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["ok"] is True and answer["duplicate"] is False
    assert answer["event"]["eventType"] == "workitem.created" and answer["event"]["known"] is True
    assert answer["event"]["objectKey"] == "work-item:42@coll-1"
    # Committed when the answer came: a fresh connection reads it.
    (job,) = event_jobs(live)
    assert job["id"] == answer["event"]["id"] and job["status"] == "pending"
    assert job["dedupe_key"] == f"ado:{body['id']}"
    payload = job["payload"]
    assert payload["event"] == body and payload["integration"] == "ado"
    assert payload["objectKey"] == "work-item:42@coll-1" and payload["receivedAt"].endswith("Z")
    # A redelivery: the same id (and notification), however often.
    for _ in range(2):
        again = post(live, body, auth())
        assert again.status_code == 200 and again.json() == {"ok": True, "duplicate": True}
    # The same event reaching kiosk through another subscription: the same id, the same event.
    other = {**body, "subscriptionId": "another", "notificationId": 9}
    assert post(live, other, auth()).json()["duplicate"] is True
    assert len(event_jobs(live)) == 1


def test_an_event_without_an_id_is_keyed_by_its_notification(live: LiveServer) -> None:
    body = work_item_event()
    del body["id"]
    assert post(live, body, auth()).json()["duplicate"] is False
    assert post(live, body, auth()).json()["duplicate"] is True
    assert post(live, {**body, "notificationId": 2}, auth()).json()["duplicate"] is False
    keys = [j["dedupe_key"] for j in event_jobs(live)]
    assert keys == [f"ado:notification:{body['subscriptionId']}:1", f"ado:notification:{body['subscriptionId']}:2"]


def test_an_unknown_event_type_is_stored_too(live: LiveServer) -> None:
    body = {**work_item_event(), "eventType": "tfvc.checkin", "resource": {"changesetId": 7}}
    answer = post(live, body, auth()).json()
    assert answer["event"]["known"] is False and answer["event"]["objectKey"] is None
    (job,) = event_jobs(live)
    assert job["payload"]["known"] is False and job["payload"]["event"] == body


# ---------------------------------------------------------------------------------- bad input


def without(field: str) -> dict[str, Any]:
    body = work_item_event()
    del body[field]
    return body


@pytest.mark.parametrize(
    ("body", "headers", "status", "code", "fragment"),
    [
        (b"{not json", {"Content-Type": "application/json"}, 400, "malformed_json", "not valid JSON"),
        (b"", {"Content-Type": "application/json"}, 400, "malformed_json", "empty"),
        (b"[1, 2]", {"Content-Type": "application/json"}, 400, "invalid_event", "must be a JSON object"),
        (b'"event"', {"Content-Type": "application/json"}, 400, "invalid_event", "not str"),
        (
            orjson.dumps(work_item_event()),
            {"Content-Type": "text/plain"},
            400,
            "unsupported_media_type",
            "must be JSON",
        ),
        (
            orjson.dumps(work_item_event()).replace(b'"Checkout"', b'"a\\u0000b"'),
            {"Content-Type": "application/json"},
            400,
            "invalid_string",
            "NUL",
        ),
        (without("eventType"), {}, 422, "invalid_event", "eventType: is required"),
        (without("publisherId"), {}, 422, "invalid_event", "publisherId: is required"),
        (without("resource"), {}, 422, "invalid_event", "resource: is required"),
        ({**work_item_event(), "resource": [1]}, {}, 422, "invalid_event", "resource: must be a JSON object"),
        ({**without("id"), "notificationId": None}, {}, 422, "invalid_event", "id: is required"),
        ({**work_item_event(), "id": {"x": 1}}, {}, 422, "invalid_event", "id: must be a string or an integer"),
        ({**work_item_event(), "eventType": 3}, {}, 422, "invalid_event", "eventType: must be a non-empty string"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_problem(
    live: LiveServer, body: Any, headers: dict[str, str], status: int, code: str, fragment: str
) -> None:
    r = post(live, body, {**auth(), **headers})
    assert api_error(r, status, fragment)["error"] == code
    assert event_jobs(live) == []


def test_a_missing_field_is_named_in_the_details(live: LiveServer) -> None:
    details = post(live, without("publisherId"), auth()).json()["details"]
    assert details == [
        {"field": "publisherId", "message": "is required (a service-hook event names its type and publisher)"}
    ]


def test_deep_and_oversize_events_are_refused(live: LiveServer) -> None:
    body = work_item_event()
    body["resource"]["fields"]["Deep"] = "DEEP"
    deep = orjson.dumps(body).replace(b'"DEEP"', b"[" * 100 + b"]" * 100)
    r = post(live, deep, {**auth(), "Content-Type": "application/json"})
    assert api_error(r, 400, "64 levels")["error"] == "json_too_deep"
    body["resource"]["fields"]["Deep"] = "x" * MAX_BODY
    big = post(live, body, auth())
    assert api_error(big, 413, f"larger than the {MAX_BODY} byte limit")["error"] == "payload_too_large"
    assert event_jobs(live) == []


# --------------------------------------------------------------------------------- visibility


def test_counts_in_metrics_the_events_api_and_the_cli(
    live: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    post(live, work_item_event("e-1", item=1), auth())
    post(live, work_item_event("e-2", item=2), auth())
    post(live, work_item_event("e-2", item=2), auth())  # a duplicate
    post(live, {**work_item_event("e-3"), "eventType": "build.complete", "resource": {"id": 77}}, auth())
    post(live, work_item_event("e-4"), {})  # refused: no credentials
    post(live, work_item_event("e-4"), auth(password="bad"))  # refused: wrong password
    post(live, without("resource"), auth())  # refused: malformed
    post(live, work_item_event("e-5"), auth(), identifier="nosecret")  # refused: no secret

    assert metric(live, 'kiosk_integration_events_received_total{integration="ado",outcome="stored"}') == 3
    assert metric(live, 'kiosk_integration_events_received_total{integration="ado",outcome="duplicate"}') == 1
    assert metric(live, 'kiosk_integration_events_refused_total{integration="ado",reason="auth"}') == 2
    assert metric(live, 'kiosk_integration_events_refused_total{integration="ado",reason="malformed"}') == 1
    assert metric(live, 'kiosk_integration_events_refused_total{integration="nosecret",reason="no_secret"}') == 1
    assert metric(live, 'kiosk_integration_events{integration="ado",state="pending"}') == 3
    assert metric(live, 'kiosk_integration_events{integration="nosecret",state="pending"}') == 0

    answer = live.member().get("/v1/integration/ado/events", params={"limit": 2})
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert page["path"] == "/hooks/integrations/ado"
    assert page["counts"] == {"pending": 3, "processing": 0, "processed": 0, "failed": 0}
    assert page["receivedByThisProcess"] == {
        "stored": 3,
        "duplicates": 1,
        "refused": {"auth": 2, "no_secret": 0, "malformed": 1},
    }
    assert [(e["eventType"], e["objectKey"], e["state"]) for e in page["events"]] == [
        ("build.complete", "run:77@coll-1", "pending"),
        ("workitem.created", "work-item:2@coll-1", "pending"),
    ]
    older = live.admin.get("/v1/integration/ado/events", params={"from": page["next"]}).json()
    assert [e["eventId"] for e in older["events"]] == ["e-1"] and older["next"] is None
    assert api_error(live.admin.get("/v1/integration/nope/events"), 404, "not configured")
    with live.client() as anonymous:
        assert anonymous.get("/v1/integration/ado/events").status_code == 401

    monkeypatch.setenv("KIOSK_URL", live.base_url)
    monkeypatch.setenv("KIOSK_HOME", str(live.settings.home))
    monkeypatch.delenv("KIOSK_CLIENT_ID", raising=False)
    done = CliRunner().invoke(cli, ["integrations", "events", "ado", "--limit", "2"])
    assert done.exit_code == 0, done.output
    lines = done.output.strip().splitlines()
    assert lines[0] == (
        "ado: events at /hooks/integrations/ado; stored: pending 3, processing 0, processed 0, failed 0; "
        "since the server started: 3 stored, 1 duplicate(s), refused auth 2, no_secret 0, malformed 1"
    )
    assert lines[1].startswith("processing: lag ")  # the processor is stopped: nothing processed
    assert lines[1].endswith("since the server started: 0 processed, 0 skipped, 0 failed, 0 retried")
    assert "  pending  build.complete  run:77@coll-1  e-3" in lines[2]
    assert "  pending  workitem.created  work-item:2@coll-1  e-2" in lines[3]
    assert lines[4] == f"more: kiosk integrations events ado --from {page['next']}"
    missing = CliRunner().invoke(cli, ["integrations", "events", "nope"])
    assert missing.exit_code != 0 and "not configured" in missing.output


def test_schemathesis_on_the_event_routes(live: LiveServer, tmp_path: Path) -> None:
    """kiosk's API fuzz (every check) over the two routes of this module, with integrations
    configured: the fuzz of the whole API runs on a kiosk without any, where both only answer 404."""
    post(live, work_item_event(), auth())  # an event for the listing to show
    run_schemathesis(live, tmp_path, "--include-path-regex", "^/(hooks/integrations/|v1/integration/[^/]+/events)")


def test_schemathesis_posts_events_with_the_integrations_basic_auth(live: LiveServer, tmp_path: Path) -> None:
    """The same fuzz of the hook route with the right credentials, so generated bodies reach the
    envelope's checks: every answer a declared one, never a 5xx, schema-invalid bodies refused."""
    run_schemathesis(
        live, tmp_path, "--include-path-regex", "^/hooks/integrations/", authorization=auth()["Authorization"]
    )


def test_a_cursor_past_any_job_id_is_a_422(live: LiveServer) -> None:
    r = live.admin.get("/v1/integration/ado/events", params={"from": 2**31})
    assert api_error(r, 422, "from")["error"] == "invalid_request"
    assert live.admin.get("/v1/integration/ado/events", params={"from": 2**31 - 1}).json()["events"] == []
