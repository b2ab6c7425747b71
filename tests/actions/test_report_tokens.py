"""Run report tokens: minted per run, accepted for that run only, checked against every key of the
ring (so a rotation does not strand runs under way), and filled into a body only at send time."""

from __future__ import annotations

import pytest

from kiosk.actions.report_tokens import PLACEHOLDER, ReportTokens, is_report_token
from kiosk.auth.keys import KeyRing
from kiosk.errors import Forbidden, Unauthorized

KEY = bytes(range(32))
OTHER = bytes(32)


def test_a_token_names_its_run_and_is_stable() -> None:
    tokens = ReportTokens(KEY)
    token = tokens.token_for("r_0123456789abcdef01234567")
    assert token.startswith("krt_r_0123456789abcdef01234567.") and is_report_token(token)
    assert token == ReportTokens(KEY).token_for("r_0123456789abcdef01234567")  # stateless: any process agrees
    assert token != ReportTokens(OTHER).token_for("r_0123456789abcdef01234567")
    assert token != tokens.token_for("r_0123456789abcdef01234568")
    assert not is_report_token("eyJzdWIiOiJrY18xIn0.sig")  # an API token
    assert repr(tokens) == "ReportTokens(***)"


def test_check_accepts_the_runs_own_token_only() -> None:
    tokens = ReportTokens(KEY)
    own = tokens.token_for("r_a")
    tokens.check(own, "r_a")
    with pytest.raises(Forbidden, match="for run 'r_a', not 'r_b'"):
        tokens.check(own, "r_b")
    for forged in (
        ReportTokens(OTHER).token_for("r_a"),
        own[:-1] + ("A" if own[-1] != "A" else "B"),
        "krt_r_a",
        "krt_r_a.",
        "krt_.abc",
        PLACEHOLDER,
        own + "x" * 200,
    ):
        with pytest.raises(Unauthorized):
            tokens.check(forged, "r_a")


def test_retired_keys_still_check_after_a_rotation() -> None:
    old_ring = KeyRing.from_secrets([b"o" * 32])
    rotated = KeyRing.from_secrets([b"n" * 32, b"o" * 32])
    issued_before = ReportTokens.from_keyring(old_ring).token_for("r_a")
    after = ReportTokens.from_keyring(rotated)
    after.check(issued_before, "r_a")
    assert after.token_for("r_a") != issued_before  # new tokens use the current key
    with pytest.raises(Unauthorized):
        ReportTokens.from_keyring(KeyRing.from_secrets([b"n" * 32])).check(issued_before, "r_a")


def test_fill_replaces_the_placeholder_in_body_and_headers() -> None:
    tokens = ReportTokens(KEY)
    token = tokens.token_for("r_a")
    body, headers, filled = tokens.fill(
        "r_a", b'{"t":"krt_****","h":"Bearer krt_****"}', {"X-Report-Token": "krt_****", "X-Other": "1"}
    )
    assert filled == token
    assert body == b'{"t":"%s","h":"Bearer %s"}' % (token.encode(), token.encode())
    assert headers == {"X-Report-Token": token, "X-Other": "1"}
    untouched = tokens.fill("r_a", b'{"a":1}', {"X-Other": "1"})
    assert untouched == (b'{"a":1}', {"X-Other": "1"}, None)
