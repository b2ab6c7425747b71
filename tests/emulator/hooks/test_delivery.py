"""Delivery over real HTTP as Azure does it: the request, the retry schedule per status class,
probation and disabling, order per subscription, a held target holding up no one else, and the
record of every attempt (``/_emulator/hooks/deliveries``, notifications through Microsoft's client)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from tests.emulator.conftest import CONFIG, EmulatorFactory, LiveEmulator, basic
from tests.emulator.hooks.conftest import (
    HOOKS_CONFIG,
    HeldReceiver,
    assert_basic_auth_and_headers,
    hooks_client,
    org_event,
    publish,
    subscribe,
    subscribe_with_basic_auth_and_headers,
)
from tests.support.receiver import Receiver, Reply

from kiosk.emulator.hooks.delivery import PROBATION_DELAYS, TRANSIENT_DELAYS

SCALE = 0.00001  # HOOKS_CONFIG's retryScale


def subscription(emulator: LiveEmulator, subscription_id: str) -> dict[str, Any]:
    return dict(emulator.client.get(f"/fabrikam/_apis/hooks/subscriptions/{subscription_id}").json())


def deliveries(emulator: LiveEmulator, **params: Any) -> list[dict[str, Any]]:
    answer = emulator.client.get("/_emulator/hooks/deliveries", params=params)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["value"])


def wait_until_settled(
    emulator: LiveEmulator, subscription_id: str, count: int, timeout: float = 20
) -> list[dict[str, Any]]:
    """The subscription's ``count`` notifications once none is pending any more (oldest first)."""
    deadline = time.monotonic() + timeout
    while True:
        notes = emulator.client.get(f"/fabrikam/_apis/hooks/subscriptions/{subscription_id}/notifications").json()
        values = list(notes["value"])
        if len(values) >= count and all(n["status"] == "completed" for n in values):
            return list(reversed(values))
        assert time.monotonic() < deadline, values
        time.sleep(0.02)


def test_one_compact_json_post_with_azures_headers_and_basic_auth(
    hooked: LiveEmulator, receiver: tuple[str, Receiver]
) -> None:
    url, rec = receiver
    created = subscribe_with_basic_auth_and_headers(hooked, url, "port", "hook-secret")
    plain = subscribe(hooked, url)
    event = org_event()
    publish(hooked, event)
    requests = rec.wait(2)
    by_subscription = {r.json()["subscriptionId"]: r for r in requests}
    authed, bare = by_subscription[created["id"]], by_subscription[plain["id"]]
    assert authed.method == "POST" and authed.path == "/hook"
    assert authed.headers["content-type"] == "application/json; charset=utf-8"
    assert_basic_auth_and_headers(authed.headers, "port", "hook-secret")
    assert authed.body == orjson.dumps(authed.json())  # compact: no spaces between tokens
    assert "authorization" not in bare.headers  # basic auth only when set
    assert authed.json()["id"] == bare.json()["id"] == event.id  # one event, the same id for every subscription


def test_transient_failures_are_retried_on_azures_schedule(
    hooked: LiveEmulator, receiver: tuple[str, Receiver]
) -> None:
    url, rec = receiver
    rec.script(Reply(503), Reply(502), Reply(504), Reply(408))
    created = subscribe(hooked, url)
    publish(hooked, org_event())
    rec.wait(5)
    (note,) = wait_until_settled(hooked, created["id"], 1)
    assert note["result"] == "succeeded" and note["details"]["requestAttempts"] == 5
    assert {r.json()["notificationId"] for r in rec.requests} == {1}  # the same notification, retried
    attempts = list(reversed(deliveries(hooked, subscription=created["id"])))
    assert [a["attempt"] for a in attempts] == [1, 2, 3, 4, 5]
    assert [a["response"]["status"] for a in attempts] == [503, 502, 504, 408, 200]
    assert [a["nextAttemptInSeconds"] for a in attempts] == [d * SCALE for d in TRANSIENT_DELAYS[:4]] + [None]
    assert subscription(hooked, created["id"])["status"] == "enabled"


def test_410_disables_the_subscription_at_once(hooked: LiveEmulator, receiver: tuple[str, Receiver]) -> None:
    url, rec = receiver
    rec.script(Reply(410))
    created = subscribe(hooked, url)
    publish(hooked, org_event())
    (note,) = wait_until_settled(hooked, created["id"], 1)
    assert note["result"] == "failed" and note["details"]["requestAttempts"] == 1
    assert subscription(hooked, created["id"])["status"] == "disabledBySystem"
    publish(hooked, org_event())  # a disabled subscription receives nothing more
    other = subscribe(hooked, url)
    publish(hooked, org_event())
    wait_until_settled(hooked, other["id"], 1)
    assert [r.json()["subscriptionId"] for r in rec.requests] == [created["id"], other["id"]]


