"""API clients over HTTP.

``POST /v1/auth/access_token``: client id + secret → bearer token (Port's route and shape).
``GET /v1/auth/clients`` lists clients, revoked ones included; ``POST /v1/auth/clients/{id}/revoke``
revokes one (admins only): its secret gets no token and its tokens are refused at once on this
process and within about a second on every other (see :mod:`kiosk.auth.live`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from kiosk.auth.clients import Principal, list_clients, revoke_client, verify_client
from kiosk.auth.tokens import issue_token
from kiosk.errors import BadRequest, Unauthorized
from kiosk.web.auth import require_admin
from kiosk.web.bodies import documented_body, read_json, require_object
from kiosk.web.responses import API_ERRORS, errors
from kiosk.web.schemas import AccessTokenRequest

router = APIRouter(prefix="/v1/auth", tags=["auth"], responses=API_ERRORS)


@router.post("/access_token", openapi_extra={**documented_body(AccessTokenRequest), "security": []})
async def access_token(request: Request) -> dict[str, Any]:
    body = require_object(await read_json(request), "the token request")
    unknown = sorted(set(body) - {"clientId", "clientSecret"})
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r} (expected clientId and clientSecret)", code="unknown_field")
    client_id, secret = body.get("clientId"), body.get("clientSecret")
    if not isinstance(client_id, str) or not isinstance(secret, str) or not client_id or not secret:
        raise BadRequest("clientId and clientSecret are required strings", code="invalid_request")
    if len(client_id) > 200 or len(secret) > 500:
        raise Unauthorized("invalid client credentials", code="invalid_credentials")
    principal = await run_in_threadpool(verify_client, request.app.state.db, client_id, secret)
    if principal is None:
        raise Unauthorized("invalid client credentials", code="invalid_credentials")
    request.app.state.live_clients.note(principal)
    ttl = request.app.state.settings.token_ttl_seconds
    token = issue_token(request.app.state.token_key, principal, ttl)
    return {"ok": True, "accessToken": token, "expiresIn": ttl, "tokenType": "Bearer"}


def _client_doc(row: dict[str, Any]) -> dict[str, Any]:
    def when(value: Any) -> str | None:
        return value.isoformat() if isinstance(value, datetime) else None

    return {
        "clientId": row["client_id"],
        "role": row["role"],
        "name": row.get("name"),
        "createdAt": when(row.get("created_at")),
        "revokedAt": when(row.get("revoked_at")),
    }


@router.get("/clients", responses=errors(403))
async def clients(request: Request, _: Principal = Depends(require_admin)) -> dict[str, Any]:
    """Every API client (never a secret), revoked ones with their ``revokedAt``."""
    rows = await run_in_threadpool(list_clients, request.app.state.db)
    return {"ok": True, "clients": [_client_doc(row) for row in rows]}


@router.post("/clients/{client_id}/revoke", responses=errors(403, 404, 409))
async def revoke(client_id: str, request: Request, _: Principal = Depends(require_admin)) -> dict[str, Any]:
    """Revoke a client (again: no change). 404 for an unknown id, 409 for the last active admin."""
    row = await run_in_threadpool(revoke_client, request.app.state.db, client_id)
    # This process refuses the client's tokens from the next request on; the others within a second.
    await run_in_threadpool(request.app.state.live_clients.reload)
    return {"ok": True, "client": _client_doc(row)}
