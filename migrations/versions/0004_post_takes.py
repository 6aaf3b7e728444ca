"""post takes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 08:53:01.452071
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scheduled_posts", schema=None) as batch_op:
        # Existing rows count as taken once at most; the server default fills them in.
        batch_op.add_column(sa.Column("takes", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("scheduled_posts", schema=None) as batch_op:
        batch_op.drop_column("takes")
