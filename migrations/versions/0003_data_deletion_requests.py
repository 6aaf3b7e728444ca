"""data deletion requests

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 08:39:15.466617
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_deletion_requests",
        sa.Column("confirmation_code", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("connections_erased", sa.Integer(), nullable=False),
        sa.Column("requested_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("confirmation_code", name=op.f("pk_data_deletion_requests")),
    )


def downgrade() -> None:
    op.drop_table("data_deletion_requests")
