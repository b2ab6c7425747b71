"""Entity routes: create/upsert, read, patch, delete, list (cursor pages), bulk and search."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from kiosk.auth.clients import Principal
from kiosk.catalog.paging import DEFAULT_PAGE, MAX_PAGE
from kiosk.catalog.service import Catalog
from kiosk.errors import BadRequest, ValidationFailed
from kiosk.web.auth import require_admin, require_member
from kiosk.web.bodies import documented_body, read_json, require_object
from kiosk.web.responses import API_ERRORS, ErrorBody, FastJSONResponse, errors
from kiosk.web.schemas import BulkBody, BulkResult, EntityBody, EntityPatch, SearchBody

router = APIRouter(tags=["entities"], responses=API_ERRORS)

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="page size")]
Cursor = Annotated[str | None, Query(alias="from", max_length=200, description="cursor from the previous page")]


@dataclass(frozen=True)
class EntityWriteFlags:
    """Port's query flags of an entity write, the same for one entity and for a bulk: ``upsert``
    (replace an existing one), ``merge`` (its properties into the stored ones) and
    ``create_missing_related_entities`` (placeholders for related entities not yet there)."""

    upsert: bool = False
    merge: bool = False
    create_missing_related_entities: bool = False

    def options(self) -> dict[str, bool]:
        """The flags as the catalog's write methods name them."""
        return {"upsert": self.upsert, "merge": self.merge, "create_missing": self.create_missing_related_entities}


WriteFlags = Annotated[EntityWriteFlags, Depends()]


def _catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


@router.post(
    "/v1/blueprints/{blueprint}/entities",
    status_code=201,
    openapi_extra=documented_body(EntityBody),
    responses={200: {"description": "updated an existing entity (upsert)"}, **errors(403, 404, 409)},
)
async def create_entity(
    blueprint: str,
    request: Request,
    flags: WriteFlags,
    who: Principal = Depends(require_admin),
) -> FastJSONResponse:
    body = await read_json(request)
    entity, created = await run_in_threadpool(
        _catalog(request).upsert_entity,
        blueprint,
        body,
        **flags.options(),
        actor=who.client_id,
    )
    return FastJSONResponse({"ok": True, "entity": entity}, status_code=201 if created else 200)


@router.get("/v1/blueprints/{blueprint}/entities", responses=errors(404))
async def list_entities(
    blueprint: str,
    request: Request,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
    _: Principal = Depends(require_member),
) -> FastJSONResponse:
    entities, nxt = await run_in_threadpool(_catalog(request).list_entities, blueprint, limit=limit, cursor=cursor)
    return FastJSONResponse({"ok": True, "entities": entities, "next": nxt})


@router.post(
    "/v1/blueprints/{blueprint}/entities/bulk",
    openapi_extra=documented_body(BulkBody),
    responses={
        200: {"model": BulkResult, "description": "every entity was stored"},
        207: {"model": BulkResult, "description": "some entities were stored; each failed one is in errors"},
        422: {"model": BulkResult | ErrorBody, "description": "no entity was stored (or the request is invalid)"},
        **errors(403, 404, 409),
    },
)
async def bulk_entities(
    blueprint: str,
    request: Request,
    flags: WriteFlags,
    who: Principal = Depends(require_admin),
) -> FastJSONResponse:
    # Depth is checked per entity by the catalog: one deep entity fails alone, the others are stored.
    body = require_object(await read_json(request, check_depth=False), "the bulk request")
    unknown = sorted(set(body) - {"entities"})
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r} (expected 'entities')", code="unknown_field")
    if "entities" not in body:
        raise ValidationFailed("'entities' is required", code="invalid_request", details={"field": "entities"})
    outcome = await run_in_threadpool(
        _catalog(request).bulk_upsert,
        blueprint,
        body["entities"],
        **flags.options(),
        actor=who.client_id,
    )
    metrics = request.app.state.metrics
    metrics.bulk_entities.labels("stored").inc(len(outcome.entities))
    metrics.bulk_entities.labels("rejected").inc(len(outcome.errors))
    if not outcome.errors:
        status = 200
    elif outcome.entities:
        status = 207
    else:
        status = 422
    return FastJSONResponse(
        {"ok": not outcome.errors, "entities": outcome.entities, "errors": outcome.errors}, status_code=status
    )


@router.get("/v1/blueprints/{blueprint}/entities/{identifier}", responses=errors(404))
async def get_entity(
    blueprint: str, identifier: str, request: Request, _: Principal = Depends(require_member)
) -> FastJSONResponse:
    entity = await run_in_threadpool(_catalog(request).get_entity, blueprint, identifier)
    return FastJSONResponse({"ok": True, "entity": entity})


@router.patch(
    "/v1/blueprints/{blueprint}/entities/{identifier}",
    openapi_extra=documented_body(EntityPatch),
    responses=errors(403, 404, 409),
)
async def patch_entity(
    blueprint: str,
    identifier: str,
    request: Request,
    create_missing_related_entities: bool = False,
    who: Principal = Depends(require_admin),
) -> FastJSONResponse:
    body = await read_json(request)
    entity = await run_in_threadpool(
        _catalog(request).patch_entity,
        blueprint,
        identifier,
        body,
        create_missing=create_missing_related_entities,
        actor=who.client_id,
    )
    return FastJSONResponse({"ok": True, "entity": entity})


@router.delete("/v1/blueprints/{blueprint}/entities/{identifier}", responses=errors(403, 404, 409))
async def delete_entity(
    blueprint: str,
    identifier: str,
    request: Request,
    delete_dependents: bool = False,
    _: Principal = Depends(require_admin),
) -> dict[str, Any]:
    await run_in_threadpool(_catalog(request).delete_entity, blueprint, identifier, delete_dependents=delete_dependents)
    return {"ok": True}


@router.post("/v1/entities/search", openapi_extra=documented_body(SearchBody), responses=errors(404))
async def search_entities(
    request: Request,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
    _: Principal = Depends(require_member),
) -> FastJSONResponse:
    body = await read_json(request)
    entities, nxt = await run_in_threadpool(_catalog(request).search, body, limit=limit, cursor=cursor)
    return FastJSONResponse({"ok": True, "entities": entities, "next": nxt})
