"""How a request finds its route: case-insensitive paths, routes grouped by API area, ``Allow``.

- Azure's paths are case-insensitive (clients ask for ``…/Timeline``, ``…/pullRequests``): so are
  the routes' literal parts; a parameter keeps the case it was sent in.
- The emulator serves about two hundred routes, and Starlette tries a router's routes one by one,
  a regular expression each: a route late in the table paid ~100 µs a request before its own work
  began (more than a page of repositories costs to shape). So the routes are grouped by their
  *area*, the literal segment after ``_apis`` (``/{org}/{project}/_apis/wit/workitems`` → ``wit``),
  or their literal first segment (``/_emulator/…``). A request is tried against its own group and
  the routes with neither (``/{org}/_apis/{resource}/{areaId}``), in table order. No route can match
  a path of another group, so the first route to match is the one Starlette would have found.
- Starlette's 405 names the methods of the first route that matched the path; Azure's ``Allow``
  names them all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

from fastapi import FastAPI
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

__all__ = ["RouteGroup", "allowed_methods", "flat_routes", "group_by_area", "match_case_insensitively"]

GroupKey = tuple[str, str]
_SCOPE_KEY: Final = "kiosk.route_group"
_API_SEGMENT: Final = "_apis"
_AREA_POSITIONS: Final = (2, 3, 4)
"""Where ``_apis`` stands: after the org, the project, or the team."""


def template_key(path: str) -> GroupKey | None:
    """The group of a route's path template; None when its area (or first segment) is a parameter."""
    segments = path.split("/")
    for position in _AREA_POSITIONS:
        if position + 1 < len(segments) and segments[position].lower() == _API_SEGMENT:
            area = segments[position + 1]
            return None if "{" in area else ("area", area.lower())
    first = segments[1] if len(segments) > 1 else ""
    return None if not first or "{" in first else ("root", first.lower())


def request_key(path: str) -> GroupKey:
    """The group a request path belongs to (see the module docstring); parameters never start with ``{``."""
    segments = path.split("/", 6)
    for position in _AREA_POSITIONS:
        if position + 1 < len(segments) and segments[position].lower() == _API_SEGMENT:
            return ("area", segments[position + 1].lower())
    return ("root", segments[1].lower() if len(segments) > 1 else "")


def _scope_key(scope: Scope) -> GroupKey:
    """:func:`request_key` of the scope's path, worked out once per path (every group asks)."""
    path: str = scope["path"]
    cached: tuple[str, GroupKey] | None = scope.get(_SCOPE_KEY)
    if cached is None or cached[0] is not path:
        cached = (path, request_key(path))
        scope[_SCOPE_KEY] = cached
    return cached[1]


class RouteGroup(BaseRoute):
    """The routes of one group, tried only for paths of that group, in their table order."""

    def __init__(self, key: GroupKey, routes: Sequence[BaseRoute]) -> None:
        self.key = key
        self.routes = list(routes)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or _scope_key(scope) != self.key:
            return Match.NONE, {}
        partial: tuple[BaseRoute, Scope] | None = None
        for route in self.routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                return Match.FULL, {**child_scope, "route": route}  # the router sets scope["route"] from it
            if match is Match.PARTIAL and partial is None:
                partial = (route, child_scope)
        if partial is not None:
            return Match.PARTIAL, {**partial[1], "route": partial[0]}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route: BaseRoute = scope["route"]
        await route.handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        for route in self.routes:
            try:
                return route.url_path_for(name, **path_params)
            except NoMatchFound:
                continue
        raise NoMatchFound(name, path_params)


def match_case_insensitively(routes: Iterable[BaseRoute]) -> None:
    """Recompile each route's path pattern to ignore case (literal parts only are affected)."""
    for route in routes:
        pattern = getattr(route, "path_regex", None)
        if isinstance(pattern, re.Pattern) and not pattern.flags & re.IGNORECASE:
            route.path_regex = re.compile(pattern.pattern, pattern.flags | re.IGNORECASE)  # type: ignore[attr-defined]


def group_by_area(app: FastAPI) -> list[BaseRoute]:
    """Replace ``app``'s routing table by groups (each where its first route stood); returns the flat table.

    Call once, after every route is added: a route added later goes to the end, ungrouped.
    """
    flat = list(app.router.routes)
    groups: dict[GroupKey, RouteGroup] = {}
    table: list[BaseRoute] = []
    for route in flat:
        path = getattr(route, "path", None)
        key = template_key(path) if isinstance(path, str) else None
        if key is None:
            table.append(route)
        elif key in groups:
            groups[key].routes.append(route)
        else:
            groups[key] = RouteGroup(key, [route])
            table.append(groups[key])
    app.router.routes = table
    return flat


def flat_routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, groups opened (for the OpenAPI description and for tests)."""
    for route in routes:
        if isinstance(route, RouteGroup):
            yield from route.routes
        else:
            yield route


def allowed_methods(routes: Iterable[BaseRoute], path: str) -> str:
    """Every method some route serves at ``path``, for a 405's ``Allow``."""
    methods: set[str] = set()
    scope = {"type": "http", "path": path, "method": "\0", "root_path": ""}
    for route in flat_routes(routes):
        match, _ = route.matches(scope)
        if match is Match.PARTIAL:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))
