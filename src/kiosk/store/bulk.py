"""Set-based entity writes through the driver's own bulk paths (``executemany``, ``COPY``).

SQLAlchemy's Core ``executemany`` spends more time building parameter dicts than SQLite spends
storing the rows, and on SQLite an INSERT ... RETURNING of many rows runs row by row. These
functions take plain tuples, serialise JSON once with orjson and hand the batch straight to the
driver (on PostgreSQL as a COPY stream); ids come back with one SELECT. Everything runs inside
the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.engine import Connection

CHUNK = 5_000

#: (identifier, title, icon, team, properties)
EntityRow = tuple[str, str | None, str | None, list[str], dict[str, Any]]


def _dumps(value: Any) -> str:
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


def _marks(conn: Connection, n: int, casts: Sequence[str] = ()) -> str:
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    parts = []
    for i in range(n):
        cast = casts[i] if i < len(casts) else ""
        parts.append(f"{mark}::{cast}" if cast and conn.dialect.name == "postgresql" else mark)
    return ", ".join(parts)


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
    stamp = _stamp(conn, when)
    sql = (
        "INSERT INTO entities (blueprint, identifier, title, icon, team, properties, created_at, updated_at, "
        f"created_by, updated_by) VALUES ({_marks(conn, 10, ['', '', '', '', 'jsonb', 'jsonb'])})"
    )
    params = [
        (blueprint, ident, title, icon, _dumps(team), _dumps(props), stamp, stamp, actor, actor)
        for ident, title, icon, team, props in rows
    ]
    conn.exec_driver_sql(sql, params)
    return entity_ids(conn, blueprint, [r[0] for r in rows])


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
    m = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    j = "::jsonb" if conn.dialect.name == "postgresql" else ""
    sql = (
        f"UPDATE entities SET title = {m}, icon = {m}, team = {m}{j}, properties = {m}{j}, "
        f"updated_at = {m}, updated_by = {m} WHERE id = {m}"
    )
    params = [(title, icon, _dumps(team), _dumps(props), stamp, actor, eid) for eid, title, icon, team, props in rows]
    conn.exec_driver_sql(sql, params)


def entity_ids(conn: Connection, blueprint: str, identifiers: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    m = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    for start in range(0, len(identifiers), CHUNK):
        chunk = list(identifiers[start : start + CHUNK])
        if conn.dialect.name == "postgresql":
            sql = f"SELECT id, identifier FROM entities WHERE blueprint = {m} AND identifier = ANY({m})"
            result = conn.exec_driver_sql(sql, (blueprint, chunk))
        else:
            sql = (
                f"SELECT id, identifier FROM entities WHERE blueprint = {m} "
                f"AND identifier IN ({', '.join([m] * len(chunk))})"
            )
            result = conn.exec_driver_sql(sql, (blueprint, *chunk))
        for eid, ident in result:
            out[ident] = eid
    return out


def delete_edges(conn: Connection, relation: str, entity_ids: Sequence[int]) -> None:
    m = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    for start in range(0, len(entity_ids), CHUNK):
        chunk = list(entity_ids[start : start + CHUNK])
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(
                f"DELETE FROM entity_relations WHERE relation = {m} AND entity_id = ANY({m})", (relation, chunk)
            )
        else:
            conn.exec_driver_sql(
                f"DELETE FROM entity_relations WHERE relation = {m} AND entity_id IN ({', '.join([m] * len(chunk))})",
                (relation, *chunk),
            )


def insert_edges(conn: Connection, edges: Sequence[tuple[int, str, int, int]]) -> None:
    """Insert ``(entity_id, relation, target_id, position)`` edges."""
    if edges and conn.dialect.name == "postgresql":
        _copy_rows(conn, "COPY entity_relations (entity_id, relation, target_id, position) FROM STDIN", edges)
    elif edges:
        sql = f"INSERT INTO entity_relations (entity_id, relation, target_id, position) VALUES ({_marks(conn, 4)})"
        conn.exec_driver_sql(sql, list(edges))
