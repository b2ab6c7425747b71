"""Expression indexes on entity properties, and the one place that spells the indexed expression.

Port has no notion of indexes; kiosk lets a blueprint mark a property for one with
``"x-kiosk-index": true`` inside the property's schema. The blueprint service then calls
:func:`ensure_property_index` for each such property (see :func:`indexed_properties`), and
``=``/``in`` search rules on that property are answered from the index instead of a table scan.

An expression index is only used when the query repeats the indexed expression exactly, so the
expression lives here, once, and :mod:`kiosk.catalog.search` builds its comparisons from
:func:`property_value_expression`:

- SQLite: ``json_extract(properties, '$."<prop>"')`` (a B-tree over the extracted SQL value);
- PostgreSQL: ``(properties -> '<prop>')`` (a B-tree over the ``jsonb`` value, compared with a
  ``jsonb`` bind parameter, so strings, numbers and booleans never compare equal to each other).

The property name is written into the SQL text (a bind parameter would defeat index matching on
PostgreSQL's generic plans), which is safe only because :data:`PROPERTY_NAME` admits nothing but
``[A-Za-z0-9_@=$-]``: no quote, backslash, dot or bracket can reach the SQL or the JSON path.

Caveats worth knowing before marking a property:

- PostgreSQL B-tree entries are limited to about 2.7 kB; a write whose indexed value is larger
  fails. Index short values (identifiers, enums, numbers, booleans, dates), not free text.
- ``CREATE INDEX`` (not ``CONCURRENTLY``: it runs inside the blueprint write's transaction) blocks
  entity writes while the index is built.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from kiosk.errors import ValidationFailed
from kiosk.store.tables import entities

#: The blueprint property-schema key that asks for an index.
INDEX_KEY = "x-kiosk-index"

#: Property names usable in rules and indexes. Port's own property identifiers (``[A-Za-z0-9@_=-]``)
#: all match; ``$`` is admitted for meta-properties. Nothing here can break out of a quoted JSON
#: path key or an SQL string literal.
PROPERTY_NAME = re.compile(r"[A-Za-z0-9_@=\-\$]{1,100}")

SUPPORTED_DIALECTS = ("sqlite", "postgresql")


def check_property_name(prop: object, *, where: str = "property") -> str:
    """Return ``prop`` if it is a usable property name, else raise ``ValidationFailed`` naming ``where``."""
    if not isinstance(prop, str) or PROPERTY_NAME.fullmatch(prop) is None:
        raise ValidationFailed(
            f"{where}: {prop!r} is not a property name (1-100 characters of A-Z a-z 0-9 _ @ = - $)",
            details={"path": where},
        )
    return prop


def property_index_name(prop: str) -> str:
    """A stable index name for ``prop``: a hash, because property names may hold ``-``, ``@``, ``$``.

    The same property always gets the same name on both engines, which is what makes
    ``CREATE INDEX IF NOT EXISTS`` idempotent across blueprint updates.
    """
    digest = hashlib.sha1(prop.encode("utf-8"), usedforsecurity=False).hexdigest()[:16]
    return f"ix_entities_prop_{digest}"


def _check_dialect(dialect: str) -> None:
    if dialect not in SUPPORTED_DIALECTS:
        raise ValueError(f"unsupported database dialect {dialect!r}: kiosk runs on sqlite or postgresql")


def sqlite_json_path(prop: str) -> str:
    """The SQL literal of the JSON path to a top-level key: ``'$."prop"'`` (quoted, so ``$``/``-`` are plain)."""
    return "'$.\"" + check_property_name(prop) + "\"'"


def postgres_json_key(prop: str) -> str:
    """The SQL literal of a top-level ``jsonb`` key: ``'prop'``."""
    return "'" + check_property_name(prop) + "'"


def property_index_expression(dialect: str, prop: str) -> str:
    """The indexed expression as DDL text (unqualified column, as ``CREATE INDEX`` wants it)."""
    _check_dialect(dialect)
    if dialect == "sqlite":
        return f"json_extract(properties, {sqlite_json_path(prop)})"
    return f"(properties -> {postgres_json_key(prop)})"


def property_value_expression(dialect: str, prop: str) -> ColumnElement[Any]:
    """The same expression as :func:`property_index_expression`, as a SQLAlchemy column element.

    On SQLite its SQL type is left untyped (``json_extract`` returns text, integer, real or NULL);
    on PostgreSQL it is ``JSONB``, so comparisons bind ``jsonb`` parameters.
    """
    _check_dialect(dialect)
    if dialect == "sqlite":
        return sa.func.json_extract(entities.c.properties, sa.literal_column(sqlite_json_path(prop)))
    return entities.c.properties.op("->", return_type=JSONB)(sa.literal_column(postgres_json_key(prop)))


def ensure_property_index(conn: Connection, dialect: str, prop: str) -> None:
    """Create the expression index for ``prop`` unless it exists; safe to call on every blueprint write."""
    _check_dialect(dialect)
    name = property_index_name(check_property_name(prop))
    expression = property_index_expression(dialect, prop)
    # Pages are read in id order (cursor pagination): with id as the second key the index also
    # yields the matches already sorted, so a rare value never turns into a primary-key walk.
    # SQLite appends the rowid to every index entry by itself.
    columns = f"{expression}, id" if dialect == "postgresql" else expression
    conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {name} ON entities ({columns})")


def drop_property_index(conn: Connection, dialect: str, prop: str) -> None:
    """Drop ``prop``'s index if there is one (for a property removed or no longer marked)."""
    _check_dialect(dialect)
    conn.exec_driver_sql(f"DROP INDEX IF EXISTS {property_index_name(check_property_name(prop))}")


def indexed_properties(schema_properties: Mapping[str, Any]) -> list[str]:
    """The properties of a blueprint's ``schema.properties`` marked ``"x-kiosk-index": true``.

    Only the boolean ``true`` counts (not ``"true"`` or ``1``), so a typo never silently builds an
    index. Names that could not be indexed safely raise ``ValidationFailed`` naming the property.
    The order is the schema's, so repeated calls issue the same DDL in the same order.
    """
    found: list[str] = []
    for name, schema in schema_properties.items():
        if isinstance(schema, Mapping) and schema.get(INDEX_KEY) is True:
            found.append(check_property_name(name, where=f"schema.properties.{name}"))
    return found
