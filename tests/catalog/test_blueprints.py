"""Blueprint documents: what is accepted and how a refusal names the field."""

from __future__ import annotations

import pytest

from kiosk.catalog.blueprints import CompiledBlueprint, parse_blueprint
from kiosk.errors import ValidationFailed


def test_port_blueprint_round_trips() -> None:
    raw = {
        "identifier": "service",
        "title": "Service",
        "icon": "Microservice",
        "description": "A deployable unit",
        "schema": {"properties": {"url": {"type": "string", "format": "url", "title": "URL"}}, "required": ["url"]},
        "relations": {"team": {"target": "team", "title": "Team", "required": False, "many": True}},
        "mirrorProperties": {},
        "calculationProperties": {},
    }
    doc = parse_blueprint(raw).to_document()
    assert doc["schema"] == raw["schema"]
    assert doc["relations"]["team"] == {"target": "team", "title": "Team", "required": False, "many": True}


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"identifier": "bad id"}, "identifier"),
        ({"identifier": "x", "colour": "red"}, "colour"),
        ({"identifier": "x", "schema": {"properties": {"p": {"type": "strng"}}}}, "schema.properties.p.type"),
        ({"identifier": "x", "schema": {"properties": {"p": {"type": "string", "format": "nope"}}}}, "format"),
        ({"identifier": "x", "schema": {"properties": {}, "required": ["ghost"]}}, "ghost"),
        ({"identifier": "x", "relations": {"r": {"title": "no target"}}}, "relations.r.target"),
        (
            {
                "identifier": "x",
                "schema": {"properties": {"r": {"type": "string"}}},
                "relations": {"r": {"target": "x"}},
            },
            "both a property and a relation",
        ),
        (
            {"identifier": "x", "schema": {"properties": {"p": {"type": "string", "x-kiosk-index": "yes"}}}},
            "x-kiosk-index",
        ),
        ([], "JSON object"),
    ],
)
def test_invalid_blueprints_name_the_field(raw: object, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        parse_blueprint(raw)
    assert fragment in err.value.message


def test_compiled_blueprint_knows_indexes_and_relations() -> None:
    compiled = CompiledBlueprint.build(
        parse_blueprint(
            {
                "identifier": "svc",
                "schema": {"properties": {"a": {"type": "string", "x-kiosk-index": True}, "b": {"type": "number"}}},
                "relations": {"deps": {"target": "svc", "many": True}, "team": {"target": "team", "required": True}},
            }
        ).to_document()
    )
    assert compiled.indexed_properties() == ["a"]
    assert compiled.relation_many == {"deps": True, "team": False}
    assert compiled.required_relations == ("team",)
