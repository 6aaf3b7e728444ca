"""webhook events outbox (DESIGN §13.3)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 22:06:35.895519
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The outbox: each outcome event is written in the transaction of the change it reports,
    # then delivered (and retried) from here; the id is the event's constant webhook-id.
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=True),
        sa.Column("post_id", sa.String(length=40), nullable=True),
        sa.Column("user_id_resellio", sa.String(length=255), nullable=True),
        sa.Column("dedupe_key", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("retry_until", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("enqueue_seq", sa.Integer(), nullable=False),
        sa.Column("rq_job_id", sa.String(length=80), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_webhook_events_dedupe_key")),
    )
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_events_connection_id"), ["connection_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_webhook_events_created_at"), ["created_at"], unique=False)
        batch_op.create_index("ix_webhook_events_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_webhook_events_post_id"), ["post_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_events_post_id"))
        batch_op.drop_index("ix_webhook_events_due")
        batch_op.drop_index(batch_op.f("ix_webhook_events_created_at"))
        batch_op.drop_index(batch_op.f("ix_webhook_events_connection_id"))

    op.drop_table("webhook_events")
