"""Set-based entity writes: a handful of statements per batch, whatever its size.

SQLAlchemy's Core ``executemany`` spends more time building parameter dicts than the database
spends storing the rows, so these functions go to the driver. On SQLite, new entities and edges go
in as one ``INSERT ... SELECT ... FROM json_each(?)`` each: the whole statement runs in C with the
GIL released, which is what lets the catalog's pipelined bulk write validate one stage while the
previous one is stored (the driver's ``executemany`` is about as fast alone, but takes the GIL back
after every row and then stalls behind the validating thread). Updates, rarer, use the driver's
``executemany``. New ids are assigned here, from ``max(id) + 1``: kiosk's write transactions on
SQLite begin IMMEDIATE, so no other writer can take an id in between, and the ids are known
without reading them back. On PostgreSQL, a COPY stream (psycopg runs ``executemany`` as one
statement per row) and one SELECT for the ids. Everything runs inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from kiosk.store.engine import WRITE_OPTION

#: (identifier, title, icon, team, properties)
EntityRow = tuple[str, str | None, str | None, list[str], dict[str, Any]]


def _dumps(value: Any) -> str:
    # orjson writes at most 254 levels; what reaches here is within kiosk.core.json_depth's 64 (each
    # entity is checked when parsed, kiosk.catalog.entities), plus the two levels of a row list.
    return orjson.dumps(value).decode()


def _stamp(conn: Connection, when: datetime) -> Any:
    """A timestamp as the column's SQLAlchemy type would have stored it."""
    if conn.dialect.name == "sqlite":
        # SQLAlchemy's SQLite DateTime storage format (it drops the offset; values are UTC).
        return when.strftime("%Y-%m-%d %H:%M:%S.%f")
    return when


def _copy_rows(conn: Connection, statement: str, rows: Iterable[Sequence[Any]]) -> None:
    """PostgreSQL's COPY on the transaction's own connection: several times faster than
    ``executemany``, which psycopg runs as one statement per row."""
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _sqlite_cursor(conn: Connection) -> Any:
    """The raw sqlite3 cursor of the transaction's own connection."""
    driver = conn.connection.driver_connection
    assert driver is not None
    return driver.cursor()


def insert_entities(
    conn: Connection,
    blueprint: str,
    rows: Sequence[EntityRow],
    when: datetime,
    actor: str | None,
) -> dict[str, int]:
    """Insert ``(identifier, title, icon, team, properties)`` rows; returns identifier → id."""
    if not rows:
        return {}
    if conn.dialect.name == "postgresql":
        _copy_rows(
            conn,
            "COPY entities (blueprint, identifier, title, icon, team, properties, created_at, updated_at, "
            "created_by, updated_by) FROM STDIN",
            (
                (blueprint, ident, title, icon, _dumps(team), _dumps(props), when, when, actor, actor)
                for ident, title, icon, team, props in rows
            ),
        )
        return entity_ids(conn, blueprint, [r[0] for r in rows])
    if not conn.get_execution_options().get(WRITE_OPTION, False):
        # Not under BEGIN IMMEDIATE: another writer could take ids between max() and the insert.
        raise RuntimeError("insert_entities needs a write transaction (Database.begin)")
    stamp = _stamp(conn, when)
    first = int(conn.exec_driver_sql("SELECT coalesce(max(id), 0) + 1 FROM entities").scalar_one())
    ids = {row[0]: first + offset for offset, row in enumerate(rows)}
    conn.exec_driver_sql(
        "INSERT INTO entities (id, blueprint, identifier, title, icon, team, properties, created_at, updated_at, "
        "created_by, updated_by) SELECT ? + key, ?, value ->> 0, value ->> 1, value ->> 2, value -> 3, "
        "value -> 4, ?, ?, ?, ? FROM json_each(?)",
        (first, blueprint, stamp, stamp, actor, actor, _dumps(rows)),
    )
    return ids


def update_entities(
    conn: Connection,
    rows: Sequence[tuple[int, str | None, str | None, list[str], dict[str, Any]]],
    when: datetime,
    actor: str | None,
) -> None:
    """Replace title/icon/team/properties of ``(id, title, icon, team, properties)`` rows."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        # COPY into a scratch table, then one set-based UPDATE (executemany would be per row).
        conn.exec_driver_sql("DROP TABLE IF EXISTS pg_temp.kiosk_entity_updates")
        conn.exec_driver_sql(
            "CREATE TEMP TABLE kiosk_entity_updates (id integer, title text, icon text, team jsonb, "
            "properties jsonb) ON COMMIT DROP"
        )
        _copy_rows(
            conn,
            "COPY kiosk_entity_updates (id, title, icon, team, properties) FROM STDIN",
            ((eid, title, icon, _dumps(team), _dumps(props)) for eid, title, icon, team, props in rows),
        )
        conn.exec_driver_sql(
            "UPDATE entities AS e SET title = u.title, icon = u.icon, team = u.team, properties = u.properties, "
            "updated_at = %s, updated_by = %s FROM kiosk_entity_updates AS u WHERE e.id = u.id",
            (when, actor),
        )
        return
    stamp = _stamp(conn, when)
    _sqlite_cursor(conn).executemany(
        "UPDATE entities SET title = ?, icon = ?, team = ?, properties = ?, updated_at = ?, updated_by = ? "
        "WHERE id = ?",
        [
            (title, icon, _dumps(team) if team else "[]", _dumps(props), stamp, actor, eid)
            for eid, title, icon, team, props in rows
        ],
    )


def entity_ids(conn: Connection, blueprint: str, identifiers: Sequence[str]) -> dict[str, int]:
    """identifier → id of the entities of ``blueprint`` among ``identifiers`` (one statement)."""
    if not identifiers:
        return {}
    if conn.dialect.name == "postgresql":
        result = conn.exec_driver_sql(
            "SELECT id, identifier FROM entities WHERE blueprint = %s AND identifier = ANY(%s)",
            (blueprint, list(identifiers)),
        )
    else:
        result = conn.exec_driver_sql(
            "SELECT id, identifier FROM entities WHERE blueprint = ? "
            "AND identifier IN (SELECT value FROM json_each(?))",
            (blueprint, _dumps(list(identifiers))),
        )
    return {ident: eid for eid, ident in result}


def delete_edges(conn: Connection, relation: str, entity_ids: Sequence[int]) -> None:
    """Drop the ``relation`` edges of the given entities (one statement)."""
    if not entity_ids:
        return
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "DELETE FROM entity_relations WHERE relation = %s AND entity_id = ANY(%s)", (relation, list(entity_ids))
        )
    else:
        conn.exec_driver_sql(
            "DELETE FROM entity_relations WHERE relation = ? AND entity_id IN (SELECT value FROM json_each(?))",
            (relation, _dumps(list(entity_ids))),
        )


def insert_edges(conn: Connection, edges: Sequence[tuple[int, str, int, int]]) -> None:
    """Insert ``(entity_id, relation, target_id, position)`` edges."""
    if edges and conn.dialect.name == "postgresql":
        _copy_rows(conn, "COPY entity_relations (entity_id, relation, target_id, position) FROM STDIN", edges)
    elif edges:
        conn.exec_driver_sql(
            "INSERT INTO entity_relations (entity_id, relation, target_id, position) "
            "SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each(?)",
            (_dumps(edges),),
        )
