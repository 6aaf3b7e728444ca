"""The tables of DESIGN §6, defined once for the connect service and the worker."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ForeignKey, Index, String, Text, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from shared.db import Base, JSONType, utcnow

CONNECTED = "connected"
NEEDS_REAUTH = "needs_reauth"
DISCONNECTED = "disconnected"

# The encrypted token columns, by the field name bound into their ciphertext.
TOKEN_FIELDS = ("page_access_token_enc", "user_access_token_enc")


def new_id(prefix: str) -> str:
    """A random, unguessable public id such as ``conn_3f9a…``."""
    return f"{prefix}_{secrets.token_hex(10)}"


class SocialConnection(Base):
    """One Resellio user's link to a Facebook Page and its Instagram account."""

    __tablename__ = "social_connections"
    __table_args__ = (
        # One active connection per user; disconnected rows are history.
        Index(
            "uq_social_connections_active_user",
            "user_id_resellio",
            unique=True,
            postgresql_where=text("status <> 'disconnected'"),
            sqlite_where=text("status <> 'disconnected'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("conn"))
    user_id_resellio: Mapped[str] = mapped_column(String(255), index=True)
    meta_user_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # Set when Meta's data deletion erased ``meta_user_id``: its keyed hash, so a later
    # callback for the same person still finds the row (connect_service/meta_erasure.py).
    meta_user_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    facebook_page_id: Mapped[str | None] = mapped_column(String(64), index=True)
    page_name: Mapped[str | None] = mapped_column(String(255))
    instagram_business_account_id: Mapped[str | None] = mapped_column(String(64))
    instagram_username: Mapped[str | None] = mapped_column(String(255))
    page_access_token_enc: Mapped[str | None] = mapped_column(Text)
    user_access_token_enc: Mapped[str | None] = mapped_column(Text)
    key_id: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime | None]
    data_access_expires_at: Mapped[datetime | None]
    token_last_checked_at: Mapped[datetime | None]
    scopes_granted: Mapped[list[str] | None] = mapped_column(JSONType, default=list)
    status: Mapped[str] = mapped_column(String(20), default=CONNECTED)
    last_error_code: Mapped[str | None] = mapped_column(String(64))
    connected_at: Mapped[datetime | None]
    disconnected_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def active_connection(session: Session, user_id: str, *, for_update: bool = False) -> SocialConnection | None:
    """The user's connection that is not ``disconnected`` (there is at most one)."""
    query = select(SocialConnection).where(
        SocialConnection.user_id_resellio == user_id, SocialConnection.status != DISCONNECTED
    )
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


EXPIRING_SOON = timedelta(days=14)


class Expiring(Protocol):
    """A connection's expiry dates, as a stored row or as the status answer's read of it."""

    @property
    def expires_at(self) -> datetime | None: ...

    @property
    def data_access_expires_at(self) -> datetime | None: ...


def earliest_expiry(conn: Expiring) -> datetime | None:
    """The earlier of ``expires_at`` and ``data_access_expires_at``; None when neither expires
    (Meta says so for page tokens with a null date)."""
    dates = [d for d in (conn.expires_at, conn.data_access_expires_at) if d is not None]
    return min(dates) if dates else None


def expiring_soon(conn: Expiring, now: datetime | None = None) -> bool:
    """Is the earlier of ``expires_at`` and ``data_access_expires_at`` less than 14 days away?

    A null date never expires (Meta says so for page tokens) and is ignored.
    """
    expiry = earliest_expiry(conn)
    return expiry is not None and expiry - (now or utcnow()) < EXPIRING_SOON


class AuditEvent(Base):
    """An append-only record of what happened to a connection or a post."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    user_id_resellio: Mapped[str | None] = mapped_column(String(255), index=True)
    connection_id: Mapped[str | None] = mapped_column(String(40), index=True)
    event: Mapped[str] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    ip: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))


# --- scheduled posts (DESIGN §6, §8) ---

QUEUED = "queued"
PUBLISHING = "publishing"
PUBLISHED = "published"
PARTIALLY_PUBLISHED = "partially_published"
UNCONFIRMED = "unconfirmed"
FAILED = "failed"
CANCELLED = "cancelled"
POST_STATUSES = (QUEUED, PUBLISHING, PUBLISHED, PARTIALLY_PUBLISHED, UNCONFIRMED, FAILED, CANCELLED)

# Per-target states.
PENDING = "pending"
SKIPPED = "skipped"
TARGET_STATUSES = (PENDING, PUBLISHED, FAILED, UNCONFIRMED, SKIPPED)

FORMAT_POST = "post"
FORMAT_REEL = "reel"
FORMAT_STORY = "story"
POST_FORMATS = (FORMAT_POST, FORMAT_REEL, FORMAT_STORY)


class ScheduledPost(Base):
    """One post for a connection's Page and/or Instagram account, published at ``publish_at``."""

    __tablename__ = "scheduled_posts"
    __table_args__ = (
        Index("uq_scheduled_posts_idempotency", "idempotency_scope", "idempotency_key", unique=True),
        Index("ix_scheduled_posts_due", "status", "publish_at"),
        Index("ix_scheduled_posts_owner_created", "user_id_resellio", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("job"))
    connection_id: Mapped[str] = mapped_column(ForeignKey("social_connections.id"), index=True)
    user_id_resellio: Mapped[str] = mapped_column(String(255))
    publish_at: Mapped[datetime]
    caption: Mapped[str] = mapped_column(Text, default="")
    # The first media item's URL (the API's short form and earlier clients' key).
    media_url: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(Text)
    targets: Mapped[list[str]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(24), default=QUEUED)
    # Content v2 (DESIGN §13.2): ``post``, ``reel`` or ``story``; the media list as the
    # API takes it (``[{"url", "type", "alt_text"?}]``); a comment posted on each target.
    format: Mapped[str] = mapped_column(String(8), default=FORMAT_POST, server_default=FORMAT_POST)
    media: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    first_comment: Mapped[str | None] = mapped_column(Text)
    cover_url: Mapped[str | None] = mapped_column(Text)
    target_rows: Mapped[list[PostTarget]] = relationship(
        back_populates="post", cascade="all, delete-orphan", lazy="selectin", order_by="PostTarget.target"
    )

    attempts: Mapped[int] = mapped_column(default=0)
    # Fresh takes of the lease (first start, or after a crash or a lost job): bounds a crash loop.
    takes: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    rq_job_id: Mapped[str | None] = mapped_column(String(80))
    enqueue_seq: Mapped[int] = mapped_column(default=0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)

    idempotency_scope: Mapped[str | None] = mapped_column(String(300))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))

    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def wants(self, target: str) -> bool:
        return target in (self.targets or ())

    def target(self, name: str) -> PostTarget | None:
        """The post's row for target ``name`` (``facebook``, ``instagram``), if it has one."""
        return next((row for row in self.target_rows if row.target == name), None)


class PostTarget(Base):
    """One post on one target (DESIGN §13.2): its status, Meta's ids, each step's markers.

    ``sent_at`` is the "sent" marker of the request that makes the post live (committed
    just before it leaves); ``steps`` holds the markers and ids of the steps before it
    (uploads, a video session, a container) and ``children`` each item's own state, so a
    retry resumes where it stopped. A target the post does not want has a ``skipped`` row.
    """

    __tablename__ = "post_targets"

    post_id: Mapped[str] = mapped_column(ForeignKey("scheduled_posts.id", ondelete="CASCADE"), primary_key=True)
    target: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    # What Meta calls the live object: a Facebook post id, an Instagram media id.
    remote_id: Mapped[str | None] = mapped_column(String(128), index=True)
    container_id: Mapped[str | None] = mapped_column(String(128))
    container_at: Mapped[datetime | None]
    children: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    steps: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    sent_at: Mapped[datetime | None]
    tries: Mapped[int] = mapped_column(default=0)
    not_before: Mapped[datetime | None]
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None]
    # The first comment (None: the post has none); same statuses as the target.
    comment_status: Mapped[str | None] = mapped_column(String(16))
    comment_id: Mapped[str | None] = mapped_column(String(128))
    comment_error_code: Mapped[str | None] = mapped_column(String(64))
    comment_sent_at: Mapped[datetime | None]
    comment_tries: Mapped[int] = mapped_column(default=0)

    post: Mapped[ScheduledPost] = relationship(back_populates="target_rows")


