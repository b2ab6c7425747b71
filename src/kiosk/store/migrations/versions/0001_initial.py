"""Initial schema: blueprints, entities, relations, API clients, server state."""

import sqlalchemy as sa
from alembic import op

from kiosk.store.columns import JSONDoc, authored_columns
from kiosk.store.migrations.common import cascade_to, create_definition_table

revision = "0001"
down_revision = None


def upgrade() -> None:
    create_definition_table("blueprints")
    op.create_table(
        "clients",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_clients")),
    )
    op.create_table(
        "server_state",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_server_state")),
    )
    op.create_table(
        "entities",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("blueprint", sa.String(length=100), nullable=False),
        sa.Column("identifier", sa.String(length=1000), nullable=False),
        sa.Column("title", sa.String(length=1000), nullable=True),
        sa.Column("icon", sa.String(length=200), nullable=True),
        sa.Column("team", JSONDoc, nullable=False),
        sa.Column("properties", JSONDoc, nullable=False),
        *authored_columns(),
        cascade_to("entities", "blueprint", "blueprints.identifier"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entities")),
        sa.UniqueConstraint("blueprint", "identifier", name=op.f("uq_entities_blueprint_identifier")),
    )
    op.create_table(
        "entity_relations",
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("relation", sa.String(length=100), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        cascade_to("entity_relations", "entity_id", "entities.id"),
        cascade_to("entity_relations", "target_id", "entities.id"),
        sa.PrimaryKeyConstraint("entity_id", "relation", "target_id", name=op.f("pk_entity_relations")),
    )
    op.create_index("ix_entity_relations_target_id", "entity_relations", ["target_id"], unique=False)


def downgrade() -> None:
    op.drop_table("entity_relations")
    op.drop_table("entities")
    op.drop_table("server_state")
    op.drop_table("clients")
    op.drop_table("blueprints")
