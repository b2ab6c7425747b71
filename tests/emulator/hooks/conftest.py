"""An emulator whose service hooks retry on a fast schedule, a loopback receiver, and helpers to
subscribe and to publish org events as the org's mutations do (``Emulator.publish``)."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
import pytest
from tests.emulator.conftest import CONFIG, EmulatorFactory, LiveEmulator
from tests.support.receiver import Receiver, answer_lifespan, read_body
from tests.support.servers import serving

from kiosk.emulator.models import stable_id
from kiosk.emulator.org.events import OrgEvent

#: Azure's schedule times 0.00001: transient retries after 10 µs … 0.6 ms, probation 12 ms … 0.54 s.
HOOKS_CONFIG = "settings:\n  hooks: {retryScale: 0.00001, attemptTimeoutSeconds: 2}\n" + CONFIG
SUBSCRIPTIONS = "/fabrikam/_apis/hooks/subscriptions?api-version=7.1"
PROJECT_ID = stable_id("fabrikam", "web")
"""The configured project ``web``'s id."""


@pytest.fixture
def hooked(start_emulator: EmulatorFactory) -> LiveEmulator:
    """An emulator (runs executed) with the fast retry schedule."""
    return start_emulator(config=HOOKS_CONFIG)


@pytest.fixture
def receiver() -> Iterator[tuple[str, Receiver]]:
    """A loopback receiver: ``(url, receiver)``; it answers 200 unless scripted."""
    rec = Receiver()
    with serving(rec) as base:
        yield base + "/hook", rec


def subscription_body(
    url: str,
    event_type: str = "git.push",
    publisher_id: str = "tfs",
    *,
    publisher_inputs: dict[str, str] | None = None,
    **consumer_inputs: str,
) -> dict[str, Any]:
    return {
        "publisherId": publisher_id,
        "eventType": event_type,
        "consumerId": "webHooks",
        "consumerActionId": "httpRequest",
        "publisherInputs": publisher_inputs or {},
        "consumerInputs": {"url": url, **consumer_inputs},
    }


def subscribe(
    emulator: LiveEmulator,
    url: str,
    event_type: str = "git.push",
    publisher_id: str = "tfs",
    *,
    publisher_inputs: dict[str, str] | None = None,
    **consumer_inputs: str,
) -> dict[str, Any]:
    body = subscription_body(url, event_type, publisher_id, publisher_inputs=publisher_inputs, **consumer_inputs)
    response = emulator.client.post(SUBSCRIPTIONS, json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def hooks_client(emulator: LiveEmulator) -> Any:
    """Microsoft's ServiceHooksClient (v7_1) for fabrikam."""
    return emulator.sdk_client("azure.devops.v7_1.service_hooks.ServiceHooksClient")


#: Two extra headers as the subscription form takes them: one ``Name: value`` a line, the space after the
#: colon optional, a trailing newline allowed.
EXTRA_HEADERS = "X-Extra: yes\nX-Other:2\n"


def subscribe_with_basic_auth_and_headers(
    emulator: LiveEmulator, url: str, user: str, password: str, event_type: str = "git.push", publisher_id: str = "tfs"
) -> dict[str, Any]:
    """A subscription to ``PROJECT_ID``'s events with every optional request input set: basic auth and
    :data:`EXTRA_HEADERS` (what :func:`assert_basic_auth_and_headers` checks a delivery for)."""
    return subscribe(
        emulator,
        url,
        event_type,
        publisher_id,
        publisher_inputs={"projectId": PROJECT_ID},
        basicAuthUsername=user,
        basicAuthPassword=password,
        httpHeaders=EXTRA_HEADERS,
    )


def assert_basic_auth_and_headers(headers: Mapping[str, str], user: str, password: str) -> None:
    """A delivery's request headers (lower-case names) carry Azure's user agent, the subscription's basic
    auth and both :data:`EXTRA_HEADERS`."""
    assert headers["authorization"] == "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    assert headers["user-agent"].startswith("VSServices")
    assert (headers["x-extra"], headers["x-other"]) == ("yes", "2")


def org_event(
    event_type: str = "git.push",
    publisher_id: str = "tfs",
    *,
    resource: dict[str, Any] | None = None,
    project_id: str | None = PROJECT_ID,
    filters: dict[str, tuple[str, ...]] | None = None,
    message: str = "Jamal pushed 1 commit to main",
    detailed_message: str = "",
    resource_version: str = "1.0",
) -> OrgEvent:
    return OrgEvent(
        event_type=event_type,
        publisher_id=publisher_id,
        resource_version=resource_version,
        resource=resource if resource is not None else {"pushId": 7, "url": "http://x/push/7", "refUpdates": []},
        project_id=project_id,
        message=message,
        detailed_message=detailed_message,
        filters=filters or {},
    )


def publish(emulator: LiveEmulator, event: OrgEvent, org: str = "fabrikam") -> None:
    emulator.server.emulator.publish(org, event)


class HeldReceiver:
    """A target that takes requests and answers none until :attr:`release` is set (then 200)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def arrived(self) -> int:
        with self._lock:
            return len(self.bodies)

    def wait_for(self, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while self.arrived() < count:
            assert time.monotonic() < deadline, f"{self.arrived()} of {count} requests arrived"
            time.sleep(0.01)
        with self._lock:
            return list(self.bodies)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await answer_lifespan(scope, receive, send):
            return
        body = await read_body(receive)
        with self._lock:
            self.bodies.append(orjson.loads(body))
        released = await asyncio.to_thread(self.release.wait, 60)
        status = 200 if released else 503
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def held() -> Iterator[tuple[str, HeldReceiver]]:
    target = HeldReceiver()
    with serving(target) as base:
        try:
            yield base + "/held", target
        finally:
            target.release.set()
