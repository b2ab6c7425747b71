"""The envelope each event type is delivered in (reference 6.2), and Azure's trimming (6.1), over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from tests.emulator.conftest import LiveEmulator
from tests.emulator.hooks.conftest import PROJECT_ID, org_event, publish, subscribe
from tests.support.receiver import Receiver

from kiosk.emulator.hooks.catalogue import EVENT_TYPES
from kiosk.emulator.models import stable_id
from kiosk.emulator.org.events import OrgEvent

RESOURCE: dict[str, Any] = {
    "id": 42,
    "url": "http://emulator/_apis/x/42",
    "name": "thing",
    "pushId": 9,
    "refUpdates": [{"name": "refs/heads/main"}],
    "repository": {"id": "r"},
}
#: What a ``minimal`` resource keeps of :data:`RESOURCE`: its identifying keys only, not the nested objects.
MINIMAL_RESOURCE: dict[str, Any] = {"id": 42, "url": "http://emulator/_apis/x/42", "name": "thing", "pushId": 9}


def envelope_delivered(
    hooked: LiveEmulator,
    receiver: tuple[str, Receiver],
    event: OrgEvent,
    publisher_inputs: dict[str, str] | None = None,
    **consumer_inputs: str,
) -> dict[str, Any]:
    """The envelope of ``event`` as the one subscription made with these inputs receives it (its only request)."""
    url, rec = receiver
    subscribe(hooked, url, publisher_inputs=publisher_inputs, **consumer_inputs)
    publish(hooked, event)
    (request,) = rec.wait(1)
    return dict(request.json())


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_type_arrives_in_azures_envelope(
    hooked: LiveEmulator, receiver: tuple[str, Receiver], event_type: str
) -> None:
    url, rec = receiver
    spec = EVENT_TYPES[event_type]
    first = subscribe(hooked, url, event_type, spec.publisher_id, publisher_inputs={"projectId": PROJECT_ID})
    second = subscribe(hooked, url, event_type, spec.publisher_id)
    event = org_event(
        event_type,
        spec.publisher_id,
        resource=RESOURCE,
        message="Something happened",
        detailed_message="Something <b>happened</b> in detail",
        resource_version=spec.default_version,
    )
    publish(hooked, event)
    publish(hooked, org_event(event_type, spec.publisher_id, resource=RESOURCE, resource_version=spec.default_version))
    received = [r.json() for r in rec.wait(4)]
    mine = [e for e in received if e["subscriptionId"] == first["id"]]
    assert [e["notificationId"] for e in mine] == [1, 2]  # counts per subscription
    envelope = mine[0]
    assert set(envelope) == {
        "subscriptionId",
        "notificationId",
        "id",
        "eventType",
        "publisherId",
        "message",
        "detailedMessage",
        "resource",
        "resourceVersion",
        "resourceContainers",
        "createdDate",
    }
    assert (envelope["id"], envelope["eventType"], envelope["publisherId"]) == (event.id, event_type, spec.publisher_id)
    assert envelope["message"] == {
        "text": "Something happened",
        "html": "Something happened",
        "markdown": "Something happened",
    }
    assert envelope["detailedMessage"]["html"] == "Something &lt;b&gt;happened&lt;/b&gt; in detail"
    assert envelope["resource"] == RESOURCE and envelope["resourceVersion"] == spec.default_version
    collection = {"id": stable_id("fabrikam", "instance"), "baseUrl": f"{hooked.base_url}/fabrikam/"}
    assert envelope["resourceContainers"] == {
        "collection": collection,
        "account": collection,
        "project": {"id": PROJECT_ID, "baseUrl": f"{hooked.base_url}/fabrikam/"},
    }
    assert envelope["createdDate"].endswith("Z") and len(envelope["createdDate"]) == 28
    others = [e for e in received if e["subscriptionId"] == second["id"]]
    assert [e["notificationId"] for e in others] == [1, 2] and others[0]["id"] == event.id


def test_an_org_scope_subscription_gets_the_minimal_resource_and_no_messages(
    hooked: LiveEmulator, receiver: tuple[str, Receiver]
) -> None:
    envelope = envelope_delivered(hooked, receiver, org_event(resource=RESOURCE))
    assert envelope["resource"] == MINIMAL_RESOURCE
    assert envelope["message"] is None and envelope["detailedMessage"] is None
    assert envelope["resourceVersion"] == "1.0"


@pytest.mark.parametrize(
    ("inputs", "resource", "message", "detailed"),
    [
        ({"resourceDetailsToSend": "all"}, RESOURCE, None, None),
        ({"resourceDetailsToSend": "none"}, None, None, None),
        ({"messagesToSend": "text", "detailedMessagesToSend": "markdown"}, "minimal", {"text": "m"}, {"markdown": "m"}),
        ({"messagesToSend": "html", "detailedMessagesToSend": "all"}, "minimal", {"html": "m"}, "all"),
    ],
)
def test_trimming_follows_the_subscriptions_inputs(
    hooked: LiveEmulator,
    receiver: tuple[str, Receiver],
    inputs: dict[str, str],
    resource: Any,
    message: Any,
    detailed: Any,
) -> None:
    envelope = envelope_delivered(hooked, receiver, org_event(resource=RESOURCE, message="m"), **inputs)
    assert envelope["resource"] == (MINIMAL_RESOURCE if resource == "minimal" else resource)
    assert envelope["resourceVersion"] == (None if resource is None else "1.0")
    assert envelope["message"] == message
    assert envelope["detailedMessage"] == (
        {"text": "m", "html": "m", "markdown": "m"} if detailed == "all" else detailed
    )


def test_a_project_scope_subscription_can_still_ask_for_less(
    hooked: LiveEmulator, receiver: tuple[str, Receiver]
) -> None:
    envelope = envelope_delivered(
        hooked,
        receiver,
        org_event(resource=RESOURCE, message="m"),
        publisher_inputs={"projectId": PROJECT_ID},
        resourceDetailsToSend="minimal",
        messagesToSend="none",
    )
    assert envelope["resource"] == MINIMAL_RESOURCE
    assert envelope["message"] is None and envelope["detailedMessage"]["text"] == "m"


def test_an_event_without_a_project_has_no_project_container(
    hooked: LiveEmulator, receiver: tuple[str, Receiver]
) -> None:
    envelope = envelope_delivered(hooked, receiver, org_event(project_id=None))
    assert set(envelope["resourceContainers"]) == {"collection", "account"}
