"""scheduled posts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 08:14:55.812869
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import shared.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduled_posts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("user_id_resellio", sa.String(length=255), nullable=False),
        sa.Column("publish_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("caption", sa.Text(), nullable=False),
        sa.Column("media_url", sa.Text(), nullable=True),
        sa.Column("link", sa.Text(), nullable=True),
        sa.Column(
            "targets", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("fb_status", sa.String(length=16), nullable=False),
        sa.Column("fb_post_id", sa.String(length=128), nullable=True),
        sa.Column("fb_error_code", sa.String(length=64), nullable=True),
        sa.Column("fb_sent_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("fb_published_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("fb_tries", sa.Integer(), nullable=False),
        sa.Column("fb_not_before", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ig_status", sa.String(length=16), nullable=False),
        sa.Column("ig_container_id", sa.String(length=128), nullable=True),
        sa.Column("ig_media_id", sa.String(length=128), nullable=True),
        sa.Column("ig_error_code", sa.String(length=64), nullable=True),
        sa.Column("ig_container_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ig_publish_sent_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ig_published_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ig_tries", sa.Integer(), nullable=False),
        sa.Column("ig_not_before", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("rq_job_id", sa.String(length=80), nullable=True),
        sa.Column("enqueue_seq", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("idempotency_scope", sa.String(length=300), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("started_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["social_connections.id"],
            name=op.f("fk_scheduled_posts_connection_id_social_connections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_posts")),
    )
    with op.batch_alter_table("scheduled_posts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scheduled_posts_connection_id"), ["connection_id"], unique=False)
        batch_op.create_index("ix_scheduled_posts_due", ["status", "publish_at"], unique=False)
        batch_op.create_index("ix_scheduled_posts_owner_created", ["user_id_resellio", "created_at"], unique=False)
        batch_op.create_index("uq_scheduled_posts_idempotency", ["idempotency_scope", "idempotency_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("scheduled_posts", schema=None) as batch_op:
        batch_op.drop_index("uq_scheduled_posts_idempotency")
        batch_op.drop_index("ix_scheduled_posts_owner_created")
        batch_op.drop_index("ix_scheduled_posts_due")
        batch_op.drop_index(batch_op.f("ix_scheduled_posts_connection_id"))

    op.drop_table("scheduled_posts")
