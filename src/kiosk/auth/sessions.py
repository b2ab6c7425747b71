"""Server-side browser sessions.

The cookie carries a 256-bit random id; the table keeps only its SHA-256 (a slow hash adds nothing
for a value that random), so a copy of the database cannot be turned into a signed-in browser.
A session ends at the first of: sign-out (its row deleted), ``idle`` without a request, or
``absolute`` after it began. Each sign-in makes a new session (the id is never carried over from
before sign-in: no session fixation). Each session has its own CSRF token, which every
state-changing form carries and :func:`csrf_matches` checks in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from kiosk.auth.users import User
from kiosk.store.engine import Database
from kiosk.store.tables import user_sessions as sessions_table
from kiosk.store.tables import users as users_table

__all__ = ["Session", "SessionPolicy", "Sessions", "csrf_matches"]

# last_seen_at is written at most this often per session: a page view is not a database write.
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class SessionPolicy:
    """How long a session lives: ``idle`` without a request, ``absolute`` in all."""

    idle: timedelta = timedelta(hours=8)
    absolute: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class Session:
    """A live session and its user."""

    user: User
    csrf_token: str
    expires_at: datetime


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def csrf_matches(expected: str, given: str | None) -> bool:
    """Whether the form's token ``given`` is the session's ``expected`` one (constant time)."""
    return hmac.compare_digest(expected.encode(), (given or "").encode())


def _aware(value: datetime) -> datetime:
    # SQLite hands timestamps back naive (they are stored in UTC).
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Sessions:
    """Start, find and end sessions in the ``user_sessions`` table."""

    def __init__(self, db: Database, policy: SessionPolicy | None = None) -> None:
        self.db = db
        self.policy = policy or SessionPolicy()

    def start(self, user: User, *, replacing: str | None = None, now: datetime | None = None) -> str:
        """A new session for ``user``; returns the id to put in the cookie (shown only here).

        ``replacing``: the id the browser held before (if any) is ended in the same transaction,
        so a sign-in always rotates the id.
        """
        now = now or datetime.now(UTC)
        session_id = secrets.token_urlsafe(32)
        with self.db.begin() as conn:
            if replacing:
                conn.execute(sa.delete(sessions_table).where(sessions_table.c.id_hash == _digest(replacing)))
            conn.execute(
                sa.insert(sessions_table).values(
                    id_hash=_digest(session_id),
                    user_id=user.id,
                    csrf_token=secrets.token_urlsafe(32),
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + self.policy.absolute,
                )
            )
        return session_id

    def find(self, session_id: str | None, *, now: datetime | None = None) -> Session | None:
        """The live session with this id, else None (an expired one is deleted on the way)."""
        if not session_id or len(session_id) > 200:
            return None
        now = now or datetime.now(UTC)
        digest = _digest(session_id)
        with self.db.connect() as conn:
            row = conn.execute(
                sa.select(
                    sessions_table.c.csrf_token,
                    sessions_table.c.last_seen_at,
                    sessions_table.c.expires_at,
                    users_table.c.id,
                    users_table.c.email,
                    users_table.c.name,
                    users_table.c.role,
                    users_table.c.password_hash,
                )
                .join(users_table, users_table.c.id == sessions_table.c.user_id)
                .where(sessions_table.c.id_hash == digest)
            ).first()
        if row is None:
            return None
        last_seen, expires = _aware(row.last_seen_at), _aware(row.expires_at)
        if now >= expires or now - last_seen >= self.policy.idle:
            self._delete(digest)
            return None
        if now - last_seen >= TOUCH_EVERY:
            with self.db.begin() as conn:
                conn.execute(
                    sa.update(sessions_table).where(sessions_table.c.id_hash == digest).values(last_seen_at=now)
                )
        user = User(id=row.id, email=row.email, name=row.name, role=row.role, local=row.password_hash is not None)
        return Session(user=user, csrf_token=row.csrf_token, expires_at=expires)

    def end(self, session_id: str | None) -> None:
        """End the session server-side (sign-out); an unknown id changes nothing."""
        if session_id:
            self._delete(_digest(session_id))

    def prune(self, *, now: datetime | None = None) -> int:
        """Delete the sessions past their absolute or idle end; returns how many."""
        now = now or datetime.now(UTC)
        with self.db.begin() as conn:
            result = conn.execute(
                sa.delete(sessions_table).where(
                    sa.or_(
                        sessions_table.c.expires_at <= now,
                        sessions_table.c.last_seen_at <= now - self.policy.idle,
                    )
                )
            )
        return int(result.rowcount or 0)

    def _delete(self, digest: str) -> None:
        with self.db.begin() as conn:
            conn.execute(sa.delete(sessions_table).where(sessions_table.c.id_hash == digest))
