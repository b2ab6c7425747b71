"""Delivering envelopes as Azure does (reference 6.1): one POST per notification, Azure's retries,
the subscription's status moved by what the target answers, and every attempt recorded.

One request per attempt: the envelope as compact JSON, ``Content-Type: application/json;
charset=utf-8``, a ``VSServices`` User-Agent, the subscription's extra headers, and basic auth
only when a user name or password is set. A 2xx is success. Then, as Azure:

- **410 Gone**: the subscription is ``disabledBySystem`` at once;
- **transient** (408, 502, 503, 504, a connection error or a timeout): retried after 1, 2, 4, 8,
  16, 32, 60 and 60 s; still failing, it counts as enduring;
- **enduring** (anything else): the subscription goes ``onProbation`` and the notification is
  retried after 20 min, 40 min, 1 h 20, 2 h 40, 5 h 20, 10 h 40 and 15 h; a success ends the
  probation (``enabled``), the seventh failure disables the subscription (``disabledBySystem``),
  and what was queued behind it is not sent.

The schedule is multiplied by ``settings.hooks.retryScale`` so tests run it in seconds.

Deliveries run on their own thread and event loop, one task per subscription: a subscription's
events go out in order (the next waits for the previous, retries included), while a slow or
dead target holds up only its own subscription — every other one proceeds, and no attempt lasts
longer than ``attemptTimeoutSeconds``. Every attempt is kept (bounded) for
``GET /_emulator/hooks/deliveries``, with the Authorization header masked.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx
import orjson

from kiosk.emulator.hooks.notifications import Notification
from kiosk.emulator.hooks.settings import HooksSettings
from kiosk.emulator.hooks.subscriptions import Subscription, SubscriptionStore

__all__ = [
    "PROBATION_DELAYS",
    "TRANSIENT_DELAYS",
    "TRANSIENT_STATUSES",
    "USER_AGENT",
    "Attempt",
    "Deliveries",
    "DeliveryLog",
    "attempt_json",
    "request_headers",
]

log = logging.getLogger("kiosk.emulator")

USER_AGENT: Final = "VSServices/17.153.0 (kiosk emulator)"
TRANSIENT_STATUSES: Final = frozenset({408, 502, 503, 504})
TRANSIENT_DELAYS: Final = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0)
"""Seconds before each retry of a transient failure."""
PROBATION_DELAYS: Final = (1200.0, 2400.0, 4800.0, 9600.0, 19200.0, 38400.0, 54000.0)
"""Seconds before each probation retry (20 min … 15 h)."""
_MASKED_AUTH: Final = "Basic ********"
_RESPONSE_KEPT: Final = 4096


def request_headers(subscription: Subscription) -> dict[str, str]:
    """The headers of a delivery: JSON, Azure's User-Agent, the extra ``httpHeaders``, then basic auth."""
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
    for line in subscription.consumer_input("httpHeaders").splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip():
            headers[name.strip()] = value.strip()
    user, password = (
        subscription.consumer_input("basicAuthUsername").strip(),
        subscription.consumer_input("basicAuthPassword").strip(),
    )
    if user or password:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return headers


def _masked(headers: dict[str, str]) -> dict[str, str]:
    return {k: (_MASKED_AUTH if k.lower() == "authorization" else v) for k, v in headers.items()}


