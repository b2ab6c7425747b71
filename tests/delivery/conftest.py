"""Fixtures for the delivery tests: a receiver on loopback, fast configs, a worker and a driver."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from tests.support.deliveries import new_delivery
from tests.support.receiver import Receiver
from tests.support.servers import serving

from kiosk.delivery.config import DeliveryConfig, EgressConfig
from kiosk.delivery.outbox import Signing, get_delivery
from kiosk.delivery.worker import DeliveryWorker, FinalOutcome
from kiosk.store import Database
from kiosk.store.tables import deliveries

SECRET = "kiosk-test-signing-secret-9f3c"
AZURE_SECRET = "azure-org-secret-77aa"
SECRETS = {"webhook": SECRET, "azureDevOps:myorg": AZURE_SECRET}

#: A schedule of a few milliseconds so retries take no time; no jitter so timings are exact.
FAST = DeliveryConfig(timeoutSeconds=2, retrySchedule=[0.005, 0.01, 0.02], jitter=0, workers=2)
LOOPBACK = EgressConfig(allowLoopback=True)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    """A receiver answering 200 until told otherwise, and its base URL."""
    app = Receiver()
    with serving(app) as url:
        yield app, url


class Harness:
    """A worker on ``db`` and helpers to create deliveries and drive them to a final state."""

    def __init__(self, db: Database, config: DeliveryConfig = FAST, egress: EgressConfig = LOOPBACK, **kw: Any):
        self.db = db
        self.finals: list[FinalOutcome] = []
        self.worker = DeliveryWorker(db, config, egress, SECRETS.get, on_final=self.finals.append, **kw)

    def create(
        self,
        url: str,
        *,
        body: bytes = b'{"hello":"world"}',
        signing: Signing | None = None,
        headers: dict[str, str] | None = None,
        run_id: str | None = "r_1",
    ) -> str:
        with self.db.begin() as conn:
            return new_delivery(conn, url, body=body, signing=signing, headers=headers, run_id=run_id)

    def status(self, delivery_id: str) -> str:
        with self.db.connect() as conn:
            return str(conn.execute(sa.select(deliveries.c.status).where(deliveries.c.id == delivery_id)).scalar())

    def drive(self, delivery_id: str, *, timeout: float = 15.0, between: Callable[[], None] | None = None) -> str:
        """run_once until the delivery is delivered or dead; its final status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.worker.run_once()
            status = self.status(delivery_id)
            if status in ("delivered", "dead"):
                return status
            if between is not None:
                between()
            time.sleep(0.005)
        raise AssertionError(f"delivery {delivery_id} still {self.status(delivery_id)} after {timeout}s")

    def detail(self, delivery_id: str) -> Any:
        with self.db.connect() as conn:
            found = get_delivery(conn, delivery_id)
        assert found is not None
        return found


@pytest.fixture
def harness(db: Database) -> Iterator[Harness]:
    h = Harness(db)
    yield h
    h.worker.close()
