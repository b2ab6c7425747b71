"""Service hooks: the emulator's subscriptions API and the events it sends when its runs change state.

Azure DevOps tells the outside world about runs through service-hook subscriptions
(``POST {org}/_apis/hooks/subscriptions``, consumer ``webHooks``/``httpRequest``); kiosk relies on
``ms.vss-pipelines.run-state-changed-event`` to finish an action run without any step in the
pipeline. The emulator implements the same API and sends the same envelopes — with the optional
basic auth and custom headers of the subscription, nothing signed, a ``VSServices`` User-Agent —
so that path is tested end to end. ``build.complete`` (publisher ``tfs``) is sent too.

Events are sent from one background thread in the order they happened, each tried up to three
times; every attempt is kept as a notification (``GET …/subscriptions/{id}/notifications``).
"""

from __future__ import annotations

import base64
import collections
import itertools
import logging
import queue
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import httpx

from kiosk.emulator.errors import AzureError
from kiosk.emulator.models import Run
from kiosk.emulator.shapes import build_json, pipeline_json, run_json

__all__ = ["EVENT_TYPES", "URL_PATTERN", "ServiceHooks", "Subscription", "run_state_event"]

log = logging.getLogger("kiosk.emulator")

RUN_STATE_CHANGED: Final = "ms.vss-pipelines.run-state-changed-event"
BUILD_COMPLETE: Final = "build.complete"
EVENT_TYPES: Final = {RUN_STATE_CHANGED: "pipelines", BUILD_COMPLETE: "tfs"}
"""The events the emulator publishes, with their publisher."""
USER_AGENT: Final = "VSServices/17.153.0 (kiosk emulator)"
URL_PATTERN: Final = re.compile(r"https?://[A-Za-z0-9._~-]+(:[0-9]{1,5})?(/[!-~]*)?")
"""A subscription's target: http(s), a host name or IPv4 address, an optional port and path."""
_ATTEMPTS: Final = 3
_BACKOFF: Final = (0.2, 1.0)


