"""Entity parsing, merging and property validation (pure functions), incl. property-based tests."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.catalog.blueprints import CompiledBlueprint, parse_blueprint
from kiosk.catalog.entities import StoredEntity, merged_properties, parse_entity, resolve_entity, validate_properties
from kiosk.catalog.validation import EntityError

BLUEPRINT = CompiledBlueprint.build(
    parse_blueprint(
        {
            "identifier": "service",
            "schema": {
                "properties": {
                    "s": {"type": "string"},
                    "n": {"type": "number"},
                    "i": {"type": "integer"},
                    "b": {"type": "boolean"},
                    "o": {"type": "object"},
                    "a": {"type": "array"},
                    "e": {"type": "string", "enum": ["x", "y"]},
                    "url": {"type": "string", "format": "url"},
                    "mail": {"type": "string", "format": "email"},
                    "when": {"type": "string", "format": "date-time"},
                    "d": {"type": "number", "default": 7},
                },
                "required": ["s"],
            },
            "relations": {
                "team": {"target": "team", "required": True},
                "deps": {"target": "service", "many": True},
            },
        }
    ).to_document()
)

TYPE_CHECKS = {
    "s": lambda v: isinstance(v, str),
    "n": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    # JSON Schema: an integer is any number with a zero fractional part (1.0 included)
    "i": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "b": lambda v: isinstance(v, bool),
    "o": lambda v: isinstance(v, dict),
    "a": lambda v: isinstance(v, list),
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(sorted(TYPE_CHECKS)), value=json_values.filter(lambda v: v is not None))
def test_validation_accepts_exactly_the_declared_json_type(key: str, value: Any) -> None:
    props = {"s": "ok", key: value} if key != "s" else {"s": value}
    expected_ok = TYPE_CHECKS[key](value)
    try:
        validate_properties(BLUEPRINT, props)
    except EntityError as exc:
        assert not expected_ok, exc.message
        assert exc.field == f"properties.{key}"
    else:
        assert expected_ok


@settings(max_examples=200, deadline=None)
@given(raw=json_values)
def test_parse_entity_never_raises_anything_but_entity_error(raw: Any) -> None:
    with contextlib.suppress(EntityError):
        parse_entity(raw, "service")


@pytest.mark.parametrize(
    ("props", "field"),
    [
        ({}, "properties.s"),
        ({"s": "x", "e": "z"}, "properties.e"),
        ({"s": "x", "url": "ftp:/nope"}, "properties.url"),
        ({"s": "x", "mail": "not-an-email"}, "properties.mail"),
        ({"s": "x", "when": "yesterday"}, "properties.when"),
        ({"s": "x", "zzz": 1}, "properties.zzz"),
        ({"s": "'; DROP TABLE entities; --", "zzz": 1}, "properties.zzz"),
    ],
)
def test_invalid_properties_name_the_field(props: dict[str, Any], field: str) -> None:
    with pytest.raises(EntityError) as err:
        validate_properties(BLUEPRINT, props)
    assert err.value.field == field


def test_defaults_are_filled_and_formats_accepted() -> None:
    props = {"s": "x", "url": "https://example.com/a", "mail": "a@b.io", "when": "2026-11-24T10:00:00Z"}
    validate_properties(BLUEPRINT, props)
    assert props["d"] == 7


def test_parse_entity_refuses_unknown_fields_and_bad_identifiers() -> None:
    with pytest.raises(EntityError) as err:
        parse_entity({"identifier": "a", "propertiez": {}}, "service")
    assert err.value.code == "unknown_field" and err.value.field == "propertiez"
    for bad in ["", "with space", "ünï", "a" * 1001, 5, None]:
        with pytest.raises(EntityError):
            parse_entity({"identifier": bad}, "service")
    with pytest.raises(EntityError):
        parse_entity({"identifier": "a", "blueprint": "other"}, "service")


def test_resolve_replace_vs_merge() -> None:
    stored = StoredEntity(1, "a", "A", None, ["core"], {"s": "old", "n": 1}, {"team": ["t1"], "deps": ["b"]})
    incoming = parse_entity(
        {"identifier": "a", "properties": {"n": None, "b": True}, "relations": {"deps": []}}, "service"
    )
    merged = resolve_entity(BLUEPRINT, incoming, stored, merge=True)
    assert merged.properties == {"s": "old", "b": True}
    assert merged.relations == {"team": ["t1"]}
    assert merged.touched_relations == {"deps"}
    assert merged.title == "A" and merged.team == ["core"]
    with pytest.raises(EntityError) as err:
        resolve_entity(BLUEPRINT, incoming, stored, merge=False)
    assert err.value.code == "missing_required_relation"


def test_relation_shapes() -> None:
    ok = parse_entity({"identifier": "a", "relations": {"team": "t1", "deps": ["b", "b", "c"]}}, "service")
    resolved = resolve_entity(BLUEPRINT, ok, None, merge=False)
    assert resolved.relations == {"team": ["t1"], "deps": ["b", "c"]}
    for rels in ({"team": ["t1", "t2"]}, {"team": "t1", "nope": "x"}, {"team": "t1", "deps": [1]}):
        with pytest.raises(EntityError):
            resolve_entity(
                BLUEPRINT, parse_entity({"identifier": "a", "relations": rels}, "service"), None, merge=False
            )


def test_merged_properties_follow_ports_rule_null_clears() -> None:
    stored = {"a": 1, "b": 2}
    # A merge: given over stored, a null clearing its property (absent or not).
    assert merged_properties(stored, {"b": None, "c": 3, "d": None}) == {"a": 1, "c": 3}
    assert stored == {"a": 1, "b": 2}  # the stored properties are not changed in place
    # A replacement: given alone, nulls dropped.
    assert merged_properties(None, {"b": None, "c": 3}) == {"c": 3}


def test_undeclared_properties_and_relations_are_refused_in_ports_words() -> None:
    with pytest.raises(EntityError) as err:
        validate_properties(BLUEPRINT, {"s": "x", "colour": "red"})
    assert (err.value.code, err.value.field) == ("unknown_property", "properties.colour")
    assert err.value.message == "property 'colour' is not defined on blueprint 'service'"
    incoming = parse_entity({"identifier": "a", "relations": {"team": "t1", "owner": "ana"}}, "service")
    with pytest.raises(EntityError) as err:
        resolve_entity(BLUEPRINT, incoming, None, merge=False)
    assert (err.value.code, err.value.field) == ("unknown_relation", "relations.owner")
    assert err.value.message == "relation 'owner' is not defined on blueprint 'service'"
