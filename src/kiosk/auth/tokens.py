"""Bearer tokens: a signed, expiring claim of (client id, role).

A token is ``base64url(json claims) "." base64url(HMAC-SHA256(key, claims))``. Checking one costs
a hash and no database round trip. The key is derived from the master secret (see
:mod:`kiosk.auth.keys`), never stored in the database, so every process given the same secret
accepts the tokens of the others and reading the database is not enough to mint one. After a key
rotation the retired keys still verify (tried after the current one) until their tokens expire.

A valid signature only says kiosk issued the token: whether its client still exists, is not
revoked, and which role it has *now* is decided by :class:`kiosk.auth.live.LiveClients`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence

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


def _signed_by(keys: Sequence[bytes], body: str, sig: str) -> bool:
    """Whether ``sig`` is the signature of ``body`` under one of ``keys`` (current key first)."""
    given = sig.encode()
    for key in keys:
        expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
        if hmac.compare_digest(given, expected.encode()):
            return True
    return False


def verify_token(key: bytes | Sequence[bytes], token: str, *, now: float | None = None) -> Principal:
    """The principal in a valid, unexpired token signed by ``key`` (or one of several keys, the
    current one first); :class:`Unauthorized` otherwise. The role is the one the token claims:
    the caller checks it against the live client."""
    body, _, sig = token.partition(".")
    if not body or not sig or len(token) > 4096:
        raise Unauthorized("the bearer token is malformed", code="invalid_token")
    if not _signed_by((key,) if isinstance(key, bytes) else key, body, sig):
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
