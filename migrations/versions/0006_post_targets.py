"""post targets: per-target state in its own table, and content v2 (format, media, first comment)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 21:10:00

Each post's ``fb_*``/``ig_*`` columns become two ``post_targets`` rows (``facebook``,
``instagram``; a target the post does not want is a ``skipped`` row), and its
``media_url`` becomes a one-image ``media`` list. The downgrade puts every value back
where it was, and refuses while posts exist that only the new model can express.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import shared.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIME = shared.db.UTCDateTime(timezone=True)

# Old column → new column, per target.
FACEBOOK_COLUMNS = {
    "fb_status": "status",
    "fb_post_id": "remote_id",
    "fb_error_code": "error_code",
    "fb_sent_at": "sent_at",
    "fb_published_at": "published_at",
    "fb_tries": "tries",
    "fb_not_before": "not_before",
}
INSTAGRAM_COLUMNS = {
    "ig_status": "status",
    "ig_container_id": "container_id",
    "ig_media_id": "remote_id",
    "ig_error_code": "error_code",
    "ig_container_at": "container_at",
    "ig_publish_sent_at": "sent_at",
    "ig_published_at": "published_at",
    "ig_tries": "tries",
    "ig_not_before": "not_before",
}
MOVED = {"facebook": FACEBOOK_COLUMNS, "instagram": INSTAGRAM_COLUMNS}

# Snapshots of the tables as this migration sees them (never the models, which move on).
posts_before = sa.table(
    "scheduled_posts",
    sa.column("id", sa.String),
    sa.column("media_url", sa.Text),
    sa.column("media", JSON),
    *(sa.column(name, sa.String) for name in ("fb_status", "fb_post_id", "fb_error_code")),
    *(sa.column(name, TIME) for name in ("fb_sent_at", "fb_published_at", "fb_not_before")),
    sa.column("fb_tries", sa.Integer),
    *(sa.column(name, sa.String) for name in ("ig_status", "ig_container_id", "ig_media_id", "ig_error_code")),
    *(sa.column(name, TIME) for name in ("ig_container_at", "ig_publish_sent_at", "ig_published_at", "ig_not_before")),
    sa.column("ig_tries", sa.Integer),
    sa.column("format", sa.String),
    sa.column("first_comment", sa.Text),
    sa.column("cover_url", sa.Text),
)
post_targets = sa.table(
    "post_targets",
    sa.column("post_id", sa.String),
    sa.column("target", sa.String),
    sa.column("status", sa.String),
    sa.column("remote_id", sa.String),
    sa.column("container_id", sa.String),
    sa.column("container_at", TIME),
    sa.column("children", JSON),
    sa.column("steps", JSON),
    sa.column("sent_at", TIME),
    sa.column("tries", sa.Integer),
    sa.column("not_before", TIME),
    sa.column("error_code", sa.String),
    sa.column("error_message", sa.Text),
    sa.column("published_at", TIME),
    sa.column("comment_status", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("scheduled_posts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("format", sa.String(length=8), nullable=False, server_default="post"))
        batch_op.add_column(sa.Column("media", JSON, nullable=True))
        batch_op.add_column(sa.Column("first_comment", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("cover_url", sa.Text(), nullable=True))
    op.create_table(
        "post_targets",
        sa.Column("post_id", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("remote_id", sa.String(length=128), nullable=True),
        sa.Column("container_id", sa.String(length=128), nullable=True),
        sa.Column("container_at", TIME, nullable=True),
        sa.Column("children", JSON, nullable=True),
        sa.Column("steps", JSON, nullable=True),
        sa.Column("sent_at", TIME, nullable=True),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("not_before", TIME, nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("published_at", TIME, nullable=True),
        sa.Column("comment_status", sa.String(length=16), nullable=True),
        sa.Column("comment_id", sa.String(length=128), nullable=True),
        sa.Column("comment_error_code", sa.String(length=64), nullable=True),
        sa.Column("comment_sent_at", TIME, nullable=True),
        sa.Column("comment_tries", sa.Integer(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(["post_id"], ["scheduled_posts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("post_id", "target"),
    )
    op.create_index("ix_post_targets_remote_id", "post_targets", ["remote_id"], unique=False)

    bind = op.get_bind()
    old_columns = [posts_before.c[name] for columns in MOVED.values() for name in columns]
    rows = bind.execute(sa.select(posts_before.c.id, posts_before.c.media_url, *old_columns)).mappings().all()
    for row in rows:
        media = [{"url": row["media_url"], "type": "image"}] if row["media_url"] else []
        bind.execute(posts_before.update().where(posts_before.c.id == row["id"]).values(media=media))
        for target, columns in MOVED.items():
            values: dict[str, Any] = {new: row[old] for old, new in columns.items()}
            bind.execute(post_targets.insert().values(post_id=row["id"], target=target, **values))

    with op.batch_alter_table("scheduled_posts", schema=None) as batch_op:
        # Every post has its media list now (empty for a text post), as the model says.
        batch_op.alter_column("media", existing_type=JSON, nullable=False)
        for columns in MOVED.values():
            for name in columns:
                batch_op.drop_column(name)


class NotExpressible(RuntimeError):
    """Posts exist that the earlier model cannot hold: the downgrade would lose them."""


def _only_new_model_can_express(bind: sa.engine.Connection) -> list[str]:
    posts = bind.execute(
        sa.select(
            posts_before.c.id,
            posts_before.c.format,
            posts_before.c.media,
            posts_before.c.first_comment,
            posts_before.c.cover_url,
        )
    ).mappings()
    found = []
    for post in posts:
        media = post["media"] or []
        one_image = len(media) <= 1 and all(
            set(item) <= {"url", "type"} and item.get("type") == "image" for item in media
        )
        if post["format"] != "post" or not one_image or post["first_comment"] is not None or post["cover_url"]:
            found.append(post["id"])
    targets = bind.execute(
        sa.select(post_targets.c.post_id).where(
            sa.or_(
                post_targets.c.target.not_in(list(MOVED)),
                post_targets.c.children.is_not(None),
                post_targets.c.steps.is_not(None),
                post_targets.c.comment_status.is_not(None),
                post_targets.c.error_message.is_not(None),
                sa.and_(post_targets.c.target == "facebook", post_targets.c.container_id.is_not(None)),
                sa.and_(post_targets.c.target == "facebook", post_targets.c.container_at.is_not(None)),
            )
        )
    ).scalars()
    return sorted(set(found) | set(targets))


def downgrade() -> None:
    bind = op.get_bind()
    blocking = _only_new_model_can_express(bind)
    if blocking:
        shown = ", ".join(blocking[:10]) + (" …" if len(blocking) > 10 else "")
        raise NotExpressible(
            f"{len(blocking)} post(s) use content the earlier schema cannot hold (formats, several or video "
            f"media, alt text, a first comment, a cover, or a target's step state): {shown}. "
            "Delete or finish them before downgrading below 0006."
        )
    with op.batch_alter_table("scheduled_posts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fb_status", sa.String(length=16), nullable=False, server_default="pending"))
        batch_op.add_column(sa.Column("fb_post_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("fb_error_code", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("fb_sent_at", TIME, nullable=True))
        batch_op.add_column(sa.Column("fb_published_at", TIME, nullable=True))
        batch_op.add_column(sa.Column("fb_tries", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("fb_not_before", TIME, nullable=True))
        batch_op.add_column(sa.Column("ig_status", sa.String(length=16), nullable=False, server_default="pending"))
        batch_op.add_column(sa.Column("ig_container_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("ig_media_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("ig_error_code", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("ig_container_at", TIME, nullable=True))
        batch_op.add_column(sa.Column("ig_publish_sent_at", TIME, nullable=True))
        batch_op.add_column(sa.Column("ig_published_at", TIME, nullable=True))
        batch_op.add_column(sa.Column("ig_tries", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("ig_not_before", TIME, nullable=True))
    for target, columns in MOVED.items():
        rows = bind.execute(sa.select(post_targets).where(post_targets.c.target == target)).mappings().all()
        for row in rows:
            values = {old: row[new] for old, new in columns.items()}
            bind.execute(posts_before.update().where(posts_before.c.id == row["post_id"]).values(**values))
    op.drop_index("ix_post_targets_remote_id", table_name="post_targets")
    op.drop_table("post_targets")
    with op.batch_alter_table("scheduled_posts", schema=None) as batch_op:
        batch_op.drop_column("cover_url")
        batch_op.drop_column("first_comment")
        batch_op.drop_column("media")
        batch_op.drop_column("format")
