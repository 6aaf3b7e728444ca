"""The tables of DESIGN §6, defined once for the connect service and the worker."""
from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base, JSONType, utcnow

CONNECTED = "connected"
NEEDS_REAUTH = "needs_reauth"
DISCONNECTED = "disconnected"
CONNECTION_STATUSES = (CONNECTED, NEEDS_REAUTH, DISCONNECTED)

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

    @property
    def is_active(self) -> bool:
        return self.status != DISCONNECTED


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
