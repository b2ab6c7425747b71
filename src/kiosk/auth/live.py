"""Which API clients are live, and with which role: a per-process snapshot of the clients table.

A token's signature only proves kiosk issued it. It is honoured while its client exists and is
not revoked, and with the client's role *now* (an admin demoted to member gets member rights on
the tokens it already holds). Asking the database on every request would add a round trip to
each one, so each process keeps a snapshot ``{client_id: role or None if revoked}``, reloaded
every second by a daemon thread: a revocation made by any process is honoured by every process
within about a second, and checking a token stays a dict lookup.

The process that revokes a client reloads its snapshot at once (:meth:`LiveClients.reload`), so
the revoked tokens are refused from the very next request there. A client id missing from the
snapshot (a client created on another process since the last reload) triggers a synchronous
reload, at most once every :data:`MISS_RELOAD_GAP` seconds for one id, so a token whose client is
gone for good cannot make every request a query (and only kiosk's key can sign a token naming a
new id). Without the refresher thread running (a test app without lifespan), a snapshot older
than ``max_age`` is reloaded on use.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from kiosk.auth.clients import Principal, client_roles
from kiosk.errors import Unauthorized
from kiosk.store.engine import Database

__all__ = ["LiveClients"]

log = logging.getLogger("kiosk.auth")

#: Least time between two reloads caused by one client id the snapshot does not know.
MISS_RELOAD_GAP = 0.25
#: Client ids remembered as recently missing, at most (then forgotten all at once).
MAX_MISSES = 1024


@dataclass(frozen=True)
class _Snapshot:
    roles: dict[str, str | None] = field(default_factory=dict)
    loaded_at: float = float("-inf")


class LiveClients:
    """The live clients of one database, as one process sees them (refreshed every ``max_age`` s)."""

    def __init__(self, db: Database, *, max_age: float = 1.0) -> None:
        self.db = db
        self.max_age = max_age
        self._snapshot = _Snapshot()
        self._misses: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the hot path ---------------------------------------------------------------------------

    def principal(self, claimed: Principal) -> Principal:
        """``claimed`` (from a verified token) with its client's current role; :class:`Unauthorized`
        when the client is revoked or does not exist."""
        snapshot = self._snapshot
        now = time.monotonic()
        if self._thread is None and now - snapshot.loaded_at > self.max_age:
            snapshot = self.reload()
        try:
            role = snapshot.roles[claimed.client_id]
        except KeyError:
            role = self._after_miss(claimed.client_id, now)
        if role is None:
            raise Unauthorized("the client of this token has been revoked", code="client_revoked")
        return claimed if role == claimed.role else Principal(claimed.client_id, role)

    def _after_miss(self, client_id: str, now: float) -> str | None:
        """The role of a client the snapshot does not know, after one reload (rate-limited per id)."""
        last = self._misses.get(client_id)
        if last is None or now - last >= MISS_RELOAD_GAP:
            if len(self._misses) >= MAX_MISSES:
                self._misses.clear()
            self._misses[client_id] = now
            roles = self.reload().roles
            if client_id in roles:
                self._misses.pop(client_id, None)
                return roles[client_id]
        raise Unauthorized("the client of this token does not exist", code="invalid_token")

    def note(self, principal: Principal) -> None:
        """Record a client just verified against the database (a token was issued to it), so its
        first request here finds it even before the next reload."""
        snapshot = self._snapshot
        if snapshot.roles.get(principal.client_id, "") != principal.role:
            self._snapshot = _Snapshot({**snapshot.roles, principal.client_id: principal.role}, snapshot.loaded_at)

    # -- keeping it fresh -----------------------------------------------------------------------

    def reload(self) -> _Snapshot:
        """Read the clients table now (after a revocation here, and from the refresher)."""
        with self._lock:
            snapshot = _Snapshot(client_roles(self.db), time.monotonic())
            self._snapshot = snapshot
            return snapshot

    def start(self) -> LiveClients:
        """Load now, then reload every ``max_age`` seconds in a daemon thread until :meth:`stop`."""
        self.reload()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="kiosk-live-clients", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.max_age):
            try:
                self.reload()
            except Exception:  # the database is away: keep the last snapshot, try again next second
                log.warning("reloading the API clients failed", exc_info=True)
