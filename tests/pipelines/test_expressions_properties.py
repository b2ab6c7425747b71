"""Property tests: the parser fails only with ExpressionError, evaluation is deterministic, text
without ``${{`` is left alone, and string literals round-trip through rendering."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.pipelines.errors import ExpressionError
from kiosk.pipelines.expressions import FUNCTION_NAMES, evaluate, parse, render, substitute

SETTINGS = settings(max_examples=200, deadline=None)

json_scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)

# Fragments that exercise the grammar far more often than uniform text would.
fragments = st.sampled_from(
    [
        "(",
        ")",
        "[",
        "]",
        ",",
        ".",
        "*",
        "'",
        "''",
        " ",
        "-",
        "0x",
        "1",
        "1.2",
        "1.2.3",
        "e5",
        "true",
        "null",
        "parameters",
        "variables",
        "p",
        ".x",
        "['k']",
        "[0]",
        ".*",
        "'}}'",
        *(f"{name}(" for name in FUNCTION_NAMES),
    ]
)
expression_text = st.one_of(
    st.text(max_size=40),
    st.lists(fragments, max_size=25).map("".join),
)
context = st.fixed_dictionaries({"parameters": json_values, "variables": json_values, "p": json_values})


@SETTINGS
@given(expression_text)
def test_parser_raises_only_expression_error(text: str) -> None:
    with contextlib.suppress(ExpressionError):
        parse(text)


@SETTINGS
@given(st.integers(1, 3000), st.sampled_from(["(", "[", "not(", "p[", "eq(1,", "'", "${{"]))
def test_deep_nesting_raises_only_expression_error(depth: int, opener: str) -> None:
    with contextlib.suppress(ExpressionError):
        evaluate(opener * depth, {"p": {}})


@SETTINGS
@given(expression_text, context)
def test_evaluation_is_deterministic_and_only_raises_expression_error(text: str, ctx: dict[str, Any]) -> None:
    def outcome() -> tuple[str, Any]:
        try:
            return ("value", evaluate(text, ctx))
        except ExpressionError as err:
            return ("error", str(err))

    assert outcome() == outcome()


@SETTINGS
@given(st.text(max_size=60).filter(lambda t: "${{" not in t), context)
def test_substitute_without_expressions_is_unchanged(text: str, ctx: dict[str, Any]) -> None:
    assert substitute(text, ctx) == text


@SETTINGS
@given(st.text(max_size=30))
def test_string_literal_round_trips(value: str) -> None:
    literal = "'" + value.replace("'", "''") + "'"
    assert evaluate(literal, {}) == value
    assert render(evaluate(literal, {})) == value
    if "}}" not in value.replace("'", ""):
        assert substitute("x ${{ " + literal + " }} y", {}) == f"x {value} y"
    assert substitute("${{" + literal + "}}", {}) == value
