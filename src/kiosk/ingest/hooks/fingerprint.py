"""A fingerprint of the consumer inputs last applied to Azure DevOps: salted, slow, never the secret.

Azure answers every subscription with its password masked (``********``), so whether the
subscriptions carry the current ``webhookSecret`` cannot be read back. kiosk keeps instead, per
integration and organisation, a fingerprint of the inputs it applied last; when the inputs it
would send now do not match it, every kept subscription is updated. The fingerprint is a PBKDF2
hash with a random salt, so the database never holds anything from which the secret is cheap to
recover, and two integrations with the same secret do not show it. Pure.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Final

import orjson

__all__ = ["fingerprint", "matches"]

_SCHEME: Final = "pbkdf2-sha256"
_ITERATIONS: Final = 100_000


def _derive(inputs: Mapping[str, str], salt: bytes, iterations: int) -> bytes:
    canonical = orjson.dumps(dict(inputs), option=orjson.OPT_SORT_KEYS)
    return hashlib.pbkdf2_hmac("sha256", canonical, salt, iterations)


def fingerprint(inputs: Mapping[str, str], *, salt: bytes | None = None) -> str:
    """``pbkdf2-sha256$iterations$salt$digest`` of ``inputs`` (a fresh random salt unless given)."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = _derive(inputs, salt, _ITERATIONS)
    return f"{_SCHEME}${_ITERATIONS}${salt.hex()}${digest.hex()}"


def matches(stored: str | None, inputs: Mapping[str, str]) -> bool:
    """Whether ``stored`` (from :func:`fingerprint`) is the fingerprint of ``inputs``; False for None or junk."""
    if not stored:
        return False
    parts = stored.split("$")
    if len(parts) != 4 or parts[0] != _SCHEME or not parts[1].isdigit():
        return False
    try:
        salt, digest = bytes.fromhex(parts[2]), bytes.fromhex(parts[3])
    except ValueError:
        return False
    iterations = int(parts[1])
    if not 1 <= iterations <= 10 * _ITERATIONS:
        return False
    return hmac.compare_digest(_derive(inputs, salt, iterations), digest)
