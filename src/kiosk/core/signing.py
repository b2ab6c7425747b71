"""The checksum Azure Pipelines' incoming webhooks verify: HMAC-SHA1 over the exact body bytes.

The sender (kiosk's AZURE-DEVOPS actions, ``kiosk send``) and the verifier (kiosk's emulator)
share these functions, so both sides agree byte for byte. Because the hash covers the bytes, the
body must be minified once and those very bytes sent: a pretty-printed body has another checksum.
"""

from __future__ import annotations

import hashlib
import hmac

import orjson


def minify_json(body: bytes) -> bytes:
    """The compact form of a JSON document (key order and non-ASCII text kept, like JSON.stringify).

    Raises ``ValueError`` if ``body`` is not JSON.
    """
    try:
        return orjson.dumps(orjson.loads(body))
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign_azure_checksum(secret: str | bytes, body: bytes) -> str:
    """Upper-case hex HMAC-SHA1 of ``body``, as in Microsoft's example."""
    return hmac.new(_key(secret), body, hashlib.sha1).hexdigest().upper()


def verify_azure_checksum(
    secret: str | bytes, body: bytes, header_value: str, *, allow_sha1_prefix: bool = False
) -> bool:
    """Does ``header_value`` carry the checksum of ``body``? Hex in either case, constant time.

    A GitHub-style ``sha1=`` prefix is accepted only when asked for: Azure does not document it.
    """
    given = header_value.strip()
    if allow_sha1_prefix and given[:5].lower() == "sha1=":
        given = given[5:]
    expected = sign_azure_checksum(secret, body)
    # compare_digest is constant time for equal lengths; upper-casing first makes case irrelevant.
    return hmac.compare_digest(given.upper().encode("ascii", "replace"), expected.encode("ascii"))
