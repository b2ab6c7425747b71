"""API clients can be revoked: ``clients.revoked_at``."""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    # A nullable column with no default: a plain ADD COLUMN on both SQLite and PostgreSQL.
    op.add_column("clients", sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("revoked_at")
