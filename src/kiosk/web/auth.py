"""Auth dependencies: ``Authorization: Bearer <token>`` on every /v1 route but the token route.

Members read the catalog (and, later, run actions); admins also change it.
"""

from __future__ import annotations

from fastapi import Request

from kiosk.auth.clients import Principal
from kiosk.auth.tokens import verify_token
from kiosk.errors import Forbidden, Unauthorized


def current_principal(request: Request) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("missing 'Authorization: Bearer <token>' header", code="missing_token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'", code="invalid_token")
    principal = verify_token(request.app.state.token_key, token.strip())
    request.state.principal = principal
    return principal


# ``async`` on purpose: checking a token is a few microseconds of CPU (an HMAC, no IO), and a plain
# ``def`` dependency would cost every request a hop through the thread pool (measured ~1 ms).
async def require_member(request: Request) -> Principal:
    return current_principal(request)


async def require_admin(request: Request) -> Principal:
    principal = current_principal(request)
    if not principal.is_admin:
        raise Forbidden("this needs an admin client; members may only read the catalog", code="admin_required")
    return principal