def test_enduring_failures_put_it_on_probation_and_a_success_ends_it(
    hooked: LiveEmulator, receiver: tuple[str, Receiver]
) -> None:
    url, rec = receiver
    rec.script(Reply(500), Reply(404))
    created = subscribe(hooked, url)
    publish(hooked, org_event())
    (note,) = wait_until_settled(hooked, created["id"], 1)
    assert note["result"] == "succeeded" and note["details"]["requestAttempts"] == 3
    attempts = list(reversed(deliveries(hooked, subscription=created["id"])))
    assert [a["subscriptionStatus"] for a in attempts] == ["onProbation", "onProbation", "enabled"]
    assert [a["nextAttemptInSeconds"] for a in attempts] == [
        PROBATION_DELAYS[0] * SCALE,
        PROBATION_DELAYS[1] * SCALE,
        None,
    ]
    shown = subscription(hooked, created["id"])
    assert shown["status"] == "enabled" and shown["probationRetries"] == 0 and shown["lastProbationRetryDate"]


def test_a_target_failing_for_good_is_disabled_after_eight_retries_and_seven_on_probation(
    hooked: LiveEmulator, receiver: tuple[str, Receiver]
) -> None:
    url, rec = receiver
    rec.plan = lambda _n, _r: Reply(503)
    created = subscribe(hooked, url)
    publish(hooked, org_event())
    (note,) = wait_until_settled(hooked, created["id"], 1)
    total = 1 + len(TRANSIENT_DELAYS) + len(PROBATION_DELAYS)
    assert note["result"] == "failed" and note["details"]["requestAttempts"] == total == 16
    attempts = list(reversed(deliveries(hooked, subscription=created["id"])))
    assert len(attempts) == total
    statuses = [a["subscriptionStatus"] for a in attempts]
    assert statuses == ["enabled"] * 8 + ["onProbation"] * 7 + ["disabledBySystem"]
    waits = [a["nextAttemptInSeconds"] for a in attempts]
    assert waits == [d * SCALE for d in (*TRANSIENT_DELAYS, *PROBATION_DELAYS)] + [None]
    assert subscription(hooked, created["id"])["status"] == "disabledBySystem"
    rec.plan = lambda _n, _r: Reply(200)
    publish(hooked, org_event())  # not sent: the subscription is disabled
    before = len(rec.requests)
    other = subscribe(hooked, url)
    publish(hooked, org_event())  # handed over after the one above: once it arrived, the other was dropped
    wait_until_settled(hooked, other["id"], 1)
    assert len(rec.requests) == before + 1 and rec.requests[-1].json()["subscriptionId"] == other["id"]


def test_events_of_one_subscription_keep_their_order_through_retries(
    hooked: LiveEmulator, receiver: tuple[str, Receiver]
) -> None:
    url, rec = receiver
    rec.script(Reply(503), Reply(200), Reply(502))
    created = subscribe(hooked, url)
    for number in range(1, 21):
        publish(hooked, org_event(message=f"push {number}"))
    wait_until_settled(hooked, created["id"], 20)
    delivered = [r.json() for r in rec.requests]
    ids = [body["notificationId"] for body in delivered]
    assert ids == [1, 1, 2, 2, *range(3, 21)]
    assert [body["message"] for body in delivered][-1] is None  # org scope: no messages (see envelopes)


def test_a_held_target_holds_up_only_its_own_subscription(
    hooked: LiveEmulator, receiver: tuple[str, Receiver], held: tuple[str, HeldReceiver]
) -> None:
    url, rec = receiver
    held_url, target = held
    slow = subscribe(hooked, held_url)
    quick = subscribe(hooked, url)
    publish(hooked, org_event(message="first"))
    target.wait_for(1)
    rec.wait(1)
    publish(hooked, org_event(message="second"))
    rec.wait(2)  # the quick subscription got both while the held target still holds the first
    assert target.arrived() == 1 and not target.release.is_set()
    target.release.set()
    bodies = target.wait_for(2)
    assert [b["notificationId"] for b in bodies] == [1, 2]
    assert [r.json()["subscriptionId"] for r in rec.requests] == [quick["id"], quick["id"]]
    assert slow["id"] != quick["id"]


