"""JSON responses rendered with orjson (bulk results are tens of thousands of objects), kiosk's
error body, and what the OpenAPI document says about both.

Every error kiosk answers has one shape, :class:`ErrorBody` (Port's ``{ok: false, error, message,
details}``), and every route declares each status it can answer with that schema through
:func:`errors` — so clients (and schemathesis' ``status_code_conformance`` and
``response_schema_conformance``) can rely on the description. Routers declare
:data:`API_ERRORS`, what any API route can answer whatever it does: a malformed request or
Content-Length (400), no valid token (401), a body over the limit (413), a refused value (422),
a busy database (503), and 405 when the path as sent names another resource (a parameter value
with a ``?`` or ``#`` not percent-encoded ends the path early: ``POST /v1/blueprints/a?b/entities``
is a POST to blueprint ``a``, which takes none). Routes add what is theirs: 403 (admin only), 404 (a named resource),
409 (a write that conflicts).

:func:`allowed_methods` is the ``Allow`` header of a 405: Starlette's router answers 405 from
the first route whose path matches and lists only that route's methods, while kiosk's routes
often share a path across several route objects (``GET`` and ``PATCH`` of a run).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Literal

import orjson
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

__all__ = [
    "API_ERRORS",
    "ErrorBody",
    "FastJSONResponse",
    "allowed_methods",
    "error_response",
    "errors",
]


class FastJSONResponse(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> FastJSONResponse:
    body: dict[str, Any] = {"ok": False, "error": code, "message": message}
    if details is not None:
        body["details"] = details
    return FastJSONResponse(body, status_code=status, headers=headers)


class ErrorBody(BaseModel):
    """Every error kiosk answers (Port's shape): ``error`` is a stable machine code, ``message``
    names the problem (the field, the limit), ``details`` carries structured extras when useful."""

    ok: Literal[False]
    error: str = Field(description="machine-readable code, e.g. not_found, json_too_deep")
    message: str = Field(description="what is wrong, naming the field or the limit")
    details: Any = Field(default=None, description="structured extras: the field, the limit, per-item errors")


#: What each declared status means across the API.
_MEANINGS = {
    400: "malformed request: not JSON, nested deeper than 64 levels, a bad Content-Length or cursor",
    401: "no token, or one that is invalid, expired or revoked",
    403: "the client's role may not do this",
    404: "the named object does not exist",
    405: "the path as sent names another resource, which does not take this method (see Allow)",
    409: "conflict: exists already, still referenced, or changed by a concurrent request (retry)",
    413: "body over the size limit, or too many items in one call",
    422: "well-formed but invalid; the message names the field",
    503: "the database is busy or unreachable; retry shortly",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route or router: each status, documented with :class:`ErrorBody`."""
    return {code: {"model": ErrorBody, "description": _MEANINGS[code]} for code in codes}


#: What every API route can answer, whatever it does (see the module docstring).
API_ERRORS = errors(400, 401, 405, 413, 422, 503)


def _flattened(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """The routes, with each included router replaced by its own routes. FastAPI (0.16x) keeps an
    included router whole in the app's route list, as an object whose ``original_router`` holds
    the routes (their paths carry the router's prefix; kiosk includes routers without another)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _flattened(inner.routes)
        else:
            yield route


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str]:
    """The ``Allow`` header of a 405: every method of the resource this path names.

    Every route whose template matches the path counts, not only the first (Starlette's answer);
    when templates overlap, the most specific ones name the resource — the fewest parameters, so a
    literal segment wins: ``/v1/actions/runs`` is the runs list (``GET``), not an action called
    "runs", and ``…/entities/bulk`` is the bulk route (``POST``). This is also what the OpenAPI
    document says the path supports.
    """
    matched: list[tuple[int, set[str]]] = []
    for route in _flattened(routes):
        if not isinstance(route, Route) or route.methods is None:
            continue
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            matched.append((len(route.param_convertors), route.methods))
    fewest = min((params for params, _ in matched), default=0)
    return sorted({method for params, methods in matched if params == fewest for method in methods})
