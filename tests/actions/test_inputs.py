"""userInputs: definitions refused with the field named, run values checked type by type."""

from __future__ import annotations

from typing import Any

import pytest

from kiosk.actions.inputs import MASK, EntityRef, UserInputs, compile_user_inputs
from kiosk.errors import ValidationFailed


def inputs(properties: dict[str, Any], required: list[str] | None = None) -> UserInputs:
    return compile_user_inputs({"properties": properties, "required": required or []})


def refused(spec: UserInputs, given: Any) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        spec.validate(given)
    return info.value


def definition_error(raw: Any) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        compile_user_inputs(raw)
    return info.value


# One row per type/format: the definition, values it takes (with what is stored), values it refuses.
CASES: list[tuple[dict[str, Any], list[tuple[Any, Any]], list[tuple[Any, str]]]] = [
    ({"type": "string"}, [("x", "x"), ("", "")], [(3, "must be a string"), (True, "must be a string")]),
    ({"type": "number"}, [(3, 3), (2.5, 2.5)], [("3", "must be a number"), (True, "must be a number")]),
    ({"type": "boolean"}, [(True, True), (False, False)], [(1, "must be true or false"), ("yes", "true or false")]),
    ({"type": "object"}, [({"a": [1]}, {"a": [1]})], [([1], "must be a JSON object"), ("{}", "JSON object")]),
    ({"type": "array"}, [([1, "a"], [1, "a"])], [({"a": 1}, "must be an array"), ("a", "must be an array")]),
    (
        {"type": "string", "format": "url"},
        [("https://example.com/x", "https://example.com/x")],
        [("example.com", "must be a URL"), ("ftp://x.y", "must be a URL")],
    ),
    (
        {"type": "string", "format": "email"},
        [("dev@example.com", "dev@example.com")],
        [("dev@example", "must be an email address"), ("dev", "email")],
    ),
    ({"type": "string", "format": "user"}, [("ana@corp.io", "ana@corp.io")], [("ana", "must be a user")]),
    ({"type": "string", "format": "team"}, [("platform", "platform")], [("  ", "must be a team name")]),
    (
        {"type": "string", "format": "date-time"},
        [("2026-11-24T10:00:00+01:00", "2026-11-24T09:00:00.000Z")],
        [("2026-11-24", "must be a date-time"), ("yesterday", "must be a date-time")],
    ),
    (
        {"type": "string", "format": "yaml"},
        [("a: 1\nb: [2, 3]\n", "a: 1\nb: [2, 3]\n")],
        [("a: [1, 2\nb: }", "must be a valid YAML document (line"), (5, "must be a string")],
    ),
    (
        {"type": "string", "format": "entity", "blueprint": "service"},
        [("svc-a", "svc-a"), ({"identifier": "svc-b", "title": "B"}, "svc-b")],
        [("has space", "must be an entity identifier"), (7, "must be a string")],
    ),
    ({"type": "string", "format": "secret"}, [("s3cr3t-value", "s3cr3t-value")], [("", "must not be empty")]),
    (
        {"type": "string", "enum": ["dev", "prod"]},
        [("dev", "dev")],
        [("qa", "must be one of ['dev', 'prod']")],
    ),
    ({"type": "number", "enum": [1, 2]}, [(1, 1), (2.0, 2.0)], [(True, "must be a number"), (3, "must be one of")]),
    (
        {"type": "string", "minLength": 2, "maxLength": 3, "pattern": "^[a-z]+$"},
        [("ab", "ab")],
        [("a", "at least 2"), ("abcd", "at most 3"), ("AB", "must match the pattern")],
    ),
    ({"type": "number", "minimum": 1, "maximum": 5}, [(1, 1), (5, 5)], [(0, "at least 1"), (6, "at most 5")]),
    (
        {"type": "array", "items": {"type": "string", "format": "email"}, "minItems": 1, "maxItems": 2},
        [(["a@b.co"], ["a@b.co"])],
        [([], "at least 1 items"), (["a@b.co", "x"], "must be an email address"), (["a@b.c"] * 3, "at most 2")],
    ),
]


