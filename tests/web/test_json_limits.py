"""Deep JSON and Port's strict types over real HTTP, on SQLite and PostgreSQL.

Reproductions: an entity property 252 deep was a plain-text 500 from the bulk writer (orjson
writes at most 254 levels), and one such entity failed a whole bulk call; blueprint relations
with ``"many": 0`` or ``"required": "false"`` and entities with ``relations: null`` were accepted
and converted, where Port refuses them naming the field.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from tests.support.live_kiosk import LiveServer
from tests.web.test_bad_input import assert_rejected
from tests.web.test_catalog_api import setup_catalog

from kiosk.core.json_depth import MAX_JSON_DEPTH

CONFIG_BLUEPRINT = {
    "identifier": "app",
    "schema": {"properties": {"config": {"type": "object"}, "tags": {"type": "array"}}},
}


def nested(depth: int) -> Any:
    """``depth`` objects inside one another: ``{"a": {"a": …}}``."""
    value: Any = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def deep_bytes(document: dict[str, Any], depth: int) -> bytes:
    """``document`` with its ``"DEEP"`` string replaced by ``depth`` nested arrays (beyond orjson's
    254 levels for writing, so spliced into the bytes)."""
    return orjson.dumps(document).replace(b'"DEEP"', b"[" * depth + b"]" * depth)


def post_json(live: LiveServer, path: str, content: bytes) -> Any:
    return live.admin.post(path, content=content, headers={"content-type": "application/json"})


@pytest.fixture
def app_blueprint(live: LiveServer) -> str:
    assert live.admin.post("/v1/blueprints", json=CONFIG_BLUEPRINT).status_code == 201
    return "/v1/blueprints/app/entities"


def test_entity_property_252_deep_is_a_json_400_naming_the_limit(live: LiveServer, app_blueprint: str) -> None:
    # The entity is 1 level, properties 2, config 3: 250 more make the property 252 deep.
    doc = {"identifier": "deep", "properties": {"config": nested(250)}}
    body = assert_rejected(live, lambda: live.admin.post(app_blueprint, json=doc), 400, str(MAX_JSON_DEPTH))
    assert body["error"] == "json_too_deep"
    assert body["details"]["limit"] == MAX_JSON_DEPTH
    assert body["details"]["field"].startswith("properties.config.a.a")


def test_entity_depth_boundary(live: LiveServer, app_blueprint: str) -> None:
    at_limit = {"identifier": "ok", "properties": {"config": nested(MAX_JSON_DEPTH - 2)}}
    r = live.admin.post(app_blueprint, json=at_limit)
    assert r.status_code == 201, r.text
    assert live.admin.get(app_blueprint + "/ok").json()["entity"]["properties"] == at_limit["properties"]
    past = {"identifier": "no", "properties": {"config": nested(MAX_JSON_DEPTH - 1)}}
    assert_rejected(live, lambda: live.admin.post(app_blueprint, json=past), 400, "deeper than 64 levels")
    assert_rejected(
        live, lambda: live.admin.patch(app_blueprint + "/ok", json={"properties": past["properties"]}), 400, "64"
    )


def test_past_orjsons_own_limit_is_the_same_400(live: LiveServer, app_blueprint: str) -> None:
    content = deep_bytes({"identifier": "x", "properties": {"tags": "DEEP"}}, 2000)
    body = assert_rejected(live, lambda: post_json(live, app_blueprint, content), 400, "64 levels")
    assert body["error"] == "json_too_deep"


def test_one_deep_entity_in_a_bulk_call_fails_alone(live: LiveServer, app_blueprint: str) -> None:
    entities = [
        {"identifier": "a", "properties": {"config": {"x": 1}}},
        {"identifier": "deep", "properties": {"tags": "DEEP"}},
        {"identifier": "b", "properties": {"tags": [1, 2]}},
    ]
    r = post_json(live, app_blueprint + "/bulk", deep_bytes({"entities": entities}, 252))
    assert r.status_code == 207, r.text
    body = r.json()
    assert [e["identifier"] for e in body["entities"]] == ["a", "b"]
    (error,) = body["errors"]
    assert error["index"] == 1 and error["identifier"] == "deep"
    assert error["statusCode"] == 400 and error["error"] == "json_too_deep"
    assert f"deeper than {MAX_JSON_DEPTH} levels" in error["message"]
    assert error["field"].startswith("properties.tags[0]")
    listed = live.admin.get(app_blueprint).json()["entities"]
    assert sorted(e["identifier"] for e in listed) == ["a", "b"]


@pytest.mark.parametrize(
    "path, body",
    [
        ("/v1/blueprints", {"identifier": "x", "schema": {"properties": {"p": {"type": "object", "default": "DEEP"}}}}),
        ("/v1/entities/search", {"combinator": "and", "rules": "DEEP"}),
        ("/v1/auth/access_token", {"clientId": "DEEP", "clientSecret": "x"}),
        ("/v1/actions", {"identifier": "x", "trigger": "DEEP"}),
    ],
)
def test_every_api_body_has_the_limit(live: LiveServer, path: str, body: dict[str, Any]) -> None:
    setup_catalog(live.admin)
    r = assert_rejected(live, lambda: post_json(live, path, deep_bytes(body, 100)), 400, "deeper than 64 levels")
    assert r["error"] == "json_too_deep"


# ------------------------------------------------------------------------ strict like Port


@pytest.mark.parametrize(
    "relation, field",
    [
        ({"target": "project", "many": 0}, "relations.project.many"),
        ({"target": "project", "required": "false"}, "relations.project.required"),
        ({"target": "project", "required": 1}, "relations.project.required"),
        ({"target": "project", "many": "true"}, "relations.project.many"),
    ],
)
def test_relation_flags_must_be_json_booleans(live: LiveServer, relation: dict[str, Any], field: str) -> None:
    setup_catalog(live.admin)
    doc = {"identifier": "svc2", "relations": {"project": relation}}
    body = assert_rejected(live, lambda: live.admin.post("/v1/blueprints", json=doc), 422, field)
    assert body["error"] == "invalid_blueprint"
    r = live.admin.patch("/v1/blueprints/service", json={"relations": {"project": relation}})
    assert r.status_code == 422 and field in r.json()["message"], r.text


def test_blueprint_relations_null_is_refused(live: LiveServer) -> None:
    setup_catalog(live.admin)
    doc = {"identifier": "svc2", "relations": None}
    assert_rejected(live, lambda: live.admin.post("/v1/blueprints", json=doc), 422, "relations")
    assert_rejected(
        live, lambda: live.admin.patch("/v1/blueprints/service", json={"relations": None}), 422, "relations"
    )


@pytest.mark.parametrize(
    "spec, field",
    [
        ({"type": "array", "uniqueItems": "false"}, "uniqueItems"),
        ({"type": "string", "minLength": True}, "minLength"),
        ({"type": "string", "title": 5}, "title"),
        ({"type": "object", "additionalProperties": "false"}, "additionalProperties"),
        ({"type": "array", "items": {"type": "string", "maxLength": False}}, "items.maxLength"),
    ],
)
def test_property_keywords_have_their_json_types(live: LiveServer, spec: dict[str, Any], field: str) -> None:
    doc = {"identifier": "x", "schema": {"properties": {"p": spec}}}
    body = assert_rejected(
        live, lambda: live.admin.post("/v1/blueprints", json=doc), 422, f"schema.properties.p.{field}"
    )
    assert body["details"] == {"field": f"schema.properties.p.{field}"}


@pytest.mark.parametrize("field", ["relations", "properties"])
def test_entity_relations_and_properties_null_are_refused(live: LiveServer, field: str) -> None:
    setup_catalog(live.admin)
    doc = {"identifier": "c", "properties": {"language": "go"}, "relations": {"project": "payments"}, field: None}
    url = "/v1/blueprints/service/entities"
    body = assert_rejected(live, lambda: live.admin.post(url, json=doc), 422, f"{field} must be an object")
    assert body["details"]["field"] == field
    r = live.admin.post(url + "/bulk", json={"entities": [doc]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == field


@pytest.mark.parametrize("flag", ["requiredApproval", "publish"])
def test_action_flags_must_be_json_booleans(live: LiveServer, flag: str) -> None:
    setup_catalog(live.admin)
    action = {
        "identifier": "deploy",
        "trigger": {"type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "service"},
        "invocationMethod": {"type": "WEBHOOK", "url": "https://example.com/hook", "synchronized": False},
        flag: "false",
    }
    assert_rejected(live, lambda: live.admin.post("/v1/actions", json=action), 422, flag)
    action = {**action, flag: False, "invocationMethod": {**action["invocationMethod"], "synchronized": 0}}
    assert_rejected(live, lambda: live.admin.post("/v1/actions", json=action), 422, "synchronized")
