"""Key material: a master secret kept outside the database, and the keys derived from it.

Why outside: whoever can read the database (a backup, a copied file, a read-only SQL account)
must not be able to mint an admin token or open a run's sealed secret inputs. So the master
secret comes from ``KIOSK_SECRET_KEY`` (the value itself), ``KIOSK_SECRET_KEY_FILE`` (a file
holding it), or else a key file kiosk generates on first start, ``$KIOSK_HOME/secret.key``
(mode 0600). The database holds only a *check value* per key (an HMAC under a key derived for
that alone), enough to tell that two processes share a key and useless for anything else.

Each use gets its own key, derived with HKDF-SHA256 under a distinct label (:func:`derive_key`),
so one purpose's key says nothing about another's. Other modules ask the :class:`KeyRing` for
``ring.derive(b"their label")`` (the current key) or ``ring.derive_all(label)`` (current first,
then retired keys, to accept what an older key made).

**Rotation.** A key source may hold several master secrets: the first is current (it signs and
seals), the others are retired (they still verify tokens and open seals). ``KIOSK_SECRET_KEY``
separates them with commas, a key file puts one per line (``#`` lines are comments).
Each master secret is a string of at least 32 characters (``openssl rand -base64 32``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kiosk.errors import ConfigError

__all__ = [
    "CHECK_LABEL",
    "KEY_FILE_NAME",
    "MIN_SECRET_CHARS",
    "SEAL_LABEL",
    "TOKEN_LABEL",
    "KeyRing",
    "MasterKey",
    "derive_key",
    "load_keyring",
    "parse_master_keys",
]

log = logging.getLogger("kiosk.auth")

#: HKDF labels (the ``info`` input): one per purpose, never reused for another.
TOKEN_LABEL = b"kiosk token signing"
SEAL_LABEL = b"kiosk secret inputs"
CHECK_LABEL = b"kiosk key check"
ID_LABEL = b"kiosk key id"

KEY_FILE_NAME = "secret.key"
MIN_SECRET_CHARS = 32
ENV_KEY = "KIOSK_SECRET_KEY"
ENV_KEY_FILE = "KIOSK_SECRET_KEY_FILE"


def derive_key(master: bytes, label: bytes, length: int = 32) -> bytes:
    """The key for purpose ``label`` derived from ``master`` (HKDF-SHA256, ``label`` as info)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label).derive(master)


@dataclass(frozen=True)
class MasterKey:
    """One master secret, with the two public facts derived from it.

    ``key_id`` names the key in seals and messages; ``check`` is what the database stores to
    recognise it. Both are HMAC outputs under keys derived for that alone: knowing them gives
    nothing towards the token or sealing keys.
    """

    secret: bytes = field(repr=False)
    key_id: str
    check: str

    @classmethod
    def from_secret(cls, secret: bytes) -> MasterKey:
        key_id = derive_key(secret, ID_LABEL, 6).hex()
        check = hmac.new(derive_key(secret, CHECK_LABEL), CHECK_LABEL, hashlib.sha256).hexdigest()
        return cls(secret=secret, key_id=key_id, check=check)

    def derive(self, label: bytes) -> bytes:
        return derive_key(self.secret, label)


@dataclass(frozen=True)
class KeyRing:
    """The current master key and the retired ones still accepted, and where they came from."""

    current: MasterKey
    retired: tuple[MasterKey, ...] = ()
    #: Where the keys were read from, for messages ("KIOSK_SECRET_KEY", a file path).
    source: str = "test"

    @classmethod
    def from_secrets(cls, secrets_: list[bytes], source: str = "test") -> KeyRing:
        if not secrets_:
            raise ConfigError(f"{source} holds no key")
        masters = [MasterKey.from_secret(s) for s in secrets_]
        return cls(current=masters[0], retired=tuple(masters[1:]), source=source)

    @property
    def keys(self) -> tuple[MasterKey, ...]:
        """Every key, the current one first."""
        return (self.current, *self.retired)

    def derive(self, label: bytes) -> bytes:
        """The current key for purpose ``label`` (what new tokens, seals, ... are made with)."""
        return self.current.derive(label)

    def derive_all(self, label: bytes) -> tuple[bytes, ...]:
        """The key for ``label`` under every master key, current first (to accept older work)."""
        return tuple(k.derive(label) for k in self.keys)

    def derive_by_id(self, label: bytes) -> Mapping[str, bytes]:
        """``{key_id: key for label}`` over every master key (to open what names its key)."""
        return {k.key_id: k.derive(label) for k in self.keys}

    def by_check(self, check: str) -> MasterKey | None:
        """The key whose check value is ``check``, if this ring holds it."""
        return next((k for k in self.keys if hmac.compare_digest(k.check, check)), None)


def parse_master_keys(text: str, source: str, *, separator: str) -> list[bytes]:
    """The master secrets in ``text`` (split on ``separator``; blank and ``#`` lines skipped)."""
    found: list[bytes] = []
    for raw in text.split(separator):
        value = raw.strip()
        if not value or value.startswith("#"):
            continue
        if len(value) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"{source}: key {len(found) + 1} is {len(value)} characters; each key needs at least "
                f"{MIN_SECRET_CHARS} (make one with: openssl rand -base64 32)"
            )
        if value.encode() in found:
            raise ConfigError(f"{source}: key {len(found) + 1} repeats an earlier key")
        found.append(value.encode())
    if not found:
        raise ConfigError(f"{source} holds no key")
    return found


def _generate_key_file(path: Path) -> None:
    """Write a new random master secret to ``path`` (0600), unless another process just did."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # a process starting at the same moment made it first; use theirs
    with os.fdopen(fd, "w") as fh:
        fh.write(
            "# kiosk's master secret: it signs API tokens and seals secret inputs. Keep it private,\n"
            "# back it up with the database, and give the same key to every process on that database.\n"
            f"{secrets.token_urlsafe(32)}\n"
        )
    log.info("generated a new master secret", extra={"path": str(path)})


def _private_key_file(path: Path) -> None:
    """Key files under KIOSK_HOME are kiosk's own: repair a mode looser than 0600, and say so."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "the key file was readable by others; setting it to 0600",
            extra={"path": str(path), "mode": oct(mode)},
        )
        os.chmod(path, 0o600)


def load_keyring(home: Path, secret_key: str | None = None, secret_key_file: Path | None = None) -> KeyRing:
    """The keyring from ``KIOSK_SECRET_KEY``, else ``KIOSK_SECRET_KEY_FILE``, else the key file under
    ``home`` (generated on first start). A bad key source raises :class:`ConfigError` (one line)."""
    if secret_key and secret_key_file:
        raise ConfigError(f"set {ENV_KEY} or {ENV_KEY_FILE}, not both")
    if secret_key:
        return KeyRing.from_secrets(parse_master_keys(secret_key, ENV_KEY, separator=","), ENV_KEY)
    if secret_key_file is not None:
        try:
            text = secret_key_file.read_text()
        except OSError as exc:
            raise ConfigError(f"{ENV_KEY_FILE}: cannot read {secret_key_file}: {exc.strerror or exc}") from None
        source = str(secret_key_file)
        return KeyRing.from_secrets(parse_master_keys(text, source, separator="\n"), source)
    path = home / KEY_FILE_NAME
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        _generate_key_file(path)
    _private_key_file(path)
    source = str(path)
    return KeyRing.from_secrets(parse_master_keys(path.read_text(), source, separator="\n"), source)
