"""social connections and audit events

Revision ID: 0001
Revises:
Create Date: 2026-11-26 08:08:02.228914
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import shared.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("user_id_resellio", sa.String(length=255), nullable=True),
        sa.Column("connection_id", sa.String(length=40), nullable=True),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column(
            "detail", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_connection_id"), ["connection_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_user_id_resellio"), ["user_id_resellio"], unique=False)

    op.create_table(
        "social_connections",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("user_id_resellio", sa.String(length=255), nullable=False),
        sa.Column("meta_user_id", sa.String(length=64), nullable=True),
        sa.Column("facebook_page_id", sa.String(length=64), nullable=True),
        sa.Column("page_name", sa.String(length=255), nullable=True),
        sa.Column("instagram_business_account_id", sa.String(length=64), nullable=True),
        sa.Column("instagram_username", sa.String(length=255), nullable=True),
        sa.Column("page_access_token_enc", sa.Text(), nullable=True),
        sa.Column("user_access_token_enc", sa.Text(), nullable=True),
        sa.Column("key_id", sa.String(length=64), nullable=True),
        sa.Column("expires_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("data_access_expires_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("token_last_checked_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "scopes_granted",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("last_error_code", sa.String(length=64), nullable=True),
        sa.Column("connected_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("disconnected_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_social_connections")),
    )
    with op.batch_alter_table("social_connections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_social_connections_facebook_page_id"), ["facebook_page_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_social_connections_meta_user_id"), ["meta_user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_social_connections_user_id_resellio"), ["user_id_resellio"], unique=False)
        batch_op.create_index(
            "uq_social_connections_active_user",
            ["user_id_resellio"],
            unique=True,
            postgresql_where=sa.text("status <> 'disconnected'"),
            sqlite_where=sa.text("status <> 'disconnected'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("social_connections", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_social_connections_active_user",
            postgresql_where=sa.text("status <> 'disconnected'"),
            sqlite_where=sa.text("status <> 'disconnected'"),
        )
        batch_op.drop_index(batch_op.f("ix_social_connections_user_id_resellio"))
        batch_op.drop_index(batch_op.f("ix_social_connections_meta_user_id"))
        batch_op.drop_index(batch_op.f("ix_social_connections_facebook_page_id"))

    op.drop_table("social_connections")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_user_id_resellio"))
        batch_op.drop_index(batch_op.f("ix_audit_events_connection_id"))
        batch_op.drop_index(batch_op.f("ix_audit_events_at"))

    op.drop_table("audit_events")
