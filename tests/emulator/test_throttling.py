"""Azure's rate limiting as a switch, over real HTTP: headers near the budget, 429 past it, recovery.

The clock is the emulator's injectable one (``app.state.switches.clock``), so the window slides
without sleeping.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.emulator.conftest import CONFIG, PAT, EmulatorFactory, LiveEmulator, basic

from kiosk.emulator.config import parse_emulator_config
from kiosk.emulator.throttling import RateLimiter, ThrottlingSpec
from kiosk.errors import ConfigError

PROJECTS = "/fabrikam/_apis/projects?api-version=7.1"
RATE_HEADERS = ("X-RateLimit-Resource", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


class Clock:
    """Epoch seconds that move only when the test says so."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def throttled(start_emulator: EmulatorFactory, throttling: str) -> tuple[LiveEmulator, Clock]:
    config = CONFIG.replace("orgs:", f"settings:\n  throttling: {throttling}\norgs:", 1)
    live = start_emulator(config=config, execute=False)
    clock = Clock()
    live.server.app.state.switches.clock = clock
    return live, clock


def test_no_rate_limit_headers_by_default(emulator: LiveEmulator) -> None:
    for _ in range(30):
        response = emulator.client.get(PROJECTS)
        assert response.status_code == 200
        assert not any(name in response.headers for name in RATE_HEADERS)
    assert emulator.client.get("/_emulator/switches").json() == {"faults": []}


def test_headers_before_the_budget_then_429_then_recovery(start_emulator: EmulatorFactory) -> None:
    live, clock = throttled(start_emulator, "{budget: 10, windowSeconds: 300, warnAt: 0.5}")
    seen = []
    for _ in range(4):  # usage 1..4: under half the budget, nothing said
        response = live.client.get(PROJECTS)
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response.headers
        clock.now += 1
    for expected_remaining in (5, 4, 3, 2, 1, 0):  # usage 5..10: warned, still served
        response = live.client.get(PROJECTS)
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "10"
        assert response.headers["X-RateLimit-Remaining"] == str(expected_remaining)
        assert response.headers["X-RateLimit-Resource"] == "TFS/TSTUs"
        assert int(response.headers["X-RateLimit-Reset"]) == int(clock.now) + 300
        assert "X-RateLimit-Delay" not in response.headers
        seen.append(response.json()["count"])
        clock.now += 1

    blocked = live.client.get(PROJECTS)
    assert blocked.status_code == 429
    body = blocked.json()
    assert body["typeKey"] == "RequestBlockedException"
    assert body["message"].startswith("TF400733: The request has been canceled: Request was blocked")
    assert "'TFS/TSTUs'" in body["message"]
    assert blocked.headers["X-RateLimit-Remaining"] == "0"
    # The first request (at t0) leaves the window at t0 + 300; it is now t0 + 10.
    assert blocked.headers["Retry-After"] == "290"

    clock.now += 289  # one second early: still blocked, and blocked requests cost nothing
    assert live.client.get(PROJECTS).status_code == 429
    clock.now += 1
    assert live.client.get(PROJECTS).status_code == 200

    clock.now += 300  # the whole window has passed: usage is back to zero, no headers
    fresh = live.client.get(PROJECTS)
    assert fresh.status_code == 200
    assert "X-RateLimit-Limit" not in fresh.headers


