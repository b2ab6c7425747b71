"""Reconciling an integration's service-hook subscriptions with Azure DevOps (the IO).

For each organisation of the integration: list the subscriptions of the three publishers kiosk
manages, each on the host Azure keeps them on (``tfs`` and ``pipelines`` on the org host, ``rm`` on
``vsrm`` — the reference looks for release subscriptions on the org host, finds none and makes them
again at every start), read the projects when ``isProjectsLimited`` (less those with an excluded
tag, as the resync reads them), build the plan (:mod:`kiosk.ingest.hooks.plan`), and, to apply it,
create, update and delete. Every listing of every organisation is read before anything changes: a
listing that fails stops the whole apply with an error naming it, and nothing is changed — never a
plan made from half a picture, which would create twins of what was not seen.

Applying holds the integration's lease (:class:`~kiosk.ingest.hooks.store.HookLease`): concurrent
reconcilers — three kiosk processes starting together, the CLI beside a server — run one after
the other, and the later ones find nothing to do. A second run changes nothing: the plan of a
matching organisation is all ``keep``. Once an organisation's steps all succeeded, the fingerprint
of the consumer inputs applied is saved; a failed step leaves the old one, so the next run tries
again. Checking (``--check``) reads only: no lease, no change.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kiosk.azure.errors import AzureRestError, NotFound
from kiosk.azure.rest import AzureDevOpsRest
from kiosk.azure.urls import Host
from kiosk.config.secrets import Secret
from kiosk.errors import Conflict, ServiceUnavailable
from kiosk.ingest.config import Integration
from kiosk.ingest.fetch.base import FetchContext, gather_bounded
from kiosk.ingest.hooks.catalogue import PUBLISHERS
from kiosk.ingest.hooks.fingerprint import fingerprint, matches
from kiosk.ingest.hooks.plan import (
    ORGANISATION,
    Desired,
    Existing,
    Plan,
    Scope,
    Step,
    build_plan,
    consumer_url,
    desired_subscriptions,
    hook_base_url,
)
from kiosk.ingest.hooks.store import HookLease, HookStore
from kiosk.ingest.mapping import PortAppConfig
from kiosk.store import Database

__all__ = [
    "HookListingError",
    "HookReconciler",
    "HookTarget",
    "HooksBusy",
    "OrgOutcome",
    "ReconcileReport",
    "StepResult",
    "hook_target",
]

log = logging.getLogger("kiosk.integrations.hooks")

SUBSCRIPTIONS = "_apis/hooks/subscriptions"
#: Where each publisher's subscriptions live.
PUBLISHER_HOSTS: dict[str, Host] = {"tfs": "core", "pipelines": "core", "rm": "vsrm"}
RestFactory = Callable[[str, str], AzureDevOpsRest]


class HookListingError(ServiceUnavailable, code="hooks_listing_failed"):
    """The subscriptions (or projects) of an organisation could not be listed: nothing was changed."""


class HooksBusy(Conflict, code="hooks_busy"):
    """Another reconciler held the integration's lease longer than this one would wait, or took it over."""


@dataclass(frozen=True)
class HookTarget:
    """What reconciling needs of an integration: where events go, with which credentials, for which kinds."""

    identifier: str
    organization_urls: tuple[str, ...]
    pat: Secret = field(repr=False)
    base_url: str | None
    username: str
    password: Secret | None = field(repr=False)
    kinds: tuple[str, ...]
    projects_limited: bool
    excluded_tags: tuple[str, ...]

    @property
    def url(self) -> str | None:
        return None if self.base_url is None else consumer_url(self.base_url, self.identifier)


def hook_target(integration: Integration, mapping: PortAppConfig, public_url: str | None) -> HookTarget:
    """``integration``'s target with ``mapping`` (the effective one) and kiosk's ``publicUrl``."""
    config = integration.spec.config
    return HookTarget(
        identifier=integration.identifier,
        organization_urls=tuple(config.organization_urls()),
        pat=integration.personal_access_token,
        base_url=hook_base_url(config.appHost, public_url),
        username=config.webhookAuthUsername,
        password=integration.webhook_secret,
        kinds=tuple(dict.fromkeys(resource.kind for resource in mapping.resources)),
        projects_limited=config.isProjectsLimited,
        excluded_tags=tuple(config.excludedTags),
    )


