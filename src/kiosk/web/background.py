"""The server's periodic background work: expiring silent runs, keeping service-hook subscriptions,
pruning old received events and finished queue jobs.

All are derived from config and the database, so they need no durable queue: if the server stops
halfway, the next start does the same work again. Each runs in one daemon thread that sleeps on an
Event, so ``stop()`` returns at once (the pruner also checks it between its batches).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from datetime import timedelta

from kiosk.actions.runs import RunListener, expire_stale_runs
from kiosk.azure.client import AzureDevOpsClient, AzureDevOpsError
from kiosk.azure.run_events import find_subscription, run_state_subscription
from kiosk.config.model import KioskConfig, RetentionConfig
from kiosk.config.resolved import ResolvedSecrets
from kiosk.receivers.pruner import RetentionPruner
from kiosk.receivers.retention import Policy
from kiosk.store import Database

__all__ = ["Periodic", "retention_pruner", "run_sweeper", "subscription_keeper"]

log = logging.getLogger("kiosk.background")


class Periodic:
    """Call ``work()`` after ``first_delay`` seconds (default: at once), then every ``interval`` seconds
    until stopped; ``work`` returns True to stop early."""

    def __init__(self, name: str, interval: float, work: Callable[[], bool], *, first_delay: float = 0.0) -> None:
        self.name = name
        self.interval = interval
        self.first_delay = first_delay
        self._work = work
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"kiosk-{name}", daemon=True)

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    @property
    def stopping(self) -> threading.Event:
        """Set once :meth:`stop` is called: long work waits on it between steps, to end promptly."""
        return self._stop

    def _loop(self) -> None:
        if self.first_delay > 0 and self._stop.wait(self.first_delay):
            return
        while not self._stop.is_set():
            try:
                if self._work():
                    return
            except Exception:  # one failed round must not end the loop
                log.exception("background task %s failed", self.name)
            self._stop.wait(self.interval)


def run_sweeper(
    db: Database, expire_after: timedelta, interval: float = 60.0, *, listener: RunListener | None = None
) -> Periodic:
    """Finish as FAILURE the runs nothing has reported on within ``expire_after`` (run automations fire)."""

    def sweep() -> bool:
        expired = expire_stale_runs(db, expire_after, listener=listener)
        if expired:
            log.info("expired %d run(s) with no report", expired)
        return False

    return Periodic("run-sweeper", interval, sweep)


def retention_pruner(db: Database, retention: RetentionConfig, *, interval: float | None = None) -> Periodic:
    """Delete received events and finished queue jobs past ``retention`` every ``intervalMinutes``.

    Every kiosk process runs one; rounds of several processes on one database are safe together
    (see :mod:`kiosk.receivers.pruner`). The first round comes a few seconds after start, at a random
    moment: the start-up work (migrations, kiosk.yaml) is done by then, and processes started
    together by one deployment do not all prune at the same instant.
    """
    pruner = RetentionPruner(db, Policy.from_config(retention))

    def prune() -> bool:
        report = pruner.run(stop=periodic.stopping)
        if report.deleted:
            log.info(
                "pruned %d received event(s) and %d finished job(s)",
                report.events_by_age + report.events_by_cap,
                sum(report.jobs.values()),
                extra={"batches": report.batches},
            )
        return False

    every = retention.intervalMinutes * 60 if interval is None else interval
    periodic = Periodic("retention-pruner", every, prune, first_delay=random.uniform(1.0, 5.0))
    return periodic


def subscription_keeper(config: KioskConfig, secrets: ResolvedSecrets, interval: float = 60.0) -> Periodic | None:
    """Make sure each organisation with a PAT and service-hook auth has kiosk's run-state subscription.

    An existing subscription to the same URL is reused (never a twin). Retries every ``interval``
    seconds until every organisation is done, so Azure being down at start costs nothing.
    """
    public_url = config.azureDevOps.publicUrl
    if public_url is None:
        return None
    pending = {
        name: org for name, org in config.azureDevOps.orgs.items() if name in secrets.pats and name in secrets.hook_auth
    }
    if not pending:
        return None

    def ensure() -> bool:
        for name in list(pending):
            org = pending[name]
            url = f"{public_url.rstrip('/')}/hooks/azure-devops/{name}"
            username, password = secrets.hook_auth[name]
            client = AzureDevOpsClient(org.baseUrl, name, secrets.pats[name].reveal())
            try:
                existing = find_subscription(client.subscriptions(), url)
                if existing is None:
                    created = client.create_subscription(run_state_subscription(url, username, password.reveal()))
                    log.info("created the run-state subscription", extra={"org": name, "id": created.get("id")})
                del pending[name]
            except AzureDevOpsError as exc:
                log.warning("cannot ensure the run-state subscription yet", extra={"org": name, "error": str(exc)})
            finally:
                client.close()
        return not pending

    return Periodic("subscription-keeper", interval, ensure)
