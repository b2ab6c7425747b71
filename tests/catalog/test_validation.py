"""The generated whole-object check agrees with the property-by-property closures.

The generated check (``PropertiesValidator.fast_check``) may only say "valid" when the closures
(``PropertiesValidator.explain``) accept the same properties and normalise them the same way;
anything it is unsure of goes to the closures, which name the error.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.catalog.validation import EntityError, PropertiesValidator

SPECS: dict[str, dict[str, Any]] = {
    "text": {"type": "string", "minLength": 2, "maxLength": 8},
    "code": {"type": "string", "pattern": "^[a-z]+-[0-9]+$"},
    "env": {"type": "string", "enum": ["dev", "prod"]},
    "when": {"type": "string", "format": "date-time"},
    "site": {"type": "string", "format": "url"},
    "mail": {"type": "string", "format": "email"},
    "port": {"type": "number", "minimum": 1, "maximum": 65535},
    "count": {"type": "integer"},
    "flag": {"type": "boolean"},
    "tags": {"type": "array", "items": {"type": "string"}, "default": ["a"]},
    "meta": {"type": "object", "properties": {"k": {"type": "number"}}, "required": ["k"]},
    "tier": {"type": "string", "default": "gold", "x-kiosk-index": True},
    "big": {"type": "string", "x-kiosk-index": True},
}

#: Per property: values either side of each of its lines, so every inlined check meets both.
NEAR: dict[str, st.SearchStrategy[Any]] = {
    "text": st.sampled_from(["", "a", "ab", "abcdefgh", "abcdefghi"]) | st.text(max_size=10),
    "code": st.sampled_from(["ab-12", "ab-", "AB-12", "x-1", "x-1\n"]),
    "env": st.sampled_from(["dev", "prod", "Dev", "test"]),
    "when": st.sampled_from(
        [
            "2026-11-24T10:00:00Z",
            "2026-11-24T10:00:00.123456+00:00",
            "2026-11-24T12:00:00+02:00",
            "2026-11-24t10:00:00z",
            "2026-02-30T10:00:00Z",
            "2026-11-24",
        ]
    ),
    "site": st.sampled_from(["https://example.com/a", "ftp://x", "http://", "https://a b"]),
    "mail": st.sampled_from(["a@b.co", "a@b", "ab.co"]),
    "port": st.sampled_from([0, 1, 443, 65535, 65536, 1.5, 70000.0, True]),
    "count": st.sampled_from([0, 7, 2.0, 2.5, -3, True, "1"]),
    "flag": st.sampled_from([True, False, 0, "true"]),
    "tags": st.lists(st.sampled_from(["a", "b", 1]), max_size=3),
    "meta": st.sampled_from([{"k": 1}, {"k": "x"}, {}, {"k": 1.5, "j": 2}]),
    "tier": st.sampled_from(["", "gold", "x" * 2100]),
    "big": st.sampled_from(["", "gold", "x" * 2100, None]),
}
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70_000),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["dev", "x", "ab-12", "2026-02-30T10:00:00Z", "2026-11-24", "ftp://x", "a@b", "x" * 2100, "1.5"]),
    st.lists(st.sampled_from(["a", 1]), max_size=2),
    st.fixed_dictionaries({"k": st.text(max_size=2)}),
)


@st.composite
def properties_for(draw: st.DrawFn, chosen: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in chosen:
        roll = draw(st.integers(0, 9))
        if roll < 7:
            out[name] = draw(NEAR[name])
        elif roll < 8:
            out[name] = draw(anything)
    if draw(st.integers(0, 9)) == 0:
        out["undefined"] = 1
    return out


def _outcome(check: Any, properties: dict[str, Any]) -> tuple[str, Any]:
    try:
        check(properties)
    except EntityError as exc:
        return ("error", (exc.code, exc.field, exc.message))
    return ("ok", properties)


@settings(max_examples=400)
@given(data=st.data())
def test_generated_check_agrees_with_the_closures(data: st.DataObject) -> None:
    chosen = data.draw(st.lists(st.sampled_from(list(SPECS)), min_size=1, max_size=4, unique=True), label="schema")
    required = data.draw(st.lists(st.sampled_from(chosen), max_size=2, unique=True), label="required")
    properties = data.draw(properties_for(chosen), label="properties")
    blueprint = {
        "identifier": "bp",
        "schema": {"properties": {name: SPECS[name] for name in chosen}, "required": required},
    }
    validator = PropertiesValidator(blueprint)
    through_both = _outcome(validator, copy.deepcopy(properties))
    closures_only = _outcome(validator.explain, copy.deepcopy(properties))
    assert through_both == closures_only


def test_valid_properties_never_reach_the_closures(monkeypatch: pytest.MonkeyPatch) -> None:
    validator = PropertiesValidator(
        {"identifier": "bp", "schema": {"properties": {n: SPECS[n] for n in SPECS}, "required": ["env"]}}
    )

    def explain(_properties: dict[str, Any]) -> None:
        raise AssertionError("the generated check deferred a valid entity")

    monkeypatch.setattr(validator, "explain", explain)
    props = {"env": "dev", "when": "2026-11-24T10:00:00.5+00:00", "port": 443, "meta": {"k": 1}}
    validator(props)
    assert props == {
        "env": "dev",
        "when": "2026-11-24T10:00:00.500Z",
        "port": 443,
        "meta": {"k": 1},
        "tags": ["a"],
        "tier": "gold",
    }


def test_defaults_are_copies_not_shared() -> None:
    validator = PropertiesValidator({"identifier": "bp", "schema": {"properties": {"tags": SPECS["tags"]}}})
    first: dict[str, Any] = {}
    second: dict[str, Any] = {}
    validator(first)
    validator(second)
    first["tags"].append("changed")
    assert second["tags"] == ["a"]


def test_errors_still_name_the_property() -> None:
    validator = PropertiesValidator({"identifier": "bp", "schema": {"properties": {"port": SPECS["port"]}}})
    with pytest.raises(EntityError) as caught:
        validator({"port": 70_000})
    assert caught.value.field == "properties.port"
    assert caught.value.message == "properties.port must be smaller than or equal to 65535"
