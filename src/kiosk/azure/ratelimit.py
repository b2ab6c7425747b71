"""Rate limits, pacing, concurrency and retries for Azure DevOps reads: the decisions, without IO.

Azure counts each identity's usage in TSTUs over a sliding window (200 per 5 minutes by default)
and says so only near the limit: ``X-RateLimit-Limit``, ``-Remaining``, ``-Reset`` (epoch seconds
when usage would fall to zero), ``X-RateLimit-Delay`` on a request it slowed down, ``Retry-After``
when it advises a wait, and 429 once it blocks (reference azure-devops-rest.md §5). OCEAN waited a
fixed 360 s on every 429 and slept until reset whenever one TSTU remained; both waste most of the
window (azure-devops-ingestion.md §5, §6). Here:

- :class:`BudgetPacer` keeps a ledger of the client's own sends and, once Azure has stated its limit,
  mirrors the sliding window: a request goes out only when the usage still inside the window plus
  its cost fits the limit, else it waits exactly until enough old usage leaves. The window is
  learned from ``Reset`` (``Reset - send time`` over-estimates it by the rounding to whole seconds,
  so the smallest value seen is kept) and the cost per request from ``Limit - Remaining`` over the
  sends inside the window (the median of the window's samples). The newest answer's own figure is a
  second check: its ``Limit - Remaining``, plus what was sent after it or was still unanswered when
  it came (those may not have been counted yet), minus what has left the window since, must leave
  room for one more request; without it, requests in flight when Azure first spoke overshoot. "Spread
  ``Remaining`` over ``Reset - now``" would be wrong for a sliding window: ``Reset`` moves forward
  with every request, so that rule slows down harmonically while budget is in fact freeing.
- A ``Retry-After`` (on a 429, or on a 200 Azure delayed) closes a gate for *every* request of the
  client until then; a 429 without one waits for ``Reset``. Never a fixed time.
- :class:`AdaptiveConcurrency` shrinks the number of requests in flight by half on a throttling or
  overload signal (429, ``X-RateLimit-Delay``, 5xx, timeout), at most once per round of in-flight
  requests, and grows it by one per round of clean answers, up to the configured maximum.
- :class:`RetryPolicy` bounds retries and only ever retries a call the caller says is safe to
  repeat (GET, and read-only POSTs such as WIQL or itemsbatch).

Times are epoch seconds passed in by the caller (``Reset`` is epoch-based), so every decision is a
plain function of its inputs and tested without sleeping.
"""

from __future__ import annotations

import contextlib
import math
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Final

__all__ = [
    "AdaptiveConcurrency",
    "BudgetPacer",
    "ClientStats",
    "RateLimitInfo",
    "RetryPolicy",
    "parse_rate_limit",
]

#: Statuses worth another try for a call that is safe to repeat.
RETRYABLE_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RateLimitInfo:
    """What one answer said about the budget (None: not said)."""

    limit: float | None = None
    remaining: float | None = None
    reset: float | None = None  # epoch seconds
    delay: float | None = None  # seconds Azure held this request
    retry_after: float | None = None  # seconds

    @property
    def throttling(self) -> bool:
        """Azure slowed this request down or asked for a wait."""
        return bool(self.delay) or self.retry_after is not None


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def parse_rate_limit(headers: Mapping[str, str], now: float) -> RateLimitInfo:
    """The rate-limit headers of an answer (any letter case); ``Retry-After`` as seconds or an HTTP date."""
    lower = {name.lower(): value for name, value in headers.items()}
    retry_after = _number(lower.get("retry-after"))
    if retry_after is None and lower.get("retry-after"):
        try:
            retry_after = max(0.0, parsedate_to_datetime(lower["retry-after"]).timestamp() - now)
        except (TypeError, ValueError, IndexError):
            retry_after = None
    return RateLimitInfo(
        limit=_number(lower.get("x-ratelimit-limit")),
        remaining=_number(lower.get("x-ratelimit-remaining")),
        reset=_number(lower.get("x-ratelimit-reset")),
        delay=_number(lower.get("x-ratelimit-delay")),
        retry_after=retry_after,
    )


