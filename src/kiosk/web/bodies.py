"""Reading JSON bodies ourselves (orjson, clear errors) while still documenting them in OpenAPI.

FastAPI's own body parsing would decode with the stdlib and validate with a model per entity,
which costs more than everything else in a 20,000-entity bulk call. Routes therefore read the
body through :func:`read_json` and describe it with :func:`documented_body`, which puts the
pydantic model's JSON schema into the OpenAPI document.

Every body is held to :data:`kiosk.core.json_depth.MAX_JSON_DEPTH` levels of nesting (a 400
``json_too_deep`` naming the limit), except where a route checks the parts of its body one by
one: a bulk call checks each entity, so one deep entity fails alone (its result names the limit)
and the others are stored. Past 1,024 levels orjson itself stops parsing, so a body that deep is
refused whole, bulk or not, with the same ``json_too_deep`` answer.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi import Request
from pydantic import BaseModel

from kiosk.core.json_depth import MAX_JSON_DEPTH, depth_message, exceeds_depth, too_deep_at
from kiosk.errors import BadRequest

#: A JSON ``\u0000`` escape whose backslash is not itself escaped (``"\\u0000"`` is fine).
_NUL_ESCAPE = re.compile(rb"(?:^|[^\\])(?:\\\\)*\\u0000")

#: Component schemas collected from documented bodies; merged into the app's OpenAPI document.
COMPONENTS: dict[str, Any] = {}


def documented_body(model: type[BaseModel], *, description: str = "") -> dict[str, Any]:
    """``openapi_extra`` for a route whose JSON body follows ``model``."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
    COMPONENTS.update(schema.pop("$defs", {}))
    COMPONENTS[model.__name__] = schema
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        }
    }


def too_deep(what: str, where: str = "") -> BadRequest:
    """The 400 for a document nested past :data:`MAX_JSON_DEPTH`; ``where`` is the path, if known."""
    details = {"field": where, "limit": MAX_JSON_DEPTH} if where else {"limit": MAX_JSON_DEPTH}
    return BadRequest(depth_message(what, where), code="json_too_deep", details=details)


async def read_json(request: Request, *, check_depth: bool = True) -> Any:
    """The request body as JSON, or a 400 that says what is wrong with it.

    ``check_depth=False`` is for a route that checks the depth of each part of its body itself
    (the bulk route, per entity); every other route keeps the default.
    """
    content_type = request.headers.get("content-type", "application/json")
    if "json" not in content_type.split(";")[0].lower():
        raise BadRequest(
            f"request body must be JSON (Content-Type: application/json), not {content_type!r}",
            code="unsupported_media_type",
        )
    raw = await request.body()
    if not raw.strip():
        raise BadRequest("request body is empty; a JSON document is required", code="malformed_json")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):  # orjson's own limit, 1024: far past ours
            raise too_deep("the request body") from None
        raise BadRequest(f"request body is not valid JSON: {exc}", code="malformed_json") from None
    # PostgreSQL cannot store NUL in text or jsonb; refuse it up front on every engine alike.
    if b"\\u0000" in raw and _NUL_ESCAPE.search(raw):
        raise BadRequest("strings must not contain the NUL character (\\u0000)", code="invalid_string")
    if check_depth and exceeds_depth(value):
        raise too_deep("the request body", too_deep_at(value))
    return value


def require_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object", code="invalid_request")
    return value
