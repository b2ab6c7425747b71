"""People who sign in to the portal: local users (email + argon2 password) and OIDC users.

A person has the API's roles (:data:`kiosk.auth.clients.ROLES`): admins change the catalog,
members read it and run actions. A local user's role is set by ``kiosk users``; an OIDC user's is
decided at each sign-in by the provider's groups (see :mod:`kiosk.auth.oidc`). Emails are stored
lower-cased, so ``Ann@Example.com`` and ``ann@example.com`` are one person, as in Port.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from kiosk.auth.clients import ROLES
from kiosk.auth.passwords import hash_password, password_problem, verify_password, verify_unknown
from kiosk.errors import BadRequest, Conflict, NotFound
from kiosk.store.engine import Database
from kiosk.store.tables import users as users_table

__all__ = [
    "User",
    "authenticate_local",
    "create_user",
    "get_user",
    "list_users",
    "normalise_email",
    "set_role",
    "upsert_oidc_user",
]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


@dataclass(frozen=True)
class User:
    """A person as the portal knows them (never their password hash)."""

    id: str
    email: str
    name: str | None
    role: str
    local: bool  # has a password (signs in with the local form)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def display_name(self) -> str:
        return self.name or self.email


def normalise_email(email: str) -> str:
    """``email`` trimmed and lower-cased; :class:`BadRequest` when it is not an address."""
    value = email.strip().lower()
    if not _EMAIL.match(value) or len(value) > 320:
        raise BadRequest(f"{email!r} is not an email address", code="invalid_email")
    return value


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}, not {role!r}", code="invalid_role")


def _user(row: Any) -> User:
    return User(id=row.id, email=row.email, name=row.name, role=row.role, local=row.password_hash is not None)


_COLUMNS = (
    users_table.c.id,
    users_table.c.email,
    users_table.c.name,
    users_table.c.role,
    users_table.c.password_hash,
)


def create_user(db: Database, email: str, role: str, password: str, *, name: str | None = None) -> User:
    """Create a local user; :class:`Conflict` when the email is taken, :class:`BadRequest` for a
    weak password, a bad email or role."""
    address = normalise_email(email)
    _check_role(role)
    problem = password_problem(password)
    if problem:
        raise BadRequest(problem, code="weak_password")
    user_id = "u_" + secrets.token_hex(12)
    row = {
        "id": user_id,
        "email": address,
        "name": name,
        "role": role,
        "password_hash": hash_password(password),
        "created_at": datetime.now(UTC),
    }
    with db.begin() as conn:
        if conn.execute(sa.select(users_table.c.id).where(users_table.c.email == address)).first():
            raise Conflict(f"a user {address} already exists", code="user_exists")
        conn.execute(sa.insert(users_table).values(**row))
    return User(id=user_id, email=address, name=name, role=role, local=True)


def list_users(db: Database) -> list[dict[str, Any]]:
    """Every user, oldest first, with ``kind`` (local or oidc); never a password hash."""
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(*_COLUMNS, users_table.c.created_at, users_table.c.last_sign_in_at).order_by(
                users_table.c.created_at
            )
        ).all()
    return [
        {
            "id": r.id,
            "email": r.email,
            "name": r.name,
            "role": r.role,
            "kind": "local" if r.password_hash is not None else "oidc",
            "createdAt": r.created_at,
            "lastSignInAt": r.last_sign_in_at,
        }
        for r in rows
    ]


def get_user(db: Database, user_id: str) -> User | None:
    with db.connect() as conn:
        row = conn.execute(sa.select(*_COLUMNS).where(users_table.c.id == user_id)).first()
    return _user(row) if row else None


def set_role(db: Database, email: str, role: str) -> User:
    """Give the user ``email`` the role ``role``; :class:`NotFound` for an unknown email."""
    address = normalise_email(email)
    _check_role(role)
    with db.begin() as conn:
        result = conn.execute(sa.update(users_table).where(users_table.c.email == address).values(role=role))
        if result.rowcount == 0:
            raise NotFound(f"no user {address}", code="user_not_found")
        row = conn.execute(sa.select(*_COLUMNS).where(users_table.c.email == address)).one()
    return _user(row)


def authenticate_local(db: Database, email: str, password: str) -> User | None:
    """The local user with this email and password, else None.

    The same argon2 work is done whether the email is unknown, belongs to an OIDC-only user or has
    a wrong password, so the answer's timing does not tell which.
    """
    try:
        address = normalise_email(email)
    except BadRequest:
        verify_unknown(password)
        return None
    with db.connect() as conn:
        row = conn.execute(sa.select(*_COLUMNS).where(users_table.c.email == address)).first()
    if row is None or row.password_hash is None:
        verify_unknown(password)
        return None
    if not verify_password(row.password_hash, password):
        return None
    mark_signed_in(db, row.id)
    return _user(row)


def mark_signed_in(db: Database, user_id: str) -> None:
    with db.begin() as conn:
        conn.execute(
            sa.update(users_table).where(users_table.c.id == user_id).values(last_sign_in_at=datetime.now(UTC))
        )


def upsert_oidc_user(db: Database, email: str, subject: str, name: str | None, role: str) -> User:
    """The user an OIDC sign-in proved: created on first sign-in, its name and role refreshed on
    each (the provider's groups decide the role). A local user with the same email becomes the
    same person: the provider vouched for the address."""
    address = normalise_email(email)
    _check_role(role)
    now = datetime.now(UTC)
    with db.begin() as conn:
        row = conn.execute(sa.select(*_COLUMNS).where(users_table.c.email == address)).first()
        if row is None:
            user_id = "u_" + secrets.token_hex(12)
            conn.execute(
                sa.insert(users_table).values(
                    id=user_id,
                    email=address,
                    name=name,
                    role=role,
                    oidc_subject=subject,
                    created_at=now,
                    last_sign_in_at=now,
                )
            )
        else:
            user_id = row.id
            conn.execute(
                sa.update(users_table)
                .where(users_table.c.id == user_id)
                .values(name=name or row.name, role=role, oidc_subject=subject, last_sign_in_at=now)
            )
        fresh = conn.execute(sa.select(*_COLUMNS).where(users_table.c.id == user_id)).one()
    return _user(fresh)
