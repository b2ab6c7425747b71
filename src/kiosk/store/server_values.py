"""Server-wide values made once and shared by every kiosk process (the master key's check value).

Never key material: whoever reads the database must not be able to mint tokens or open seals with
what they find here (the keys themselves stay outside it, see :mod:`kiosk.auth.keys`).

Several processes may start at the same moment on one database; each tries to create the value
and all of them must end up with the same one. So the value is inserted with "on conflict do
nothing" and then read back: whoever inserted first wins, nobody fails on a duplicate key.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from kiosk.store.engine import Database
from kiosk.store.tables import server_state

__all__ = ["shared_value"]


def shared_value(db: Database, key: str, make: Callable[[], str]) -> str:
    """The stored value of ``key``, created with ``make()`` if no process has created it yet."""
    with db.connect() as conn:
        row = conn.execute(sa.select(server_state.c.value).where(server_state.c.key == key)).first()
    if row is not None:
        return str(row.value)
    insert = postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert
    with db.begin() as conn:
        conn.execute(insert(server_state).values(key=key, value=make()).on_conflict_do_nothing())
        return str(conn.execute(sa.select(server_state.c.value).where(server_state.c.key == key)).scalar_one())