def _date(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt, as ``GET /_emulator/hooks/deliveries`` shows it."""

    id: int
    org: str
    subscription_id: str
    notification_id: int
    event_id: str
    event_type: str
    attempt: int
    url: str
    headers: dict[str, str]
    body: str
    succeeded: bool
    response_status: int | None
    response_body: str | None
    error: str | None
    duration_ms: float
    at: datetime
    subscription_status: str
    next_attempt_seconds: float | None


def attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "date": _date(attempt.at),
        "org": attempt.org,
        "subscriptionId": attempt.subscription_id,
        "notificationId": attempt.notification_id,
        "eventId": attempt.event_id,
        "eventType": attempt.event_type,
        "attempt": attempt.attempt,
        "status": "succeeded" if attempt.succeeded else "failed",
        "request": {"method": "POST", "url": attempt.url, "headers": attempt.headers, "body": attempt.body},
        "response": None
        if attempt.response_status is None
        else {"status": attempt.response_status, "body": attempt.response_body},
        "error": attempt.error,
        "durationMs": round(attempt.duration_ms, 3),
        "subscriptionStatus": attempt.subscription_status,
        "nextAttemptInSeconds": attempt.next_attempt_seconds,
    }


class DeliveryLog:
    """The last ``retain`` attempts of every org, newest last."""

    def __init__(self, retain: int) -> None:
        self._attempts: collections.deque[Attempt] = collections.deque(maxlen=retain)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def add(self, attempt: Attempt) -> None:
        with self._lock:
            self._attempts.append(attempt)

    def query(
        self,
        *,
        orgs: frozenset[str] | None,
        org: str | None = None,
        subscription_id: str | None = None,
        event_type: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[Attempt]:
        """Newest first; ``orgs`` (lower-cased) limits to the caller's orgs (None: all)."""
        with self._lock:
            attempts = list(self._attempts)
        out: list[Attempt] = []
        for attempt in reversed(attempts):
            lowered = attempt.org.lower()
            if orgs is not None and lowered not in orgs:
                continue
            if org is not None and lowered != org.lower():
                continue
            if subscription_id is not None and attempt.subscription_id != subscription_id.lower():
                continue
            if event_type is not None and attempt.event_type != event_type:
                continue
            if status is not None and ("succeeded" if attempt.succeeded else "failed") != status.lower():
                continue
            out.append(attempt)
            if len(out) >= limit:
                break
        return out


@dataclass
class _Outcome:
    status: int | None
    response: str | None
    error: str | None
    transient: bool
    duration: float

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Deliveries:
    """The delivery thread: one asyncio loop, one worker task per subscription with work queued."""

    def __init__(self, store: SubscriptionStore, settings: HooksSettings, log_: DeliveryLog) -> None:
        self.store = store
        self.settings = settings
        self.log = log_
        self._queues: dict[str, asyncio.Queue[Notification]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kiosk-emulator-hooks", daemon=True)
        self._thread.start()
        self._ready.wait()

    # ------------------------------------------------------------ from any thread

    def call(self, function: Callable[[], None]) -> None:
        """Run ``function`` on the delivery loop, after everything handed over before it."""
        if not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed between the check and the call: shutting down
                self._loop.call_soon_threadsafe(function)

    def enqueue(self, subscription: Subscription, notification: Notification) -> None:
        """(On the delivery loop) queue ``notification`` behind the subscription's earlier ones."""
        queue = self._queues.get(subscription.id)
        if queue is None:
            queue = self._queues[subscription.id] = asyncio.Queue()
            self._workers[subscription.id] = self._loop.create_task(self._work(subscription, queue))
        queue.put_nowait(notification)

    def forget(self, subscription_id: str) -> None:
        """A deleted subscription: stop its worker, drop what it had queued."""

        def stop() -> None:
            worker = self._workers.pop(subscription_id, None)
            self._queues.pop(subscription_id, None)
            if worker is not None:
                worker.cancel()

        self.call(stop)

    def close(self) -> None:
        """Stop: every worker cancelled (queued notifications are not sent), the client closed."""
        if self._loop.is_closed():
            return

        async def shutdown() -> None:
            for worker in self._workers.values():
                worker.cancel()
            await asyncio.gather(*self._workers.values(), return_exceptions=True)
            self._loop.stop()

        self._loop.call_soon_threadsafe(lambda: self._loop.create_task(shutdown()))
        self._thread.join(timeout=10)

    # ------------------------------------------------------------ on the delivery loop

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._ready.set)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _work(self, subscription: Subscription, queue: asyncio.Queue[Notification]) -> None:
        # A client of the subscription's own: it sends one notification at a time (as Azure
        # does per subscription), so one kept-alive connection serves it. One client shared by
        # every subscription cost the delivery thread most of its time in the pool's bookkeeping
        # (each request start and end walks every connection and waiting request: at 200
        # notifications/s over 160 subscriptions, a third of the emulator's CPU).
        async with httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(self.settings.attempt_timeout_seconds),
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
        ) as client:
            while True:
                notification = await queue.get()
                try:
                    await self._deliver(client, subscription, notification)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a bug here must not end the subscription's deliveries
                    log.exception("service hook delivery failed", extra={"subscription": subscription.id})
                    with self.store.lock:
                        notification.finished(False, "the emulator failed to deliver this notification")

    async def _send(self, client: httpx.AsyncClient, url: str, headers: dict[str, str], body: bytes) -> _Outcome:
        started = time.perf_counter()
        try:
            async with (
                asyncio.timeout(self.settings.attempt_timeout_seconds),
                client.stream("POST", url, content=body, headers=headers) as response,
            ):
                kept = b""
                async for chunk in response.aiter_bytes():  # a reply is kept in part, never read whole
                    kept += chunk
                    if len(kept) >= _RESPONSE_KEPT:
                        break
        except (TimeoutError, httpx.TimeoutException):
            elapsed = time.perf_counter() - started
            limit = self.settings.attempt_timeout_seconds
            return _Outcome(None, None, f"timed out after {limit:g} s", True, elapsed)
        except httpx.TransportError as exc:
            return _Outcome(None, None, f"{type(exc).__name__}: {exc}", True, time.perf_counter() - started)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:  # ValueError: a host idna refuses
            return _Outcome(None, None, f"{type(exc).__name__}: {exc}", False, time.perf_counter() - started)
        elapsed = time.perf_counter() - started
        text = kept[:_RESPONSE_KEPT].decode("utf-8", "replace")
        return _Outcome(response.status_code, text, None, response.status_code in TRANSIENT_STATUSES, elapsed)

    async def _deliver(self, client: httpx.AsyncClient, subscription: Subscription, notification: Notification) -> None:
        """Attempt until success, a 410, exhausted retries, or a disabled subscription."""
        transient_retries = 0
        body = orjson.dumps(notification.envelope)
        while True:
            if not subscription.active:
                state = "deleted" if subscription.deleted else subscription.status
                with self.store.lock:
                    notification.finished(False, f"not sent: the subscription is {state}")
                return
            url = subscription.consumer_input("url")
            headers = request_headers(subscription)
            on_probation = subscription.status == "onProbation"
            shown = _masked(headers)
            request = f"POST {url}\n" + "".join(f"{k}: {v}\n" for k, v in shown.items()) + "\n" + body.decode()
            with self.store.lock:  # the routes read notifications under the same lock
                notification.started(request)
            outcome = await self._send(client, url, headers, body)
            response = None if outcome.status is None else f"{outcome.status}\n{outcome.response or ''}"
            with self.store.lock:
                notification.attempted(response, outcome.error, outcome.duration)
            retry_transient = outcome.transient and not on_probation and transient_retries < len(TRANSIENT_DELAYS)
            wait = TRANSIENT_DELAYS[transient_retries] if retry_transient else None
            delay = self._next(subscription, outcome, on_probation, wait)
            transient_retries += 1 if retry_transient else 0
            self._record(subscription, notification, url, shown, body, outcome, delay)
            if delay is None:
                error = None if outcome.succeeded else (outcome.error or f"HTTP {outcome.status}")
                with self.store.lock:
                    notification.finished(outcome.succeeded, error)
                return
            await asyncio.sleep(delay * self.settings.retry_scale)

    def _next(
        self, subscription: Subscription, outcome: _Outcome, on_probation: bool, transient_delay: float | None
    ) -> float | None:
        """Move the subscription's status for ``outcome``; the seconds until the next attempt (None: no more).

        ``transient_delay``: the wait before the next transient retry, None when none is left (or on probation).
        """
        with self.store.lock:
            if on_probation:
                subscription.last_probation_retry = datetime.now(UTC)
            if outcome.succeeded:
                if subscription.status == "onProbation":
                    subscription.status = "enabled"
                    subscription.probation_retries = 0
                return None
            if outcome.status == 410:
                subscription.status = "disabledBySystem"
                return None
            if not subscription.active:  # disabled meanwhile (by its owner, or deleted)
                return None
            if transient_delay is not None:
                return transient_delay
            if not on_probation:
                subscription.status = "onProbation"
                subscription.probation_retries = 0
                return PROBATION_DELAYS[0]
            subscription.probation_retries += 1
            if subscription.probation_retries >= len(PROBATION_DELAYS):
                subscription.status = "disabledBySystem"
                return None
            return PROBATION_DELAYS[subscription.probation_retries]

    def _record(
        self,
        subscription: Subscription,
        notification: Notification,
        url: str,
        headers: dict[str, str],
        body: bytes,
        outcome: _Outcome,
        delay: float | None,
    ) -> None:
        self.log.add(
            Attempt(
                id=self.log.next_id(),
                org=subscription.org,
                subscription_id=subscription.id,
                notification_id=notification.id,
                event_id=str(notification.envelope.get("id")),
                event_type=str(notification.envelope.get("eventType")),
                attempt=notification.attempts,
                url=url,
                headers=headers,
                body=body.decode(),
                succeeded=outcome.succeeded,
                response_status=outcome.status,
                response_body=outcome.response,
                error=outcome.error,
                duration_ms=outcome.duration * 1000,
                at=datetime.now(UTC),
                subscription_status=subscription.status,
                next_attempt_seconds=None if delay is None else delay * self.settings.retry_scale,
            )
        )