@dataclass(frozen=True)
class StepResult:
    """A step applied: ``error`` when Azure refused it; ``created`` is a new subscription's id."""

    step: Step
    error: str | None = None
    created: str | None = None


@dataclass(frozen=True)
class OrgOutcome:
    """One organisation: its plan, and what applying it did (empty when only checked)."""

    organization_url: str
    plan: Plan
    results: tuple[StepResult, ...] = ()

    @property
    def failed(self) -> list[StepResult]:
        return [r for r in self.results if r.error is not None]


@dataclass(frozen=True)
class ReconcileReport:
    """What a check or an apply found and did, per organisation; ``reason`` when nothing could be done."""

    integration: str
    mode: Literal["check", "apply"]
    url: str | None
    organizations: tuple[OrgOutcome, ...] = ()
    reason: str | None = None

    @property
    def changes(self) -> bool:
        """Whether any plan had something to change (for an apply: something it changed or tried to)."""
        return any(org.plan.changes for org in self.organizations)

    @property
    def failures(self) -> int:
        return sum(len(org.failed) for org in self.organizations)

    def lines(self) -> list[str]:
        """The report as text: per organisation its summary, then each step (and its outcome)."""
        out = [f"{self.integration}: subscriptions posting to {self.url or '(no URL)'}"]
        if self.reason:
            out.append(f"  nothing to do: {self.reason}")
        for org in self.organizations:
            head = f"{org.organization_url}: {org.plan.summary()}"
            if org.plan.reason:
                head += f" — no subscription needed: {org.plan.reason}"
            out.append(head)
            outcomes = {id(r.step): r for r in org.results}
            for step in org.plan.steps:
                line = "  " + step.describe()
                result = outcomes.get(id(step))
                if result is not None and result.error is not None:
                    line += f" — FAILED: {result.error}"
                elif result is not None and result.created:
                    line += f" — created {result.created}"
                elif result is not None and step.action != "keep":
                    line += " — done"
                out.append(line)
        return out


@dataclass(frozen=True)
class _OrgView:
    """One organisation as read: its subscriptions, the scopes the integration listens in, project names."""

    organization_url: str
    existing: tuple[Existing, ...]
    scopes: tuple[Scope, ...]
    names: Mapping[str, str]


