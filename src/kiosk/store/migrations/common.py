"""What the migration files share beyond the column types (:mod:`kiosk.store.columns`): the
constraints and tables several revisions build alike. Each revision in ``versions/`` imports these
rather than writing them again.

A revision records history: whatever it builds with these helpers must stay the DDL it built when
it was written, so a helper here is never changed in a way that alters its output — a new shape
gets a new helper. Names follow the naming convention of :data:`kiosk.store.tables.metadata`.

A revision's docstring says what it builds and nothing else: its ``revision`` and
``down_revision`` variables, which Alembic reads, are the one record of where it stands in the
chain (``script.py.mako`` writes new revisions so).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kiosk.store.columns import JSONDoc, authored_columns

__all__ = ["cascade_to", "create_definition_table"]


def cascade_to(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    """``table.column`` references ``target`` (``"table.column"``) and goes when its row goes."""
    target_table = target.split(".", 1)[0]
    return sa.ForeignKeyConstraint(
        [column],
        [target],
        name=op.f(f"fk_{table}_{column}_{target_table}"),
        ondelete="CASCADE",
    )


def create_definition_table(name: str) -> None:
    """A table of definitions written by someone, one JSON document each by identifier (blueprints, actions)."""
    op.create_table(
        name,
        sa.Column("identifier", sa.String(length=100), nullable=False),
        sa.Column("definition", JSONDoc, nullable=False),
        *authored_columns(),
        sa.PrimaryKeyConstraint("identifier", name=op.f(f"pk_{name}")),
    )
