"""Secret inputs at rest: AES-256-GCM under a server key kept in the database.

A run's secret inputs must outlive the request (a run waiting for approval is delivered later,
and the body is built then), so they are stored — but only sealed: one AES-GCM box per run
holding ``{input: value}``, with the run id as associated data so a box copied onto another run
does not open. The key is 256 random bits made on first use and kept in ``server_state`` (like
the token signing key), so every kiosk process sharing the database can open the boxes.

What this protects against: the clear value showing up in API answers, in logs, in the
``action_runs`` row or in a dump of that table. It does not protect against someone holding the
whole database (the key is in it); moving the key out of the database is the next step if that
matters.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kiosk.logs import register_secret
from kiosk.store.engine import Database
from kiosk.store.server_values import shared_value

__all__ = ["KEY_NAME", "SecretBox", "mask_text", "secret_inputs_key"]

KEY_NAME = "action_secrets_key"
#: Prefix of a sealed value: the format version, so the scheme can change without guessing.
VERSION = "v1"
NONCE_BYTES = 12


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


def mask_text(text: str, values: Mapping[str, str], mask: str) -> str:
    """``text`` with every secret value in ``values`` replaced by ``mask`` (longest first)."""
    for value in sorted((v for v in values.values() if v), key=len, reverse=True):
        text = text.replace(value, mask)
    return text
