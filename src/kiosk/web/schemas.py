"""Pydantic models that document request bodies in OpenAPI.

Validation itself happens in the catalog layer (one definition of what is valid, shared with
``kiosk apply``); these models describe the same shapes for clients and for schemathesis.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kiosk.catalog.blueprints import BlueprintDoc, RelationDef


class AccessTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clientId: str = Field(max_length=200)
    clientSecret: str = Field(max_length=500)


def _identifier_optional(schema: dict[str, Any]) -> None:
    schema["required"] = [name for name in schema.get("required", []) if name != "identifier"]


class BlueprintReplace(BlueprintDoc):
    """``PUT /v1/blueprints/{identifier}``: a whole blueprint; its identifier comes from the path
    (the body may repeat it, not change it). Only its documented schema differs from BlueprintDoc."""

    model_config = ConfigDict(json_schema_extra=_identifier_optional)


class BlueprintPatch(BaseModel):
    """Fields to change; ``schema`` is merged one level deep (properties/required replaced)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    title: str | None = None
    icon: str | None = None
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    relations: dict[str, RelationDef] | None = None
    mirrorProperties: dict[str, Any] | None = None
    calculationProperties: dict[str, Any] | None = None
    aggregationProperties: dict[str, Any] | None = None


class EntityPatch(BaseModel):
    """What a PATCH of an entity may change. ``relations`` values are an identifier, a list of them, or null."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = None
    icon: str | None = None
    team: str | list[str] | None = None
    # Optional, not nullable: Port refuses ``properties: null`` / ``relations: null``, so does kiosk.
    properties: dict[str, Any] = Field(default_factory=dict)
    relations: dict[str, str | list[str] | None] = Field(default_factory=dict)


class EntityBody(EntityPatch):
    """A Port entity: what a PATCH may change, plus its identifier (and, optionally, its blueprint)."""

    identifier: str = Field(pattern=r"^[A-Za-z0-9@_.+:\\/=-]+$", max_length=1000)
    blueprint: str | None = None


class BulkBody(BaseModel):
    """Up to 20,000 entities (more: 413 ``too_many_entities``, the call changes nothing)."""

    model_config = ConfigDict(extra="forbid")

    entities: list[EntityBody]


class BulkEntityResult(BaseModel):
    """One entity's result in a bulk answer (in ``entities`` when stored, ``errors`` when not)."""

    index: int
    identifier: str | None = None
    created: bool | None = None
    statusCode: int | None = None
    error: str | None = None
    message: str | None = None
    field: str | None = None


class BulkResult(BaseModel):
    """A bulk call's answer: 200 all stored, 207 some, 422 none (each failure says why)."""

    ok: bool
    entities: list[BulkEntityResult]
    errors: list[BulkEntityResult]


class SearchRule(BaseModel):
    property: str | None = None
    operator: str
    value: Any = None
    blueprint: str | None = None
    direction: Literal["upstream", "downstream"] | None = None


class SearchBody(BaseModel):
    """Port's search query: ``combinator`` over ``rules``; a rule may itself be a query."""

    combinator: Literal["and", "or"]
    rules: list[SearchRule | SearchBody]
