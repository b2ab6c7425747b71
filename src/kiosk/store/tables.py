"""The tables kiosk keeps, as SQLAlchemy Core metadata.

Core (not the ORM) because the hot paths are bulk ``executemany`` statements; there is no
object graph worth mapping. Migrations in ``migrations/versions`` must match this file; the
test ``tests/store/test_migrations.py`` checks they do on both engines.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: JSON everywhere, stored as JSONB on PostgreSQL so property rules can use expression indexes.
JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

Timestamp = sa.DateTime(timezone=True)

blueprints = sa.Table(
    "blueprints",
    metadata,
    sa.Column("identifier", sa.String(100), primary_key=True),
    # The whole Port blueprint document, normalised; identifier/title duplicated for listing.
    sa.Column("definition", JSONDoc, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=True),
    sa.Column("updated_by", sa.String(200), nullable=True),
)

entities = sa.Table(
    "entities",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "blueprint",
        sa.String(100),
        sa.ForeignKey("blueprints.identifier", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("identifier", sa.String(1000), nullable=False),
    sa.Column("title", sa.String(1000), nullable=True),
    sa.Column("icon", sa.String(200), nullable=True),
    sa.Column("team", JSONDoc, nullable=False),
    sa.Column("properties", JSONDoc, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=True),
    sa.Column("updated_by", sa.String(200), nullable=True),
    # The only index besides the primary key: every extra index costs bulk writes, and titles of
    # up to 1000 characters would not fit a PostgreSQL B-tree entry anyway. Properties that need
    # an index ask for one (x-kiosk-index, see kiosk.catalog.indexes).
    sa.UniqueConstraint("blueprint", "identifier"),
)

# One row per relation edge; the single source of truth for relations (entity rows do not
# repeat them). target_id cascades so deleting an entity drops the edges pointing at it.
entity_relations = sa.Table(
    "entity_relations",
    metadata,
    sa.Column("entity_id", sa.Integer, sa.ForeignKey("entities.id", ondelete="CASCADE"), nullable=False),
    sa.Column("relation", sa.String(100), nullable=False),
    sa.Column("target_id", sa.Integer, sa.ForeignKey("entities.id", ondelete="CASCADE"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False, default=0),
    sa.PrimaryKeyConstraint("entity_id", "relation", "target_id"),
    sa.Index("ix_entity_relations_target_id", "target_id"),
)

clients = sa.Table(
    "clients",
    metadata,
    sa.Column("client_id", sa.String(64), primary_key=True),
    # sha256 of a 256-bit random secret: a slow KDF buys nothing against a secret that random,
    # and the token route stays fast.
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
)

# Small server-wide values (the token signing key, ...).
server_state = sa.Table(
    "server_state",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
