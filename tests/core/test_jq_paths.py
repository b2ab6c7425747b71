"""Plain paths evaluated in place must answer exactly as jq does (compared with libjq itself)."""

from __future__ import annotations

from typing import Any

import jq
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.core.jq_paths import NOT_FOLLOWED, follow, simple_path


@pytest.mark.parametrize(
    ("expression", "path"),
    [
        (".", ()),
        (" . ", ()),
        (".a", ("a",)),
        (".run.id", ("run", "id")),
        ("  .inputs.version_2 ", ("inputs", "version_2")),
        (".a | .b", None),
        (".a[]", None),
        (".a?", None),
        ('."a-b"', None),
        (".a.b // 1", None),
        (".1", None),
        ("$ENV.HOME", None),
        ("..", None),
        ("", None),
    ],
)
def test_only_plain_dot_chains_are_simple_paths(expression: str, path: tuple[str, ...] | None) -> None:
    assert simple_path(expression) == path


def _jq(expression: str, value: Any) -> Any:
    return jq.compile(expression).input_text(orjson.dumps(value).decode()).first()


@pytest.mark.parametrize(
    "value",
    [
        {"a": {"b": "x"}},
        {"a": {"b": None}},
        {"a": {}},
        {"a": None},
        {},
        None,
        {"a": {"b": 1.0}},
        {"a": {"b": -0.0}},
        {"a": {"b": 1.5}},
        {"a": {"b": 2**53}},
        {"a": {"b": True}},
        {"a": {"b": 7}},
    ],
)
def test_follow_answers_as_jq(value: Any) -> None:
    got = follow(value, ("a", "b"))
    assert got is not NOT_FOLLOWED
    assert got == _jq(".a.b", value)
    assert type(got) is type(_jq(".a.b", value))


@pytest.mark.parametrize(
    "value",
    [
        {"a": "text"},  # jq: Cannot index string with "b"
        {"a": [1, 2]},  # jq: Cannot index array with "b"
        {"a": {"b": {"c": 1}}},  # an object: its contents would need jq's conversion
        {"a": {"b": [1]}},
        {"a": {"b": 2**60}},  # jq rounds past 2^53
        {"a": {"b": float("inf")}},
    ],
)
def test_follow_leaves_to_jq_what_jq_must_decide(value: Any) -> None:
    assert follow(value, ("a", "b")) is NOT_FOLLOWED


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=8),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
)
_docs = st.recursive(_scalars, lambda inner: st.dictionaries(st.sampled_from("abc"), inner, max_size=3), max_leaves=8)


@given(_docs)
def test_follow_agrees_with_jq_wherever_it_answers(value: Any) -> None:
    for path in [("a",), ("a", "b"), ("b", "c", "a")]:
        got = follow(value, path)
        expression = "." + ".".join(path)
        if got is NOT_FOLLOWED:
            continue
        assert got == _jq(expression, value)
