"""Exact, glob and semver-range filters, told apart by how they are written; empty means nothing."""

from __future__ import annotations

import pytest

from kiosk.watches.filters import compile_filter, compile_filters


def test_kinds_are_told_apart_by_their_writing() -> None:
    assert compile_filter("main").kind == "exact"
    assert compile_filter("1.*").kind == "glob"
    assert compile_filter("release/*").kind == "glob"
    assert compile_filter("^1.2").kind == "semver"
    assert compile_filter(">=1.0 <2").kind == "semver"
    assert compile_filter("1.2 - 1.4").kind == "semver"


def test_matching() -> None:
    assert compile_filter("main").matches("main") and not compile_filter("main").matches("mainline")
    assert compile_filter("1.*").matches("1.2.3") and not compile_filter("1.*").matches("2.0")
    assert compile_filter("release/*").matches("release/1.2/hotfix")
    assert compile_filter("v?.0").matches("v2.0")
    assert compile_filter("*").matches("anything")
    assert compile_filter("^1.2").matches("1.4.0") and not compile_filter("^1.2").matches("latest")


def test_a_list_matches_when_any_filter_does() -> None:
    filters = compile_filters(["main", "release/*"])
    assert filters.matches("main") and filters.matches("release/2") and not filters.matches("dev")


def test_empty_filters_are_refused_not_read_as_everything() -> None:
    with pytest.raises(ValueError, match=r"\['\*'\]"):
        compile_filters([])
    with pytest.raises(ValueError, match="non-empty"):
        compile_filter("")
    with pytest.raises(ValueError):
        compile_filter(">=banana")
