"""The depth check itself: where the boundary is, where it says the document went too deep, and
that it never recurses (orjson parses up to 1,024 levels; Python recurses ~1,000)."""

from __future__ import annotations

from typing import Any

import orjson

from kiosk.core.json_depth import MAX_JSON_DEPTH, depth_message, exceeds_depth, too_deep_at


def arrays(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_scalars_are_never_too_deep() -> None:
    for value in (None, 1, 2.5, "x" * 10, True):
        assert not exceeds_depth(value, 0)


def test_depth_counts_containers() -> None:
    assert not exceeds_depth({}, 1) and exceeds_depth({}, 0)
    assert not exceeds_depth({"a": [1, "x"]}, 2) and exceeds_depth({"a": [1, "x"]}, 1)
    assert not exceeds_depth(arrays(MAX_JSON_DEPTH)) and exceeds_depth(arrays(MAX_JSON_DEPTH + 1))


def test_the_deepest_branch_decides() -> None:
    wide: dict[str, Any] = {f"k{i}": {"v": i} for i in range(1000)}
    wide["k500"]["v"] = arrays(MAX_JSON_DEPTH)
    assert exceeds_depth(wide)
    assert too_deep_at(wide) == "k500.v" + "[0]" * (MAX_JSON_DEPTH - 2)


def test_no_recursion_at_any_depth_orjson_parses() -> None:
    deepest = orjson.loads(b"[" * 1023 + b"]" * 1023)
    assert exceeds_depth(deepest)
    assert too_deep_at(deepest, 3) == "[0][0][0]"


def test_long_paths_are_cut() -> None:
    value: Any = {}
    for _ in range(70):
        value = {"k" * 50: value}
    assert len(too_deep_at(value)) <= 301


def test_message_names_the_limit_and_place() -> None:
    assert depth_message("the body", "a.b") == (
        "the body nests deeper than 64 levels of objects and arrays (at a.b); 64 is kiosk's limit"
    )
