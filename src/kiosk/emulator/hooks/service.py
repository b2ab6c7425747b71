"""The service hooks of an emulator: subscriptions, the event sink, deliveries — one object.

:class:`ServiceHooks` is registered with ``Emulator.on_event``: every published
:class:`~kiosk.emulator.org.events.OrgEvent` is handed to the delivery thread at once (the sink
never blocks the event loop or the runner), where it is matched against the org's active
subscriptions of its event type; each match gets the next ``notificationId`` of its subscription,
its envelope and a notification record, and joins that subscription's queue.
"""

from __future__ import annotations

import collections
from typing import Any

from kiosk.emulator.errors import AzureError
from kiosk.emulator.hooks.catalogue import CONFIDENTIAL_INPUTS
from kiosk.emulator.hooks.delivery import Deliveries, DeliveryLog
from kiosk.emulator.hooks.envelopes import envelope
from kiosk.emulator.hooks.matching import matches
from kiosk.emulator.hooks.notifications import Notification, notification_json
from kiosk.emulator.hooks.settings import HooksSettings
from kiosk.emulator.hooks.subscriptions import MASK, Subscription, SubscriptionStore, identity, subscription_json
from kiosk.emulator.org.events import OrgEvent

__all__ = ["ServiceHooks"]


class ServiceHooks:
    """Subscriptions per org and the thread that delivers their events."""

    def __init__(self, base_url: str, settings: HooksSettings | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.settings = settings or HooksSettings()
        self.subscriptions = SubscriptionStore(http_loopback=self.settings.allow_http_to_loopback)
        self.log = DeliveryLog(self.settings.retain_deliveries)
        self._deliveries = Deliveries(self.subscriptions, self.settings, self.log)

    # ---------------------------------------------------------------- subscriptions

    def create(self, org: str, body: Any) -> Subscription:
        return self.subscriptions.create(org, body)

    def replace(self, org: str, subscription_id: str, body: Any) -> Subscription:
        return self.subscriptions.replace(org, subscription_id, body)

    def get(self, org: str, subscription_id: str) -> Subscription:
        return self.subscriptions.get(org, subscription_id)

    def delete(self, org: str, subscription_id: str) -> None:
        found = self.subscriptions.delete(org, subscription_id)
        self._deliveries.forget(found.id)

    def wants(self, org: str, event_type: str) -> bool:
        """Whether an ``event_type`` event of ``org`` could reach a subscription (else publishers need not build it)."""
        return self.subscriptions.wants(org, event_type)

    def json(self, subscription: Subscription) -> dict[str, Any]:
        with self.subscriptions.lock:
            return subscription_json(self.base_url, subscription)

    # ---------------------------------------------------------------- notifications

    def notifications(
        self, org: str, subscription_id: str, *, max_results: int | None, status: str | None, result: str | None
    ) -> list[dict[str, Any]]:
        """The subscription's notifications, newest first (optionally by status and result)."""
        found = self.get(org, subscription_id)
        subscriber = identity(found.org)["id"]
        with self.subscriptions.lock:
            listed = list(reversed(found.notifications.values()))
            out = [
                notification_json(n, subscriber)
                for n in listed
                if (status is None or n.status.lower() == status.lower())
                and (result is None or n.result.lower() == result.lower())
            ]
        return out[:max_results] if max_results is not None else out

    def notification(self, org: str, subscription_id: str, notification_id: int) -> dict[str, Any]:
        found = self.get(org, subscription_id)
        subscriber = identity(found.org)["id"]
        with self.subscriptions.lock:
            note = found.notifications.get(notification_id)
            if note is not None:
                return notification_json(note, subscriber)
        raise AzureError(
            404,
            "ServiceHookNotificationNotFoundException",
            f"No notification {notification_id} of subscription {subscription_id[:64]} exists.",
        )

    # ---------------------------------------------------------------- events

    def publish(self, org: str, event: OrgEvent) -> None:
        """The emulator's event sink: pick the subscriptions ``event`` reaches, hand over and return.

        The subscriptions are those active and matching *when the event happens*, as Azure decides
        them: a subscription created a moment later must not receive it, one disabled a moment
        earlier neither. Envelopes, notification records and sending happen on the delivery thread.
        """
        candidates = self.subscriptions.for_org(org)
        with self.subscriptions.lock:  # a PUT may be changing a subscription's inputs
            targets = [
                subscription
                for subscription in candidates
                if subscription.event_type == event.event_type
                and subscription.active
                and matches(subscription.publisher_inputs, event)
            ]
        if targets:
            self._deliveries.call(lambda: self._dispatch(org, event, targets))

    def _dispatch(self, org: str, event: OrgEvent, targets: list[Subscription]) -> None:
        retain = self.settings.retain_notifications
        for subscription in targets:
            with self.subscriptions.lock:
                if not subscription.active:  # disabled (or deleted) since the event happened
                    continue
                subscription.last_notification_id += 1
                number = subscription.last_notification_id
                body = envelope(self.base_url, org, subscription, event, number)
                shown = {
                    k: (MASK if k in CONFIDENTIAL_INPUTS and v else v) for k, v in subscription.consumer_inputs.items()
                }
                note = Notification(
                    id=number,
                    subscription_id=subscription.id,
                    envelope=body,
                    consumer_inputs=shown,
                    publisher_inputs=dict(subscription.publisher_inputs),
                    created=event.created,
                )
                notes: collections.OrderedDict[int, Notification] = subscription.notifications
                notes[number] = note
                while len(notes) > retain:
                    notes.popitem(last=False)
            self._deliveries.enqueue(subscription, note)

    def close(self) -> None:
        """Stop delivering (what is queued is not sent)."""
        self._deliveries.close()
