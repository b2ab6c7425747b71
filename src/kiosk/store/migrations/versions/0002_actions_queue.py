"""Self-service actions, their runs and logs; the durable job queue; outbound deliveries and attempts."""

import sqlalchemy as sa
from alembic import op

from kiosk.store.columns import JSONDoc, Timestamp
from kiosk.store.migrations.common import cascade_to, create_definition_table

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    create_definition_table("actions")
    op.create_table(
        "action_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("status_label", sa.String(length=1000), nullable=True),
        sa.Column("blueprint", sa.String(length=100), nullable=True),
        sa.Column("entity", sa.String(length=1000), nullable=True),
        sa.Column("properties", JSONDoc, nullable=False),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column("links", JSONDoc, nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("external_run_id", sa.String(length=500), nullable=True),
        sa.Column("origin", sa.String(length=20), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("approval", JSONDoc, nullable=True),
        sa.Column("pipeline_run_name", sa.String(length=255), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("ended_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_runs")),
    )
    op.create_index("ix_action_runs_status_created_at", "action_runs", ["status", "created_at"])
    op.create_index("ix_action_runs_action_created_at", "action_runs", ["action", "created_at"])
    op.create_index("ix_action_runs_pipeline_run_name", "action_runs", ["pipeline_run_name"])
    op.create_table(
        "action_run_logs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("termination_status", sa.String(length=30), nullable=True),
        sa.Column("status_label", sa.String(length=1000), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        cascade_to("action_run_logs", "run_id", "action_runs.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_run_logs")),
    )
    op.create_index("ix_action_run_logs_run_id_id", "action_run_logs", ["run_id", "id"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("payload", JSONDoc, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", Timestamp, nullable=False),
        sa.Column("locked_by", sa.String(length=100), nullable=True),
        sa.Column("locked_until", Timestamp, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("dedupe_key", sa.String(length=300), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("kind", "dedupe_key", name=op.f("uq_jobs_kind_dedupe_key")),
    )
    op.create_index("ix_jobs_status_run_after", "jobs", ["status", "run_after"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("source", sa.String(length=50), nullable=False),
        sa.Column("target", JSONDoc, nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", Timestamp, nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("delivered_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
    )
    op.create_index("ix_deliveries_run_id", "deliveries", ["run_id"])
    op.create_index("ix_deliveries_status_created_at", "deliveries", ["status", "created_at"])
    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(length=40), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", Timestamp, nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("worker", sa.String(length=100), nullable=True),
        cascade_to("delivery_attempts", "delivery_id", "deliveries.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempts")),
    )
    op.create_index("ix_delivery_attempts_delivery_id_id", "delivery_attempts", ["delivery_id", "id"])


def downgrade() -> None:
    op.drop_table("delivery_attempts")
    op.drop_table("deliveries")
    op.drop_table("jobs")
    op.drop_table("action_run_logs")
    op.drop_table("action_runs")
    op.drop_table("actions")
