"""One event sent to one subscription, as Azure reports it (``…/subscriptions/{id}/notifications``).

A notification is created when an event matches a subscription (``queued``, result ``pending``),
and updated by each delivery attempt: ``requestInProgress`` while one is under way, ``completed``
with result ``succeeded`` or ``failed`` once delivery ends. Its details keep the envelope, the
last request and response, the number of attempts and the last request's duration, in the
``Notification`` / ``NotificationDetails`` shape of Microsoft's client.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["Notification", "notification_json"]


def _date(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class Notification:
    id: int
    subscription_id: str
    envelope: dict[str, Any]
    consumer_inputs: dict[str, str]
    """Masked, as the subscription shows them."""
    publisher_inputs: dict[str, str]
    created: datetime
    status: str = "queued"  # queued | processing | requestInProgress | completed
    result: str = "pending"  # pending | succeeded | failed | filtered
    modified: datetime | None = None
    dequeued: datetime | None = None
    processed: datetime | None = None
    completed: datetime | None = None
    attempts: int = 0
    request: str | None = None
    response: str | None = None
    error_message: str | None = None
    duration: float | None = None

    def started(self, request: str) -> None:
        """An attempt begins (``request``: the request as Azure's details show it)."""
        now = _now()
        self.status = "requestInProgress"
        self.dequeued = self.dequeued or now
        self.modified = now
        self.attempts += 1
        self.request = request

    def attempted(self, response: str | None, error: str | None, duration: float) -> None:
        now = _now()
        self.processed = now
        self.modified = now
        self.response = response
        self.error_message = error
        self.duration = duration
        self.status = "processing"

    def finished(self, succeeded: bool, error: str | None = None) -> None:
        now = _now()
        self.status = "completed"
        self.result = "succeeded" if succeeded else "failed"
        self.completed = now
        self.modified = now
        if error is not None:
            self.error_message = error


def notification_json(notification: Notification, subscriber_id: str) -> dict[str, Any]:
    envelope = notification.envelope
    return {
        "id": notification.id,
        "subscriptionId": notification.subscription_id,
        "subscriberId": subscriber_id,
        "eventId": envelope.get("id"),
        "status": notification.status,
        "result": notification.result,
        "createdDate": _date(notification.created),
        "modifiedDate": _date(notification.modified or notification.created),
        "details": {
            "publisherId": envelope.get("publisherId"),
            "eventType": envelope.get("eventType"),
            "consumerId": "webHooks",
            "consumerActionId": "httpRequest",
            "publisherInputs": notification.publisher_inputs,
            "consumerInputs": notification.consumer_inputs,
            "event": envelope,
            "queuedDate": _date(notification.created),
            "dequeuedDate": _date(notification.dequeued),
            "processedDate": _date(notification.processed),
            "completedDate": _date(notification.completed),
            "requestAttempts": notification.attempts,
            "requestDuration": notification.duration,
            "request": notification.request,
            "response": notification.response,
            "errorMessage": notification.error_message,
            "errorDetail": None,
        },
    }
