"""Request bodies the emulator accepts: read with a size limit, JSON only, at most 64 levels deep.

Three rules, each an answer in Azure's error shape rather than a 500 or a silent acceptance:

- **Size**: a body over the route's limit is refused with 413 while it is read (chunked too).
- **Media type**: a JSON route takes ``application/json`` (an optional ``charset=utf-8``) and
  nothing else (415). A web page can send ``text/plain`` or a typeless body cross-site without a
  CORS preflight; refusing every other type makes such a "simple" request useless against the
  emulator. A request without a body needs no type.
- **Depth**: a JSON document nested deeper than :data:`MAX_JSON_DEPTH` (64) containers is refused
  (400 naming the limit), by the same rule and check as kiosk's own (:mod:`kiosk.core.json_depth`).
  Deep documents are how recursive code (template expansion, filters, YAML dumping) is made to
  fail; nothing Azure sends comes close to 64.

The depth check is O(n) and, for the trigger's hot path, almost free: a body holding at most 64
brackets cannot be deeper than 64, and two ``bytes.count`` calls (C speed) prove it.
"""

from __future__ import annotations

import logging
from typing import Any, Final, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from kiosk.core.json_depth import MAX_JSON_DEPTH, exceeds_depth
from kiosk.emulator.errors import AzureError

__all__ = [
    "JSON_MEDIA_TYPE",
    "MAX_JSON_DEPTH",
    "check_json_content_type",
    "has_body",
    "parse_json",
    "read_body",
    "read_json",
    "too_deep",
    "validated",
]

log = logging.getLogger("kiosk.emulator")

JSON_MEDIA_TYPE: Final = "application/json"
Model = TypeVar("Model", bound=BaseModel)


class ClientGone(AzureError):
    """The client closed the connection before its body arrived; the answer goes nowhere."""


def has_body(request: Request) -> bool:
    """Whether the request announces a body: a non-zero Content-Length, or chunked transfer."""
    return request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers


def check_json_content_type(content_type: str | None, *, has_body: bool, accepted: tuple[str, ...] = ()) -> None:
    """Refuse (415) a body that does not declare JSON; ``accepted`` adds e.g. ``application/json-patch+json``.

    A declared type is checked even without a body (``text/plain`` with an empty body is still a
    cross-site form post); a missing type is fine only when there is no body.
    """
    if content_type is None:
        if has_body:
            raise _unsupported("The request has a body but no Content-Type")
        return
    media, _, parameters = content_type.partition(";")
    media = media.strip().lower()
    if media != JSON_MEDIA_TYPE and media not in accepted:
        raise _unsupported(f"The request entity's media type '{content_type.strip()[:100]}' is not supported")
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise _unsupported(f"The request entity's charset '{value.strip()[:40]}' is not supported (JSON is UTF-8)")


def _unsupported(problem: str) -> AzureError:
    return AzureError(415, "UnsupportedMediaTypeException", f"{problem}: send Content-Type: application/json.")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` (chunked bodies too).

    A client that disconnects mid-body is logged in one line (no traceback: 5,000 aborted uploads
    must not write megabytes of stderr) and answered with 400, which nobody receives.
    """
    declared = request.headers.get("content-length")
    too_large = AzureError(413, "RequestTooLargeException", f"The request body is larger than {limit} bytes.")
    if declared is not None:
        if not declared.isdigit():
            raise AzureError(400, "ArgumentException", "Content-Length is not a number.")
        if int(declared) > limit:
            raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect:
        log.info("client disconnected before sending its whole body: %s %s", request.method, request.url.path)
        raise ClientGone(
            400, "ClientDisconnectedException", "The client disconnected before its body arrived."
        ) from None
    return b"".join(chunks)


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` nests more than ``limit`` objects/arrays (kiosk's own check: one rule for both)."""
    return exceeds_depth(value, limit)


def _depth_error(limit: int) -> AzureError:
    return AzureError(
        400,
        "InvalidPayloadException",
        f"The request body is nested deeper than {limit} levels of objects and arrays (the emulator's limit).",
    )


def parse_json(raw: bytes, limit: int = MAX_JSON_DEPTH) -> Any:
    """Decode a JSON body: 400 ``InvalidPayloadException`` when it is not JSON or is deeper than ``limit``."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson's own limit (1,024) was hit first
            raise _depth_error(limit) from None
        raise AzureError(400, "InvalidPayloadException", f"The request body is not valid JSON: {exc}") from None
    # At most ``limit`` brackets anywhere (strings included) cannot nest deeper: skip the walk.
    if raw.count(b"{") + raw.count(b"[") > limit and too_deep(value, limit):
        raise _depth_error(limit)
    return value


async def read_json(request: Request, limit: int) -> Any:
    """A JSON route's body, by the three rules: 415 unless JSON, 413 over ``limit``, 400 when invalid
    or too deep. No body at all reads as ``{}``: the route decides whether that is missing."""
    check_json_content_type(request.headers.get("content-type"), has_body=has_body(request))
    return parse_json(await read_body(request, limit) or b"{}")


def validated(model: type[Model], value: Any) -> Model:
    """``value`` as ``model``, or Azure's 400 ``ArgumentException`` naming the first field that does not fit."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise AzureError(400, "ArgumentException", f"{where}: {first['msg']}") from None
