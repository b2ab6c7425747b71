"""What a resync last made of each item it can prove unchanged (the unchanged resync skips it)."""

import sqlalchemy as sa
from alembic import op

from kiosk.store.columns import JSONDoc

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "ingest_item_marks",
        sa.Column("datasource", sa.String(length=1000), nullable=False),
        sa.Column("resource", sa.String(length=64), nullable=False),
        sa.Column("item", sa.String(length=400), nullable=False),
        sa.Column("version", sa.String(length=200), nullable=False),
        sa.Column("entities", JSONDoc, nullable=False),
        sa.PrimaryKeyConstraint("datasource", "resource", "item", name=op.f("pk_ingest_item_marks")),
    )


def downgrade() -> None:
    op.drop_table("ingest_item_marks")
