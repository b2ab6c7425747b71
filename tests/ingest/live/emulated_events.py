"""The emulator changed through its mutation API, and the events it raised wrapped as a
service-hook subscription receives them: what the event handlers' tests feed the handlers."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any

from tests.emulator.conftest import PAT, LiveEmulator
from tests.ingest.fetch.conftest import FAST_RETRY

from kiosk.azure.rest import AzureDevOpsRest
from kiosk.emulator.hooks.envelopes import envelope
from kiosk.emulator.hooks.subscriptions import Subscription
from kiosk.emulator.org.events import OrgEvent
from kiosk.ingest.fetch.base import FetchContext, Item
from kiosk.ingest.live.model import EventHandler, Refetched
from kiosk.ingest.mapping import ResourceConfig

__all__ = ["ORG", "Azure", "stamped"]

ORG = "fabrikam"


class Azure:
    """The emulator, changed through ``/_emulator/orgs/fabrikam/projects/web/…``, with the events each
    change raised wrapped as a subscription of the project (or of the organisation) receives them."""

    def __init__(self, live: LiveEmulator) -> None:
        self.live = live
        self._events: dict[str, OrgEvent] = {}
        self._lock = threading.Lock()
        live.server.emulator.on_event(self._seen)

    def _seen(self, org: str, event: OrgEvent) -> None:
        with self._lock:
            self._events[event.id] = event

    def change(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[Any, list[OrgEvent]]:
        """The change's answer ``value`` and the events it raised, in order."""
        answer = self.live.client.request(method, f"/_emulator/orgs/{ORG}/projects/web/{path}", json=body)
        assert answer.status_code in (200, 201), answer.text
        with self._lock:
            raised = [self._events[e["id"]] for e in answer.json()["events"]]
        return answer.json()["value"], raised

    def push(self, repository: str, body: dict[str, Any]) -> dict[str, Any]:
        """A push's ``git.push`` envelope, as a project's subscription receives it."""
        _, events = self.change("POST", f"repositories/{repository}/pushes", body)
        (pushed,) = [e for e in events if e.event_type == "git.push"]
        return self.envelope(pushed)

    def commit(self, repository: str, changes: dict[str, str | None]) -> dict[str, Any]:
        """A push of one commit on main (path -> new content, ``None`` deleting the file): its
        ``git.push`` envelope."""
        body = [
            {"path": path, "content": content} if content is not None else {"path": path, "changeType": "delete"}
            for path, content in changes.items()
        ]
        return self.push(repository, {"branch": "main", "changes": body})

    def raised(self, event_id: str) -> OrgEvent:
        """The event of that id the emulator published."""
        with self._lock:
            return self._events[event_id]

    def envelope(self, event: OrgEvent, *, scoped: bool = True) -> dict[str, Any]:
        """``event`` as a subscription with a project filter (``scoped``) or of the whole organisation
        (Azure's trimmed resource) receives it."""
        now = datetime.now(UTC)
        subscription = Subscription(
            id="00000000-0000-0000-0000-000000000001",
            org=ORG,
            publisher_id=event.publisher_id,
            event_type=event.event_type,
            resource_version=None,
            publisher_inputs={"projectId": str(event.project_id)} if scoped else {},
            consumer_inputs={},
            created=now,
            modified=now,
        )
        return envelope(self.live.base_url, ORG, subscription, event, 1)

    def run(self, handler: EventHandler, resource: ResourceConfig, event: dict[str, Any], **context: Any) -> Refetched:
        """``handler`` over a fresh context of the organisation."""

        async def main() -> Refetched:
            url = f"{self.live.base_url}/{ORG}"
            async with AzureDevOpsRest(url, PAT, retry=FAST_RETRY, timeout=10) as rest:
                return await handler(FetchContext(rest, url, **context), resource, event)

        return asyncio.run(main())

    def head(self, repository: str, branch: str = "main") -> str:
        refs = self.live.client.get(f"/{ORG}/web/_apis/git/repositories/{repository}/refs", params={"filter": "heads/"})
        return next(str(r["objectId"]) for r in refs.json()["value"] if r["name"] == f"refs/heads/{branch}")


def stamped(azure: Azure, item: Item) -> Item:
    url = f"{azure.live.base_url}/{ORG}"
    return {**item, "__organizationUrl": url, "__organizationName": url}
