"""Azure DevOps' rate limiting, as a switch: a TSTU budget per identity over a sliding window.

Azure counts each identity's usage in TSTUs over a sliding 5-minute window (200 TSTU by default).
Near the limit its responses carry ``X-RateLimit-Resource``, ``-Limit``, ``-Remaining`` and
``-Reset`` (none appear on an ordinary response); over it, requests are first delayed (the delay
in ``X-RateLimit-Delay``, a wait advised in ``Retry-After``) and then blocked: 429 with
``Retry-After`` and a ``RequestBlockedException`` whose message carries TF400733. Ingesters key
their back-off on exactly these (reference: azure-devops-rest.md §5, azure-devops-ingestion.md §5),
so the emulator sends them the same way, with every number a setting because Azure publishes no
cost formula.

This module is pure: :class:`RateLimiter` is given the time of each request and answers what to do
with it (:class:`Verdict`); the HTTP side lives in :mod:`kiosk.emulator.switches`.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kiosk.emulator.errors import azure_error_body

__all__ = ["CostRule", "RateLimiter", "RouteMatch", "ThrottlingSpec", "Verdict", "blocked_body", "compile_path"]

_FRAMEWORK: Final = "Microsoft.TeamFoundation.Framework.Server"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True, populate_by_name=True)


def compile_path(glob: str | None, regex: str | None) -> re.Pattern[str]:
    """A case-insensitive pattern for a request path: a glob (``*`` spans ``/``) or a regex (searched)."""
    if regex is not None:
        return re.compile(regex, re.IGNORECASE)
    parts = (re.escape(part) for part in (glob or "*").split("*"))
    return re.compile("^" + ".*".join(parts) + "$", re.IGNORECASE)


class RouteMatch(_Strict):
    """Which requests a rule applies to: a path glob or regex, and optionally one HTTP method."""

    path: str | None = Field(default=None, min_length=1, description="Glob on the request path; * spans slashes.")
    path_regex: str | None = Field(default=None, alias="pathRegex", min_length=1)
    method: str | None = Field(default=None, pattern=r"^[A-Za-z]{1,16}$")

    @model_validator(mode="after")
    def _one_pattern(self) -> Self:
        if self.path is not None and self.path_regex is not None:
            raise ValueError("give path (a glob) or pathRegex, not both")
        if self.path_regex is not None:
            try:
                re.compile(self.path_regex)
            except re.error as exc:
                raise ValueError(f"pathRegex is not a regular expression: {exc}") from None
        return self

    def pattern(self) -> re.Pattern[str]:
        return compile_path(self.path, self.path_regex)


class CostRule(RouteMatch):
    cost: float = Field(ge=0, le=1_000_000)


class ThrottlingSpec(_Strict):
    """``settings.throttling``: present turns rate limiting on; every number is a setting."""

    budget: float = Field(default=200, gt=0, description="TSTUs an identity may use per window before delays.")
    window_seconds: float = Field(default=300, alias="windowSeconds", gt=0, le=86_400)
    warn_at: float = Field(
        default=0.8, alias="warnAt", ge=0, le=1, description="Share of the budget from which X-RateLimit-* is sent."
    )
    block_at: float | None = Field(
        default=None,
        alias="blockAt",
        gt=0,
        description="Usage above which requests are refused (429); between budget and blockAt they are delayed. "
        "Default: the budget (no delay band).",
    )
    delay_seconds: float = Field(default=0.5, alias="delaySeconds", ge=0, le=30)
    default_cost: float = Field(default=1, alias="defaultCost", ge=0, le=1_000_000)
    costs: list[CostRule] = Field(default_factory=list, description="Cost per route pattern; the first match wins.")
    resource: str = Field(default="TFS/TSTUs", min_length=1, max_length=200, pattern=r"^[\x21-\x7e ]+$")

    @model_validator(mode="after")
    def _block_after_budget(self) -> Self:
        if self.block_at is not None and self.block_at < self.budget:
            raise ValueError("blockAt must be at least the budget (requests between the two are delayed)")
        return self


@dataclass(frozen=True)
class Verdict:
    """What to do with one request: pass it (after ``delay`` seconds) or refuse it (429)."""

    blocked: bool = False
    delay: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


_PASS: Final = Verdict()


@dataclass
class _Usage:
    entries: deque[tuple[float, float]] = field(default_factory=deque)  # (time, cost), oldest first
    total: float = 0.0


class RateLimiter:
    """Sliding-window TSTU accounting per identity (pure: the caller passes the time, epoch seconds)."""

    def __init__(self, spec: ThrottlingSpec) -> None:
        self.spec = spec
        self.block_at = spec.block_at if spec.block_at is not None else spec.budget
        self._costs = [(rule.pattern(), rule.method.upper() if rule.method else None, rule.cost) for rule in spec.costs]
        self._usage: dict[str, _Usage] = {}

    def cost(self, method: str, path: str) -> float:
        for pattern, rule_method, cost in self._costs:
            if (rule_method is None or rule_method == method) and pattern.search(path):
                return cost
        return self.spec.default_cost

    def usage(self, identity: str, now: float) -> float:
        """TSTUs ``identity`` used in the window ending at ``now``."""
        usage = self._usage.get(identity)
        if usage is None:
            return 0.0
        self._expire(usage, now)
        return usage.total

    def check(self, identity: str, method: str, path: str, now: float) -> Verdict:
        """Count a request of ``identity`` at ``now`` (unless refused) and say how to answer it."""
        spec = self.spec
        usage = self._usage.setdefault(identity, _Usage())
        self._expire(usage, now)
        cost = self.cost(method, path)
        after = usage.total + cost
        if after > self.block_at and cost > 0:
            retry = self._seconds_until_fits(usage, cost, self.block_at, now)
            return Verdict(blocked=True, headers=self._headers(usage, now, remaining=0, retry_after=retry))
        if cost > 0:
            usage.entries.append((now, cost))
            usage.total = after
        if not usage.entries:
            del self._usage[identity]
        if after == 0 or after < spec.warn_at * spec.budget:
            return _PASS
        if after <= spec.budget:
            return Verdict(headers=self._headers(usage, now, remaining=spec.budget - after))
        delay = spec.delay_seconds
        headers = self._headers(
            usage, now, remaining=0, retry_after=self._seconds_until_fits(usage, 0, spec.budget, now)
        )
        return Verdict(delay=delay, headers=(*headers, ("X-RateLimit-Delay", f"{delay:.3f}")))

    def _expire(self, usage: _Usage, now: float) -> None:
        horizon = now - self.spec.window_seconds
        entries = usage.entries
        while entries and entries[0][0] <= horizon:
            usage.total -= entries.popleft()[1]
        if not entries:
            usage.total = 0.0  # no float drift once the window is empty

    def _seconds_until_fits(self, usage: _Usage, cost: float, limit: float, now: float) -> int:
        """Whole seconds until ``cost`` more fits under ``limit`` as old usage leaves the window (0: now)."""
        total = usage.total
        if total + cost <= limit:
            return 0
        for at, spent in usage.entries:
            total -= spent
            if total + cost <= limit:
                return max(1, math.ceil(at + self.spec.window_seconds - now))
        return max(1, math.ceil(self.spec.window_seconds))  # the request alone costs more than the limit

    def _headers(
        self, usage: _Usage, now: float, *, remaining: float, retry_after: int | None = None
    ) -> tuple[tuple[str, str], ...]:
        newest = usage.entries[-1][0] if usage.entries else now
        reset = math.ceil(newest + self.spec.window_seconds)
        headers = [
            ("X-RateLimit-Resource", self.spec.resource),
            ("X-RateLimit-Limit", _number(self.spec.budget)),
            ("X-RateLimit-Remaining", _number(max(0.0, remaining))),
            ("X-RateLimit-Reset", str(reset)),
        ]
        if retry_after is not None:
            headers.append(("Retry-After", str(retry_after)))
        return tuple(headers)


def _number(value: float) -> str:
    """TSTU figures as Azure writes them: whole numbers without a fraction."""
    return str(int(value)) if value == int(value) else f"{value:.2f}"


def blocked_body(resource: str, namespace: str = "User") -> dict[str, Any]:
    """Azure's 429 body: ``RequestBlockedException`` with TF400733 in the message."""
    message = (
        f"TF400733: The request has been canceled: Request was blocked due to exceeding usage of resource "
        f"'{resource}' in namespace '{namespace}'. For more information on why your request was blocked, see "
        'the topic "Rate limits" on the Microsoft Web site (https://go.microsoft.com/fwlink/?LinkId=823950).'
    )
    return azure_error_body(message, "RequestBlockedException", f"{_FRAMEWORK}.RequestBlockedException, {_FRAMEWORK}")
