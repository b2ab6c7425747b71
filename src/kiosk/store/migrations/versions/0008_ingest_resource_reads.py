"""When each resource's last complete read began, by Azure's clock (the next resync asks what changed since)."""

import sqlalchemy as sa
from alembic import op

from kiosk.store.columns import Timestamp

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "ingest_resource_reads",
        sa.Column("datasource", sa.String(length=1000), nullable=False),
        sa.Column("resource", sa.String(length=64), nullable=False),
        sa.Column("began_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("datasource", "resource", name=op.f("pk_ingest_resource_reads")),
    )


def downgrade() -> None:
    op.drop_table("ingest_resource_reads")
