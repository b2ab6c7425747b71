"""What happens after an attempt: delivered, try again later (when), or give up. Pure functions.

The rules follow Standard Webhooks and Svix:

* 2xx is delivered; nothing else is (a 3xx is not followed: a webhook receiver that redirects is
  misconfigured, and following it would let a target bounce requests to an internal address).
* 410 Gone is the receiver asking to stop: dead at once, no more attempts.
* Everything else — other statuses, network errors, timeouts — is retried on the schedule, with
  ± jitter so deliveries that failed together do not come back together.
* ``Retry-After`` (seconds or an HTTP date) is honoured for 429, 502, 503 and 504: the next
  attempt waits at least that long, capped at the schedule's longest delay so a receiver cannot
  park a delivery for a year.
* After a timeout or a 429 the receiver is struggling: wait at least a minute (Svix's rule), or
  the schedule's longest delay if the schedule itself is shorter (the tests' millisecond schedules).
* When the schedule is used up the delivery is dead (dead-lettered) until redelivered by hand.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Literal

__all__ = ["Decision", "decide", "describe_status", "parse_retry_after"]

#: Statuses whose Retry-After is honoured (throttling and gateway trouble).
RETRY_AFTER_STATUSES = frozenset({429, 502, 503, 504})
#: Least wait after a timeout or a 429, in seconds (capped by the schedule's longest delay).
STRUGGLING_FLOOR = 60.0
GONE = "410 Gone: the receiver asked to stop"


@dataclass(frozen=True)
class Decision:
    """The verdict on one attempt, in the vocabulary of ``deliveries.status``.

    ``delay`` is the wait in seconds before the next attempt when ``status`` is ``failed``;
    ``reason`` says why a delivery is ``failed`` or ``dead``.
    """

    status: Literal["delivered", "failed", "dead"]
    delay: float | None = None
    reason: str | None = None


def describe_status(status_code: int) -> str:
    """The error text recorded for a non-2xx answer."""
    if 300 <= status_code < 400:
        return f"HTTP {status_code}: redirects are not followed"
    if status_code == 410:
        return GONE
    return f"HTTP {status_code}"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None if unusable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT; parsedate_to_datetime may leave it naive
        when = when.replace(tzinfo=now.tzinfo)
    return max(0.0, (when - now).total_seconds())


def decide(
    attempt: int,
    *,
    status_code: int | None,
    error: str | None = None,
    timed_out: bool = False,
    retry_after: str | None = None,
    schedule: Sequence[float],
    jitter: float,
    now: datetime,
    uniform: Callable[[float, float], float] = random.uniform,
) -> Decision:
    """Judge attempt number ``attempt`` (1 = the first attempt of this round of the schedule).

    ``status_code`` is None when no answer came (``error`` then says why, ``timed_out`` whether it
    was a timeout). ``uniform`` is the jitter's random source (injectable for tests).
    """
    if status_code is not None and 200 <= status_code < 300:
        return Decision("delivered")
    if status_code == 410:
        return Decision("dead", reason=GONE)
    reason = describe_status(status_code) if status_code is not None else (error or "no response")
    if attempt > len(schedule):
        tries = "1 attempt" if attempt == 1 else f"{attempt} attempts"
        return Decision("dead", reason=f"gave up after {tries}: {reason}")
    delay = schedule[attempt - 1] * (1.0 + uniform(-jitter, jitter)) if jitter else schedule[attempt - 1]
    longest = max(schedule)
    if status_code in RETRY_AFTER_STATUSES:
        asked = parse_retry_after(retry_after, now)
        if asked is not None:
            delay = max(delay, min(asked, longest))
    if timed_out or status_code == 429:
        delay = max(delay, min(STRUGGLING_FLOOR, longest))
    return Decision("failed", delay=max(0.0, delay), reason=reason)
