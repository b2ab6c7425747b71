"""What an entity write answers: one result per entity, and its errors as the API shows them.

The bulk route answers every entity (``BulkOutcome``); the one-entity routes raise the first
error instead, with the same status and message (:func:`error_from_result`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kiosk.catalog.validation import EntityError
from kiosk.errors import BadRequest, Conflict, ValidationFailed


@dataclass
class BulkOutcome:
    """One result per entity, in request order: ``entities`` succeeded, ``errors`` did not."""

    entities: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def error_result(index: int, identifier: Any, exc: EntityError) -> dict[str, Any]:
    """An entity's error as the bulk route answers it (``index`` in the request, its identifier)."""
    result: dict[str, Any] = {
        "index": index,
        "identifier": identifier if isinstance(identifier, str) else None,
        "statusCode": exc.status,
        "error": exc.code,
        "message": (f"entity {identifier!r}: " if isinstance(identifier, str) else "")
        + (f"{exc.field}: " if exc.field and not exc.message.startswith(exc.field) else "")
        + exc.message,
    }
    if exc.field:
        result["field"] = exc.field
    return result


def as_kiosk_error(exc: EntityError, identifier: Any) -> ValidationFailed | Conflict | BadRequest:
    """A single entity's error as the error a one-entity route raises."""
    return error_from_result(error_result(0, identifier, exc))


def error_from_result(result: dict[str, Any]) -> ValidationFailed | Conflict | BadRequest:
    details = {"entity": result.get("identifier"), "field": result.get("field")}
    if result["statusCode"] == 409:
        return Conflict(result["message"], code=result["error"], details=details)
    if result["statusCode"] == 400:  # json_too_deep: the same status as a body refused whole
        return BadRequest(result["message"], code=result["error"], details=details)
    return ValidationFailed(result["message"], code=result["error"], details=details)
