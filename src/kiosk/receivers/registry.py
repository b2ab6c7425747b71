"""The configured receivers with their current URLs, and the lookup from a request path to one.

**No stale map.** A receiver's URL is derived from its secret, and the secret is re-read whenever
its source changes: before every lookup, each ``{file: PATH}`` reference is ``stat``-ed (inode,
size, modification and change times), and a receiver whose source changed is rebuilt on the spot.
(An ``{env: NAME}`` reference cannot change under a running process, so it is read once; rotating
it means restarting kiosk, which builds the map anew.) Writing a new secret into the file therefore retires
the old URL with the very next request, where the system kiosk replaces kept answering on it until
a controller caught up. A source that can no longer be read (file removed, value empty) disables
its receiver — every URL of it answers 404 — rather than keeping the last value. The cost is one
``stat`` per file-backed secret per request (microseconds; receivers are few).

**Constant time.** :meth:`ReceiverRegistry.resolve` compares the digest from the path with
``hmac.compare_digest`` against *every* receiver's digest and never stops at the first hit, so the
time an unknown path takes does not depend on how many leading characters it shares with a real
one, nor on which receiver (if any) it matches. A dict keyed by digest would also be safe in
practice (Python hashes strings with a keyed SipHash, so bucket collisions tell an attacker nothing
about a digest's prefix), but its guarantee rests on hash randomisation, which ``PYTHONHASHSEED``
can turn off; the full comparison rests on nothing, and costs well under a microsecond per receiver.

The optional extra checks (basic auth, a shared header) are compared in constant time too, both
user name and password always, so a refusal does not say which half was wrong.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiosk.config.secrets import SecretRef, resolve_secret
from kiosk.errors import ConfigError
from kiosk.logs import register_secret
from kiosk.receivers.config import ReceiverSpec
from kiosk.receivers.senders import GenericReader
from kiosk.receivers.urls import receiver_digest, receiver_path

__all__ = ["Receiver", "ReceiverRegistry"]

log = logging.getLogger("kiosk.receivers")

_NO_DIGEST = b"\x00" * 64


@dataclass(frozen=True)
class Receiver:
    """A receiver as it stands now: its spec, its current digest and path, its check values."""

    spec: ReceiverSpec
    digest: str | None  # None: the secret cannot be read, so no URL leads here
    basic: tuple[str, str] | None
    header: tuple[str, str] | None  # (lower-cased name, value)
    reader: GenericReader | None
    #: ``project/name`` or ``name`` (the spec's key, kept: it is read on every request).
    key: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def project(self) -> str | None:
        return self.spec.project

    @property
    def type(self) -> str:
        return self.spec.type

    @property
    def path(self) -> str | None:
        return receiver_path(self.spec.type, self.digest) if self.digest is not None else None

    def check_auth(self, headers: Mapping[str, str]) -> str | None:
        """Why the extra checks refuse these headers, or None when they pass (or there are none)."""
        if self.basic is not None:
            reason = _check_basic(headers.get("authorization"), *self.basic)
            if reason is not None:
                return reason
        if self.header is not None:
            name, expected = self.header
            given = headers.get(name)
            if given is None:
                return f"header {name} is missing"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return f"header {name} does not match"
        return None


def _check_basic(header: str | None, username: str, password: str) -> str | None:
    if not header:
        return "basic auth is missing"
    scheme, _, value = header.partition(" ")
    given_user, given_password = "", ""
    if scheme.lower() == "basic":
        try:
            given_user, _, given_password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return "basic auth is malformed"
    # Both halves compared every time: the answer does not reveal which one was wrong.
    user_ok = hmac.compare_digest(given_user.encode(), username.encode())
    password_ok = hmac.compare_digest(given_password.encode(), password.encode())
    return None if user_ok and password_ok else "basic auth does not match"


class _Source:
    """One secret reference and what its source looked like when last read."""

    def __init__(self, ref: SecretRef, base_dir: Path, env: Mapping[str, str]) -> None:
        self.ref = ref
        self._env = env
        self._path: Path | None = None
        if ref.file is not None:
            path = Path(ref.file).expanduser()
            self._path = path if path.is_absolute() else base_dir / path
        self.signature: Any = self.look()

    def look(self) -> Any:
        """A cheap fingerprint of the source: the file's stat fields (None for an env reference)."""
        if self._path is None:
            return None
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def read(self, base_dir: Path) -> str | None:
        """The current value, or None (logged) when it cannot be read."""
        try:
            return resolve_secret(self.ref, base_dir=base_dir, env=self._env).reveal()
        except ConfigError as exc:
            log.warning("receiver secret unreadable; its receiver is disabled: %s", exc.message)
            return None


