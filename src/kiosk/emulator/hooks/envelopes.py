"""What one subscription receives for one event: Azure's envelope (reference 6.2), trimmed per 6.1.

Every delivery wraps the event's resource with the subscription's id, a ``notificationId`` that
counts up per subscription, the event's own id (the same for every subscription it reaches), the
event type and publisher, the messages, the resource and its version, the containers it lives in
(collection, account and, for an event of a project, the project; each with its ``baseUrl``) and
the event's date.

Trimming follows the subscription's consumer inputs, and Azure's defaults without them: a
subscription with a ``projectId`` filter gets everything; one without (org scope) gets the
resource's identifying keys only and no messages. ``resourceDetailsToSend`` (all, minimal, none),
``messagesToSend`` and ``detailedMessagesToSend`` (all, text, html, markdown, none) override that.
Pure functions.
"""

from __future__ import annotations

import html
from typing import Any, Final

from kiosk.emulator.hooks.subscriptions import Subscription, collection_id
from kiosk.emulator.org.events import OrgEvent

__all__ = ["MINIMAL_KEYS", "envelope", "formatted_message", "trimmed_resource"]

MINIMAL_KEYS: Final = (
    "id",
    "url",
    "webUrl",
    "name",
    "pullRequestId",
    "workItemId",
    "pushId",
    "changesetId",
    "stageName",
    "attemptId",
    "runId",
    "runUrl",
    "approvalId",
)
"""The top-level resource keys a ``minimal`` resource keeps."""


def _date(event: OrgEvent) -> str:
    return event.created.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def formatted_message(text: str, kind: str) -> dict[str, str] | None:
    """``{text, html, markdown}`` (``all``), one of them, or None (``none``)."""
    forms = {"text": text, "html": html.escape(text), "markdown": text}
    if kind == "all":
        return forms
    if kind in forms:
        return {kind: forms[kind]}
    return None


def trimmed_resource(resource: dict[str, Any], details: str) -> dict[str, Any] | None:
    if details == "none":
        return None
    if details == "minimal":
        return {key: resource[key] for key in MINIMAL_KEYS if key in resource}
    return resource


def envelope(base: str, org: str, subscription: Subscription, event: OrgEvent, notification_id: int) -> dict[str, Any]:
    """The JSON ``subscription`` receives for ``event`` (``base``: the emulator's URL)."""
    scoped = subscription.has_project_filter()
    details = (subscription.consumer_input("resourceDetailsToSend") or ("all" if scoped else "minimal")).lower()
    messages = (subscription.consumer_input("messagesToSend") or ("all" if scoped else "none")).lower()
    detailed = (subscription.consumer_input("detailedMessagesToSend") or ("all" if scoped else "none")).lower()
    org_url = f"{base}/{org}/"
    collection = {"id": collection_id(org), "baseUrl": org_url}
    containers: dict[str, Any] = {"collection": collection, "account": dict(collection)}
    if event.project_id is not None:
        containers["project"] = {"id": event.project_id, "baseUrl": org_url}
    resource = trimmed_resource(event.resource, details)
    return {
        "subscriptionId": subscription.id,
        "notificationId": notification_id,
        "id": event.id,
        "eventType": event.event_type,
        "publisherId": event.publisher_id,
        "message": formatted_message(event.message, messages),
        "detailedMessage": formatted_message(event.detailed_message or event.message, detailed),
        "resource": resource,
        "resourceVersion": None if resource is None else event.resource_version,
        "resourceContainers": containers,
        "createdDate": _date(event),
    }
