"""Secret inputs at rest: AES-256-GCM under a server key kept in the database.

A run's secret inputs must outlive the request (a run waiting for approval is delivered later,
and the body is built then), so they are stored — but only sealed: one AES-GCM box per run
holding ``{input: value}``, with the run id as associated data so a box copied onto another run
does not open. The key is 256 random bits made on first use and kept in ``server_state`` (like
the token signing key), so every kiosk process sharing the database can open the boxes.

The same key seals the **body of a delivery** that carries secret inputs (:meth:`SecretBox.seal_body`):
the pipeline needs the values in clear on the wire, so the body is opened only in memory, by the
delivery worker, just before it is signed and sent. The box is bound to the delivery id, and holds
the secret values too, so the worker can mask them in whatever the receiver answers (a receiver
that echoes its request must not put them into the attempt records).

What this protects against: the clear value showing up in API answers, in logs, in the
``action_runs`` or ``deliveries`` rows or in a dump of those tables. It does not protect against someone holding the
whole database (the key is in it); moving the key out of the database is the next step if that
matters.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kiosk.logs import register_secret
from kiosk.store.engine import Database
from kiosk.store.server_values import shared_value

__all__ = ["KEY_NAME", "OpenedBody", "SecretBox", "mask_text", "secret_inputs_key"]

KEY_NAME = "action_secrets_key"
#: Prefix of a sealed value: the format version, so the scheme can change without guessing.
VERSION = "v1"
NONCE_BYTES = 12
#: Prefix of a sealed delivery body (bytes, no base64: the column is binary).
BODY_VERSION = b"kb1:"


def _body_context(delivery_id: str) -> bytes:
    """Associated data of a sealed body: its delivery, and a label no run's box uses, so a sealed
    run-secrets box and a sealed body can never stand in for each other."""
    return b"delivery-body\x00" + delivery_id.encode()


@dataclass(frozen=True)
class OpenedBody:
    """A delivery body opened in memory: the exact bytes to sign and send, and the secret values it
    carries (to mask in anything recorded about the attempt). Never logged (no repr of either)."""

    body: bytes = field(repr=False)
    secret_values: tuple[str, ...] = field(repr=False)


def secret_inputs_key(db: Database) -> bytes:
    """The server's key for secret inputs: made once, kept in the database for every process."""
    return bytes.fromhex(shared_value(db, KEY_NAME, lambda: AESGCM.generate_key(bit_length=256).hex()))


class SecretBox:
    """Seals and opens one run's secret inputs."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SecretBox(***)"

    def seal(self, run_id: str, values: Mapping[str, str]) -> str:
        """``v1:<base64(nonce || ciphertext)>``, bound to ``run_id``."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, orjson.dumps(dict(values)), run_id.encode())
        return f"{VERSION}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, run_id: str, token: str) -> dict[str, str]:
        """The clear values (each registered with the log redaction); ValueError if they do not open."""
        version, _, payload = token.partition(":")
        if version != VERSION:
            raise ValueError(f"unknown sealed-secret format {version!r}")
        raw = base64.b64decode(payload)
        try:
            clear = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], run_id.encode())
        except InvalidTag:
            raise ValueError("the run's secret inputs do not open with this server's key") from None
        values = orjson.loads(clear)
        if not isinstance(values, dict):
            raise ValueError("sealed secret inputs are not an object")
        out = {str(k): str(v) for k, v in values.items()}
        for value in out.values():
            register_secret(value)
        return out

    def seal_body(self, delivery_id: str, body: bytes, secret_values: Collection[str]) -> bytes:
        """``kb1:`` + nonce + AES-GCM of ``{body, secrets}``, bound to ``delivery_id``.

        ``secret_values`` travel inside the box so whoever opens it to send can also mask them in
        the receiver's answer, even after the run finished and dropped its own sealed inputs.
        """
        envelope = orjson.dumps({"body": base64.b64encode(body).decode(), "secrets": sorted(set(secret_values))})
        nonce = secrets.token_bytes(NONCE_BYTES)
        return BODY_VERSION + nonce + self._aead.encrypt(nonce, envelope, _body_context(delivery_id))

    def open_body(self, delivery_id: str, sealed: bytes) -> OpenedBody:
        """The clear body of delivery ``delivery_id`` (its secret values registered with the log
        redaction); ValueError if it is not a sealed body or does not open with this key."""
        if not sealed.startswith(BODY_VERSION):
            raise ValueError("not a sealed delivery body (unknown format)")
        raw = sealed[len(BODY_VERSION) :]
        try:
            clear = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _body_context(delivery_id))
        except InvalidTag:
            raise ValueError("the delivery's sealed body does not open with this server's key") from None
        envelope = orjson.loads(clear)
        if not isinstance(envelope, dict) or not isinstance(envelope.get("body"), str):
            raise ValueError("a sealed delivery body holds no body")
        values = tuple(str(v) for v in envelope.get("secrets") or [])
        for value in values:
            register_secret(value)
        return OpenedBody(base64.b64decode(envelope["body"]), values)


def mask_text(text: str, values: Mapping[str, str] | Collection[str], mask: str) -> str:
    """``text`` with every secret value in ``values`` (a mapping's values, or the values themselves)
    replaced by ``mask``, longest first."""
    found = values.values() if isinstance(values, Mapping) else values
    for value in sorted((v for v in found if v), key=len, reverse=True):
        text = text.replace(value, mask)
    return text