def test_the_budget_is_per_identity(start_emulator: EmulatorFactory) -> None:
    config = CONFIG.replace("orgs:", "settings:\n  throttling: {budget: 2}\norgs:", 1) + (
        "  - name: contoso\n    personalAccessTokens: [{env: OTHER_PAT}]\n"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OTHER_PAT", "contoso-pat")
        live = start_emulator(config=config, execute=False)
        live.server.app.state.switches.clock = Clock()
        for _ in range(2):
            assert live.client.get(PROJECTS).status_code == 200
        assert live.client.get(PROJECTS).status_code == 429
        other = live.client.get("/contoso/_apis/projects?api-version=7.1", headers=basic("contoso-pat"))
        assert other.status_code == 200


def test_cost_per_route_pattern_and_emulator_routes_are_free(start_emulator: EmulatorFactory) -> None:
    live, _ = throttled(
        start_emulator,
        "{budget: 10, warnAt: 0.5, costs: [{path: '/*/_apis/projects', method: GET, cost: 6}], defaultCost: 0}",
    )
    for _ in range(20):  # cost 0 and the emulator's own routes never count
        assert live.client.get("/fabrikam/web/_apis/pipelines?api-version=7.1").status_code == 200
        assert live.client.get("/_emulator/triggers").status_code == 200
    assert live.client.get(PROJECTS).headers["X-RateLimit-Remaining"] == "4"
    assert live.client.get(PROJECTS).status_code == 429


def test_delay_band_sends_x_ratelimit_delay(start_emulator: EmulatorFactory) -> None:
    live, _ = throttled(start_emulator, "{budget: 2, blockAt: 3, delaySeconds: 0.01}")
    for _ in range(2):
        assert "X-RateLimit-Delay" not in live.client.get(PROJECTS).headers
    delayed = live.client.get(PROJECTS)
    assert delayed.status_code == 200
    assert delayed.headers["X-RateLimit-Delay"] == "0.010"
    assert delayed.headers["X-RateLimit-Remaining"] == "0"
    assert int(delayed.headers["Retry-After"]) >= 1
    assert live.client.get(PROJECTS).status_code == 429


def test_switched_on_and_off_at_run_time(emulator: LiveEmulator) -> None:
    emulator.server.app.state.switches.clock = Clock()
    on = emulator.client.put("/_emulator/switches", json={"throttling": {"budget": 1}})
    assert on.status_code == 200
    assert on.json()["throttling"]["budget"] == 1
    assert emulator.client.get(PROJECTS).status_code == 200
    assert emulator.client.get(PROJECTS).status_code == 429
    assert emulator.client.get("/_emulator/switches").json()["throttling"]["windowSeconds"] == 300
    assert emulator.client.put("/_emulator/switches", json={}).json() == {"faults": []}
    assert emulator.client.get(PROJECTS).status_code == 200


def test_switches_need_a_pat_and_bad_settings_name_the_field(emulator: LiveEmulator) -> None:
    anonymous = emulator.client.get("/_emulator/switches", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    wrong = emulator.client.put("/_emulator/switches", json={"throttling": {"budget": 1}}, headers=basic("nope"))
    assert wrong.status_code == 401
    bad = emulator.client.put("/_emulator/switches", json={"throttling": {"budget": -1}})
    assert bad.status_code == 400
    assert bad.json()["message"].startswith("throttling.budget:")
    assert emulator.client.get("/_emulator/switches", headers=basic(PAT)).json() == {"faults": []}


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    text = "settings:\n  throttling: {budget: 10, blockAt: 5}\n  allowAnonymous: true\n"
    with pytest.raises(ConfigError, match="throttling"):
        parse_emulator_config(text, tmp_path / "emulator.yaml")
    text = "settings:\n  throttling: {budgte: 10}\n  allowAnonymous: true\n"
    with pytest.raises(ConfigError, match="budgte"):
        parse_emulator_config(text, tmp_path / "emulator.yaml")


def test_retry_after_counts_the_cost_of_the_refused_request() -> None:
    limiter = RateLimiter(ThrottlingSpec(budget=10, window_seconds=100))
    for second in range(10):
        assert not limiter.check("u", "GET", "/o/_apis/projects", 1000.0 + second).blocked
    verdict = limiter.check("u", "GET", "/o/_apis/projects", 1010.0)
    assert verdict.blocked
    assert dict(verdict.headers)["Retry-After"] == "90"  # the t=1000 entry leaves at 1100
    assert limiter.usage("u", 1100.0) == 9
