"""Secret inputs at rest: AES-256-GCM under a key derived from the server's master secret.

A run's secret inputs must outlive the request (a run waiting for approval is delivered later,
and the body is built then), so they are stored — but only sealed: one AES-GCM box per run
holding ``{input: value}``, with the run id as associated data so a box copied onto another run
does not open. The key is derived from the master secret (:mod:`kiosk.auth.keys`), which is kept
outside the database: a copy of the database alone opens nothing.

The same key seals the **body of a delivery** that carries secret inputs (:meth:`SecretBox.seal_body`):
the pipeline needs the values in clear on the wire, so the body is opened only in memory, by the
delivery worker, just before it is signed and sent. The box is bound to the delivery id, and holds
the secret values too, so the worker can mask them in whatever the receiver answers (a receiver
that echoes its request must not put them into the attempt records).

Every seal names the master key it was made with (``v2:<key id>:...``, ``kb2:<key id>:...``), so
after a key rotation the older seals still open with the retired key until ``kiosk keys rotate``
re-seals them under the current one. The ``v1:``/``kb1:`` forms were sealed under the key older
versions kept in the database; they open only with that *legacy* key, which the start-up
migration (:mod:`kiosk.auth.keystore`) uses once to re-seal them, then deletes.

What this protects against: the clear value showing up in API answers, in logs, in the
``action_runs`` or ``deliveries`` rows, in a dump of those tables, or in a copy of the whole database.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kiosk.auth.keys import SEAL_LABEL, KeyRing
from kiosk.logs import register_secret

__all__ = ["LEGACY_KEY_NAME", "OpenedBody", "SecretBox", "mask_text", "secret_forms"]

#: The ``server_state`` row where versions before key files kept the sealing key (migrated away).
LEGACY_KEY_NAME = "action_secrets_key"
#: Prefix of a sealed value: the format version, so the scheme can change without guessing.
VERSION = "v2"
LEGACY_VERSION = "v1"
NONCE_BYTES = 12
#: Prefix of a sealed delivery body (bytes, no base64: the column is binary).
BODY_VERSION = b"kb2:"
LEGACY_BODY_VERSION = b"kb1:"
_KEY_ID = re.compile(r"[0-9a-z]{1,32}")


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


class SecretBox:
    """Seals (under the current key) and opens (under any key it holds) secret inputs and bodies.

    ``SecretBox(key)`` holds one key, named ``key_id``; :meth:`from_keyring` holds the sealing key
    of every master key in a ring. ``legacy`` is the key older versions kept in the database, for
    opening the ``v1:``/``kb1:`` seals made with it (the start-up migration only).
    """

    def __init__(
        self,
        key: bytes,
        *,
        key_id: str = "k0",
        retired: Mapping[str, bytes] | None = None,
        legacy: bytes | None = None,
    ) -> None:
        if not _KEY_ID.fullmatch(key_id):
            raise ValueError("a key id is 1-32 lower-case letters and digits")
        self.key_id = key_id
        self._aead = AESGCM(key)
        self._by_id = {kid: AESGCM(k) for kid, k in (retired or {}).items()}
        self._by_id[key_id] = self._aead
        self._legacy = AESGCM(legacy) if legacy is not None else None

    @classmethod
    def from_keyring(cls, ring: KeyRing, *, legacy: bytes | None = None) -> SecretBox:
        """A box sealing under the ring's current key and opening under any of its keys."""
        return cls(
            ring.current.derive(SEAL_LABEL),
            key_id=ring.current.key_id,
            retired={k.key_id: k.derive(SEAL_LABEL) for k in ring.retired},
            legacy=legacy,
        )

    def __repr__(self) -> str:
        return "SecretBox(***)"

    def _aead_for(self, key_id: str | None) -> AESGCM:
        """The cipher for a seal made under ``key_id`` (None: the legacy database key)."""
        aead = self._legacy if key_id is None else self._by_id.get(key_id)
        if aead is None:
            which = "the key older versions kept in the database" if key_id is None else f"key {key_id}"
            raise ValueError(f"the seal does not open with this server's key: it was made under {which}")
        return aead

    def sealed_key_id(self, sealed: str | bytes) -> str | None:
        """The id of the key ``sealed`` (a run's ``secrets`` or a delivery body) was sealed under;
        None for the legacy form. ValueError if it is not a seal."""
        if isinstance(sealed, str):
            version, _, rest = sealed.partition(":")
            if version == LEGACY_VERSION:
                return None
            if version != VERSION:
                raise ValueError(f"unknown sealed-secret format {version!r}")
            return rest.partition(":")[0]
        if sealed.startswith(LEGACY_BODY_VERSION):
            return None
        if not sealed.startswith(BODY_VERSION):
            raise ValueError("not a sealed delivery body (unknown format)")
        return sealed[len(BODY_VERSION) :].partition(b":")[0].decode("ascii", "replace")

    def seal(self, run_id: str, values: Mapping[str, str]) -> str:
        """``v2:<key id>:<base64(nonce || ciphertext)>``, bound to ``run_id``."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, orjson.dumps(dict(values)), run_id.encode())
        return f"{VERSION}:{self.key_id}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, run_id: str, token: str) -> dict[str, str]:
        """The clear values (each registered with the log redaction); ValueError if they do not open."""
        key_id = self.sealed_key_id(token)
        payload = token.rpartition(":")[2]
        aead = self._aead_for(key_id)
        raw = base64.b64decode(payload)
        try:
            clear = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], run_id.encode())
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
        """``kb2:<key id>:`` + nonce + AES-GCM of ``{body, secrets}``, bound to ``delivery_id``.

        ``secret_values`` travel inside the box so whoever opens it to send can also mask them in
        the receiver's answer, even after the run finished and dropped its own sealed inputs.
        """
        envelope = orjson.dumps({"body": base64.b64encode(body).decode(), "secrets": sorted(set(secret_values))})
        nonce = secrets.token_bytes(NONCE_BYTES)
        prefix = BODY_VERSION + self.key_id.encode() + b":"
        return prefix + nonce + self._aead.encrypt(nonce, envelope, _body_context(delivery_id))

    def open_body(self, delivery_id: str, sealed: bytes) -> OpenedBody:
        """The clear body of delivery ``delivery_id`` (its secret values registered with the log
        redaction); ValueError if it is not a sealed body or does not open with this key."""
        key_id = self.sealed_key_id(sealed)
        aead = self._aead_for(key_id)
        header = len(LEGACY_BODY_VERSION) if key_id is None else len(BODY_VERSION) + len(key_id) + 1
        raw = sealed[header:]
        try:
            clear = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _body_context(delivery_id))
        except InvalidTag:
            raise ValueError("the delivery's sealed body does not open with this server's key") from None
        envelope = orjson.loads(clear)
        if not isinstance(envelope, dict) or not isinstance(envelope.get("body"), str):
            raise ValueError("a sealed delivery body holds no body")
        values = tuple(str(v) for v in envelope.get("secrets") or [])
        for value in values:
            register_secret(value)
        return OpenedBody(base64.b64decode(envelope["body"]), values)


#: Derived forms shorter than this are not masked (a 1-3 character base64 core or hex string would
#: blank out unrelated text); the secret itself is always masked, whatever its length.
_MIN_FORM = 4


def _base64_forms(raw: bytes) -> set[str]:
    """Every base64 text of ``raw``: standard and url-safe, padded or not, and the three cores it
    leaves inside a *larger* base64 string, one per byte alignment (0, 1 or 2 bytes before it).

    In ``base64(prefix + raw + suffix)`` the characters that depend on ``raw`` alone start at
    ``ceil(8p/6)`` (``p = len(prefix) % 3``) and end at ``floor(8(p+n)/6)``: encode ``raw`` behind
    ``p`` placeholder bytes and cut the characters the placeholder or the unknown suffix touch.
    """
    forms: set[str] = set()
    for p in range(3):
        encoded = base64.b64encode(bytes(p) + raw).decode()
        start, end = -(-8 * p // 6), 8 * (p + len(raw)) // 6
        core = encoded[start:end]
        forms.add(core)
        if p == 0:
            forms.add(encoded)  # the whole value, padded
    forms |= {form.replace("+", "-").replace("/", "_") for form in forms}
    forms |= {form.rstrip("=") for form in forms}
    return forms


def secret_forms(value: str) -> tuple[set[str], set[str]]:
    """The texts under which ``value`` may come back: (forms matched in any letter case, forms
    matched exactly). Case-insensitive: the value (so also upper/lower-cased), URL-encoded
    (``%2F`` or ``%2f``, ``+`` for space or not), JSON-escaped (raw UTF-8 or ``\\uXXXX``), hex. Exact:
    base64 (:func:`_base64_forms`), of the value and of its JSON-escaped text — base64 is case
    sensitive, and matching it in any case would only blank out more unrelated text."""
    escaped = {orjson.dumps(value).decode()[1:-1], json.dumps(value)[1:-1]}
    anycase = {value, quote(value, safe=""), quote_plus(value, safe=""), *escaped}
    anycase |= {text.encode().hex() for text in {value, *escaped}}
    exact: set[str] = set()
    for text in {value, *escaped}:
        exact |= _base64_forms(text.encode())
    anycase = {form for form in anycase if form == value or len(form) >= _MIN_FORM}
    exact = {form for form in exact if len(form) >= _MIN_FORM} - anycase
    return anycase, exact


def _alternation(forms: Collection[str]) -> str:
    return "|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True))


def mask_text(text: str, values: Mapping[str, str] | Collection[str], mask: str) -> str:
    """``text`` with every secret value in ``values`` (a mapping's values, or the values themselves)
    replaced by ``mask``, and so every simple transform of one a receiver may echo back:
    upper/lower case, URL-encoded, JSON-escaped, hex, and base64 (standard or url-safe, with or
    without padding, alone or at any byte alignment inside a larger base64 string) — see
    :func:`secret_forms`. Longer forms first, so a value inside another is not half masked.

    Why mask rather than not record the answers of deliveries that carried secrets: the answer is
    what tells a user why a delivery failed, which matters most for exactly those deliveries; the
    recorded body is bounded, and masked under every form above, it holds no secret a receiver
    could have reflected by an encoding this simple. (A receiver that encrypts or hashes what it
    got is not echoing it.)
    """
    found = values.values() if isinstance(values, Mapping) else values
    anycase: set[str] = set()
    exact: set[str] = set()
    for value in found:
        if value:
            loose, strict = secret_forms(value)
            anycase |= loose
            exact |= strict
    if not anycase:
        return text
    text = re.sub(_alternation(anycase), lambda _: mask, text, flags=re.IGNORECASE)
    if exact:
        text = re.sub(_alternation(exact), lambda _: mask, text)
    return text