@pytest.mark.parametrize(("spec", "good", "bad"), CASES, ids=[str(c[0]) for c in CASES])
def test_each_type_and_format(spec: dict[str, Any], good: list[tuple[Any, Any]], bad: list[tuple[Any, str]]) -> None:
    compiled = inputs({"field": spec})
    for value, stored in good:
        assert compiled.validate({"field": value}).values == {"field": stored}
    for value, fragment in bad:
        error = refused(compiled, {"field": value})
        assert error.status_code == 422
        assert error.message.startswith("properties.field"), error.message
        assert fragment in error.message
        assert error.details["field"].startswith("properties.field")


def test_array_item_errors_name_the_item() -> None:
    compiled = inputs({"tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}}})
    error = refused(compiled, {"tags": ["a", "c"]})
    assert error.message == "properties.tags[1] must be one of ['a', 'b']"
    assert error.details == {"field": "properties.tags[1]"}


def test_required_defaults_unknown_and_null() -> None:
    compiled = inputs(
        {
            "env": {"type": "string", "enum": ["dev", "prod"], "default": "dev"},
            "replicas": {"type": "number"},
            "labels": {"type": "object", "default": {"team": "core"}},
        },
        required=["env", "replicas"],
    )
    done = compiled.validate({"replicas": 2})
    assert done.values == {"replicas": 2, "env": "dev", "labels": {"team": "core"}}
    # defaults are copies: changing one run's value does not change the next run's default
    done.values["labels"]["team"] = "changed"
    assert compiled.validate({"replicas": 2}).values["labels"] == {"team": "core"}

    missing = refused(compiled, {"env": "prod"})
    assert missing.code == "missing_required_input" and missing.message == "properties.replicas is required"
    unknown = refused(compiled, {"replicas": 1, "colour": "red"})
    assert unknown.code == "unknown_input" and "properties.colour" in unknown.message and "env" in unknown.message
    # null means "not given": the default applies, a required input without one is missing
    assert compiled.validate({"replicas": 1, "env": None}).values["env"] == "dev"
    assert refused(compiled, {"replicas": None}).code == "missing_required_input"
    assert refused(compiled, ["replicas"]).message == "properties must be a JSON object"
    assert inputs({"a": {"type": "string"}}).validate(None).values == {}


def test_secrets_are_set_apart_and_masked() -> None:
    compiled = inputs({"token": {"type": "string", "format": "secret"}, "env": {"type": "string"}})
    done = compiled.validate({"token": "hunter2-long", "env": "dev"})
    assert done.secrets == {"token": "hunter2-long"}
    assert done.masked() == {"token": MASK, "env": "dev"}
    assert done.values["token"] == "hunter2-long"
    # a refused secret's value is never repeated in the error
    error = refused(inputs({"token": {"type": "string", "format": "secret", "maxLength": 3}}), {"token": "abcdef"})
    assert "abcdef" not in error.message
    restored = compiled.restore(done.masked(), {"token": "hunter2-long"})
    assert restored.values == done.values and restored.secrets == done.secrets


def test_entity_references_are_collected_for_the_service() -> None:
    compiled = inputs(
        {
            "svc": {"type": "string", "format": "entity", "blueprint": "service"},
            "envs": {"type": "array", "items": {"type": "string", "format": "entity", "blueprint": "environment"}},
        }
    )
    assert compiled.entity_blueprints == {"service", "environment"}
    done = compiled.validate({"svc": {"identifier": "a"}, "envs": ["dev", "prod"]})
    assert done.values == {"svc": "a", "envs": ["dev", "prod"]}
    assert done.entity_refs == (
        EntityRef("svc", "service", "a"),
        EntityRef("envs", "environment", "dev"),
        EntityRef("envs", "environment", "prod"),
    )


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        ("nope", "trigger.userInputs", "must be an object"),
        ({"properties": [], "required": []}, "trigger.userInputs.properties", "must be an object"),
        ({"properties": {}, "colour": 1}, "trigger.userInputs.colour", "not a userInputs key"),
        ({"properties": {"a b": {"type": "string"}}}, "trigger.userInputs.properties.a b", "input names"),
        ({"properties": {"x": {"type": "integer"}}}, "trigger.userInputs.properties.x.type", "must be one of"),
        ({"properties": {"x": {}}}, "trigger.userInputs.properties.x.type", "must be one of"),
        ({"properties": {"x": "string"}}, "trigger.userInputs.properties.x", "must be an object"),
        ({"properties": {"x": {"type": "string", "format": "markdown"}}}, "x.format", "must be one of"),
        ({"properties": {"x": {"type": "number", "format": "url"}}}, "x.format", "needs type 'string'"),
        ({"properties": {"x": {"type": "string", "format": "entity"}}}, "x.blueprint", "must name the blueprint"),
        ({"properties": {"x": {"type": "string", "blueprint": "svc"}}}, "x.blueprint", "only meaningful"),
        ({"properties": {"x": {"type": "string", "colour": 1}}}, "x.colour", "not an input key"),
        ({"properties": {"x": {"type": "string", "enum": []}}}, "x.enum", "non-empty list"),
        ({"properties": {"x": {"type": "string", "enum": ["a", 1]}}}, "x.enum[1]", "must be a string"),
        ({"properties": {"x": {"type": "string", "default": 1}}}, "x.default", "must be a string"),
        ({"properties": {"x": {"type": "string", "enum": ["a"], "default": "b"}}}, "x.default", "one of"),
        ({"properties": {"x": {"type": "string", "format": "secret", "default": "pw"}}}, "x.default", "in clear"),
        ({"properties": {"x": {"type": "string", "format": "secret", "enum": ["a"]}}}, "x.enum", "cannot list"),
        ({"properties": {"x": {"type": "string", "minimum": 1}}}, "x.minimum", "does not apply"),
        ({"properties": {"x": {"type": "string", "minLength": -1}}}, "x.minLength", "non-negative integer"),
        ({"properties": {"x": {"type": "string", "pattern": "("}}}, "x.pattern", "not a valid regular expression"),
        ({"properties": {"x": {"type": "number", "maximum": "9"}}}, "x.maximum", "must be a number"),
        ({"properties": {"x": {"type": "string", "items": {"type": "string"}}}}, "x.items", "only meaningful"),
        (
            {"properties": {"x": {"type": "array", "items": {"type": "string", "format": "secret"}}}},
            "x.items.format",
            "cannot be an array item",
        ),
        ({"properties": {"x": {"type": "string", "encryption": "rot13"}}}, "x.encryption", "aes256-gcm"),
        ({"properties": {"x": {"type": "string"}}, "required": ["y"]}, "trigger.userInputs.required", "'y'"),
        ({"properties": {}, "required": "x"}, "trigger.userInputs.required", "list of input names"),
    ],
)
def test_definition_errors_name_the_field(raw: Any, field: str, fragment: str) -> None:
    error = definition_error(raw)
    assert error.status_code == 422 and error.code == "invalid_action"
    assert error.details["field"].endswith(field), error.details
    assert fragment in error.message, error.message


def test_port_layout_keys_and_annotations_are_accepted() -> None:
    compiled = compile_user_inputs(
        {
            "properties": {
                "token": {"type": "string", "format": "secret", "encryption": "aes256-gcm", "title": "Token"},
                "env": {"type": "string", "title": "Env", "description": "where", "icon": "Cloud"},
            },
            "required": [],
            "order": ["env", "token"],
        }
    )
    assert compiled.secret_names == {"token"}
