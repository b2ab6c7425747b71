"""The retry decision: pure, so every rule is checked without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.delivery.config import STANDARD_WEBHOOKS_SCHEDULE
from kiosk.delivery.schedule import Decision, decide, parse_retry_after

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
SCHEDULE = list(STANDARD_WEBHOOKS_SCHEDULE)


def _decide(attempt: int, status: int | None, **kw: object) -> Decision:
    options: dict[str, object] = {"schedule": SCHEDULE, "jitter": 0.0, "now": NOW}
    options.update(kw)
    return decide(attempt, status_code=status, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    assert _decide(1, status) == Decision("delivered")
    assert _decide(10, status) == Decision("delivered")  # even on the very last attempt


def test_410_stops_for_good() -> None:
    assert _decide(1, 410) == Decision("dead", reason="410 Gone: the receiver asked to stop")


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (500, "HTTP 500"),
        (404, "HTTP 404"),
        (400, "HTTP 400"),
        (301, "HTTP 301: redirects are not followed"),
        (302, "HTTP 302: redirects are not followed"),
        (100, "HTTP 100"),
    ],
)
def test_other_statuses_are_retried_on_the_schedule(status: int, reason: str) -> None:
    assert _decide(1, status) == Decision("failed", delay=5, reason=reason)
    assert _decide(2, status) == Decision("failed", delay=300, reason=reason)
    assert _decide(9, status) == Decision("failed", delay=86400, reason=reason)


def test_network_errors_are_retried() -> None:
    decision = _decide(3, None, error="connection failed: refused")
    assert decision == Decision("failed", delay=1800, reason="connection failed: refused")


def test_schedule_exhausted_is_dead() -> None:
    assert _decide(10, 500) == Decision("dead", reason="gave up after 10 attempts: HTTP 500")
    assert _decide(1, None, schedule=[], error="refused") == Decision("dead", reason="gave up after 1 attempt: refused")


def test_jitter_spreads_the_delay_both_ways() -> None:
    assert _decide(2, 500, jitter=0.2, uniform=lambda a, b: b).delay == pytest.approx(360)
    assert _decide(2, 500, jitter=0.2, uniform=lambda a, b: a).delay == pytest.approx(240)


@given(st.integers(min_value=1, max_value=9), st.floats(min_value=0, max_value=0.99))
def test_real_jitter_stays_within_bounds(attempt: int, jitter: float) -> None:
    delay = _decide(attempt, 500, jitter=jitter).delay
    base = SCHEDULE[attempt - 1]
    assert delay is not None
    assert base * (1 - jitter) - 1e-6 <= delay <= base * (1 + jitter) + 1e-6


def test_timeout_and_429_wait_at_least_a_minute() -> None:
    assert _decide(1, None, timed_out=True, error="timed out").delay == 60
    assert _decide(1, 429).delay == 60
    assert _decide(1, 500).delay == 5  # an ordinary failure keeps the schedule's 5 s
    assert _decide(3, 429).delay == 1800  # the schedule already waits longer


def test_the_minute_floor_shrinks_with_a_short_schedule() -> None:
    short = [0.005, 0.01, 0.02]
    assert _decide(1, None, schedule=short, timed_out=True).delay == 0.02
    assert _decide(1, 429, schedule=short).delay == 0.02


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retry_after_seconds_is_honoured_for_throttling_statuses(status: int) -> None:
    assert _decide(1, status, retry_after="120").delay == 120


def test_retry_after_is_ignored_for_other_statuses() -> None:
    assert _decide(1, 500, retry_after="120").delay == 5


def test_retry_after_never_shortens_the_schedule() -> None:
    assert _decide(2, 503, retry_after="1").delay == 300


def test_retry_after_is_capped_at_the_schedules_maximum() -> None:
    assert _decide(1, 503, retry_after=str(10 * 86400)).delay == 86400
    assert _decide(1, 503, retry_after="30", schedule=[1, 10]).delay == 10


def test_retry_after_as_an_http_date() -> None:
    header = format_datetime(NOW + timedelta(seconds=600), usegmt=True)
    assert _decide(1, 503, retry_after=header).delay == pytest.approx(600)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("  42 ", 42.0),
        ("Tue, 24 Nov 2026 12:10:00 GMT", 600.0),
        ("Tue, 24 Nov 2026 11:00:00 GMT", 0.0),  # in the past: now
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_unusable_retry_after_keeps_the_schedule() -> None:
    assert _decide(1, 503, retry_after="whenever").delay == 5