@dataclass
class ClientStats:
    """Counts for observability (no URLs, no secrets): what the client did and how often it was slowed."""

    requests: int = 0  # attempts sent, retries included
    retries: int = 0
    throttled: int = 0  # 429 answers received
    server_delayed: int = 0  # answers carrying X-RateLimit-Delay
    throttle_waits: int = 0  # waits on Azure's word: Retry-After or Reset
    throttle_wait_seconds: float = 0.0
    paced_waits: int = 0  # sleeps the pacer chose to stay inside the budget (a request may sleep more than once)
    paced_wait_seconds: float = 0.0
    errors: int = 0  # calls that raised
    concurrency: int = 0  # the adaptive limit now

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class _Anchor:
    """An answer's usage figure: ``used`` TSTUs when the request sent at ``sent_at`` was counted, and how
    many earlier sends were still unanswered then (they may have been counted after it)."""

    sent_at: float
    used: float
    uncertain: int


class BudgetPacer:
    """The client's model of Azure's sliding-window budget: how long to wait before the next send.

    Use from one event loop: ``delay(now)`` until it answers 0, then ``sent(now)`` with no ``await``
    in between; ``observe(...)`` with each answer. ``guard`` is added to every computed expiry so a
    send lands after the server has let the old usage go (the server counts a request a little after
    the client sends it).
    """

    def __init__(self, *, guard: float = 0.02, max_ledger: int = 100_000) -> None:
        self.guard = guard
        self.limit: float | None = None
        self.window: float | None = None
        self.cost: float | None = None
        self.gate = 0.0  # no send before this epoch time (Retry-After, Reset after a 429)
        self._ledger: deque[float] = deque(maxlen=max_ledger)  # send times, oldest first
        self._costs: deque[tuple[float, float]] = deque(maxlen=1000)  # (answered at, cost per request)
        self._pending: dict[float, int] = {}  # sends not answered yet
        self._anchor: _Anchor | None = None  # the newest answer's own usage figure

    @property
    def calibrated(self) -> bool:
        return self.limit is not None and self.window is not None and self.cost is not None

    def _in_window(self, at: float) -> list[float]:
        assert self.window is not None
        horizon = at - self.window
        return [sent for sent in self._ledger if sent > horizon]

    def _prune(self, now: float) -> None:
        if self.window is None:
            return
        if self._anchor is not None and self._anchor.sent_at <= now - self.window:
            self._anchor = None  # everything it counted has left the window: it no longer constrains
        anchored = self._anchor.sent_at if self._anchor is not None else now
        horizon = min(now, anchored) - self.window  # the anchor's window stays whole: its sends are counted
        while self._ledger and self._ledger[0] <= horizon:
            self._ledger.popleft()
        for stale in [at for at in self._pending if at <= horizon]:
            del self._pending[stale]  # unanswered for a whole window: whatever it cost has expired

    def delay(self, now: float) -> float:
        """Seconds to wait before one more request may be sent at ``now`` (0: send now).

        Two models must both allow the send: the ledger alone (the window's sends times the cost),
        and the last answer's own figure (``Limit - Remaining`` when it was counted) plus what was
        sent since, or may not have been counted then, minus what has left the window since.
        """
        start = max(now, self.gate)
        if not self.calibrated:
            return start - now
        assert self.limit is not None and self.window is not None and self.cost is not None
        self._prune(now)
        free_at = start
        allowed = max(1, math.floor(self.limit / self.cost + 1e-9))
        inside = self._in_window(start)
        if len(inside) >= allowed:
            free_at = max(free_at, inside[len(inside) - allowed] + self.window + self.guard)
        anchor = self._anchor
        if anchor is not None and anchor.sent_at > start - self.window:
            later = sum(1 for at in self._ledger if at > anchor.sent_at)
            excess = anchor.used + (later + anchor.uncertain + 1) * self.cost - self.limit
            if excess > 1e-9:
                counted = [at for at in self._ledger if anchor.sent_at - self.window < at <= anchor.sent_at]
                leaving = math.ceil(excess / self.cost - 1e-9)
                if leaving <= len(counted):
                    free_at = max(free_at, counted[leaving - 1] + self.window + self.guard)
                else:  # usage the client did not make (another user of the PAT): wait for all of it
                    free_at = max(free_at, anchor.sent_at + self.window + self.guard)
        return free_at - now

    def sent(self, now: float) -> None:
        self._ledger.append(now)
        self._pending[now] = self._pending.get(now, 0) + 1

    def observe(self, sent_at: float, now: float, info: RateLimitInfo, status: int | None) -> None:
        """Learn from the answer to the request sent at ``sent_at``, received at ``now`` (status None: no answer)."""
        left = self._pending.pop(sent_at, 0) - 1
        if left > 0:
            self._pending[sent_at] = left
        if status == 429:
            with contextlib.suppress(ValueError):
                self._ledger.remove(sent_at)  # a blocked request costs nothing
        if info.retry_after is not None:
            self.gate = max(self.gate, now + info.retry_after)
        elif status == 429 and info.reset is not None:
            self.gate = max(self.gate, info.reset)
        if info.limit is not None and info.limit > 0:
            self.limit = info.limit
        if status is None or not 200 <= status < 300:
            return  # only a served request was counted, so only its answer dates the window and the cost
        if info.reset is not None and info.reset > sent_at:
            window = info.reset - sent_at  # Reset is at least this send's count time + the window
            self.window = window if self.window is None else min(self.window, window)
        if not info.delay and info.remaining is not None and self.limit is not None and self.window is not None:
            used = self.limit - info.remaining
            if self._anchor is None or sent_at >= self._anchor.sent_at:
                uncertain = sum(count for at, count in self._pending.items() if at < sent_at)
                self._anchor = _Anchor(sent_at, used, uncertain)
            counted = len(self._in_window(sent_at)) - sum(1 for at in self._ledger if at > sent_at)
            if used > 0 and counted > 0:
                # Concurrent sends blur a sample both ways (one sent earlier may not have reached the
                # server yet; one sent later may have overtaken this one): the median of the window's
                # samples is the estimate.
                self._costs.append((now, used / counted))
            while self._costs and self._costs[0][0] <= now - self.window:
                self._costs.popleft()
            if self._costs:
                self.cost = statistics.median(sample for _, sample in self._costs)
            elif self.cost is None:
                self.cost = 1.0