class DataDeletionRequest(Base):
    """A deletion Meta asked for on a person's behalf; its code is the status page's key."""

    __tablename__ = "data_deletion_requests"

    confirmation_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="completed")
    connections_erased: Mapped[int] = mapped_column(default=0)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]


class MetaCallbackReceipt(Base):
    """A Meta callback already acted on: the same ``signed_request`` twice does nothing twice.

    Keyed by the SHA-256 of the exact ``signed_request`` string (never the string itself),
    per kind; the primary key makes two identical deliveries at once act only once.
    """

    __tablename__ = "meta_callback_receipts"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    issued_at: Mapped[datetime] = mapped_column(index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


# --- outcome events to Resellio (DESIGN §13.3) ---

EVENT_PENDING = "pending"
EVENT_DELIVERED = "delivered"
EVENT_DEAD = "dead"
EVENT_STATUSES = (EVENT_PENDING, EVENT_DELIVERED, EVENT_DEAD)


class WebhookEvent(Base):
    """One outcome event in the outbox, written in the transaction of the change it reports.

    ``id`` is the ``webhook-id`` of every attempt and never changes; ``body`` holds the exact
    JSON sent (``{"type", "timestamp", "data"}``), so each attempt signs the same bytes.
    ``next_attempt_at`` is when the next attempt is due (a delivery in progress holds it a
    little ahead); ``retry_until`` is when a failing event gives up and becomes ``dead``.
    ``last_status``/``last_error`` say what the receiver last answered (never a secret or a body).
    ``dedupe_key`` makes an event that must be sent once (one ``connection.expiring_soon`` per expiry) unique.
    """

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("msg"))
    type: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    connection_id: Mapped[str | None] = mapped_column(String(40), index=True)
    post_id: Mapped[str | None] = mapped_column(String(40), index=True)
    user_id_resellio: Mapped[str | None] = mapped_column(String(255))
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=EVENT_PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    retry_until: Mapped[datetime]
    enqueue_seq: Mapped[int] = mapped_column(default=0)
    rq_job_id: Mapped[str | None] = mapped_column(String(80))
    last_status: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    delivered_at: Mapped[datetime | None]
