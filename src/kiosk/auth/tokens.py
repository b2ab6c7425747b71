"""Bearer tokens: a signed, expiring claim of (client id, role).

A token is ``base64url(json claims) "." base64url(HMAC-SHA256(key, claims))``. Stateless, so
checking one costs a hash and no database round trip; the key lives in the database so every
kiosk process on one database accepts the tokens of the others.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import orjson

from kiosk.auth.clients import ROLES, Principal
from kiosk.errors import Unauthorized


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_token(key: bytes, principal: Principal, ttl_seconds: int, *, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    claims = orjson.dumps(
        {"sub": principal.client_id, "role": principal.role, "iat": issued, "exp": issued + ttl_seconds}
    )
    body = _b64(claims)
    sig = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    return f"{body}.{sig}"


def verify_token(key: bytes, token: str, *, now: float | None = None) -> Principal:
    """The principal in a valid, unexpired token; :class:`Unauthorized` otherwise."""
    body, _, sig = token.partition(".")
    if not body or not sig or len(token) > 4096:
        raise Unauthorized("the bearer token is malformed", code="invalid_token")
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(sig.encode(), expected.encode()):
        raise Unauthorized("the bearer token is not valid", code="invalid_token")
    try:
        claims = orjson.loads(_unb64(body))
        client_id, role, exp = str(claims["sub"]), str(claims["role"]), int(claims["exp"])
    except (ValueError, KeyError, TypeError):
        raise Unauthorized("the bearer token is malformed", code="invalid_token") from None
    if role not in ROLES:
        raise Unauthorized("the bearer token is not valid", code="invalid_token")
    if (time.time() if now is None else now) >= exp:
        raise Unauthorized("the bearer token has expired; request a new one", code="token_expired")
    return Principal(client_id=client_id, role=role)
