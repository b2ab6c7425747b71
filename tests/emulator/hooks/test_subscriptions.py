"""Subscriptions through Microsoft's ServiceHooksClient (v7_1): create, list, get, replace, delete,
query; Azure's validation (400s) and what the server adds or hides."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from azure.devops.exceptions import AzureDevOpsServiceError
from azure.devops.v7_1.service_hooks.models import InputFilter, InputFilterCondition, Subscription, SubscriptionsQuery
from tests.emulator.conftest import CONFIG, EmulatorFactory, LiveEmulator
from tests.emulator.hooks.conftest import (
    PROJECT_ID,
    SUBSCRIPTIONS,
    hooks_client,
    org_event,
    publish,
    subscribe,
    subscription_body,
)
from tests.support.receiver import Receiver

from kiosk.emulator.models import stable_id


def test_the_client_creates_lists_gets_replaces_and_deletes(hooked: LiveEmulator) -> None:
    client = hooks_client(hooked)
    created = client.create_subscription(
        Subscription(
            publisher_id="tfs",
            event_type="git.push",
            consumer_id="webHooks",
            consumer_action_id="httpRequest",
            publisher_inputs={"projectId": PROJECT_ID, "branch": "main"},
            consumer_inputs={
                "url": "https://hooks.example.test/in",
                "basicAuthUsername": "port",
                "basicAuthPassword": "s3cret",
            },
        )
    )
    assert created.status == "enabled" and created.id
    assert created.url == f"{hooked.base_url}/fabrikam/_apis/hooks/subscriptions/{created.id}"
    assert created.consumer_inputs["basicAuthPassword"] == "********"
    assert created.publisher_inputs["hostId"] == stable_id("fabrikam", "instance")
    assert created.publisher_inputs["tfsSubscriptionId"]
    assert created.created_by.id and created.created_date is not None
    pipelines = client.create_subscription(
        Subscription(
            publisher_id="pipelines",
            event_type="ms.vss-pipelines.run-state-changed-event",
            resource_version="5.1-preview.1",
            consumer_id="webHooks",
            consumer_action_id="httpRequest",
            consumer_inputs={"url": "https://hooks.example.test/runs"},
        )
    )
    assert "tfsSubscriptionId" not in pipelines.publisher_inputs  # only the tfs publisher gets one
    assert {s.id for s in client.list_subscriptions()} == {created.id, pipelines.id}
    assert [s.id for s in client.list_subscriptions(publisher_id="tfs")] == [created.id]
    assert [s.id for s in client.list_subscriptions(event_type="ms.vss-pipelines.run-state-changed-event")] == [
        pipelines.id
    ]
    assert client.list_subscriptions(consumer_id="azureServiceBus") == []
    assert len(client.list_subscriptions(consumer_id="webHooks", consumer_action_id="httpRequest")) == 2
    raw = hooked.client.get(created.url).json()  # its url and links resolve on the emulator
    assert hooked.client.get(raw["_links"]["notifications"]["href"]).json() == {"count": 0, "value": []}
    fetched = client.get_subscription(created.id)
    assert fetched.event_type == "git.push" and fetched.publisher_inputs["branch"] == "main"

    fetched.publisher_inputs = {"projectId": PROJECT_ID, "branch": "develop"}
    fetched.status = "disabledByUser"
    replaced = client.replace_subscription(fetched, created.id)
    assert replaced.publisher_inputs["branch"] == "develop" and replaced.status == "disabledByUser"
    assert replaced.consumer_inputs["basicAuthPassword"] == "********"

    client.delete_subscription(created.id)
    with pytest.raises(AzureDevOpsServiceError):
        client.get_subscription(created.id)
    assert [s.id for s in client.list_subscriptions()] == [pipelines.id]


def test_a_masked_password_in_a_replace_keeps_the_stored_one(
    hooked: LiveEmulator, receiver: tuple[str, Receiver]
) -> None:
    url, rec = receiver
    created = subscribe(hooked, url, basicAuthUsername="kiosk", basicAuthPassword="first")
    one = f"/fabrikam/_apis/hooks/subscriptions/{created['id']}?api-version=7.1"
    body = {**created, "consumerInputs": {**created["consumerInputs"], "httpHeaders": "X-Replaced: yes"}}
    assert body["consumerInputs"]["basicAuthPassword"] == "********"
    replaced = hooked.client.put(one, json=body)
    assert replaced.status_code == 200, replaced.text
    publish(hooked, org_event())
    (request,) = rec.wait(1)
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"kiosk:first").decode()
    assert request.headers["x-replaced"] == "yes"


def test_subscriptions_query_filters_by_inputs(hooked: LiveEmulator) -> None:
    client = hooks_client(hooked)
    main = subscribe(hooked, "https://a.example.test/", publisher_inputs={"branch": "main"})
    subscribe(hooked, "https://b.example.test/", publisher_inputs={"branch": "dev"})
    subscribe(hooked, "https://c.example.test/", "workitem.created")
    condition = InputFilterCondition(input_id="branch", input_value="MAIN", operator="equals")
    answer = client.create_subscriptions_query(
        SubscriptionsQuery(
            publisher_id="tfs",
            event_type="git.push",
            publisher_input_filters=[InputFilter(conditions=[condition])],
        )
    )
    assert [s.id for s in answer.results] == [main["id"]]
    assert answer.event_type == "git.push"
    url_filter = InputFilterCondition(input_id="url", input_value="https://c.example.test/", operator="notEquals")
    rest = client.create_subscriptions_query(
        SubscriptionsQuery(consumer_input_filters=[InputFilter(conditions=[url_filter])])
    )
    assert len(rest.results) == 2


@pytest.mark.parametrize(
    ("change", "type_key"),
    [
        ({"publisherId": "nope"}, "ServiceHookPublisherNotFoundException"),
        ({"eventType": "git.nope"}, "ServiceHookEventTypeNotFoundException"),
        ({"publisherId": "pipelines"}, "ServiceHookEventTypeNotFoundException"),  # git.push is tfs's
        ({"consumerId": "azureServiceBus"}, "ServiceHookConsumerNotFoundException"),
        ({"consumerActionId": "sendMessage"}, "ServiceHookConsumerNotFoundException"),
        ({"resourceVersion": "9.9"}, "ServiceHookResourceVersionNotSupportedException"),
        ({"publisherInputs": {"areaPath": "x"}}, "ServiceHookPublisherInputNotFoundException"),  # not a push filter
        ({"consumerInputs": {}}, "ArgumentException"),
        ({"consumerInputs": {"url": "ftp://x"}}, "ArgumentException"),
        ({"consumerInputs": "x"}, "ArgumentException"),
        ({"consumerInputs": {"url": "https://x.test/", "basicAuthUsername": "has space"}}, "ArgumentException"),
        ({"consumerInputs": {"url": "https://x.test/", "basicAuthPassword": "p" * 257}}, "ArgumentException"),
        ({"consumerInputs": {"url": "http://x.example.test/", "basicAuthPassword": "pw"}}, "ArgumentException"),
        ({"consumerInputs": {"url": "https://x.test/", "httpHeaders": "no colon here"}}, "ArgumentException"),
        ({"consumerInputs": {"url": "https://x.test/", "resourceDetailsToSend": "some"}}, "ArgumentException"),
        ({"consumerInputs": {"url": "https://x.test/", "messagesToSend": "pdf"}}, "ArgumentException"),
    ],
)
def test_what_azure_refuses_is_refused(hooked: LiveEmulator, change: dict[str, Any], type_key: str) -> None:
    body = {**subscription_body("https://x.test/"), **change}
    response = hooked.client.post(SUBSCRIPTIONS, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["typeKey"] == type_key


def test_a_password_over_plain_http_is_taken_for_loopback_only(hooked: LiveEmulator) -> None:
    """Azure demands https with a password; the emulator lets a loopback receiver keep http (a setting)."""
    loopback = subscription_body("http://127.0.0.1:9/in", basicAuthUsername="u", basicAuthPassword="p")
    assert hooked.client.post(SUBSCRIPTIONS, json=loopback).status_code == 200
    remote = subscription_body("http://hooks.example.test/in", basicAuthUsername="u", basicAuthPassword="p")
    response = hooked.client.post(SUBSCRIPTIONS, json=remote)
    assert response.status_code == 400 and "HTTPS" in response.json()["message"]


def test_the_setting_can_refuse_http_to_loopback_as_azure_does(start_emulator: EmulatorFactory) -> None:
    strict = start_emulator(config="settings:\n  hooks: {allowHttpToLoopback: false}\n" + CONFIG, execute=False)
    loopback = subscription_body("http://127.0.0.1:9/in", basicAuthUsername="u", basicAuthPassword="p")
    assert strict.client.post(SUBSCRIPTIONS, json=loopback).status_code == 400
    without_password = subscription_body("http://127.0.0.1:9/in")
    assert strict.client.post(SUBSCRIPTIONS, json=without_password).status_code == 200


def test_unknown_subscriptions_and_other_orgs_subscriptions_are_404(hooked: LiveEmulator) -> None:
    created = subscribe(hooked, "https://x.test/")
    missing = "/fabrikam/_apis/hooks/subscriptions/00000000-0000-0000-0000-000000000000?api-version=7.1"
    assert hooked.client.get(missing).status_code == 404
    assert hooked.client.delete(missing).status_code == 404
    assert hooked.client.put(missing, json=subscription_body("https://x.test/")).status_code == 404
    assert hooked.client.get(f"/nowhere/_apis/hooks/subscriptions/{created['id']}").status_code == 404


def test_a_subscription_disabled_by_its_owner_receives_nothing_until_enabled(
    hooked: LiveEmulator, receiver: tuple[str, Receiver]
) -> None:
    url, rec = receiver
    created = subscribe(hooked, url)
    one = f"/fabrikam/_apis/hooks/subscriptions/{created['id']}?api-version=7.1"
    assert hooked.client.put(one, json={**created, "status": "disabledByUser"}).json()["status"] == "disabledByUser"
    publish(hooked, org_event(message="while disabled"))
    assert hooked.client.put(one, json={**created, "status": "enabled"}).json()["status"] == "enabled"
    publish(hooked, org_event(message="after"))
    (request,) = rec.wait(1)
    assert request.json()["notificationId"] == 1  # the event published while disabled made no notification
    notes = hooked.client.get(f"/fabrikam/_apis/hooks/subscriptions/{created['id']}/notifications").json()
    assert notes["count"] == 1
