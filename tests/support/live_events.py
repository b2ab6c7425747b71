"""Live events as the processor's tests make them: changes made in an emulator whose own service
hooks deliver to a loopback receiver, and what the receiver got stored as received events (the
endpoint's ``store_event``), so the processor works on envelopes of Azure's shape, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tests.emulator.conftest import LiveEmulator
from tests.emulator.hooks.conftest import PROJECT_ID, subscribe
from tests.support.receiver import Receiver
from tests.support.rest import FAST

from kiosk.ingest.events import parse_event
from kiosk.ingest.events_queue import store_event
from kiosk.store.engine import Database
from kiosk.store.queue import utcnow

__all__ = ["BLUEPRINTS", "EVENT_TYPES", "FAST", "HOOKS_SETTINGS", "Hooks", "subscribe_with_basic_auth"]

#: Service hooks retrying on a fast schedule (tests/emulator/hooks/conftest.py's), before an org config.
HOOKS_SETTINGS = "settings:\n  hooks: {retryScale: 0.00001, attemptTimeoutSeconds: 2}\n"


BLUEPRINTS: list[dict[str, Any]] = [
    {
        "identifier": "adoWorkItem",
        "title": "Work item",
        "schema": {"properties": {"state": {"type": "string"}, "rev": {"type": "number"}}},
    },
    {"identifier": "adoPullRequest", "title": "Pull request", "schema": {"properties": {"status": {"type": "string"}}}},
    {"identifier": "adoBuild", "title": "Build", "schema": {"properties": {"result": {"type": "string"}}}},
    {"identifier": "adoRun", "title": "Run", "schema": {"properties": {"state": {"type": "string"}}}},
]

#: Every event type these tests make the emulator raise.
EVENT_TYPES = (
    "workitem.created",
    "workitem.updated",
    "workitem.deleted",
    "workitem.restored",
    "git.pullrequest.created",
    "git.pullrequest.updated",
    "build.complete",
)


def subscribe_with_basic_auth(
    azure: LiveEmulator, url: str, event_types: Iterable[str], user: str, password: str
) -> list[dict[str, Any]]:
    """A subscription to the project's events of each type, delivering to ``url`` with basic auth: how
    an operator points Azure at kiosk's hook endpoint. The subscriptions, in order."""
    return [
        subscribe(
            azure,
            url,
            event_type,
            publisher_inputs={"projectId": PROJECT_ID},
            basicAuthUsername=user,
            basicAuthPassword=password,
        )
        for event_type in event_types
    ]


class Hooks:
    """The emulator's deliveries to a receiver, turned into stored events on demand."""

    def __init__(self, azure: LiveEmulator, receiver: Receiver, db: Database) -> None:
        self.azure = azure
        self.receiver = receiver
        self.db = db
        self.taken = 0

    def change(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Make a change through ``/_emulator/orgs/fabrikam/projects/{web}/…``: its answer."""
        answer = self.azure.client.request(method, f"/_emulator/orgs/fabrikam/projects/{PROJECT_ID}/{path}", json=body)
        assert answer.status_code in (200, 201), answer.text
        return dict(answer.json())

    def envelopes(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` envelopes delivered (waiting for them)."""
        got = self.receiver.wait(self.taken + count)
        fresh = [request.json() for request in got[self.taken : self.taken + count]]
        self.taken += count
        return fresh

    def store(self, envelopes: list[dict[str, Any]], identifier: str = "ado") -> list[int | None]:
        """Store ``envelopes`` as received events of ``identifier`` (None: a redelivery)."""
        with self.db.begin() as conn:
            return [store_event(conn, identifier, parse_event(body), utcnow()) for body in envelopes]

    def deliver(self, count: int) -> list[dict[str, Any]]:
        """Wait for ``count`` envelopes and store them; the envelopes."""
        fresh = self.envelopes(count)
        self.store(fresh)
        return fresh
