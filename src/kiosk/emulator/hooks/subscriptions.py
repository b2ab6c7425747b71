"""Service-hook subscriptions: validation as Azure does it, the stored subscription, its JSON.

A subscription is refused (400) unless Azure would take it (reference 3.11; Azure's webHooks
``httpRequest`` action): a known publisher and one of its event types, the ``webHooks`` consumer
and its ``httpRequest`` action, a resource version the event type supports, publisher inputs the
event type takes, and consumer inputs that hold: an http(s) ``url``; ``basicAuthUsername`` and
``basicAuthPassword`` of 1 to 256 characters without whitespace; a password only with an
``https`` URL (a setting lets a loopback target keep plain http: kiosk's own tests and demo
subscribe with ``http://127.0.0.1``); ``httpHeaders`` as ``Name: value`` lines; the trimming
options (``resourceDetailsToSend`` …) among Azure's values.

The server adds ``hostId`` (the organisation's id) to the publisher inputs, and
``tfsSubscriptionId`` for the ``tfs`` publisher; confidential inputs come back ``********``, and a
replace (PUT) that sends the mask back keeps the stored password.
"""

from __future__ import annotations

import collections
import ipaddress
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from kiosk.emulator.errors import AzureError
from kiosk.emulator.hooks.catalogue import (
    CONFIDENTIAL_INPUTS,
    CONSUMER_ACTION_ID,
    CONSUMER_ID,
    PROJECT_INPUT,
    PUBLISHERS,
    SERVER_INPUTS,
    EventType,
    event_type,
)
from kiosk.emulator.hooks.notifications import Notification
from kiosk.emulator.models import stable_id

__all__ = [
    "ACTIVE_STATUSES",
    "MASK",
    "STATUSES",
    "Subscription",
    "SubscriptionRequest",
    "SubscriptionStore",
    "collection_id",
    "identity",
    "parse_subscription",
    "subscription_json",
]

MASK: Final = "********"
URL_PATTERN: Final = re.compile(r"https?://[A-Za-z0-9._~-]+(:[0-9]{1,5})?(/[!-~]*)?")
"""A target: http(s), a host name or IPv4 address, an optional port and path."""
_CREDENTIAL: Final = re.compile(r"\S{1,256}")
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")
_RESOURCE_DETAILS: Final = ("all", "minimal", "none")
_MESSAGES: Final = ("all", "text", "html", "markdown", "none")
STATUSES: Final = ("enabled", "onProbation", "disabledByUser", "disabledBySystem", "disabledByInactiveIdentity")
ACTIVE_STATUSES: Final = frozenset({"enabled", "onProbation"})
"""Statuses whose subscription still receives events."""


def collection_id(org: str) -> str:
    """The organisation's (project collection's) id: ``hostId`` and ``resourceContainers.collection.id``."""
    return stable_id(org.lower(), "instance")


def identity(org: str) -> dict[str, Any]:
    """The identity subscriptions are created by: the org's PAT user (as ``connectionData`` names it)."""
    name = f"{org} PAT user"
    return {"displayName": name, "id": stable_id(org.lower(), "identity", name), "uniqueName": name}


