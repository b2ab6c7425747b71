"""API clients: Port's ``clientId``/``clientSecret`` pairs, each with a role.

Secrets are 256-bit random strings shown once and stored as SHA-256 digests: with that much
entropy a slow KDF adds nothing but latency to every token request. Comparisons are constant time.

A client can be revoked (``revoked_at`` set, the row kept so the id keeps its name in the audit
trail): its secret gets no token, and the tokens it holds are refused within seconds on every
process (see :mod:`kiosk.auth.live`). The last active admin cannot be revoked, or nobody could
manage clients any more through the API.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from kiosk.errors import BadRequest, Conflict, NotFound
from kiosk.store.engine import Database
from kiosk.store.tables import clients as clients_table

ROLES = ("admin", "member")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the client id and its role."""

    client_id: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_client(db: Database, role: str, name: str | None = None) -> tuple[str, str]:
    """Create a client; returns ``(client_id, secret)``. The secret is not stored in clear."""
    if role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}, not {role!r}", code="invalid_role")
    client_id = "kc_" + secrets.token_hex(12)
    secret = secrets.token_urlsafe(32)
    with db.begin() as conn:
        conn.execute(
            sa.insert(clients_table).values(
                client_id=client_id, secret_hash=_digest(secret), role=role, name=name, created_at=datetime.now(UTC)
            )
        )
    return client_id, secret


_LISTED = (
    clients_table.c.client_id,
    clients_table.c.role,
    clients_table.c.name,
    clients_table.c.created_at,
    clients_table.c.revoked_at,
)


def list_clients(db: Database) -> list[dict[str, Any]]:
    """Every client, revoked ones included (``revoked_at`` set), oldest first; never secrets."""
    with db.connect() as conn:
        rows = conn.execute(sa.select(*_LISTED).order_by(clients_table.c.created_at)).all()
    return [dict(r._mapping) for r in rows]


def client_roles(db: Database) -> dict[str, str | None]:
    """``{client_id: role}`` for every client, ``None`` as the role of a revoked one."""
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(clients_table.c.client_id, clients_table.c.role, clients_table.c.revoked_at)
        ).all()
    return {r.client_id: (None if r.revoked_at is not None else r.role) for r in rows}


def revoke_client(db: Database, client_id: str) -> dict[str, Any]:
    """Revoke ``client_id`` and return its listing (revoking again changes nothing).

    :class:`NotFound` for an unknown id; :class:`Conflict` when it is the last active admin. The
    check and the update share one write transaction (the active admins locked on PostgreSQL), so
    two admins revoking each other at once cannot leave none.
    """
    with db.begin() as conn:
        admins = (
            conn.execute(
                sa.select(clients_table.c.client_id)
                .where(clients_table.c.role == "admin", clients_table.c.revoked_at.is_(None))
                .with_for_update()
            )
            .scalars()
            .all()
        )
        row = conn.execute(sa.select(*_LISTED).where(clients_table.c.client_id == client_id)).first()
        if row is None:
            raise NotFound(f"no API client {client_id!r}", code="client_not_found")
        if row.revoked_at is not None:
            return dict(row._mapping)
        if row.role == "admin" and list(admins) == [client_id]:
            raise Conflict(
                f"{client_id} is the last active admin client; create another admin before revoking it",
                code="last_admin",
            )
        conn.execute(
            sa.update(clients_table).where(clients_table.c.client_id == client_id).values(revoked_at=datetime.now(UTC))
        )
        return dict(conn.execute(sa.select(*_LISTED).where(clients_table.c.client_id == client_id)).one()._mapping)


# A digest to compare against when the client id is unknown, so both paths cost the same.
_DUMMY_DIGEST = _digest(secrets.token_urlsafe(32))


def verify_client(db: Database, client_id: str, secret: str) -> Principal | None:
    """The principal for a correct id/secret pair of a client not revoked, else None (constant
    time in the secret)."""
    with db.connect() as conn:
        row = conn.execute(
            sa.select(clients_table.c.secret_hash, clients_table.c.role, clients_table.c.revoked_at).where(
                clients_table.c.client_id == client_id
            )
        ).first()
    expected = row.secret_hash if row else _DUMMY_DIGEST
    ok = hmac.compare_digest(_digest(secret), expected)
    if row is None or not ok or row.revoked_at is not None:
        return None
    return Principal(client_id=client_id, role=row.role)


def has_clients(db: Database) -> bool:
    with db.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(clients_table)).scalar_one() > 0


def bootstrap_admin(db: Database, credentials_path: Path) -> tuple[str, str] | None:
    """On the very first start, create an admin and write it to ``credentials`` (mode 0600).

    Returns the new pair so the caller can show it once; None when clients already exist.
    """
    if has_clients(db):
        return None
    client_id, secret = create_client(db, "admin", name="bootstrap admin")
    credentials_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(credentials_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"clientId": client_id, "clientSecret": secret}, fh)
        fh.write("\n")
    os.chmod(credentials_path, 0o600)
    return client_id, secret
