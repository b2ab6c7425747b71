"""The emulator's OpenAPI description says what its routes answer, and 405s say what they allow."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute
from tests.emulator.conftest import LiveEmulator

from kiosk.emulator.routing import flat_routes


def test_every_operation_declares_the_codes_it_answers(emulator: LiveEmulator) -> None:
    document = emulator.client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["pat"] == {
        "type": "http",
        "scheme": "basic",
        "description": document["components"]["securitySchemes"]["pat"]["description"],
    }
    operations = {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    served = {
        (method, route.path)
        for route in flat_routes(emulator.server.app.routes)
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in route.methods
    }
    assert set(operations) == served  # every route is described
    public = {
        ("POST", "/{org}/_apis/public/distributedtask/webhooks/{webhook_name}"),
        ("GET", "/_emulator/healthz"),
    }
    for key, operation in operations.items():
        codes = set(operation["responses"])
        assert "403" in codes and "422" not in codes, key  # any route refuses other origins; 422 is never sent
        if key in public:
            assert operation["security"] == [], key
        else:
            assert "401" in codes and "security" not in operation, key
            assert set(operation["responses"]["401"]["headers"]) >= {"WWW-Authenticate", "X-VSS-AuthenticateError"}
        if "requestBody" in operation:
            assert {"400", "413", "415"} <= codes, key
            assert list(operation["requestBody"]["content"]) == ["application/json"], key
        for parameter in operation.get("parameters", []):
            if parameter["name"] == "api-version":  # Azure serves a read without one, at 7.1
                assert parameter["required"] is (key[0] not in ("GET", "HEAD", "OPTIONS")), key


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/fabrikam/_apis/hooks/subscriptions", "GET, POST"),
        ("POST", "/fabrikam/_apis/hooks/subscriptions/abc", "DELETE, GET, PUT"),
        ("DELETE", "/fabrikam/web/_apis/build/builds/1", "GET, PATCH"),
        ("GET", "/fabrikam/_apis/public/distributedtask/webhooks/hook", "POST"),
        ("OPTIONS", "/_emulator/triggers", "GET"),
    ],
)
def test_a_405_allows_every_method_the_path_serves(emulator: LiveEmulator, method: str, path: str, allow: str) -> None:
    response = emulator.client.request(method, path, params={"api-version": "7.1"})
    assert response.status_code == 405
    assert response.headers["Allow"] == allow
    assert response.json()["typeKey"] == "MethodNotAllowedException"
