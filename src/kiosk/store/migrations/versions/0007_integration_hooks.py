"""What an integration's service-hook subscriptions were last given: a fingerprint of the inputs."""

import sqlalchemy as sa
from alembic import op

from kiosk.store.columns import Timestamp

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "integration_hooks",
        sa.Column("integration", sa.String(length=100), nullable=False),
        sa.Column("organization", sa.String(length=500), nullable=False),
        sa.Column("fingerprint", sa.String(length=200), nullable=False),
        sa.Column("applied_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("integration", "organization", name=op.f("pk_integration_hooks")),
    )


def downgrade() -> None:
    op.drop_table("integration_hooks")
