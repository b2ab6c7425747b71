"""The catalog API over real HTTP on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.support.live_kiosk import LiveServer

SERVICE = {
    "identifier": "service",
    "title": "Service",
    "icon": "Microservice",
    "schema": {
        "properties": {
            "language": {"type": "string", "enum": ["python", "go", "rust"]},
            "url": {"type": "string", "format": "url"},
            "owner": {"type": "string", "format": "email"},
            "replicas": {"type": "number", "default": 1},
            "public": {"type": "boolean"},
            "released": {"type": "string", "format": "date-time"},
            "lifecycle": {"type": "string", "x-kiosk-index": True},
        },
        "required": ["language"],
    },
    "relations": {
        "project": {"target": "project", "title": "Project", "required": True, "many": False},
        "dependsOn": {"target": "service", "title": "Depends on", "required": False, "many": True},
    },
}
PROJECT = {"identifier": "project", "title": "Project", "schema": {"properties": {}, "required": []}}


def setup_catalog(api: httpx.Client) -> None:
    assert api.post("/v1/blueprints", json=PROJECT).status_code == 201
    assert api.post("/v1/blueprints", json=SERVICE).status_code == 201
    r = api.post("/v1/blueprints/project/entities", json={"identifier": "payments", "title": "Payments"})
    assert r.status_code == 201, r.text


def service(ident: str, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "identifier": ident,
        "title": ident.upper(),
        "properties": {"language": "python", "lifecycle": "production"},
        "relations": {"project": "payments"},
    }
    doc.update(extra)
    return doc


@pytest.fixture
def api(live: LiveServer) -> httpx.Client:
    """The admin client, with the catalog of :func:`setup_catalog` in place."""
    setup_catalog(live.admin)
    return live.admin


def test_token_route_and_bearer_requirement(live: LiveServer) -> None:
    with live.client() as anon:
        r = anon.get("/v1/blueprints")
        assert r.status_code == 401
        assert r.json()["ok"] is False and "Bearer" in r.json()["message"]
        bad = anon.post("/v1/auth/access_token", json={"clientId": "kc_nope", "clientSecret": "x"})
        assert bad.status_code == 401 and bad.json()["error"] == "invalid_credentials"
    with live.client("not.a-token") as forged:
        assert forged.get("/v1/blueprints").status_code == 401
    body = live.admin.get("/v1/blueprints").json()
    assert body == {"ok": True, "blueprints": []}


def test_member_reads_but_cannot_write(live: LiveServer) -> None:
    setup_catalog(live.admin)
    with live.member() as member:
        assert member.get("/v1/blueprints/service").status_code == 200
        assert member.get("/v1/blueprints/project/entities/payments").status_code == 200
        r = member.post("/v1/blueprints/service/entities", json=service("svc-a"))
        assert r.status_code == 403 and r.json()["error"] == "admin_required"
        assert member.delete("/v1/blueprints/service").status_code == 403


def test_blueprint_crud(api: httpx.Client) -> None:
    got = api.get("/v1/blueprints/service").json()["blueprint"]
    assert got["schema"]["properties"]["language"]["enum"] == ["python", "go", "rust"]
    assert got["relations"]["project"]["required"] is True
    assert got["createdAt"].endswith("Z")
    assert api.post("/v1/blueprints", json=PROJECT).status_code == 409
    r = api.patch("/v1/blueprints/service", json={"title": "Microservice"})
    assert r.status_code == 200 and r.json()["blueprint"]["title"] == "Microservice"
    assert r.json()["blueprint"]["schema"]["required"] == ["language"]
    put = {**SERVICE, "description": "replaced"}
    assert api.put("/v1/blueprints/service", json=put).json()["blueprint"]["description"] == "replaced"
    assert api.get("/v1/blueprints/nope").status_code == 404
    # A blueprint still targeted by a relation cannot go; one with entities needs delete_entities.
    assert api.delete("/v1/blueprints/project").json()["error"] == "blueprint_in_use"
    api.post("/v1/blueprints/service/entities", json=service("svc-a"))
    r = api.delete("/v1/blueprints/service")
    assert r.status_code == 409 and r.json()["error"] == "blueprint_has_entities"
    assert api.delete("/v1/blueprints/service?delete_entities=true").status_code == 200
    assert api.get("/v1/blueprints/service").status_code == 404
    assert api.delete("/v1/blueprints/project?delete_entities=true").status_code == 200


def test_entity_lifecycle_upsert_merge_patch_delete(api: httpx.Client) -> None:
    r = api.post("/v1/blueprints/service/entities", json=service("svc-a", team=["core"]))
    assert r.status_code == 201, r.text
    entity = r.json()["entity"]
    assert entity["properties"] == {"language": "python", "lifecycle": "production", "replicas": 1}
    assert entity["relations"] == {"project": "payments", "dependsOn": []}
    assert entity["team"] == ["core"] and entity["blueprint"] == "service"

    dup = api.post("/v1/blueprints/service/entities", json=service("svc-a"))
    assert dup.status_code == 409 and dup.json()["details"]["entity"] == "svc-a"

    api.post("/v1/blueprints/service/entities", json=service("svc-b"))
    merged = api.post(
        "/v1/blueprints/service/entities?upsert=true&merge=true",
        json={"identifier": "svc-a", "properties": {"public": True}, "relations": {"dependsOn": ["svc-b"]}},
    )
    assert merged.status_code == 200
    e = merged.json()["entity"]
    assert e["properties"]["public"] is True and e["properties"]["language"] == "python"
    assert e["relations"] == {"project": "payments", "dependsOn": ["svc-b"]}
    assert e["team"] == ["core"]

    replaced = api.post(
        "/v1/blueprints/service/entities?upsert=true",
        json={"identifier": "svc-a", "properties": {"language": "go"}, "relations": {"project": "payments"}},
    ).json()["entity"]
    assert replaced["properties"] == {"language": "go", "replicas": 1}
    assert replaced["relations"]["dependsOn"] == [] and replaced["team"] == []

    patched = api.patch("/v1/blueprints/service/entities/svc-a", json={"properties": {"public": True, "replicas": 4}})
    assert patched.status_code == 200 and patched.json()["entity"]["properties"]["public"] is True
    cleared = api.patch(
        "/v1/blueprints/service/entities/svc-a", json={"properties": {"public": None, "replicas": None}}
    )
    # null clears a property; one with a default falls back to it
    assert cleared.json()["entity"]["properties"] == {"language": "go", "replicas": 1}
    assert api.patch("/v1/blueprints/service/entities/ghost", json={"title": "x"}).status_code == 404

    assert api.delete("/v1/blueprints/service/entities/svc-a").status_code == 200
    assert api.get("/v1/blueprints/service/entities/svc-a").status_code == 404
    assert api.delete("/v1/blueprints/service/entities/svc-a").status_code == 404


def test_relations_missing_targets_and_create_missing(api: httpx.Client) -> None:
    r = api.post("/v1/blueprints/service/entities", json=service("svc-a", relations={"project": "billing"}))
    assert r.status_code == 422
    assert r.json()["error"] == "related_entity_not_found"
    assert r.json()["details"] == {"entity": "svc-a", "field": "relations.project"}
    r = api.post(
        "/v1/blueprints/service/entities?create_missing_related_entities=true",
        json=service("svc-a", relations={"project": "billing", "dependsOn": ["svc-new"]}),
    )
    # svc-new cannot be created empty: service requires 'language' and a project.
    assert r.status_code == 422 and "svc-new" in r.json()["message"]
    r = api.post(
        "/v1/blueprints/service/entities?create_missing_related_entities=true",
        json=service("svc-a", relations={"project": "billing"}),
    )
    assert r.status_code == 201
    assert api.get("/v1/blueprints/project/entities/billing").status_code == 200
    missing_required = api.post(
        "/v1/blueprints/service/entities", json={"identifier": "x", "properties": {"language": "go"}}
    )
    assert missing_required.status_code == 422
    assert missing_required.json()["details"]["field"] == "relations.project"


def test_required_relation_blocks_delete_unless_dependents_go_too(api: httpx.Client) -> None:
    api.post("/v1/blueprints/service/entities", json=service("svc-a"))
    r = api.delete("/v1/blueprints/project/entities/payments")
    assert r.status_code == 409 and r.json()["error"] == "entity_has_dependents"
    assert api.delete("/v1/blueprints/project/entities/payments?delete_dependents=true").status_code == 200
    assert api.get("/v1/blueprints/service/entities/svc-a").status_code == 404


def test_optional_relation_is_cleared_when_target_is_deleted(api: httpx.Client) -> None:
    api.post("/v1/blueprints/service/entities", json=service("svc-b"))
    api.post(
        "/v1/blueprints/service/entities",
        json=service("svc-a", relations={"project": "payments", "dependsOn": ["svc-b"]}),
    )
    assert api.delete("/v1/blueprints/service/entities/svc-b").status_code == 200
    assert api.get("/v1/blueprints/service/entities/svc-a").json()["entity"]["relations"]["dependsOn"] == []


def test_relation_cycle_is_refused(api: httpx.Client) -> None:
    api.post("/v1/blueprints/service/entities", json=service("a"))
    api.post(
        "/v1/blueprints/service/entities", json=service("b", relations={"project": "payments", "dependsOn": ["a"]})
    )
    r = api.patch("/v1/blueprints/service/entities/a", json={"relations": {"dependsOn": ["b"]}})
    assert r.status_code == 422 and r.json()["error"] == "relation_cycle"
    assert "a -> b -> a" in r.json()["message"]
    r = api.patch("/v1/blueprints/service/entities/a", json={"relations": {"dependsOn": ["a"]}})
    assert r.status_code == 422 and r.json()["error"] == "relation_cycle"
    assert api.get("/v1/blueprints/service/entities/a").json()["entity"]["relations"]["dependsOn"] == []


def test_list_pages_with_cursor(api: httpx.Client) -> None:
    bulk = api.post("/v1/blueprints/service/entities/bulk", json={"entities": [service(f"s{i:03}") for i in range(25)]})
    assert bulk.status_code == 200
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 10}
        if cursor:
            params["from"] = cursor
        page = api.get("/v1/blueprints/service/entities", params=params).json()
        seen += [e["identifier"] for e in page["entities"]]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == 3 and seen == [f"s{i:03}" for i in range(25)]
    r = api.get("/v1/blueprints/service/entities", params={"from": "garbage!"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_cursor"
    assert api.get("/v1/blueprints/service/entities", params={"limit": 0}).status_code == 422


def test_bulk_reports_one_result_per_entity(api: httpx.Client) -> None:
    entities = [
        service("ok-1"),
        service("bad-lang", properties={"language": "cobol"}),
        {"identifier": "no shape", "properties": {}},
        service("ok-2"),
        service("ok-1"),
        service("extra", properties={"language": "go", "color": "red"}),
    ]
    r = api.post("/v1/blueprints/service/entities/bulk", json={"entities": entities})
    assert r.status_code == 207
    body = r.json()
    assert [e["index"] for e in body["entities"]] == [0, 3]
    assert all(e["created"] for e in body["entities"])
    errors = {e["index"]: e for e in body["errors"]}
    assert set(errors) == {1, 2, 4, 5}
    assert errors[1]["field"] == "properties.language" and errors[1]["identifier"] == "bad-lang"
    assert errors[2]["error"] == "invalid_identifier"
    assert errors[4]["error"] == "duplicate_identifier"
    assert errors[5]["error"] == "unknown_property" and "color" in errors[5]["message"]
    again = api.post("/v1/blueprints/service/entities/bulk?upsert=true", json={"entities": [service("ok-1")]})
    assert again.status_code == 200 and again.json()["entities"][0]["created"] is False
    refused = api.post("/v1/blueprints/service/entities/bulk", json={"entities": [service("ok-2")]})
    assert refused.status_code == 422 and refused.json()["errors"][0]["statusCode"] == 409


def test_search_through_the_api(api: httpx.Client) -> None:
    docs = [
        service("a", properties={"language": "python", "lifecycle": "production", "replicas": 3}),
        service("b", properties={"language": "go", "lifecycle": "staging", "replicas": 1}),
        service(
            "c",
            properties={"language": "go", "lifecycle": "production", "replicas": 5},
            relations={"project": "payments", "dependsOn": ["b"]},
        ),
    ]
    assert api.post("/v1/blueprints/service/entities/bulk", json={"entities": docs}).status_code == 200

    def ids(query: dict[str, Any]) -> list[str]:
        r = api.post("/v1/entities/search", json=query)
        assert r.status_code == 200, r.text
        return sorted(e["identifier"] for e in r.json()["entities"])

    rule_bp = {"property": "$blueprint", "operator": "=", "value": "service"}
    assert ids(
        {"combinator": "and", "rules": [rule_bp, {"property": "lifecycle", "operator": "=", "value": "production"}]}
    ) == ["a", "c"]
    assert ids({"combinator": "and", "rules": [rule_bp, {"property": "replicas", "operator": ">", "value": 2}]}) == [
        "a",
        "c",
    ]
    assert ids(
        {
            "combinator": "or",
            "rules": [
                {"property": "$identifier", "operator": "=", "value": "a"},
                {
                    "combinator": "and",
                    "rules": [
                        {"property": "language", "operator": "=", "value": "go"},
                        {"property": "lifecycle", "operator": "!=", "value": "production"},
                    ],
                },
            ],
        }
    ) == ["a", "b"]
    assert ids(
        {
            "combinator": "and",
            "rules": [{"operator": "relatedTo", "blueprint": "service", "value": "b", "direction": "downstream"}],
        }
    ) == ["c"]
    bad = api.post("/v1/entities/search", json={"combinator": "xor", "rules": []})
    assert bad.status_code == 422 and bad.json()["ok"] is False
