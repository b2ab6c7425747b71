"""Service hooks: Azure's subscriptions API and the run-state events the emulator sends, over real HTTP."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tests.emulator.conftest import LiveEmulator
from tests.support.pipelines import SEED_BODY, SEED_CHECKSUM
from tests.support.servers import serving

SUBSCRIPTIONS = "/fabrikam/_apis/hooks/subscriptions?api-version=7.1"


class Receiver:
    def __init__(self) -> None:
        self.events: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.fail = False

    async def handle(self, request: Request) -> Response:
        self.events.append((dict(request.headers), await request.json()))
        return Response(status_code=500 if self.fail else 200)

    def wait(self, count: int, timeout: float = 20) -> list[tuple[dict[str, str], dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.events


@pytest.fixture
def receiver() -> Iterator[tuple[str, Receiver]]:
    rec = Receiver()
    app = Starlette(routes=[Route("/hook", rec.handle, methods=["POST"])])
    with serving(app) as base:
        yield base + "/hook", rec


def subscribe(emulator: LiveEmulator, url: str, **publisher_inputs: str) -> dict[str, Any]:
    body = {
        "publisherId": "pipelines",
        "eventType": "ms.vss-pipelines.run-state-changed-event",
        "resourceVersion": "5.1-preview.1",
        "consumerId": "webHooks",
        "consumerActionId": "httpRequest",
        "publisherInputs": publisher_inputs,
        "consumerInputs": {
            "url": url,
            "basicAuthUsername": "kiosk",
            "basicAuthPassword": "hook-password",
            "httpHeaders": "X-Extra: yes\nX-Other:2",
        },
    }
    response = emulator.client.post(SUBSCRIPTIONS, json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_run_state_events_reach_the_subscriber_with_auth_and_headers(
    emulator: LiveEmulator, receiver: tuple[str, Receiver]
) -> None:
    url, rec = receiver
    created = subscribe(emulator, url)
    assert created["consumerInputs"]["basicAuthPassword"] == "********"
    response = emulator.trigger("IncomingWH", SEED_BODY, {"X-WH-Checksum": SEED_CHECKSUM})
    run_id = int(response.headers["X-Kiosk-Queued-Runs"])
    events = rec.wait(2)
    states = [(e["resource"]["run"]["state"], e["resource"]["run"].get("result")) for _, e in events]
    assert states == [("inProgress", None), ("completed", "succeeded")]
    headers, event = events[-1]
    assert headers["authorization"] == "Basic " + base64.b64encode(b"kiosk:hook-password").decode()
    assert headers["user-agent"].startswith("VSServices")
    assert (headers["x-extra"], headers["x-other"]) == ("yes", "2")
    assert event["eventType"] == "ms.vss-pipelines.run-state-changed-event"
    assert event["publisherId"] == "pipelines" and event["subscriptionId"] == created["id"]
    run = event["resource"]["run"]
    assert run["id"] == run_id and run["name"] and run["_links"]["web"]["href"]
    assert event["resource"]["pipeline"]["name"] == "hello"
    assert event["resourceContainers"]["project"]["id"]


def test_publisher_filters_and_build_complete(emulator: LiveEmulator, receiver: tuple[str, Receiver]) -> None:
    url, rec = receiver
    subscribe(emulator, url, runStateId="completed", pipelineId="1")
    subscribe(emulator, url, pipelineId="99")  # never matches
    body = {
        "publisherId": "tfs",
        "eventType": "build.complete",
        "consumerId": "webHooks",
        "consumerActionId": "httpRequest",
        "consumerInputs": {"url": url},
    }
    assert emulator.client.post(SUBSCRIPTIONS, json=body).status_code == 200
    emulator.trigger("IncomingWH", SEED_BODY, {"X-WH-Checksum": SEED_CHECKSUM})
    events = rec.wait(2)
    time.sleep(0.3)
    kinds = sorted(e["eventType"] for _, e in rec.events)
    assert kinds == ["build.complete", "ms.vss-pipelines.run-state-changed-event"]
    build = next(e for _, e in events if e["eventType"] == "build.complete")
    assert build["resource"]["result"] == "succeeded" and build["resource"]["buildNumber"]


def test_subscriptions_can_be_listed_and_deleted(emulator: LiveEmulator, receiver: tuple[str, Receiver]) -> None:
    url, _ = receiver
    created = subscribe(emulator, url)
    listed = emulator.client.get(SUBSCRIPTIONS).json()
    assert [s["id"] for s in listed["value"]] == [created["id"]]
    one = f"/fabrikam/_apis/hooks/subscriptions/{created['id']}?api-version=7.1"
    assert emulator.client.get(one).json()["eventType"] == created["eventType"]
    assert emulator.client.delete(one).status_code == 204
    assert emulator.client.get(one).status_code == 404
    assert emulator.client.get(SUBSCRIPTIONS).json()["count"] == 0


def test_failed_deliveries_are_retried_and_recorded(emulator: LiveEmulator, receiver: tuple[str, Receiver]) -> None:
    url, rec = receiver
    rec.fail = True
    created = subscribe(emulator, url, runStateId="completed")
    emulator.trigger("IncomingWH", SEED_BODY, {"X-WH-Checksum": SEED_CHECKSUM})
    rec.wait(3)
    time.sleep(0.2)
    notes = emulator.client.get(
        f"/fabrikam/_apis/hooks/subscriptions/{created['id']}/notifications?api-version=7.1"
    ).json()["value"]
    assert [(n["attempt"], n["status"], n["statusCode"]) for n in notes] == [
        (1, "failed", 500),
        (2, "failed", 500),
        (3, "failed", 500),
    ]


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"eventType": "git.nope"}, 400),
        ({"publisherId": "tfs"}, 400),
        ({"consumerId": "azureServiceBus"}, 400),
        ({"consumerInputs": {"url": "ftp://x"}}, 400),
        ({"consumerInputs": "x"}, 400),
    ],
)
def test_bad_subscriptions_are_refused(emulator: LiveEmulator, change: dict[str, Any], status: int) -> None:
    body = {
        "publisherId": "pipelines",
        "eventType": "ms.vss-pipelines.run-state-changed-event",
        "consumerId": "webHooks",
        "consumerInputs": {"url": "http://127.0.0.1:1/x"},
        **change,
    }
    response = emulator.client.post(SUBSCRIPTIONS, json=body)
    assert response.status_code == status and response.json()["typeKey"]
