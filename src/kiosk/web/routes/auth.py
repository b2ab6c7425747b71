"""``POST /v1/auth/access_token``: client id + secret → bearer token (Port's route and shape)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from kiosk.auth.clients import verify_client
from kiosk.auth.tokens import issue_token
from kiosk.errors import BadRequest, Unauthorized
from kiosk.web.bodies import documented_body, read_json, require_object
from kiosk.web.schemas import AccessTokenRequest

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/access_token", openapi_extra=documented_body(AccessTokenRequest))
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
    ttl = request.app.state.settings.token_ttl_seconds
    token = issue_token(request.app.state.token_key, principal, ttl)
    return {"ok": True, "accessToken": token, "expiresIn": ttl, "tokenType": "Bearer"}
