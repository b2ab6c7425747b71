"""The shared value names: JSON's (jq, search rules) and the words configuration errors use."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest

from kiosk.core.value_kinds import json_type, value_kind


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "null"),
        (True, "boolean"),
        (False, "boolean"),
        (0, "number"),
        (1.5, "number"),
        ("", "string"),
        ([], "array"),
        ({}, "object"),
        ((1, 2), None),
        (b"x", None),
        (object(), None),
    ],
)
def test_json_type_names_what_json_holds_and_nothing_else(value: Any, expected: str | None) -> None:
    assert json_type(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "nothing (null)"),
        (True, "a boolean"),
        (3, "a number"),
        ("s", "a string"),
        ([1], "a list"),
        ({"a": 1}, "a mapping"),
        (OrderedDict(a=1), "a mapping"),
        ((1,), "a tuple"),
    ],
)
def test_value_kind_says_what_was_found_without_the_value(value: Any, expected: str) -> None:
    assert value_kind(value) == expected
