"""Blueprint routes: ``/v1/blueprints`` (Port's paths and shapes)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from kiosk.auth.clients import Principal
from kiosk.catalog.blueprints import BlueprintDoc
from kiosk.catalog.service import Catalog
from kiosk.web.auth import require_admin, require_member
from kiosk.web.bodies import documented_body, read_json
from kiosk.web.responses import API_ERRORS, FastJSONResponse, errors
from kiosk.web.schemas import BlueprintPatch, BlueprintReplace

router = APIRouter(prefix="/v1/blueprints", tags=["blueprints"], responses=API_ERRORS)


def _catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


@router.get("")
async def list_blueprints(request: Request, _: Principal = Depends(require_member)) -> dict[str, Any]:
    return {"ok": True, "blueprints": await run_in_threadpool(_catalog(request).list_blueprints)}


@router.post("", status_code=201, openapi_extra=documented_body(BlueprintDoc), responses=errors(403, 409))
async def create_blueprint(request: Request, who: Principal = Depends(require_admin)) -> FastJSONResponse:
    body = await read_json(request)
    blueprint = await run_in_threadpool(_catalog(request).create_blueprint, body, actor=who.client_id)
    return FastJSONResponse({"ok": True, "blueprint": blueprint}, status_code=201)


@router.get("/{identifier}", responses=errors(404))
async def get_blueprint(identifier: str, request: Request, _: Principal = Depends(require_member)) -> dict[str, Any]:
    return {"ok": True, "blueprint": await run_in_threadpool(_catalog(request).get_blueprint, identifier)}


@router.put("/{identifier}", openapi_extra=documented_body(BlueprintReplace), responses=errors(403, 404, 409))
async def replace_blueprint(
    identifier: str, request: Request, who: Principal = Depends(require_admin)
) -> dict[str, Any]:
    body = await read_json(request)
    blueprint = await run_in_threadpool(_catalog(request).replace_blueprint, identifier, body, actor=who.client_id)
    return {"ok": True, "blueprint": blueprint}


@router.patch("/{identifier}", openapi_extra=documented_body(BlueprintPatch), responses=errors(403, 404, 409))
async def patch_blueprint(identifier: str, request: Request, who: Principal = Depends(require_admin)) -> dict[str, Any]:
    body = await read_json(request)
    blueprint = await run_in_threadpool(_catalog(request).patch_blueprint, identifier, body, actor=who.client_id)
    return {"ok": True, "blueprint": blueprint}


@router.delete("/{identifier}", responses=errors(403, 404, 409))
async def delete_blueprint(
    identifier: str, request: Request, delete_entities: bool = False, _: Principal = Depends(require_admin)
) -> dict[str, Any]:
    await run_in_threadpool(_catalog(request).delete_blueprint, identifier, delete_entities=delete_entities)
    return {"ok": True}
