"""Fault injection per route pattern, as a switch: what an ingester meets on a bad day with Azure.

Each rule (``settings.faults[i]``) matches requests by a path glob or regex and optionally a method,
and does one or more of: add latency; answer a share of requests with a 5xx (a seeded random
sequence, so a test or a benchmark sees the same failures every time); hold the connection and
close it without an answer (a timeout, bounded); answer 404 for one repository's pull requests (as
Azure does for a disabled repository, OCEAN #412), or a plain 404 for every matching request (a
resource gone between a list and its read); fail the Nth continuation page of a paged list, once
(a retry succeeds) or always.

This module is pure: :class:`FaultPlan` is asked about each request and answers a :class:`Fault`;
sleeping, holding and answering are done by :mod:`kiosk.emulator.switches`.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any, Final, Literal, Self
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kiosk.emulator.errors import azure_error_body
from kiosk.emulator.throttling import RouteMatch

__all__ = ["Fault", "FaultPlan", "FaultSpec", "PageFailure", "fault_body"]

_SERVER_ERRORS: Final = (500, 502, 503, 504)
_GIT: Final = "Microsoft.TeamFoundation.Git.Server"
#: ``/{org}[/{project}]/_apis/git/repositories/{repo}/pullrequests…`` → the repository segment.
_PULL_REQUESTS: Final = re.compile(r"^/[^/]+(?:/[^/]+)?/_apis/git/repositories/([^/]+)/pullrequests(?:/|$)", re.I)
#: Query parameters that say "not the first page" (continuation token, or an offset).
_PAGE_KEYS: Final = ("continuationtoken", "$skip", "skip")


class PageFailure(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True, populate_by_name=True)

    page: int = Field(ge=1, description="Which continuation page fails: 1 is the first page after the first.")
    status: Literal[500, 502, 503, 504] = 503
    times: Literal["once", "always"] = "once"


class FaultSpec(RouteMatch):
    """One rule of ``settings.faults``: where (path/pathRegex, method) and what (one or more effects)."""

    latency_ms: float = Field(default=0, alias="latencyMs", ge=0, le=60_000)
    error_rate: float = Field(default=0, alias="errorRate", ge=0, le=1, description="Share of requests answered 5xx.")
    error_status: Literal[500, 502, 503, 504] = Field(default=503, alias="errorStatus")
    seed: int = 0
    hold_seconds: float | None = Field(
        default=None, alias="holdSeconds", gt=0, le=300, description="Hold the connection, then close it unanswered."
    )
    pull_requests_not_found: str | None = Field(
        default=None,
        alias="pullRequestsNotFound",
        min_length=1,
        description="A repository (name or id) whose pull requests answer 404.",
    )
    fail_page: PageFailure | None = Field(default=None, alias="failPage")
    not_found: bool = Field(
        default=False,
        alias="notFound",
        description="Answer every matching request 404 (a plain one: not Azure's 'no data' for a repository).",
    )

    @model_validator(mode="after")
    def _does_something(self) -> Self:
        if not (
            self.latency_ms
            or self.error_rate
            or self.hold_seconds
            or self.pull_requests_not_found
            or self.fail_page is not None
            or self.not_found
        ):
            raise ValueError(
                "a fault rule needs an effect: latencyMs, errorRate, holdSeconds, pullRequestsNotFound, failPage "
                "or notFound"
            )
        return self


@dataclass(frozen=True)
class Fault:
    """What the faults decide for one request: wait ``latency`` s, then hold, answer ``status``, or pass."""

    latency: float = 0.0
    hold: float | None = None
    status: int | None = None
    body: dict[str, Any] | None = None


_NONE: Final = Fault()


class _Rule:
    """A compiled rule with its state: the seeded sequence and the pages seen in the current listing."""

    def __init__(self, index: int, spec: FaultSpec) -> None:
        self.index = index
        self.spec = spec
        self.pattern = spec.pattern()
        self.method = spec.method.upper() if spec.method else None
        self.random = random.Random(spec.seed)
        self.repository = spec.pull_requests_not_found.lower() if spec.pull_requests_not_found else None
        self.pages: dict[str, int] = {}  # page key → its number in the listing now being read
        self.failed_once: set[int] = set()

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and self.pattern.search(path) is not None

    def page_number(self, query: str) -> int:
        """0 for a first page (which starts a new listing), else the page's number within the listing."""
        params = {key.lower(): value for key, value in parse_qsl(query, keep_blank_values=True)}
        key = next((f"{name}={params[name]}" for name in _PAGE_KEYS if params.get(name) not in (None, "", "0")), None)
        if key is None:
            self.pages.clear()
            self.failed_once.clear()
            return 0
        if key not in self.pages:
            if len(self.pages) >= 10_000:  # a listing that never restarts: bound the memory
                self.pages.clear()
            self.pages[key] = len(self.pages) + 1
        return self.pages[key]


class FaultPlan:
    """The configured rules, asked once per request (in order: the first failing rule answers)."""

    def __init__(self, specs: list[FaultSpec]) -> None:
        self.rules = [_Rule(index, spec) for index, spec in enumerate(specs)]

    def decide(self, method: str, path: str, query: str) -> Fault:
        latency = 0.0
        for rule in self.rules:
            if not rule.matches(method, path):
                continue
            spec = rule.spec
            latency += spec.latency_ms / 1000
            if spec.hold_seconds is not None:
                return Fault(latency, hold=spec.hold_seconds)
            if rule.repository is not None:
                found = _PULL_REQUESTS.match(path)
                if found is not None and found.group(1).lower() == rule.repository:  # ASGI paths are decoded
                    return Fault(latency, status=404, body=_repository_not_found(found.group(1)))
            if spec.not_found:
                return Fault(latency, status=404, body=fault_body(404, rule.index))
            if spec.fail_page is not None:
                number = rule.page_number(query)
                failure = spec.fail_page
                if number == failure.page and (failure.times == "always" or number not in rule.failed_once):
                    rule.failed_once.add(number)
                    return Fault(latency, status=failure.status, body=fault_body(failure.status, rule.index))
            if spec.error_rate and rule.random.random() < spec.error_rate:
                return Fault(latency, status=spec.error_status, body=fault_body(spec.error_status, rule.index))
        return Fault(latency) if latency else _NONE


def _repository_not_found(repository: str) -> dict[str, Any]:
    message = (
        f"TF401019: The Git repository with name or identifier {repository} does not exist or you do not have "
        "permissions for the operation you are attempting."
    )
    return azure_error_body(message, "GitRepositoryNotFoundException", f"{_GIT}.GitRepositoryNotFoundException, {_GIT}")


def fault_body(status: int, index: int) -> dict[str, Any]:
    """Azure's error JSON for an injected 5xx or 404, naming the rule that injected it."""
    key = {
        404: "NotFoundException",
        503: "ServiceUnavailableException",
        504: "GatewayTimeoutException",
        502: "BadGatewayException",
    }
    return azure_error_body(
        f"The emulator injected this failure (settings.faults[{index}]): HTTP {status}.",
        key.get(status, "InternalServerErrorException"),
    )
