"""Hostile and malformed input: always a 4xx JSON error that names the problem, never a 5xx,
and a rejected request leaves the database exactly as it was."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from tests.support.live_kiosk import LiveServer
from tests.web.test_catalog_api import service, setup_catalog

from kiosk.store.tables import blueprints, entities, entity_relations


def snapshot(live: LiveServer) -> list[Any]:
    db = live.app.state.db
    with db.connect() as conn:
        return [
            conn.execute(sa.select(t).order_by(*t.primary_key.columns)).all()
            for t in (blueprints, entities, entity_relations)
        ]


def assert_rejected(live: LiveServer, send: Callable[[], httpx.Response], status: int, fragment: str) -> dict[str, Any]:
    before = snapshot(live)
    r = send()
    assert r.status_code == status, r.text
    body = r.json()
    assert body["ok"] is False and fragment in body["message"], body
    assert snapshot(live) == before
    return dict(body)


def test_malformed_and_mistyped_bodies(live: LiveServer) -> None:
    api = live.admin
    setup_catalog(api)
    url = "/v1/blueprints/service/entities"
    assert_rejected(
        live,
        lambda: api.post(url, content=b"{not json", headers={"content-type": "application/json"}),
        400,
        "not valid JSON",
    )
    assert_rejected(
        live, lambda: api.post(url, content=b"", headers={"content-type": "application/json"}), 400, "empty"
    )
    assert_rejected(live, lambda: api.post(url, content=b"a=b", headers={"content-type": "text/plain"}), 400, "JSON")
    assert_rejected(live, lambda: api.post(url, json=[1, 2]), 422, "JSON object")
    assert_rejected(live, lambda: api.post(url, json={"identifier": 7}), 422, "identifier")
    assert_rejected(
        live, lambda: api.post(url, json=service("a", properties={"language": 3})), 422, "properties.language"
    )
    assert_rejected(
        live, lambda: api.post(url, json=service("a", properties="python")), 422, "properties must be an object"
    )
    assert_rejected(live, lambda: api.post(url, json={**service("a"), "colour": "red"}), 422, "colour")
    assert_rejected(live, lambda: api.post("/v1/blueprints/nope/entities", json=service("a")), 404, "'nope'")
    assert_rejected(live, lambda: api.post("/v1/blueprints", json={"identifier": "x", "oops": 1}), 422, "oops")
    assert_rejected(live, lambda: api.post(url + "?upsert=maybe", json=service("a")), 422, "upsert")
    bulk = "/v1/blueprints/service/entities/bulk"
    assert_rejected(live, lambda: api.post(bulk, json={"entities": "all"}), 422, "'entities' must be a list")
    assert_rejected(live, lambda: api.post(bulk, json={"entities": [], "extra": 1}), 400, "extra")
    assert_rejected(live, lambda: api.post(bulk, json={}), 422, "'entities' is required")


def test_sql_looking_and_unicode_input_is_data(live: LiveServer) -> None:
    api = live.admin
    setup_catalog(api)
    sql = "x'); DROP TABLE entities; --"
    r = api.post(
        "/v1/blueprints/service/entities",
        json=service("sqlish", title=sql, properties={"language": "go", "lifecycle": sql}),
    )
    assert r.status_code == 201 and r.json()["entity"]["title"] == sql
    found = api.post(
        "/v1/entities/search",
        json={"combinator": "and", "rules": [{"property": "lifecycle", "operator": "=", "value": sql}]},
    )
    assert [e["identifier"] for e in found.json()["entities"]] == ["sqlish"]
    assert_rejected(
        live, lambda: api.post("/v1/blueprints/service/entities", json=service("ünïcødé")), 422, "identifier"
    )
    assert_rejected(live, lambda: api.get("/v1/blueprints/service/entities/" + "%27%3B--"), 404, "does not exist")
    title = "Zürich 東京 🚀"
    r = api.post("/v1/blueprints/service/entities", json=service("uni", title=title))
    assert r.status_code == 201 and api.get("/v1/blueprints/service/entities/uni").json()["entity"]["title"] == title


def test_bulk_over_the_limit_is_refused_whole(live: LiveServer) -> None:
    api = live.admin
    setup_catalog(api)
    body = {"entities": [service(f"e{i}") for i in range(20_001)]}
    assert_rejected(live, lambda: api.post("/v1/blueprints/service/entities/bulk", json=body), 413, "20000")


def test_fifty_megabyte_body_is_refused(live: LiveServer) -> None:
    api = live.admin
    setup_catalog(api)
    big = b'{"identifier": "' + b"a" * (50 * 1024 * 1024) + b'"}'
    assert_rejected(
        live,
        lambda: api.post("/v1/blueprints/service/entities", content=big, headers={"content-type": "application/json"}),
        413,
        "limit",
    )

    def chunks() -> Any:
        yield b'{"identifier": "'
        for _ in range(50):
            yield b"a" * (1024 * 1024)
        yield b'"}'

    assert_rejected(
        live,
        lambda: api.post(
            "/v1/blueprints/service/entities", content=chunks(), headers={"content-type": "application/json"}
        ),
        413,
        "limit",
    )


def test_bad_content_length_is_a_400(live: LiveServer) -> None:
    host, port = live.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"POST /v1/auth/access_token HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
        reply = s.recv(4096)
    assert reply.split(b" ")[1].startswith(b"4")


def test_unknown_routes_and_methods_answer_json(live: LiveServer) -> None:
    r = live.admin.get("/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = live.admin.put("/v1/entities/search", json={})
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"


@pytest.mark.parametrize(
    "method, path, allow",
    [
        # Routes that share a path across route objects: Starlette's 405 listed the first one's only.
        ("PUT", "/v1/actions/runs/r_1", "GET, PATCH"),
        ("PUT", "/v1/blueprints/service/entities/e1", "DELETE, GET, PATCH"),
        ("POST", "/v1/blueprints/service", "DELETE, GET, PATCH, PUT"),
        ("DELETE", "/v1/entities/search", "POST"),
        # Overlapping templates: the literal path names the resource, not {identifier} = "runs"/"bulk".
        ("OPTIONS", "/v1/actions/runs", "GET"),
        ("PUT", "/v1/blueprints/service/entities/bulk", "POST"),
    ],
)
def test_a_405_allows_every_method_of_the_path(live: LiveServer, method: str, path: str, allow: str) -> None:
    r = live.admin.request(method, path)
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
    assert r.headers["allow"] == allow


@pytest.mark.parametrize("header", ["Bearer", "Basic abc", "Bearer a.b.c.d", "Bearer " + "x" * 5000])
def test_bad_authorization_headers(live: LiveServer, header: str) -> None:
    with live.client() as anon:
        r = anon.get("/v1/blueprints", headers={"Authorization": header})
    assert r.status_code == 401 and r.json()["ok"] is False
    assert r.headers["www-authenticate"] == "Bearer"


def test_secrets_are_never_returned(live: LiveServer) -> None:
    creds = orjson.loads(live.settings.credentials_path.read_bytes())
    for path in ("/v1/blueprints", "/metrics", "/openapi.json", "/healthz", "/readyz"):
        assert creds["clientSecret"] not in live.admin.get(path).text
