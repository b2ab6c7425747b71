"""Versions and ranges as tag filters use them (npm/Masterminds semantics)."""

from __future__ import annotations

import pytest

from kiosk.watches.semver import Version, parse_range, parse_version


def test_versions_are_read_leniently_and_ordered_by_precedence() -> None:
    assert parse_version("v1.2") == Version(1, 2, 0)
    assert parse_version("1.2.3+build.5") == Version(1, 2, 3)
    assert parse_version("latest") is None and parse_version("1.2.3.4") is None and parse_version("01.2") is None
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0"]
    versions = [parse_version(v) for v in ordered]
    assert versions == sorted(versions)  # type: ignore[type-var]


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        ("^1.2", ["1.2.0", "1.9.9", "v1.3"], ["1.1.9", "2.0.0", "2.0.0-rc.1"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "0.2.2"]),
        ("^0.0.3", ["0.0.3"], ["0.0.4"]),
        ("~1.2", ["1.2.0", "1.2.99"], ["1.3.0"]),
        ("~1", ["1.0.0", "1.99.0"], ["2.0.0"]),
        (">=1.0 <2", ["1.0.0", "1.5.2"], ["0.9.9", "2.0.0"]),
        (">=1.0, <2", ["1.5.2"], ["2.1.0"]),
        (">= 1.0 < 2", ["1.5.2"], ["2.1.0"]),
        ("1.2 - 1.4", ["1.2.0", "1.4.9"], ["1.5.0", "1.1.9"]),
        ("1.2.3 - 1.4.0", ["1.4.0"], ["1.4.1"]),
        ("<1.2 || >=3", ["1.1.0", "3.0.0"], ["1.2.0", "2.5.0"]),
        ("=1.2.3", ["1.2.3", "v1.2.3"], ["1.2.4"]),
        (">1.2", ["1.3.0"], ["1.2.9"]),
        ("<=1.2", ["1.2.9"], ["1.3.0"]),
        (">=1.x", ["1.0.0", "7.0.0"], ["0.9.0"]),
        ("^1.2.3-beta.2", ["1.2.3-beta.3", "1.2.3", "1.9.0"], ["1.2.3-beta.1", "1.2.4-beta.1", "2.0.0"]),
        (">=0.0.0", ["0.0.1", "99.0.0"], ["1.0.0-rc.1", "latest"]),
    ],
)
def test_ranges(text: str, inside: list[str], outside: list[str]) -> None:
    r = parse_range(text)
    assert [t for t in inside if not r.matches(t)] == []
    assert [t for t in outside if r.matches(t)] == []


@pytest.mark.parametrize("text", ["", "   ", "^", ">=1.0 <", "1.2.3 ||", "^a.b", ">= >= 1", "1.2.3-"])
def test_malformed_ranges_say_so(text: str) -> None:
    with pytest.raises(ValueError):
        parse_range(text)
