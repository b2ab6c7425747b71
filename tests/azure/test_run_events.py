"""Reading run-state events and choosing the subscription (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from kiosk.azure.run_events import find_subscription, parse_run_state_event, run_state_subscription
from kiosk.errors import BadRequest


def event(**run: Any) -> dict[str, Any]:
    base = {
        "id": 7,
        "name": "kiosk-r_abc",
        "state": "completed",
        "result": "succeeded",
        "pipeline": {"id": 1, "name": "deploy"},
        "_links": {"web": {"href": "http://az/_build/results?buildId=7"}},
    }
    return {"eventType": "ms.vss-pipelines.run-state-changed-event", "resource": {"run": {**base, **run}}}


def test_a_completed_run_maps_to_a_final_status() -> None:
    parsed = parse_run_state_event(event())
    assert (parsed.run_name, parsed.run_id, parsed.finished_status) == ("kiosk-r_abc", 7, "SUCCESS")
    assert parsed.web_url == "http://az/_build/results?buildId=7"
    assert parsed.label() == "pipeline deploy run kiosk-r_abc succeeded"
    assert parse_run_state_event(event(result="failed")).finished_status == "FAILURE"
    assert parse_run_state_event(event(result="canceled")).finished_status == "FAILURE"
    assert parse_run_state_event(event(state="inProgress", result=None)).finished_status is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "JSON object"),
        ({"eventType": "git.push"}, "eventType must be"),
        ({"eventType": "ms.vss-pipelines.run-state-changed-event"}, "resource.run is missing"),
        (event(name=""), "resource.run.name"),
        (event(state=None), "resource.run.state"),
    ],
)
def test_malformed_events_are_named(body: Any, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_run_state_event(body)


def test_an_existing_subscription_for_the_same_url_is_reused() -> None:
    mine = run_state_subscription("https://kiosk.example/hooks/azure-devops/acme/", "kiosk", "pw")
    assert mine["publisherId"] == "pipelines" and mine["consumerInputs"]["basicAuthPassword"] == "pw"
    existing = [
        {"eventType": "git.push", "consumerInputs": {"url": "https://kiosk.example/hooks/azure-devops/acme"}},
        {"id": "s1", **mine, "consumerInputs": {"url": "https://kiosk.example/hooks/azure-devops/acme"}},
    ]
    found = find_subscription(existing, "https://kiosk.example/hooks/azure-devops/acme/")
    assert found is not None and found["id"] == "s1"
    assert find_subscription(existing, "https://other.example/x") is None
