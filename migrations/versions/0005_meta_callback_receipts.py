"""meta callback receipts, and the keyed hash of an erased Meta user id

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 18:26:47.941156
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import shared.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per Meta callback acted on; the primary key makes a replay (or two identical
    # deliveries at once) act only once.
    op.create_table(
        "meta_callback_receipts",
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("issued_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "result", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.PrimaryKeyConstraint("kind", "request_hash", name=op.f("pk_meta_callback_receipts")),
    )
    with op.batch_alter_table("meta_callback_receipts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_meta_callback_receipts_issued_at"), ["issued_at"], unique=False)

    with op.batch_alter_table("social_connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("meta_user_hash", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_social_connections_meta_user_hash"), ["meta_user_hash"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("social_connections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_social_connections_meta_user_hash"))
        batch_op.drop_column("meta_user_hash")

    with op.batch_alter_table("meta_callback_receipts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meta_callback_receipts_issued_at"))

    op.drop_table("meta_callback_receipts")