class AdaptiveConcurrency:
    """How many requests may be in flight: halves on a throttling signal, grows back by one per clean round."""

    def __init__(self, maximum: int, *, minimum: int = 1, initial: int | None = None) -> None:
        if maximum < 1 or minimum < 1 or minimum > maximum:
            raise ValueError("concurrency needs 1 <= minimum <= maximum")
        self.maximum = maximum
        self.minimum = minimum
        self.limit = min(maximum, max(minimum, initial if initial is not None else maximum))
        self._clean = 0  # clean answers since the last change
        self._since_shrink: int | None = None  # answers since the last shrink (None: never shrunk)

    def on_success(self) -> None:
        if self._since_shrink is not None:
            self._since_shrink += 1
        self._clean += 1
        if self._clean >= self.limit and self.limit < self.maximum:
            self.limit += 1
            self._clean = 0

    def on_throttled(self) -> None:
        """A throttling or overload signal: halve, unless this round already shrank."""
        if self._since_shrink is not None and self._since_shrink < self.limit:
            self._since_shrink += 1
            return
        self.limit = max(self.minimum, self.limit // 2)
        self._clean = 0
        self._since_shrink = 0


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff, for calls that are safe to repeat only.

    ``max_attempts`` counts the first try. A 429 waits what Azure said (``Retry-After``, else until
    ``Reset``); a 5xx with ``Retry-After`` waits that; otherwise the wait is ``base_delay · 2^(n-1)``,
    capped at ``max_delay``, scaled by a jitter in [0.5, 1] (``jitter`` is the caller's random
    fraction, so the decision stays pure).
    """

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    statuses: frozenset[int] = field(default=RETRYABLE_STATUSES)

    def backoff(self, attempt: int, jitter: float) -> float:
        raw = min(self.max_delay, self.base_delay * 2.0 ** max(0, attempt - 1))
        return raw * (0.5 + 0.5 * min(1.0, max(0.0, jitter)))

    def wait(
        self,
        *,
        attempt: int,
        idempotent: bool,
        status: int | None,
        info: RateLimitInfo,
        now: float,
        jitter: float,
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up (``status`` None: no answer)."""
        if not idempotent or attempt >= self.max_attempts:
            return None
        if status is not None and status not in self.statuses:
            return None
        if info.retry_after is not None:
            return info.retry_after
        if status == 429 and info.reset is not None:
            return max(0.0, info.reset - now)
        return self.backoff(attempt, jitter)
