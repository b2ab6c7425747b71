"""Reading JSON bodies ourselves (orjson, clear errors) while still documenting them in OpenAPI.

FastAPI's own body parsing would decode with the stdlib and validate with a model per entity,
which costs more than everything else in a 20,000-entity bulk call. Routes therefore read the
body through :func:`read_json` and describe it with :func:`documented_body`, which puts the
pydantic model's JSON schema into the OpenAPI document.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi import Request
from pydantic import BaseModel

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


async def read_json(request: Request) -> Any:
    """The request body as JSON, or a 400 that says what is wrong with it."""
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
        raise BadRequest(f"request body is not valid JSON: {exc}", code="malformed_json") from None
    # PostgreSQL cannot store NUL in text or jsonb; refuse it up front on every engine alike.
    if b"\\u0000" in raw and _NUL_ESCAPE.search(raw):
        raise BadRequest("strings must not contain the NUL character (\\u0000)", code="invalid_string")
    return value


def require_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object", code="invalid_request")
    return value
