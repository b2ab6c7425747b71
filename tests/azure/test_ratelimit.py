"""The pure rate-limit decisions: header parsing, the budget pacer, adaptive concurrency, retries."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from kiosk.azure.ratelimit import AdaptiveConcurrency, BudgetPacer, RateLimitInfo, RetryPolicy, parse_rate_limit

T0 = 1_800_000_000.0


def headers(remaining: float, reset: float, limit: float = 10) -> RateLimitInfo:
    return RateLimitInfo(limit=limit, remaining=remaining, reset=reset)


def answered(pacer: BudgetPacer, *sends: float) -> None:
    """Sends at ``sends``, each answered without rate-limit headers before the next."""
    for at in sends:
        pacer.sent(at)
        pacer.observe(at, at + 0.05, RateLimitInfo(), 200)


def test_headers_are_read_in_any_case_and_retry_after_as_seconds_or_a_date() -> None:
    info = parse_rate_limit(
        {
            "x-ratelimit-limit": "200",
            "X-RATELIMIT-REMAINING": "12.5",
            "X-RateLimit-Reset": "1800000300",
            "X-RateLimit-Delay": "1.250",
            "Retry-After": "7",
        },
        T0,
    )
    assert info == RateLimitInfo(limit=200, remaining=12.5, reset=1_800_000_300, delay=1.25, retry_after=7)
    assert info.throttling
    dated = parse_rate_limit({"Retry-After": formatdate(T0 + 30, usegmt=True)}, T0)
    assert dated.retry_after == pytest.approx(30)
    assert parse_rate_limit({"Retry-After": "soon", "X-RateLimit-Limit": "-3"}, T0) == RateLimitInfo()
    assert not parse_rate_limit({}, T0).throttling


def test_the_pacer_sends_freely_until_azure_states_a_budget() -> None:
    pacer = BudgetPacer(guard=0)
    for n in range(50):
        assert pacer.delay(T0 + n * 0.01) == 0
        pacer.sent(T0 + n * 0.01)
    pacer.observe(T0, T0 + 0.01, RateLimitInfo(), 200)  # no headers: nothing learned
    assert not pacer.calibrated and pacer.delay(T0 + 1) == 0


def test_the_pacer_mirrors_the_sliding_window_once_calibrated() -> None:
    pacer = BudgetPacer(guard=0.01)
    answered(pacer, *(T0 + n for n in range(7)))  # eight sends, one per second
    pacer.sent(T0 + 7)
    # The eighth answer: limit 10, 2 left, usage reaches 0 at the newest + 60 s (rounded up by Azure).
    pacer.observe(T0 + 7, T0 + 7.1, headers(remaining=2, reset=T0 + 67.4), 200)
    assert pacer.limit == 10 and pacer.window == pytest.approx(60.4) and pacer.cost == pytest.approx(1.0)
    assert pacer.delay(T0 + 7.2) == 0  # two more fit
    pacer.sent(T0 + 7.2)
    pacer.sent(T0 + 7.3)
    pacer.observe(T0 + 7.2, T0 + 7.3, RateLimitInfo(), 200)
    # Full: the next send waits until the oldest send leaves the window, not until the "reset".
    assert pacer.delay(T0 + 7.4) == pytest.approx(60.4 + 0.01 - 7.4)
    # A later answer with an exact reset tightens the window estimate (never widens it).
    pacer.observe(T0 + 7.3, T0 + 7.35, headers(remaining=0, reset=T0 + 67.3), 200)
    assert pacer.window == pytest.approx(60.0)
    pacer.observe(T0 + 7.3, T0 + 7.35, headers(remaining=0, reset=T0 + 69), 200)
    assert pacer.window == pytest.approx(60.0)
    assert pacer.delay(T0 + 60.02) == 0  # the send at T0 left at T0 + 60


def test_the_cost_per_request_is_learned_from_the_remaining_budget() -> None:
    pacer = BudgetPacer(guard=0)
    answered(pacer, T0, T0 + 1, T0 + 2)
    pacer.sent(T0 + 3)
    pacer.sent(T0 + 3.5)  # in flight, not yet counted by the server when it answered the fourth
    pacer.observe(T0 + 3, T0 + 3.2, headers(remaining=2, reset=T0 + 33, limit=10), 200)
    assert pacer.cost == pytest.approx(2.0)  # 8 used by 4 counted sends
    assert pacer.delay(T0 + 4) == pytest.approx(T0 + 30 - (T0 + 4))  # 5 inside the window: 10/2 allowed


def test_sends_unanswered_when_azure_counted_may_still_count() -> None:
    pacer = BudgetPacer(guard=0)
    answered(pacer, T0, T0 + 1)
    pacer.sent(T0 + 2)  # in flight: perhaps counted after the next one
    pacer.sent(T0 + 3)
    pacer.observe(T0 + 3, T0 + 3.1, headers(remaining=2, reset=T0 + 13, limit=4 + 2), 200)  # 4 used
    # Ledger alone: 4 sends in the window, 6 allowed. With the answer's own figure: 4 used + the send
    # at T0 + 2 (maybe not counted yet) + this one = 6: fits. Two more would not.
    assert pacer.delay(T0 + 3.2) == 0
    pacer.sent(T0 + 3.2)
    assert pacer.delay(T0 + 3.3) == pytest.approx(T0 + 10 - (T0 + 3.3))  # the send at T0 leaves at T0 + 10


def test_retry_after_and_a_429_close_the_gate_for_every_request() -> None:
    pacer = BudgetPacer(guard=0)
    pacer.sent(T0)
    pacer.observe(T0, T0 + 0.5, RateLimitInfo(limit=10, remaining=0, retry_after=12), 429)
    assert pacer.delay(T0 + 1) == pytest.approx(11.5)
    assert pacer.delay(T0 + 13) == 0
    other = BudgetPacer(guard=0)
    other.observe(T0, T0 + 1, RateLimitInfo(limit=10, remaining=0, reset=T0 + 40), 429)  # no Retry-After
    assert other.delay(T0 + 1) == pytest.approx(39)
    delayed = BudgetPacer(guard=0)
    delayed.observe(T0, T0 + 1, RateLimitInfo(delay=0.5, retry_after=3), 200)  # a 200 Azure slowed down
    assert delayed.delay(T0 + 1) == pytest.approx(3)


def test_a_blocked_request_costs_nothing_in_the_ledger() -> None:
    pacer = BudgetPacer(guard=0)
    answered(pacer, T0, T0 + 1, T0 + 2)
    pacer.sent(T0 + 3)
    pacer.sent(T0 + 4)
    pacer.observe(T0 + 4, T0 + 4.1, RateLimitInfo(limit=4, remaining=0, reset=T0 + 13, retry_after=1), 429)
    pacer.observe(T0 + 3, T0 + 4.2, headers(remaining=0, reset=T0 + 13, limit=4), 200)
    assert pacer.cost == pytest.approx(1.0)  # 4 used by the 4 sends still counted
    assert pacer.window == pytest.approx(10)  # learned from the 200 only: a 429's Reset is not about it
    assert pacer.delay(T0 + 5.2) == pytest.approx(T0 + 10 - (T0 + 5.2))


def test_concurrency_halves_once_per_round_and_grows_back() -> None:
    limit = AdaptiveConcurrency(8)
    assert limit.limit == 8
    limit.on_throttled()
    assert limit.limit == 4
    for _ in range(4):  # the same round of in-flight requests (4 answers): one halving only
        limit.on_throttled()
    assert limit.limit == 4
    limit.on_throttled()  # a new round
    assert limit.limit == 2
    for _ in range(10):
        limit.on_throttled()
    assert limit.limit == 1
    for _ in range(1 + 2 + 3):  # one clean round at each size
        limit.on_success()
    assert limit.limit == 4
    for _ in range(100):
        limit.on_success()
    assert limit.limit == 8  # never above the maximum
    with pytest.raises(ValueError):
        AdaptiveConcurrency(0)


def test_retries_are_bounded_and_only_for_idempotent_calls() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=1, max_delay=3)
    none = RateLimitInfo()

    def wait(attempt: int, status: int | None, info: RateLimitInfo = none, idempotent: bool = True) -> float | None:
        return policy.wait(attempt=attempt, idempotent=idempotent, status=status, info=info, now=T0, jitter=1.0)

    assert wait(1, 503) == 1 and wait(2, 503) == 2 and wait(3, 503) is None
    assert wait(1, None) == 1  # a timeout or a dropped connection
    assert wait(1, 503, idempotent=False) is None
    assert wait(1, 429, idempotent=False) is None
    assert wait(1, 404) is None and wait(1, 401) is None and wait(1, 400) is None
    assert wait(1, 429, RateLimitInfo(retry_after=17)) == 17  # what Azure says, not a fixed pause
    assert wait(1, 429, RateLimitInfo(reset=T0 + 42)) == 42
    assert wait(1, 503, RateLimitInfo(retry_after=5)) == 5
    assert policy.backoff(10, 1.0) == 3 and policy.backoff(2, 0.0) == 1
