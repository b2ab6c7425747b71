"""The column types kiosk's tables use, and the column group several of them repeat.

Shared by :mod:`kiosk.store.tables` (the schema as it stands) and the migrations
(``migrations/versions``, which build it). A migration records history: what it built with these
must stay what it built when it was written, so nothing here is changed in a way that alters the
DDL it produces — a table that needs other columns gets them spelled out, or a new helper.
``tests/store/test_migrations.py`` checks, on both engines, that the migrations build exactly
what the tables declare.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

__all__ = ["JSONDoc", "Timestamp", "authored_columns"]

#: JSON everywhere, stored as JSONB on PostgreSQL so property rules can use expression indexes.
JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

Timestamp = sa.DateTime(timezone=True)


def authored_columns() -> list[sa.Column[object]]:
    """``created_at``, ``updated_at`` (required) and ``created_by``, ``updated_by`` (optional): the
    columns of a definition someone writes (a blueprint, an entity, an action). New Column objects
    on each call: a column belongs to one table."""
    return [
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
    ]