class HookReconciler:
    """Checks and applies integrations' subscriptions.

    ``public_url``: kiosk's ``azureDevOps.publicUrl`` (the base when an integration has no
    ``appHost``). ``rest_factory`` replaces the Azure client (tests), ``rest_options`` go to it.
    ``wait_seconds``: how long an apply waits for another reconciler's lease before giving up;
    ``concurrency``: how many changes are sent to Azure at once.
    """

    def __init__(
        self,
        db: Database,
        *,
        public_url: str | None,
        rest_factory: RestFactory | None = None,
        rest_options: Mapping[str, Any] | None = None,
        lease_seconds: float = 120.0,
        wait_seconds: float = 180.0,
        poll_seconds: float = 0.2,
        concurrency: int = 8,
    ) -> None:
        self.db = db
        self.store = HookStore(db)
        self.public_url = public_url
        self._rest_factory = rest_factory
        self._rest_options = dict(rest_options or {})
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self.poll_seconds = poll_seconds
        self.concurrency = concurrency

    def target(self, integration: Integration, mapping: PortAppConfig | None = None) -> HookTarget:
        return hook_target(integration, mapping or integration.mapping, self.public_url)

    def _client(self, organization_url: str, pat: str) -> AzureDevOpsRest:
        if self._rest_factory is not None:
            return self._rest_factory(organization_url, pat)
        return AzureDevOpsRest(organization_url, pat, **self._rest_options)

    # ---------------------------------------------------------------------------------- entry points

    def run(self, target: HookTarget, *, apply: bool) -> ReconcileReport:
        """:meth:`check` or :meth:`apply` on an event loop of its own (a thread or the CLI)."""
        return asyncio.run(self.apply(target) if apply else self.check(target))

    async def check(self, target: HookTarget) -> ReconcileReport:
        """The plan per organisation; nothing is changed."""
        url = target.url
        if url is None:
            return ReconcileReport(target.identifier, "check", None, reason=_NO_URL)
        views = await self._read_all(target)
        outcomes = []
        for view in views:
            _, plan = await self._plan(target, url, view)
            outcomes.append(OrgOutcome(view.organization_url, plan))
        return ReconcileReport(target.identifier, "check", url, tuple(outcomes))

    async def apply(self, target: HookTarget) -> ReconcileReport:
        """Make every organisation hold exactly what the integration needs, under its lease."""
        url = target.url
        if url is None:
            return ReconcileReport(target.identifier, "apply", None, reason=_NO_URL)
        lease = HookLease(self.db, target.identifier, lease_seconds=self.lease_seconds)
        await self._acquire(lease)
        lost = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(lease, lost))
        try:
            views = await self._read_all(target)
            outcomes: list[OrgOutcome] = []
            for view in views:
                desired, plan = await self._plan(target, url, view)
                results = await self._apply_plan(target, view.organization_url, desired, plan, lost)
                outcomes.append(OrgOutcome(view.organization_url, plan, tuple(results)))
                await self._remember(target, view.organization_url, desired, results)
            report = ReconcileReport(target.identifier, "apply", url, tuple(outcomes))
        finally:
            heartbeat.cancel()
            await asyncio.to_thread(lease.release)
        for org in report.organizations:
            if org.plan.changes:
                log.info(
                    "service-hook subscriptions reconciled: %s",
                    org.plan.summary(),
                    extra={"integration": target.identifier, "org": org.organization_url, "failed": len(org.failed)},
                )
        return report

    # ---------------------------------------------------------------------------------- reading

    async def _acquire(self, lease: HookLease) -> None:
        deadline = time.monotonic() + self.wait_seconds
        while not await asyncio.to_thread(lease.try_acquire):
            if time.monotonic() >= deadline:
                until = await asyncio.to_thread(lease.holder_until)
                held = f" (its lease runs to {until.isoformat()})" if until is not None else ""
                raise HooksBusy(
                    f"integration {lease.identifier}: another kiosk process is reconciling its subscriptions{held}"
                )
            await asyncio.sleep(self.poll_seconds)

    async def _heartbeat(self, lease: HookLease, lost: asyncio.Event) -> None:
        """Renew the lease every third of it while applying; when it was lost, say so and stop."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            if not await asyncio.to_thread(lease.extend):
                lost.set()
                return

    async def _read_all(self, target: HookTarget) -> list[_OrgView]:
        return list(await asyncio.gather(*(self._read(target, org) for org in target.organization_urls)))

    async def _read(self, target: HookTarget, organization_url: str) -> _OrgView:
        """Every subscription of the managed publishers, and the scopes; any failure raises, naming it."""
        async with self._client(organization_url, target.pat.reveal()) as rest:
            existing: list[Existing] = []
            for publisher in PUBLISHERS:
                host = PUBLISHER_HOSTS[publisher]
                try:
                    async for page in rest.whole_list(SUBSCRIPTIONS, host=host, params={"publisherId": publisher}):
                        existing.extend(Existing.from_azure(item, host) for item in page if isinstance(item, dict))
                except AzureRestError as exc:
                    raise HookListingError(
                        f"{organization_url}: cannot list the {publisher} service-hook subscriptions, so nothing "
                        f"was changed: {exc}"
                    ) from exc
            names: dict[str, str] = {}
            scopes: list[Scope] = [ORGANISATION]
            if target.projects_limited:
                try:
                    projects = await FetchContext(rest, organization_url, excluded_tags=target.excluded_tags).projects()
                except AzureRestError as exc:
                    raise HookListingError(
                        f"{organization_url}: cannot list the projects, so nothing was changed: {exc}"
                    ) from exc
                scopes = sorted(
                    (Scope(str(p["id"]), str(p.get("name") or p["id"])) for p in projects), key=lambda s: s.name
                )
                names = {scope.key: scope.name for scope in scopes}
        return _OrgView(organization_url, tuple(existing), tuple(scopes), names)

    async def _plan(self, target: HookTarget, url: str, view: _OrgView) -> tuple[Desired, Plan]:
        desired = desired_subscriptions(
            url=url,
            kinds=target.kinds,
            scopes=view.scopes,
            username=target.username,
            password=None if target.password is None else target.password.reveal(),
        )
        stored = await asyncio.to_thread(self.store.fingerprint, target.identifier, view.organization_url)
        applied = await asyncio.to_thread(matches, stored, desired.consumer_inputs)
        plan = build_plan(desired, view.existing, inputs_applied=applied, project_names=view.names)
        return desired, plan

    # ---------------------------------------------------------------------------------- applying

    async def _apply_plan(
        self, target: HookTarget, organization_url: str, desired: Desired, plan: Plan, lost: asyncio.Event
    ) -> list[StepResult]:
        """Every step but ``keep``, ``concurrency`` at a time (each touches a subscription of its own);
        a step Azure refuses is a failed result, the others go on. Once the lease is lost (this
        process stalled past it), no further step is sent: another holder owns the reconcile now."""
        inputs = desired.consumer_inputs

        async def one(rest: AzureDevOpsRest, step: Step) -> StepResult:
            if lost.is_set():
                raise HooksBusy(f"integration {target.identifier}: the reconcile lease was lost; nothing more done")
            try:
                return await _apply_step(rest, step, inputs)
            except AzureRestError as exc:
                log.warning(
                    "service-hook subscription step failed: %s: %s",
                    step.describe(),
                    exc,
                    extra={"integration": target.identifier, "org": organization_url},
                )
                return StepResult(step, error=str(exc))

        steps = [step for step in plan.steps if step.action != "keep"]
        async with self._client(organization_url, target.pat.reveal()) as rest:
            return await gather_bounded([functools.partial(one, rest, step) for step in steps], self.concurrency)

    async def _remember(
        self, target: HookTarget, organization_url: str, desired: Desired, results: Sequence[StepResult]
    ) -> None:
        """Save what was applied once every step succeeded; with nothing needed, forget it."""
        if any(r.error is not None for r in results):
            return
        if not desired.subscriptions:
            await asyncio.to_thread(self.store.forget, target.identifier, organization_url)
            return
        mark = await asyncio.to_thread(fingerprint, desired.consumer_inputs)
        await asyncio.to_thread(self.store.save_fingerprint, target.identifier, organization_url, mark)


_NO_URL = "neither appHost nor publicUrl is set: Azure DevOps has no kiosk URL to post events to"


async def _apply_step(rest: AzureDevOpsRest, step: Step, inputs: Mapping[str, str]) -> StepResult:
    """One create (POST, never retried: a retry could make a twin), update (PUT) or delete (DELETE;
    already gone is done)."""
    if step.action == "create":
        assert step.wanted is not None
        body = step.wanted.body(inputs)
        body.pop("status")
        answer = await rest.post(SUBSCRIPTIONS, body, idempotent=False, host=step.wanted.event.host)
        created = answer.get("id") if isinstance(answer, dict) else None
        return StepResult(step, created=str(created) if created else None)
    assert step.existing is not None
    path = f"{SUBSCRIPTIONS}/{step.existing.id}"
    host = PUBLISHER_HOSTS.get(step.existing.publisher_id, "core")
    if step.action == "update":
        assert step.wanted is not None
        await rest.request(
            "PUT", path, host=host, json={"id": step.existing.id, **step.wanted.body(inputs)}, idempotent=True
        )
        return StepResult(step)
    with contextlib.suppress(NotFound):  # deleted meanwhile (or by our own retried DELETE): gone is what was asked
        await rest.request("DELETE", path, host=host, idempotent=True)
    return StepResult(step)