def _date(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


@dataclass(eq=False)
class Subscription:
    id: str
    org: str
    publisher_id: str
    event_type: str
    resource_version: str
    consumer_inputs: dict[str, str]
    publisher_inputs: dict[str, str]
    created: datetime
    notifications: collections.deque[dict[str, Any]] = field(default_factory=lambda: collections.deque(maxlen=100))

    def matches(self, run: Run) -> bool:
        """Azure's publisher filters: project, pipeline / definition, run state and result."""
        inputs = {k.lower(): v for k, v in self.publisher_inputs.items() if v not in (None, "")}
        project = inputs.get("projectid")
        if project is not None and project.lower() not in (run.pipeline.project.id, run.pipeline.project.name.lower()):
            return False
        pipeline = inputs.get("pipelineid") or inputs.get("definitionid")
        if pipeline is not None and pipeline != str(run.pipeline.id):
            return False
        name = inputs.get("definitionname")
        if name is not None and name.lower() != run.pipeline.name.lower():
            return False
        state = inputs.get("runstateid")
        if state is not None and state.lower() != run.state.lower():
            return False
        result = inputs.get("runresultid") or inputs.get("buildstatus")
        return result is None or (run.result or "").lower() == result.lower()

    def json(self, base: str) -> dict[str, Any]:
        shown = dict(self.consumer_inputs)
        if "basicAuthPassword" in shown:
            shown["basicAuthPassword"] = "********"  # Azure never returns it either
        created = _date(self.created)
        return {
            "id": self.id,
            "url": f"{base}/{self.org}/_apis/hooks/subscriptions/{self.id}",
            "status": "enabled",
            "publisherId": self.publisher_id,
            "eventType": self.event_type,
            "resourceVersion": self.resource_version,
            "consumerId": "webHooks",
            "consumerActionId": "httpRequest",
            "publisherInputs": self.publisher_inputs,
            "consumerInputs": shown,
            "createdDate": created,
            "modifiedDate": created,
            "actionDescription": shown.get("url", ""),
        }


def run_state_event(base: str, subscription: Subscription, run: Run, notification_id: int) -> dict[str, Any]:
    """The envelope Azure sends for ``ms.vss-pipelines.run-state-changed-event`` (resource version 5.1-preview.1)."""
    outcome = run.result or run.state
    text = f"Run {run.name} {outcome}." if run.state == "completed" else f"Run {run.name} is {run.state}."
    resource = {"run": run_json(base, run), "pipeline": pipeline_json(base, run.pipeline)}
    return _envelope(
        base, subscription, run, notification_id, RUN_STATE_CHANGED, "pipelines", text, resource, "5.1-preview.1"
    )


def build_complete_event(base: str, subscription: Subscription, run: Run, notification_id: int) -> dict[str, Any]:
    """The envelope of ``build.complete`` (publisher ``tfs``) for a finished run."""
    text = f"Build {run.name} {run.result}"
    return _envelope(
        base, subscription, run, notification_id, BUILD_COMPLETE, "tfs", text, build_json(base, run), "2.0"
    )


def _envelope(
    base: str,
    subscription: Subscription,
    run: Run,
    notification_id: int,
    event_type: str,
    publisher_id: str,
    text: str,
    resource: dict[str, Any],
    default_version: str,
) -> dict[str, Any]:
    """What Azure wraps every service-hook event in; the subscription's resource version wins
    over the event's default."""
    project = run.pipeline.project
    return {
        "subscriptionId": subscription.id,
        "notificationId": notification_id,
        "id": str(uuid.uuid4()),
        "eventType": event_type,
        "publisherId": publisher_id,
        "scope": "all",
        "message": {"text": text, "html": text, "markdown": text},
        "detailedMessage": {"text": text, "html": text, "markdown": text},
        "resource": resource,
        "resourceVersion": subscription.resource_version or default_version,
        "resourceContainers": _containers(base, project.org, project.id),
        "createdDate": _date(datetime.now(UTC)),
    }


def _containers(base: str, org: str, project_id: str) -> dict[str, Any]:
    collection = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"kiosk-emulator:{org}")), "baseUrl": f"{base}/{org}/"}
    return {"collection": collection, "account": collection, "project": {"id": project_id, "baseUrl": f"{base}/{org}/"}}


