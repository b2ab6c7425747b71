"""Routes grouped by area find exactly the route a plain scan of the table would, in any case."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match
from tests.emulator.conftest import LiveEmulator

from kiosk.emulator.routing import RouteGroup, allowed_methods, flat_routes, request_key, template_key


@pytest.mark.parametrize(
    ("template", "key"),
    [
        ("/{org}/_apis/projects", ("area", "projects")),
        ("/{org}/{project}/_apis/wit/workitems/{id}", ("area", "wit")),
        ("/{org}/{project}/{team}/_apis/work/boards", ("area", "work")),
        ("/{org}/_apis/{resource}/{areaId}", None),
        ("/_emulator/switches", ("root", "_emulator")),
        ("/{org}", None),
    ],
)
def test_a_template_belongs_to_its_literal_area(template: str, key: tuple[str, str] | None) -> None:
    assert template_key(template) == key


def test_a_request_belongs_to_the_area_after_apis_in_any_case() -> None:
    assert request_key("/fabrikam/Web%20Site/_APIs/WIT/workItems") == ("area", "wit")
    assert request_key("/fabrikam/web/team/_apis/work/boards/b") == ("area", "work")
    assert request_key("/_emulator/triggers") == ("root", "_emulator")
    assert request_key("/") == ("root", "")


def _first(routes: list[BaseRoute], scope: dict[str, object]) -> tuple[Match, BaseRoute | None]:
    """The route Starlette's router would take: the first full match, else the first partial."""
    partial: BaseRoute | None = None
    for route in routes:
        match, child = route.matches(dict(scope))
        chosen = child.get("route", route) if isinstance(route, RouteGroup) else route
        if match is Match.FULL:
            return Match.FULL, chosen
        if match is Match.PARTIAL and partial is None:
            partial = chosen
    return (Match.PARTIAL, partial) if partial is not None else (Match.NONE, None)


def _sample(path: str, upper: bool) -> str:
    filled = re.sub(r"\{[^}:]+:path\}", "a/b", path)
    filled = re.sub(r"\{[^}]+\}", "1", filled)
    return filled.upper() if upper else filled


@pytest.mark.parametrize("upper", [False, True], ids=["as-declared", "upper-case"])
def test_every_route_is_found_as_a_plain_scan_finds_it(emulator: LiveEmulator, upper: bool) -> None:
    app = emulator.server.app
    grouped = list(app.router.routes)
    flat = list(flat_routes(grouped))
    assert any(isinstance(route, RouteGroup) for route in grouped) and len(grouped) < len(flat) / 3
    api_routes = [route for route in flat if isinstance(route, APIRoute)]
    assert len(api_routes) > 150
    for route in api_routes:
        for method in sorted(route.methods):
            scope = {"type": "http", "path": _sample(route.path, upper), "method": method, "root_path": ""}
            assert _first(grouped, scope) == _first(flat, scope), (method, route.path)
        wrong = {"type": "http", "path": _sample(route.path, upper), "method": "\0", "root_path": ""}
        assert _first(grouped, wrong) == _first(flat, wrong), route.path
        assert allowed_methods(grouped, _sample(route.path, upper)) == allowed_methods(flat, _sample(route.path, upper))


def test_a_request_through_a_group_reaches_its_handler_and_405_names_every_method(emulator: LiveEmulator) -> None:
    assert emulator.client.get("/FABRIKAM/_APIS/PROJECTS").status_code == 200
    answer = emulator.client.patch("/fabrikam/_apis/hooks/subscriptions/x")
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "DELETE, GET, PUT"
