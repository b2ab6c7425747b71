"""The subscriptions an integration needs, and the plan that makes Azure's match them (pure).

**What is needed** (:func:`desired_subscriptions`): one subscription per event the mapping's kinds
need (:mod:`kiosk.ingest.hooks.catalogue`) and per scope — each project when ``isProjectsLimited``,
else the organisation — all posting to the integration's own consumer URL
(``{appHost or publicUrl}/hooks/integrations/{identifier}``) with basic auth
(``webhookAuthUsername``/``webhookSecret``). kiosk's endpoint refuses every event without
credentials, so without a ``webhookSecret`` nothing is needed, and the reason says so. Every
subscription asks for the whole resource (``resourceDetailsToSend: all``): Azure trims an
organisation-level subscription's payload to a few ids otherwise, and a push without its
``refUpdates`` cannot say which branch was deleted (the reference's #3778). Messages are not needed.

**What exists** (:class:`Existing`): Azure's subscriptions, as listed. Only those posting to this
integration's exact consumer URL are this integration's; anything else — another integration's,
kiosk's run-state subscription, someone's — is counted and never touched. Fields Azure adds
(``hostId``, ``tfsSubscriptionId``) and the masked password are ignored when comparing.

**The plan** (:func:`build_plan`): per (scope, publisher, event type) exactly one subscription.
Missing → create. Existing → keep the best one (enabled, matching, oldest) and delete the rest as
duplicates; the one kept is updated (PUT) when it differs — other inputs, another resource version,
not ``enabled`` (a PUT with ``status: enabled`` re-enables it, ending a probation) — or when the
consumer inputs kiosk would send are not the ones it last applied (``inputs_applied``, from the
fingerprint: the password cannot be read back). This integration's subscriptions that nothing
needs any more are deleted.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from kiosk.ingest.events import events_path
from kiosk.ingest.hooks.catalogue import PUBLISHERS, HookEvent, events_for_kinds

__all__ = [
    "CONSUMER_ACTION_ID",
    "CONSUMER_ID",
    "Desired",
    "Existing",
    "Plan",
    "Scope",
    "Step",
    "Wanted",
    "build_plan",
    "consumer_url",
    "desired_subscriptions",
    "hook_base_url",
]

CONSUMER_ID: Final = "webHooks"
CONSUMER_ACTION_ID: Final = "httpRequest"
PASSWORD: Final = "basicAuthPassword"  # noqa: S105 - the input's name, not a password
_SERVER_INPUTS: Final = frozenset({"hostid", "tfssubscriptionid"})
"""Publisher inputs Azure adds to what was sent (lower-cased)."""
_CREDENTIAL: Final = re.compile(r"\S{1,256}")
"""What Azure takes as a basic-auth user name or password."""
_TRIMMING: Final = {"resourceDetailsToSend": "all", "messagesToSend": "none", "detailedMessagesToSend": "none"}

Action = Literal["create", "update", "delete", "keep"]


def hook_base_url(app_host: str | None, public_url: str | None) -> str | None:
    """The base events are posted under: the integration's ``appHost``, else kiosk's ``publicUrl``."""
    for candidate in (app_host, public_url):
        if candidate and candidate.strip():
            return candidate.strip().rstrip("/")
    return None


def consumer_url(base: str, identifier: str) -> str:
    """The integration's endpoint: ``{base}/hooks/integrations/{identifier}``; its subscriptions' mark."""
    return base.rstrip("/") + events_path(identifier)


@dataclass(frozen=True)
class Scope:
    """Where a subscription listens: one project (``project_id``) or the whole organisation (None)."""

    project_id: str | None
    name: str

    @property
    def key(self) -> str:
        return (self.project_id or "").lower()


ORGANISATION: Final = Scope(None, "organisation")


@dataclass(frozen=True)
class Wanted:
    """One subscription the integration needs."""

    event: HookEvent
    scope: Scope

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.scope.key, self.event.publisher_id, self.event.event_type)

    def publisher_inputs(self) -> dict[str, str]:
        return {} if self.scope.project_id is None else {"projectId": self.scope.project_id}

    def body(self, consumer_inputs: Mapping[str, str]) -> dict[str, Any]:
        """The subscription as sent to Azure (create, or PUT with ``status: enabled``)."""
        return {
            "publisherId": self.event.publisher_id,
            "eventType": self.event.event_type,
            "resourceVersion": self.event.resource_version,
            "consumerId": CONSUMER_ID,
            "consumerActionId": CONSUMER_ACTION_ID,
            "publisherInputs": self.publisher_inputs(),
            "consumerInputs": dict(consumer_inputs),
            "status": "enabled",
        }


@dataclass(frozen=True)
class Desired:
    """Everything one organisation should hold for the integration: the subscriptions, the consumer
    inputs they all carry, and, when nothing is needed, why."""

    url: str
    consumer_inputs: Mapping[str, str] = field(repr=False)
    subscriptions: tuple[Wanted, ...]
    reason: str | None = None


def desired_subscriptions(
    *,
    url: str,
    kinds: Iterable[str],
    scopes: Sequence[Scope],
    username: str,
    password: str | None,
) -> Desired:
    """The subscriptions for ``kinds`` in each of ``scopes``, posting to ``url`` with basic auth."""
    inputs: dict[str, str] = {"url": url, "basicAuthUsername": username, **_TRIMMING}
    if password is None or not password:
        return Desired(url, inputs, (), "no webhookSecret: kiosk refuses events without credentials")
    if _CREDENTIAL.fullmatch(username) is None or _CREDENTIAL.fullmatch(password) is None:
        return Desired(
            url, inputs, (), "webhookAuthUsername and webhookSecret must be 1 to 256 characters without whitespace"
        )
    inputs[PASSWORD] = password
    events = events_for_kinds(kinds)
    if not events:
        return Desired(url, inputs, (), "no kind of the mapping has live events")
    if not scopes:
        return Desired(url, inputs, (), "no project to subscribe in (isProjectsLimited, and none is left)")
    return Desired(url, inputs, tuple(Wanted(event, scope) for scope in scopes for event in events))


@dataclass(frozen=True)
class Existing:
    """A subscription as Azure lists it (the fields compared); ``host`` is where it was listed."""

    id: str
    publisher_id: str
    event_type: str
    status: str
    resource_version: str | None
    publisher_inputs: dict[str, str]
    consumer_id: str
    consumer_inputs: dict[str, str]
    created: str
    host: str

    @classmethod
    def from_azure(cls, item: Mapping[str, Any], host: str) -> Existing:
        """Read a ``Subscription``; inputs Azure adds itself are dropped, absent fields are empty."""
        publisher = item.get("publisherInputs") or {}
        consumer = item.get("consumerInputs") or {}
        return cls(
            id=str(item.get("id") or ""),
            publisher_id=str(item.get("publisherId") or ""),
            event_type=str(item.get("eventType") or ""),
            status=str(item.get("status") or ""),
            resource_version=item.get("resourceVersion") or None,
            publisher_inputs={
                str(k): str(v)
                for k, v in publisher.items()
                if v not in (None, "") and str(k).lower() not in _SERVER_INPUTS
            },
            consumer_id=str(item.get("consumerId") or ""),
            consumer_inputs={str(k): str(v) for k, v in consumer.items() if v is not None},
            created=str(item.get("createdDate") or ""),
            host=host,
        )

    @property
    def url(self) -> str:
        return self.consumer_inputs.get("url", "")

    @property
    def project_id(self) -> str | None:
        for key, value in self.publisher_inputs.items():
            if key.lower() == "projectid":
                return value
        return None

    @property
    def key(self) -> tuple[str, str, str]:
        return ((self.project_id or "").lower(), self.publisher_id, self.event_type)


@dataclass(frozen=True)
class Step:
    """One line of a plan: what happens to which subscription, and why."""

    action: Action
    publisher_id: str
    event_type: str
    scope: str
    reason: str = ""
    wanted: Wanted | None = None
    existing: Existing | None = None

    @property
    def subscription_id(self) -> str | None:
        return None if self.existing is None else self.existing.id

    def describe(self) -> str:
        where = f"{self.publisher_id} {self.event_type} ({self.scope})"
        ident = f" {self.existing.id}" if self.existing is not None else ""
        why = f": {self.reason}" if self.reason else ""
        return f"{self.action}{ident} {where}{why}"


@dataclass(frozen=True)
class Plan:
    """What reconciling one organisation does; ``foreign`` counts subscriptions left alone."""

    url: str
    steps: tuple[Step, ...]
    foreign: int
    reason: str | None = None

    def of(self, action: Action) -> list[Step]:
        return [step for step in self.steps if step.action == action]

    @property
    def changes(self) -> bool:
        return any(step.action != "keep" for step in self.steps)

    def summary(self) -> str:
        counts = ", ".join(
            f"{len(self.of(action))} to {action}" if action != "keep" else f"{len(self.of(action))} kept"
            for action in ("create", "update", "delete", "keep")
        )
        extra = f" ({self.foreign} other subscription(s) left alone)" if self.foreign else ""
        return counts + extra


def _differences(existing: Existing, wanted: Wanted, inputs: Mapping[str, str]) -> list[str]:
    """Why ``existing`` is not what ``wanted`` asks for (the password aside: it is masked)."""
    found: list[str] = []
    if existing.status != "enabled":
        found.append(f"status {existing.status or 'unknown'}")
    if existing.resource_version != wanted.event.resource_version:
        found.append(f"resource version {existing.resource_version} instead of {wanted.event.resource_version}")
    own = {k.lower(): v.lower() if k.lower() == "projectid" else v for k, v in existing.publisher_inputs.items()}
    needed = {k.lower(): v.lower() if k.lower() == "projectid" else v for k, v in wanted.publisher_inputs().items()}
    if own != needed:
        found.append("other publisher inputs (filters)")
    shown = {k: v for k, v in existing.consumer_inputs.items() if k != PASSWORD}
    expected = {k: v for k, v in inputs.items() if k != PASSWORD}
    if shown != expected:
        names = sorted(k for k in set(shown) | set(expected) if shown.get(k) != expected.get(k))
        found.append("other consumer inputs: " + ", ".join(names))
    if PASSWORD in inputs and not existing.consumer_inputs.get(PASSWORD):
        found.append("no password")
    return found


def _scope_name(project_id: str | None, names: Mapping[str, str]) -> str:
    if project_id is None:
        return ORGANISATION.name
    return f"project {names.get(project_id.lower(), project_id)}"


def build_plan(
    desired: Desired,
    existing: Sequence[Existing],
    *,
    inputs_applied: bool,
    project_names: Mapping[str, str] | None = None,
) -> Plan:
    """The steps that make ``existing`` hold exactly ``desired`` (see the module docstring).

    ``inputs_applied``: whether the consumer inputs (password included) are the ones applied last.
    ``project_names``: names by lower-cased project id, to show the scopes of subscriptions no longer
    needed.
    """
    names = {k.lower(): v for k, v in (project_names or {}).items()}
    for wanted in desired.subscriptions:
        if wanted.scope.project_id is not None:
            names.setdefault(wanted.scope.project_id.lower(), wanted.scope.name)
    ours: dict[tuple[str, str, str], list[Existing]] = defaultdict(list)
    foreign = 0
    seen: set[str] = set()
    for item in existing:
        if item.id in seen:  # listed twice (two hosts that are one): the same subscription
            continue
        seen.add(item.id)
        if item.consumer_id == CONSUMER_ID and item.url == desired.url:
            ours[item.key].append(item)
        else:
            foreign += 1
    steps: list[Step] = []
    for wanted in desired.subscriptions:
        group = ours.pop(wanted.key, [])
        scope = _scope_name(wanted.scope.project_id, names)
        event = wanted.event
        if not group:
            steps.append(Step("create", event.publisher_id, event.event_type, scope, "missing", wanted=wanted))
            continue
        ranked = sorted(
            group,
            key=lambda e: (
                e.status != "enabled",
                bool(_differences(e, wanted, desired.consumer_inputs)),
                e.created,
                e.id,
            ),
        )
        keeper, duplicates = ranked[0], ranked[1:]
        reasons = _differences(keeper, wanted, desired.consumer_inputs)
        if not inputs_applied and not reasons:
            reasons.append("credentials not known to be applied (changed, or never applied by kiosk)")
        action: Action = "update" if reasons else "keep"
        steps.append(Step(action, event.publisher_id, event.event_type, scope, "; ".join(reasons), wanted, keeper))
        steps.extend(
            Step("delete", d.publisher_id, d.event_type, scope, f"duplicate of {keeper.id}", existing=d)
            for d in duplicates
        )
    stale_reason = "no longer needed" if desired.reason is None else f"none is needed: {desired.reason}"
    for group in ours.values():
        for item in sorted(group, key=lambda e: (e.created, e.id)):
            scope = _scope_name(item.project_id, names)
            steps.append(Step("delete", item.publisher_id, item.event_type, scope, stale_reason, existing=item))
    order = {"create": 0, "update": 1, "delete": 2, "keep": 3}
    steps.sort(
        key=lambda s: (
            order[s.action],
            s.scope,
            PUBLISHERS.index(s.publisher_id) if s.publisher_id in PUBLISHERS else len(PUBLISHERS),
            s.event_type,
            s.subscription_id or "",
        )
    )
    return Plan(desired.url, tuple(steps), foreign, desired.reason)