def test_an_attempt_that_outlasts_its_timeout_fails_as_transient(
    start_emulator: EmulatorFactory, held: tuple[str, HeldReceiver]
) -> None:
    emulator = start_emulator(
        config="settings:\n  hooks: {retryScale: 0.00001, attemptTimeoutSeconds: 0.2}\n" + CONFIG, execute=False
    )
    held_url, target = held
    created = subscribe(emulator, held_url)
    publish(emulator, org_event())
    target.wait_for(2)  # a second attempt: the first timed out
    first = deliveries(emulator, subscription=created["id"])[-1]
    assert first["attempt"] == 1 and first["status"] == "failed"
    assert first["error"] == "timed out after 0.2 s" and first["response"] is None
    assert first["nextAttemptInSeconds"] == TRANSIENT_DELAYS[0] * SCALE
    emulator.client.delete(f"/fabrikam/_apis/hooks/subscriptions/{created['id']}?api-version=7.1")


def test_the_deliveries_record_filters_and_masks(hooked: LiveEmulator, receiver: tuple[str, Receiver]) -> None:
    url, rec = receiver
    rec.script(Reply(500, body=b"boom"))
    pushes = subscribe(hooked, url, basicAuthUsername="port", basicAuthPassword="secret")
    items = subscribe(hooked, url, "workitem.created")
    publish(hooked, org_event())  # settled first, so the scripted 500 is the push's: subscriptions send in parallel
    wait_until_settled(hooked, pushes["id"], 1)
    publish(hooked, org_event("workitem.created", resource={"id": 4, "rev": 1, "fields": {}}))
    wait_until_settled(hooked, items["id"], 1)
    every = deliveries(hooked)
    assert [a["id"] for a in every] == sorted((a["id"] for a in every), reverse=True)  # newest first
    failed = deliveries(hooked, status="failed")
    assert len(failed) == 1 and failed[0]["response"] == {"status": 500, "body": "boom"}
    push = deliveries(hooked, subscription=pushes["id"])
    assert {a["eventType"] for a in push} == {"git.push"}
    assert all(a["request"]["headers"]["Authorization"] == "Basic ********" for a in push)
    assert "secret" not in str(push)
    assert push[0]["request"]["url"] == url and orjson.loads(push[0]["request"]["body"])["eventType"] == "git.push"
    assert push[0]["durationMs"] >= 0 and push[0]["org"] == "fabrikam"
    assert [a["subscriptionId"] for a in deliveries(hooked, eventType="workitem.created")] == [items["id"]]
    assert deliveries(hooked, org="elsewhere") == []
    assert len(deliveries(hooked, limit=1)) == 1
    assert hooked.client.get("/_emulator/hooks/deliveries", params={"status": "maybe"}).status_code == 400


def test_notifications_through_microsofts_client(hooked: LiveEmulator, receiver: tuple[str, Receiver]) -> None:
    url, rec = receiver
    rec.script(Reply(503))
    created = subscribe(hooked, url)
    publish(hooked, org_event(message="one"))
    publish(hooked, org_event(message="two"))
    wait_until_settled(hooked, created["id"], 2)
    client = hooks_client(hooked)
    notes = client.get_notifications(created["id"])
    assert [n.id for n in notes] == [2, 1]  # newest first
    first = client.get_notification(created["id"], 1)
    assert first.subscription_id == created["id"] and first.status == "completed" and first.result == "succeeded"
    assert first.details.request_attempts == 2 and first.details.event_type == "git.push"
    assert first.details.event.id == first.event_id and first.details.request.startswith(f"POST {url}")
    assert first.details.response.startswith("200")
    assert len(client.get_notifications(created["id"], max_results=1)) == 1
    assert client.get_notifications(created["id"], result="failed") == []


def test_a_pat_sees_the_deliveries_of_its_own_orgs_only(
    start_emulator: EmulatorFactory, receiver: tuple[str, Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_CONTOSO_PAT", "contoso-test-pat")
    contoso = "  - name: contoso\n    personalAccessTokens: [{env: TEST_CONTOSO_PAT}]\n"
    emulator = start_emulator(config=HOOKS_CONFIG + contoso, execute=False)
    url, _ = receiver
    created = subscribe(emulator, url)
    publish(emulator, org_event())
    wait_until_settled(emulator, created["id"], 1)
    assert [a["subscriptionId"] for a in deliveries(emulator)] == [created["id"]]
    theirs = emulator.client.get("/_emulator/hooks/deliveries", headers=basic("contoso-test-pat"))
    assert theirs.status_code == 200 and theirs.json() == {"count": 0, "value": []}
    assert emulator.client.get("/_emulator/hooks/deliveries", headers=basic("wrong")).status_code == 401
