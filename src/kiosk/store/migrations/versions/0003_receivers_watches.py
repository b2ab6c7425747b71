"""Inbound webhook receivers: received events, what their reactions did, and watch refresh state."""

import sqlalchemy as sa
from alembic import op

from kiosk.store.columns import JSONDoc, Timestamp
from kiosk.store.migrations.common import cascade_to

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "receiver_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("receiver", sa.String(length=100), nullable=False),
        sa.Column("project", sa.String(length=100), nullable=False),
        sa.Column("received_at", Timestamp, nullable=False),
        sa.Column("sender", sa.String(length=30), nullable=True),
        sa.Column("event_type", sa.String(length=200), nullable=True),
        sa.Column("delivery_id", sa.String(length=200), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("refreshed", sa.Integer(), nullable=False),
        sa.Column("matches", JSONDoc, nullable=False),
        sa.Column("summary", JSONDoc, nullable=True),
        sa.Column("payload", JSONDoc, nullable=True),
        sa.Column("processing", sa.String(length=20), nullable=True),
        sa.Column("processed_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receiver_events")),
    )
    op.create_index("ix_receiver_events_project_receiver_id", "receiver_events", ["project", "receiver", "id"])
    op.create_table(
        "receiver_event_reactions",
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("watch", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("entity", sa.String(length=1200), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        cascade_to("receiver_event_reactions", "event_id", "receiver_events.id"),
        sa.PrimaryKeyConstraint("event_id", "watch", "position", name=op.f("pk_receiver_event_reactions")),
    )
    op.create_table(
        "watch_states",
        sa.Column("watch", sa.String(length=100), nullable=False),
        sa.Column("last_refreshed_at", Timestamp, nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=True),
        sa.Column("refreshes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("watch", name=op.f("pk_watch_states")),
    )


def downgrade() -> None:
    op.drop_table("watch_states")
    op.drop_table("receiver_event_reactions")
    op.drop_index("ix_receiver_events_project_receiver_id", table_name="receiver_events")
    op.drop_table("receiver_events")
