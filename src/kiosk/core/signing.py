"""Signatures of outbound webhooks, shared by the senders and the verifiers so both agree byte for byte.

* Azure Pipelines' incoming webhooks verify a checksum: HMAC-SHA1 over the exact body bytes. The
  sender (kiosk's AZURE-DEVOPS actions, ``kiosk send``) and the verifier (kiosk's emulator) share
  these functions. Because the hash covers the bytes, the body must be minified once and those
  very bytes sent: a pretty-printed body has another checksum.
* Generic webhooks carry Standard Webhooks' and Port's HMAC-SHA256 signatures (see below).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

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


# ------------------------------------------------------------------------------------------------
# Generic webhooks: Standard Webhooks and Port's scheme, both HMAC-SHA256, base64, ``v1,`` prefix.
#
# A generic WEBHOOK delivery carries both, so a receiver written for either verifies it:
#
# * Standard Webhooks: ``webhook-id``, ``webhook-timestamp`` (unix seconds) and
#   ``webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``. The spec's
#   secrets look like ``whsec_<base64>`` and the key is the decoded part; the official libraries
#   verify with that key, so a ``whsec_`` secret is decoded here too. Any other secret is used as
#   its UTF-8 bytes.
# * Port: ``X-Port-Timestamp`` and ``X-Port-Signature: v1,<base64 HMAC-SHA256(secret, "{timestamp}.{body}")>``,
#   keyed with the secret's UTF-8 bytes as Port does.
#
# The signatures cover a timestamp, so every attempt (retries included) is signed afresh; the
# ``webhook-id`` stays the same across attempts and is the receiver's idempotency key.

STANDARD_WEBHOOKS_TOLERANCE = 300.0
"""Seconds a Standard Webhooks timestamp may be away from the verifier's clock (the spec's 5 minutes)."""

_WHSEC_PREFIX = "whsec_"


def standard_webhooks_key(secret: str | bytes) -> bytes:
    """The HMAC key for a Standard Webhooks secret: the decoded part of ``whsec_<base64>``, else the bytes."""
    if isinstance(secret, str) and secret.startswith(_WHSEC_PREFIX):
        try:
            return base64.b64decode(secret[len(_WHSEC_PREFIX) :], validate=True)
        except binascii.Error:
            raise ValueError("a whsec_ secret must be base64 after the prefix") from None
    return _key(secret)


def _hmac_sha256_b64(key: bytes, *parts: bytes) -> str:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return base64.b64encode(mac.digest()).decode("ascii")


def sign_standard_webhook(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``."""
    key = standard_webhooks_key(secret)
    return "v1," + _hmac_sha256_b64(key, f"{msg_id}.{timestamp}.".encode(), body)


def sign_port_webhook(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Port-Signature`` value: ``v1,<base64 HMAC-SHA256(secret, "{timestamp}.{body}")>``."""
    return "v1," + _hmac_sha256_b64(_key(secret), f"{timestamp}.".encode(), body)


def webhook_signature_headers(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every header a generic WEBHOOK delivery carries to prove where it came from (both schemes)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_standard_webhook(secret, msg_id, timestamp, body),
        "X-Port-Timestamp": str(timestamp),
        "X-Port-Signature": sign_port_webhook(secret, timestamp, body),
    }


def _fresh(timestamp: str, now: float | None, tolerance: float) -> int | None:
    """The timestamp as an int when it is within ``tolerance`` seconds of ``now``; else None."""
    try:
        value = int(timestamp.strip())
    except ValueError:
        return None
    current = time.time() if now is None else now
    return value if abs(current - value) <= tolerance else None


def _any_v1_matches(header_value: str, expected: str) -> bool:
    """Does one of the space-separated ``v1,<sig>`` entries equal ``expected``? (Constant time each.)

    Standard Webhooks allows several signatures in one header (secret rotation); other versions
    are ignored.
    """
    wanted = expected.encode("ascii")
    found = False
    for entry in header_value.split():
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode("ascii", "replace"), wanted):
            found = True
    return found


def verify_standard_webhook(
    secret: str | bytes,
    body: bytes,
    *,
    msg_id: str,
    timestamp: str,
    signature: str,
    now: float | None = None,
    tolerance: float = STANDARD_WEBHOOKS_TOLERANCE,
) -> bool:
    """Check the ``webhook-*`` headers of a delivery: a signature over id, timestamp and body, and a
    timestamp within ``tolerance`` seconds of now (so a captured request cannot be replayed later)."""
    stamp = _fresh(timestamp, now, tolerance)
    if stamp is None:
        return False
    expected = sign_standard_webhook(secret, msg_id, stamp, body)[3:]
    return _any_v1_matches(signature, expected)


def verify_port_webhook(
    secret: str | bytes,
    body: bytes,
    *,
    timestamp: str,
    signature: str,
    now: float | None = None,
    tolerance: float = STANDARD_WEBHOOKS_TOLERANCE,
) -> bool:
    """Check ``X-Port-Timestamp`` / ``X-Port-Signature``, with the same freshness rule as Standard Webhooks."""
    stamp = _fresh(timestamp, now, tolerance)
    if stamp is None:
        return False
    expected = sign_port_webhook(secret, stamp, body)[3:]
    return _any_v1_matches(signature, expected)