class _Entry:
    """A receiver spec, the sources of its secrets, and the :class:`Receiver` built from them."""

    def __init__(self, spec: ReceiverSpec, base_dir: Path, env: Mapping[str, str]) -> None:
        self.spec = spec
        self.base_dir = base_dir
        self.reader = GenericReader(spec.mapping) if spec.mapping is not None else None
        self.secret = _Source(spec.secret, base_dir, env)
        auth = spec.auth
        self.password = _Source(auth.basic.password, base_dir, env) if auth and auth.basic else None
        self.header_value = _Source(auth.header.value, base_dir, env) if auth and auth.header else None
        self.current = self.build()

    def sources(self) -> list[_Source]:
        return [s for s in (self.secret, self.password, self.header_value) if s is not None]

    def changed(self) -> bool:
        changed = False
        for source in self.sources():
            signature = source.look()
            if signature != source.signature:
                source.signature = signature
                changed = True
        return changed

    def build(self) -> Receiver:
        spec = self.spec
        secret = self.secret.read(self.base_dir)
        digest = receiver_digest(spec.project, spec.name, secret) if secret is not None else None
        basic = header = None
        if spec.auth is not None and spec.auth.basic is not None and self.password is not None:
            password = self.password.read(self.base_dir)
            digest = digest if password is not None else None  # a check that cannot be made refuses all
            basic = (spec.auth.basic.username, password or "")
        if spec.auth is not None and spec.auth.header is not None and self.header_value is not None:
            value = self.header_value.read(self.base_dir)
            digest = digest if value is not None else None
            header = (spec.auth.header.name.lower(), value or "")
        # The digest is as secret as the secret (whoever has the URL may post to it): masked in every
        # log line too, uvicorn's access log included.
        for value in (secret, digest, basic[1] if basic else None, header[1] if header else None):
            if value:
                register_secret(value)
        return Receiver(spec, digest, basic, header, self.reader, spec.key)


class ReceiverRegistry:
    """Every configured receiver; :meth:`resolve` finds the one a path names."""

    def __init__(self, specs: Sequence[ReceiverSpec], *, base_dir: Path, env: Mapping[str, str]) -> None:
        self._entries = [_Entry(spec, base_dir, env) for spec in specs]
        self._lock = threading.Lock()

    def current(self) -> list[Receiver]:
        """The receivers as their secrets stand now (rebuilding any whose secret source changed)."""
        with self._lock:
            for entry in self._entries:
                if entry.changed():
                    entry.current = entry.build()
                    log.info("receiver secret changed; its URL is now new", extra={"receiver": entry.spec.key})
            return [entry.current for entry in self._entries]

    def resolve(self, receiver_type: str, digest: str) -> Receiver | None:
        """The receiver whose current URL is ``/webhooks/<receiver_type>/<digest>``, or None.

        Constant time in the digest: see the module docstring.
        """
        given = digest.encode("utf-8", "replace")
        found: Receiver | None = None
        for receiver in self.current():
            expected = receiver.digest.encode() if receiver.digest is not None else _NO_DIGEST
            if hmac.compare_digest(expected, given) and receiver.digest is not None:
                found = receiver
        if found is not None and found.type != receiver_type:
            return None
        return found

    def find(self, name: str, project: str | None) -> Receiver | None:
        """A receiver by name and project (for the API and CLI; not for request routing)."""
        for receiver in self.current():
            if receiver.name == name and receiver.project == project:
                return receiver
        return None
