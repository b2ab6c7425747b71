"""The server's periodic tasks: expiring silent runs, pruning by the retention policy, keeping
service-hook subscriptions.

Each task is one function that builds its :class:`~kiosk.runtime.periodic.Periodic` from the
server's :class:`TaskContext` (or returns None when the config gives it nothing to do), and one
line in :data:`TASKS`, which :func:`build_tasks` runs through. A new task is that: a function
here (or in a module of its own) and a line in the table.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from kiosk.actions.runs import RunListener, expire_stale_runs
from kiosk.azure.client import AzureDevOpsClient, AzureDevOpsError
from kiosk.azure.run_events import find_subscription, run_state_subscription
from kiosk.config.model import KioskConfig
from kiosk.config.resolved import ResolvedSecrets
from kiosk.runtime.periodic import Periodic
from kiosk.runtime.retention import RetentionPruner
from kiosk.store import Database

__all__ = ["TASKS", "TaskContext", "build_tasks", "retention_pruner", "run_sweeper", "subscription_keeper"]

log = logging.getLogger("kiosk.background")


@dataclass(frozen=True)
class TaskContext:
    """What the periodic tasks are built from: the server's database, its config and resolved
    secrets, and who hears of runs the tasks finish (run automations)."""

    db: Database
    config: KioskConfig = field(default_factory=KioskConfig)
    secrets: ResolvedSecrets = field(default_factory=ResolvedSecrets)
    run_listener: RunListener | None = None


def run_sweeper(context: TaskContext, *, interval: float = 60.0) -> Periodic:
    """Finish as FAILURE the runs nothing has reported on within ``runs.expireAfterMinutes`` (run
    automations fire)."""
    db, listener = context.db, context.run_listener
    expire_after = timedelta(minutes=context.config.runs.expireAfterMinutes)

    def sweep() -> bool:
        expired = expire_stale_runs(db, expire_after, listener=listener)
        if expired:
            log.info("expired %d run(s) with no report", expired)
        return False

    return Periodic("run-sweeper", interval, sweep)


def retention_pruner(context: TaskContext, *, interval: float | None = None) -> Periodic:
    """Delete received events and finished queue jobs past ``retention`` every ``intervalMinutes``.

    Every kiosk process runs one; rounds of several processes on one database are safe together
    (see :mod:`kiosk.runtime.retention`). The first round comes a few seconds after start, at a
    random moment: the start-up work (migrations, kiosk.yaml) is done by then, and processes started
    together by one deployment do not all prune at the same instant.
    """
    retention = context.config.retention
    identifiers = [spec.identifier for spec in context.config.integrations]
    pruner = RetentionPruner.from_config(context.db, retention, identifiers)

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


def subscription_keeper(context: TaskContext, *, interval: float = 60.0) -> Periodic | None:
    """Make sure each organisation with a PAT and service-hook auth has kiosk's run-state subscription.

    An existing subscription to the same URL is reused (never a twin). Retries every ``interval``
    seconds until every organisation is done, so Azure being down at start costs nothing.
    """
    config, secrets = context.config, context.secrets
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


#: Every periodic task of a server, in start order: each builds its Periodic, or None to skip.
TASKS: tuple[Callable[[TaskContext], Periodic | None], ...] = (
    run_sweeper,
    retention_pruner,
    subscription_keeper,
)


def build_tasks(context: TaskContext) -> list[Periodic]:
    """The periodic tasks :data:`TASKS` build for this server (not started)."""
    return [task for build in TASKS if (task := build(context)) is not None]
