"""The Azure DevOps integration: entity datasources, resync state, raw examples, replaced mappings."""

import sqlalchemy as sa
from alembic import op

from kiosk.store.columns import JSONDoc, Timestamp
from kiosk.store.migrations.common import cascade_to

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "entity_datasources",
        sa.Column("datasource", sa.String(length=1000), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        cascade_to("entity_datasources", "entity_id", "entities.id"),
        sa.PrimaryKeyConstraint("datasource", "entity_id", name=op.f("pk_entity_datasources")),
    )
    op.create_index("ix_entity_datasources_entity_id", "entity_datasources", ["entity_id"])
    op.create_table(
        "integration_state",
        sa.Column("integration", sa.String(length=100), nullable=False),
        sa.Column("state", JSONDoc, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("integration", name=op.f("pk_integration_state")),
    )
    op.create_table(
        "integration_examples",
        sa.Column("integration", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("examples", JSONDoc, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("integration", "kind", name=op.f("pk_integration_examples")),
    )
    op.create_table(
        "integration_mappings",
        sa.Column("integration", sa.String(length=100), nullable=False),
        sa.Column("mapping", JSONDoc, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("integration", name=op.f("pk_integration_mappings")),
    )


def downgrade() -> None:
    op.drop_table("integration_mappings")
    op.drop_table("integration_examples")
    op.drop_table("integration_state")
    op.drop_index("ix_entity_datasources_entity_id", table_name="entity_datasources")
    op.drop_table("entity_datasources")
