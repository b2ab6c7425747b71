"""Prometheus metrics: request counts and latencies per route template (not per raw path,
which would explode cardinality with entity identifiers).

A request whose client went away before its answer was sent (mid-body, typically) is not a
server error: it is counted apart, as a client abort, and logged as one line — not as a 500 with
a traceback, which 100 aborted uploads used to turn into 0.5 MB of stderr.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("kiosk.web")

_Read = TypeVar("_Read")

if TYPE_CHECKING:
    from kiosk.runtime.integrations import RunnerSnapshot


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "kiosk_http_requests_total",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "kiosk_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.client_aborts = Counter(
            "kiosk_http_client_aborts_total",
            "Requests whose client went away before the answer was sent (not counted as answered)",
            ["method", "route"],
            registry=self.registry,
        )
        self.bulk_entities = Counter(
            "kiosk_bulk_entities_total", "Entities received by bulk calls", ["outcome"], registry=self.registry
        )
        self.resyncs = Counter(
            "kiosk_integration_resyncs_total",
            "Integration resyncs this process ended, by final status (completed, failed, aborted)",
            ["integration", "status"],
            registry=self.registry,
        )

        # Live events of the integrations (kiosk.web.routes.integration_hooks): counted here, as
        # duplicates and refusals leave no row in the database.
        self.integration_events = IntegrationEventCounts()
        self.registry.register(self.integration_events)

    def watch_integration_events(self, stored: Callable[[], Mapping[str, Mapping[str, int]]]) -> None:
        """Report the integrations' stored live events by state (``stored()``: per integration, per
        state; the job rows every process shares) at each scrape."""
        self.registry.register(StoredEventsCollector(stored))

    def watch_event_processing(self, snapshot: Callable[[], Mapping[str, Mapping[str, float]]]) -> None:
        """Report the integrations' live-event processing from ``snapshot()`` (per integration:
        ``processed``, ``skipped``, ``failed``, ``retried`` by this process, ``lagSeconds`` from the
        database) at each scrape."""
        self.registry.register(EventProcessingCollector(snapshot))

    def watch_integrations(self, snapshot: Callable[[], Sequence[RunnerSnapshot]]) -> None:
        """Report every integration's latest resync from ``snapshot`` (the saved state, shared by
        every process) at each scrape."""
        self.registry.register(IntegrationCollector(snapshot))


class _ReadAtScrape(Collector, Generic[_Read]):
    """A collector whose values are read when Prometheus scrapes (``read()``), not kept here: it
    describes nothing at registration, so registering it never calls ``read``."""

    def __init__(self, read: Callable[[], _Read]) -> None:
        self._read = read

    def describe(self) -> list[Metric]:
        return []


class IntegrationCollector(_ReadAtScrape[Sequence["RunnerSnapshot"]]):
    """Per integration, from its saved resync state: running (0/1), the last resync's duration and
    end time, and its entities by kind and outcome (``written`` = created + updated, ``unchanged``,
    ``failed``) and deleted (per integration: the delete phase is per organisation, not per kind).

    Read at scrape time, so a resync run by another process shows too.
    """

    def collect(self) -> Iterator[Metric]:
        running = GaugeMetricFamily(
            "kiosk_integration_resync_running", "1 while a resync of the integration runs", labels=["integration"]
        )
        duration = GaugeMetricFamily(
            "kiosk_integration_last_resync_duration_seconds",
            "Duration of the integration's last finished resync",
            labels=["integration", "status"],
        )
        ended = GaugeMetricFamily(
            "kiosk_integration_last_resync_end_timestamp_seconds",
            "When the integration's last resync ended (Unix time)",
            labels=["integration", "status"],
        )
        entities = GaugeMetricFamily(
            "kiosk_integration_last_resync_entities",
            "Entities of the integration's latest resync, by kind and outcome",
            labels=["integration", "kind", "outcome"],
        )
        deleted = GaugeMetricFamily(
            "kiosk_integration_last_resync_deleted_entities",
            "Entities the integration's latest resync deleted",
            labels=["integration"],
        )
        for item in self._read():
            running.add_metric([item.identifier], 1.0 if item.running else 0.0)
            state = item.state
            if state is None:
                continue
            if state.started_at is not None and state.finished_at is not None:
                seconds = (state.finished_at - state.started_at).total_seconds()
                duration.add_metric([item.identifier, state.status], seconds)
                ended.add_metric([item.identifier, state.status], state.finished_at.timestamp())
            by_kind: dict[str, dict[str, int]] = {}
            for org in state.organizations:
                for resource in org.resources:
                    counts = by_kind.setdefault(resource.kind, {"written": 0, "unchanged": 0, "failed": 0})
                    counts["written"] += resource.created + resource.updated
                    counts["unchanged"] += resource.unchanged
                    counts["failed"] += resource.failed
            for kind, counts in by_kind.items():
                for outcome, value in counts.items():
                    entities.add_metric([item.identifier, kind, outcome], float(value))
            deleted.add_metric([item.identifier], float(state.totals()["deleted"]))
        yield from (running, duration, ended, entities, deleted)


class IntegrationEventCounts(Collector):
    """Per integration, the live events this process received: ``stored``, ``duplicate`` (a
    redelivery recognised, nothing stored) and refused by reason (``auth``: missing or wrong
    credentials, ``no_secret``: the integration has no webhookSecret, ``malformed``: not a JSON
    object, too deep, or a service-hook field missing). A body over the size limit is refused
    before the route and shows only in ``kiosk_http_requests_total``.

    Plain counters behind a lock rather than prometheus Counters: the events API reads them back
    (``receivedByThisProcess``), which prometheus' client offers no public way to do.
    """

    OUTCOMES = ("stored", "duplicate")
    REASONS = ("auth", "no_secret", "malformed")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: dict[tuple[str, str], int] = {}
        self._refused: dict[tuple[str, str], int] = {}

    def received(self, integration: str, outcome: str) -> None:
        with self._lock:
            self._received[(integration, outcome)] = self._received.get((integration, outcome), 0) + 1

    def refused(self, integration: str, reason: str) -> None:
        with self._lock:
            self._refused[(integration, reason)] = self._refused.get((integration, reason), 0) + 1

    def counts(self, integration: str) -> dict[str, Any]:
        """``{stored, duplicates, refused: {reason: n}}`` of ``integration`` (zeros included)."""
        with self._lock:
            return {
                "stored": self._received.get((integration, "stored"), 0),
                "duplicates": self._received.get((integration, "duplicate"), 0),
                "refused": {reason: self._refused.get((integration, reason), 0) for reason in self.REASONS},
            }

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        received = CounterMetricFamily(
            "kiosk_integration_events_received",
            "Live events the integration's endpoint accepted, by outcome (stored, duplicate)",
            labels=["integration", "outcome"],
        )
        refused = CounterMetricFamily(
            "kiosk_integration_events_refused",
            "Live events the integration's endpoint refused, by reason (auth, no_secret, malformed)",
            labels=["integration", "reason"],
        )
        with self._lock:
            received_now, refused_now = dict(self._received), dict(self._refused)
        for (integration, outcome), value in sorted(received_now.items()):
            received.add_metric([integration, outcome], float(value))
        for (integration, reason), value in sorted(refused_now.items()):
            refused.add_metric([integration, reason], float(value))
        yield from (received, refused)


class StoredEventsCollector(_ReadAtScrape[Mapping[str, Mapping[str, int]]]):
    """Per integration, its live events kept in the database by state (pending, processing,
    processed, failed): read at scrape time, so the events every process stored show."""

    def collect(self) -> Iterator[Metric]:
        events = GaugeMetricFamily(
            "kiosk_integration_events",
            "Live events of the integration kept in the database, by state",
            labels=["integration", "state"],
        )
        for integration, by_state in sorted(self._read().items()):
            for state, value in by_state.items():
                events.add_metric([integration, state], float(value))
        yield events


class EventProcessingCollector(_ReadAtScrape[Mapping[str, Mapping[str, float]]]):
    """Per integration, its live events processed, skipped, failed and retried by this process's
    processor since it started, and the lag: seconds since its oldest unprocessed event arrived."""

    OUTCOMES = ("processed", "skipped", "failed", "retried")

    def collect(self) -> Iterator[Metric]:
        handled = CounterMetricFamily(
            "kiosk_integration_events_handled",
            "Live events this process's processor handled, by outcome (processed, skipped, failed, retried)",
            labels=["integration", "outcome"],
        )
        lag = GaugeMetricFamily(
            "kiosk_integration_events_lag_seconds",
            "Seconds since the integration's oldest event not yet processed arrived (0: none waiting)",
            labels=["integration"],
        )
        for integration, values in sorted(self._read().items()):
            for outcome in self.OUTCOMES:
                handled.add_metric([integration, outcome], float(values.get(outcome, 0)))
            lag.add_metric([integration], float(values.get("lagSeconds", 0)))
        yield from (handled, lag)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        answered = gone = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True
            await send(message)

        async def receive_wrapper() -> Message:
            nonlocal gone
            message = await receive()
            if message["type"] == "http.disconnect":
                gone = True
            return message

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except ClientDisconnect:
            gone = True  # Starlette's word for it while reading the body; nobody is left to answer
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            method = scope.get("method", "")
            if gone and not answered:
                self.metrics.client_aborts.labels(method, template).inc()
                log.info("client went away before the answer", extra={"method": method, "route": template})
            else:
                self.metrics.requests.labels(method, template, str(status)).inc()
                self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)