def _date(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


@dataclass(frozen=True)
class SubscriptionRequest:
    """A validated create or replace body."""

    publisher_id: str
    event: EventType
    resource_version: str | None
    publisher_inputs: dict[str, str]
    consumer_inputs: dict[str, str]
    status: str | None


@dataclass(eq=False)
class Subscription:
    """A stored subscription; its status and probation count change as deliveries fail or succeed."""

    id: str
    org: str
    publisher_id: str
    event_type: str
    resource_version: str | None
    publisher_inputs: dict[str, str]
    consumer_inputs: dict[str, str]
    created: datetime
    modified: datetime
    status: str = "enabled"
    probation_retries: int = 0
    last_probation_retry: datetime | None = None
    last_notification_id: int = 0
    deleted: bool = False
    notifications: collections.OrderedDict[int, Notification] = field(default_factory=collections.OrderedDict)

    @property
    def active(self) -> bool:
        """Whether events still reach it (not disabled, not deleted)."""
        return self.status in ACTIVE_STATUSES and not self.deleted

    def consumer_input(self, name: str) -> str:
        """A consumer input by name, case-insensitively ('' when absent)."""
        for key, value in self.consumer_inputs.items():
            if key.lower() == name.lower():
                return value
        return ""

    def has_project_filter(self) -> bool:
        return any(k.lower() == "projectid" and v.strip() for k, v in self.publisher_inputs.items())


def _text_map(value: Any, where: str) -> dict[str, str]:
    """Azure's inputs: an object of strings (``null`` values dropped)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AzureError(400, "ArgumentException", f"{where} must be an object of strings")
    out: dict[str, str] = {}
    for key, item in value.items():
        if item is None:
            continue
        if not isinstance(item, str):
            raise AzureError(400, "ArgumentException", f"{where}.{str(key)[:64]} must be a string")
        out[str(key)] = item
    return out


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine (127.0.0.0/8, ::1 or ``localhost``)."""
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:  # not a URL urllib can split: not loopback either
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_consumer_inputs(inputs: dict[str, str], *, http_loopback: bool) -> None:
    url = inputs.get("url", "")
    if not url:
        raise AzureError(400, "ArgumentException", "consumerInputs.url is required")
    if URL_PATTERN.fullmatch(url) is None:
        raise AzureError(400, "ArgumentException", "consumerInputs.url must be an absolute http or https URL")
    for name in ("basicAuthUsername", "basicAuthPassword"):
        value = inputs.get(name, "")
        if value and _CREDENTIAL.fullmatch(value) is None:
            raise AzureError(
                400, "ArgumentException", f"consumerInputs.{name} must be 1 to 256 characters without whitespace"
            )
    secure = url.lower().startswith("https://") or (http_loopback and is_loopback(url))
    if inputs.get("basicAuthPassword") and not secure:
        raise AzureError(
            400,
            "ArgumentException",
            "The supplied URL scheme must be HTTPS when a basic authentication password is provided.",
        )
    for line in inputs.get("httpHeaders", "").splitlines():
        if not line.strip():
            continue
        name, sep, _ = line.partition(":")
        if not sep or _HEADER_NAME.fullmatch(name.strip()) is None:
            raise AzureError(
                400, "ArgumentException", f"consumerInputs.httpHeaders: {line[:80]!r} is not a 'Name: value' line"
            )
    for name, allowed in (
        ("resourceDetailsToSend", _RESOURCE_DETAILS),
        ("messagesToSend", _MESSAGES),
        ("detailedMessagesToSend", _MESSAGES),
    ):
        value = inputs.get(name, "")
        if value and value.lower() not in allowed:
            raise AzureError(400, "ArgumentException", f"consumerInputs.{name} must be one of {', '.join(allowed)}")


def _check_publisher_inputs(inputs: dict[str, str], event: EventType) -> None:
    taken = {i.lower() for i in event.inputs} | {PROJECT_INPUT.lower()} | SERVER_INPUTS
    for name in inputs:
        if name.lower() not in taken:
            accepted = ", ".join((PROJECT_INPUT, *event.inputs))
            raise AzureError(
                400,
                "ServiceHookPublisherInputNotFoundException",
                f"The publisher input {name[:64]!r} is not an input of event type {event.id} (it takes {accepted}).",
            )


def parse_subscription(body: Any, *, http_loopback: bool) -> SubscriptionRequest:
    """Check a create or replace body as Azure does; the first problem is a 400 naming it."""
    if not isinstance(body, Mapping):
        raise AzureError(400, "ArgumentException", "the subscription must be a JSON object")
    publisher_id = body.get("publisherId")
    if not isinstance(publisher_id, str) or publisher_id not in PUBLISHERS:
        known = ", ".join(PUBLISHERS)
        raise AzureError(
            400,
            "ServiceHookPublisherNotFoundException",
            f"No publisher with id {str(publisher_id)[:64]!r} is registered (known: {known}).",
        )
    event_id = body.get("eventType")
    event = event_type(publisher_id, event_id) if isinstance(event_id, str) else None
    if event is None:
        raise AzureError(
            400,
            "ServiceHookEventTypeNotFoundException",
            f"The publisher {publisher_id} has no event type {str(event_id)[:100]!r}.",
        )
    consumer = body.get("consumerId")
    action = body.get("consumerActionId")
    if consumer != CONSUMER_ID or action not in (None, CONSUMER_ACTION_ID):
        raise AzureError(
            400,
            "ServiceHookConsumerNotFoundException",
            f"Only consumer {CONSUMER_ID!r} with action {CONSUMER_ACTION_ID!r} is served here.",
        )
    version = body.get("resourceVersion")
    if version in (None, ""):
        version = None
    elif not isinstance(version, str) or version not in event.resource_versions:
        raise AzureError(
            400,
            "ServiceHookResourceVersionNotSupportedException",
            f"Event type {event.id} supports resource versions {', '.join(event.resource_versions)}, "
            f"not {str(version)[:40]!r}.",
        )
    publisher_inputs = _text_map(body.get("publisherInputs"), "publisherInputs")
    consumer_inputs = _text_map(body.get("consumerInputs"), "consumerInputs")
    _check_publisher_inputs(publisher_inputs, event)
    _check_consumer_inputs(consumer_inputs, http_loopback=http_loopback)
    status = body.get("status")
    if status is not None and status not in STATUSES:
        raise AzureError(400, "ArgumentException", f"status must be one of {', '.join(STATUSES)}")
    return SubscriptionRequest(publisher_id, event, version, publisher_inputs, consumer_inputs, status)


def _description(subscription: Subscription) -> str:
    """``eventDescription``: the filters in words, as Azure's list shows them."""
    shown = [f"{k} = {v}" for k, v in subscription.publisher_inputs.items() if v and k.lower() not in SERVER_INPUTS]
    return ", ".join(shown) if shown else "Any"


def subscription_json(base: str, subscription: Subscription) -> dict[str, Any]:
    """A ``Subscription`` as Azure answers it (confidential inputs masked)."""
    consumer = {k: (MASK if k in CONFIDENTIAL_INPUTS and v else v) for k, v in subscription.consumer_inputs.items()}
    publisher = dict(subscription.publisher_inputs)
    publisher["hostId"] = collection_id(subscription.org)
    if subscription.publisher_id == "tfs":
        publisher["tfsSubscriptionId"] = stable_id("tfs-subscription", subscription.id)
    url = f"{base}/{subscription.org}/_apis/hooks/subscriptions/{subscription.id}"
    creator = identity(subscription.org)
    try:
        host = urlsplit(subscription.consumer_inputs.get("url", "")).hostname or ""
    except ValueError:
        host = ""
    body: dict[str, Any] = {
        "_links": {"self": {"href": url}, "notifications": {"href": f"{url}/notifications"}},
        "id": subscription.id,
        "url": url,
        "status": subscription.status,
        "publisherId": subscription.publisher_id,
        "eventType": subscription.event_type,
        "resourceVersion": subscription.resource_version,
        "eventDescription": _description(subscription),
        "consumerId": CONSUMER_ID,
        "consumerActionId": CONSUMER_ACTION_ID,
        "actionDescription": f"To host {host}",
        "createdBy": creator,
        "createdDate": _date(subscription.created),
        "modifiedBy": creator,
        "modifiedDate": _date(subscription.modified),
        "subscriber": creator,
        "probationRetries": subscription.probation_retries,
        "publisherInputs": publisher,
        "consumerInputs": consumer,
    }
    if subscription.last_probation_retry is not None:
        body["lastProbationRetryDate"] = _date(subscription.last_probation_retry)
    return body


class SubscriptionStore:
    """Every org's subscriptions. Routes (event loop) and the delivery thread share it: one lock."""

    def __init__(self, *, http_loopback: bool = True) -> None:
        self.http_loopback = http_loopback
        self.lock = threading.Lock()
        self._subscriptions: dict[str, Subscription] = {}

    def create(self, org: str, body: Any) -> Subscription:
        request = parse_subscription(body, http_loopback=self.http_loopback)
        now = datetime.now(UTC)
        subscription = Subscription(
            id=str(uuid.uuid4()),
            org=org,
            publisher_id=request.publisher_id,
            event_type=request.event.id,
            resource_version=request.resource_version,
            publisher_inputs=request.publisher_inputs,
            consumer_inputs=request.consumer_inputs,
            created=now,
            modified=now,
        )
        with self.lock:
            self._subscriptions[subscription.id] = subscription
        return subscription

    def replace(self, org: str, subscription_id: str, body: Any) -> Subscription:
        """PUT: new publisher, event, inputs; a masked password keeps the stored one; ``status`` may
        enable (which ends a probation) or disable the subscription."""
        found = self.get(org, subscription_id)
        if isinstance(body, Mapping) and isinstance(body.get("consumerInputs"), Mapping):
            inputs = dict(body["consumerInputs"])
            for name in CONFIDENTIAL_INPUTS:
                if inputs.get(name) == MASK:
                    inputs[name] = found.consumer_inputs.get(name)
            body = {**body, "consumerInputs": inputs}
        request = parse_subscription(body, http_loopback=self.http_loopback)
        with self.lock:
            found.publisher_id = request.publisher_id
            found.event_type = request.event.id
            found.resource_version = request.resource_version
            found.publisher_inputs = request.publisher_inputs
            found.consumer_inputs = request.consumer_inputs
            found.modified = datetime.now(UTC)
            if request.status is not None and request.status != found.status:
                found.status = request.status
                if request.status == "enabled":
                    found.probation_retries = 0
                    found.last_probation_retry = None
        return found

    def get(self, org: str, subscription_id: str) -> Subscription:
        with self.lock:
            found = self._subscriptions.get(subscription_id.lower())
        if found is None or found.org.lower() != org.lower():
            raise AzureError(
                404,
                "ServiceHookSubscriptionNotFoundException",
                f"No subscription with id {subscription_id[:64]} exists.",
            )
        return found

    def delete(self, org: str, subscription_id: str) -> Subscription:
        found = self.get(org, subscription_id)
        with self.lock:
            self._subscriptions.pop(found.id, None)
            found.deleted = True
        return found

    def wants(self, org: str, event_type: str) -> bool:
        """Whether an active subscription of ``org`` takes ``event_type`` (filters aside)."""
        lowered = org.lower()
        with self.lock:
            return any(
                s.event_type == event_type and s.active and s.org.lower() == lowered
                for s in self._subscriptions.values()
            )

    def for_org(self, org: str) -> list[Subscription]:
        with self.lock:
            return [s for s in self._subscriptions.values() if s.org.lower() == org.lower()]

    def listed(
        self,
        org: str,
        *,
        publisher_id: str | None = None,
        event_type: str | None = None,
        consumer_id: str | None = None,
        consumer_action_id: str | None = None,
    ) -> list[Subscription]:
        """The list route's filters (an empty one is no filter); consumers are always webHooks/httpRequest."""
        if consumer_id and consumer_id != CONSUMER_ID:
            return []
        if consumer_action_id and consumer_action_id != CONSUMER_ACTION_ID:
            return []
        return [
            s
            for s in self.for_org(org)
            if (not publisher_id or s.publisher_id == publisher_id) and (not event_type or s.event_type == event_type)
        ]