def _headers(subscription: Subscription) -> dict[str, str]:
    """Basic auth and the subscription's ``httpHeaders`` ("Name:Value" per line, as Azure's UI takes them)."""
    inputs = subscription.consumer_inputs
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
    for line in (inputs.get("httpHeaders") or "").splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip():
            headers[name.strip()] = value.strip()
    user, password = inputs.get("basicAuthUsername"), inputs.get("basicAuthPassword")
    if user or password:
        token = base64.b64encode(f"{user or ''}:{password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return headers


class ServiceHooks:
    """Subscriptions per org, and the thread that sends their events."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url
        self._subscriptions: dict[str, Subscription] = {}
        self._lock = threading.Lock()
        self._outbox: queue.Queue[tuple[Subscription, dict[str, Any]] | None] = queue.Queue()
        self._notification_ids = itertools.count(1)
        self._stopping = threading.Event()
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)
        self._thread = threading.Thread(target=self._send_loop, name="kiosk-emulator-hooks", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- the API

    def create(self, org: str, body: Mapping[str, Any]) -> Subscription:
        """Validate and store a subscription (Azure's body: publisherId, eventType, consumerInputs{url, …})."""
        event_type = str(body.get("eventType") or "")
        publisher = str(body.get("publisherId") or "")
        if event_type not in EVENT_TYPES:
            known = ", ".join(sorted(EVENT_TYPES))
            raise AzureError(
                400,
                "ServiceHookEventTypeNotFoundException",
                f"event type {event_type!r} is not published here ({known})",
            )
        if publisher != EVENT_TYPES[event_type]:
            raise AzureError(
                400,
                "ServiceHookPublisherNotFoundException",
                f"{event_type} is published by {EVENT_TYPES[event_type]!r}, not {publisher!r}",
            )
        if body.get("consumerId") != "webHooks" or body.get("consumerActionId", "httpRequest") != "httpRequest":
            raise AzureError(
                400,
                "ServiceHookConsumerNotFoundException",
                "only consumerId webHooks / consumerActionId httpRequest is supported",
            )
        consumer = body.get("consumerInputs")
        publisher_inputs = body.get("publisherInputs")
        if publisher_inputs is None:  # left out or null: no filter (false, 0, "" are refused below)
            publisher_inputs = {}
        if not isinstance(consumer, Mapping) or not isinstance(publisher_inputs, Mapping):
            raise AzureError(400, "ArgumentException", "consumerInputs and publisherInputs must be objects")
        url = consumer.get("url")
        if not isinstance(url, str) or URL_PATTERN.fullmatch(url) is None:
            raise AzureError(400, "ArgumentException", "consumerInputs.url must be an http(s) URL")
        subscription = Subscription(
            id=str(uuid.uuid4()),
            org=org,
            publisher_id=publisher,
            event_type=event_type,
            resource_version=str(body.get("resourceVersion") or ""),
            consumer_inputs={str(k): str(v) for k, v in consumer.items() if v is not None},
            publisher_inputs={str(k): str(v) for k, v in publisher_inputs.items() if v is not None},
            created=datetime.now(UTC),
        )
        with self._lock:
            self._subscriptions[subscription.id] = subscription
        return subscription

    def for_org(self, org: str) -> list[Subscription]:
        with self._lock:
            return [s for s in self._subscriptions.values() if s.org.lower() == org.lower()]

    def get(self, org: str, subscription_id: str) -> Subscription:
        with self._lock:
            found = self._subscriptions.get(subscription_id)
        if found is None or found.org.lower() != org.lower():
            raise AzureError(
                404, "ServiceHookSubscriptionNotFoundException", f"subscription {subscription_id} not found"
            )
        return found

    def delete(self, org: str, subscription_id: str) -> None:
        found = self.get(org, subscription_id)
        with self._lock:
            self._subscriptions.pop(found.id, None)

    # ---------------------------------------------------------------- events

    def run_changed(self, run: Run) -> None:
        """The emulator's run listener: queue an event for every matching subscription (never blocks)."""
        for subscription in self.for_org(run.pipeline.project.org):
            if subscription.event_type == BUILD_COMPLETE and run.state != "completed":
                continue
            if not subscription.matches(run):
                continue
            builder = run_state_event if subscription.event_type == RUN_STATE_CHANGED else build_complete_event
            self._outbox.put((subscription, builder(self.base_url, subscription, run, next(self._notification_ids))))

    def close(self) -> None:
        """Stop sending: queued events get one attempt each, no retry waits; the client is closed last."""
        self._stopping.set()
        self._outbox.put(None)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._client.close()

    def _send_loop(self) -> None:
        while True:
            item = self._outbox.get()
            if item is None:
                return
            subscription, event = item
            self._deliver(subscription, event)

    def _deliver(self, subscription: Subscription, event: dict[str, Any]) -> None:
        url = subscription.consumer_inputs["url"]
        for attempt in range(1, _ATTEMPTS + 1):
            record: dict[str, Any] = {
                "id": event["notificationId"],
                "eventId": event["id"],
                "eventType": event["eventType"],
                "createdDate": _date(datetime.now(UTC)),
                "attempt": attempt,
            }
            try:
                response = self._client.post(url, json=event, headers=_headers(subscription))
                record.update(status="succeeded" if response.is_success else "failed", statusCode=response.status_code)
            except (httpx.HTTPError, ValueError) as exc:  # ValueError: a host idna refuses (UnicodeError)
                record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            subscription.notifications.append(record)
            if record["status"] == "succeeded":
                return
            if attempt < _ATTEMPTS and self._stopping.wait(_BACKOFF[attempt - 1]):
                return
        log.warning("service hook %s: event %s not delivered to %s", subscription.id, event["id"], url)

    def notifications(self, org: str, subscription_id: str) -> list[dict[str, Any]]:
        return list(self.get(org, subscription_id).notifications)
