"""Audit events (DESIGN §6): what happened to a connection or a post, never a token."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from shared.models import AuditEvent

log = logging.getLogger("social_connect.audit")


@dataclass(frozen=True)
class RequestInfo:
    """Where a call came from, for its audit events: the request id and the client's address."""

    request_id: str | None = None
    ip: str | None = None


NO_REQUEST = RequestInfo()

EVENTS = frozenset(
    {
        "connect_started",
        "connected",
        "page_selected",
        "connect_failed",
        "disconnected",
        "token_expired",
        "post_scheduled",
        "post_edited",
        "post_retried",
        "post_published",
        "post_failed",
        "deauthorized",
        "data_deletion_requested",
    }
)


def record_event(
    session: Session,
    event: str,
    *,
    user_id: str | None = None,
    connection_id: str | None = None,
    error_code: str | None = None,
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
    request_id: str | None = None,
) -> AuditEvent:
    """Add an audit event to the session (the caller commits it with its own change)."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    entry = AuditEvent(
        event=event,
        user_id_resellio=user_id,
        connection_id=connection_id,
        error_code=error_code,
        detail=detail or None,
        ip=ip,
        request_id=request_id,
    )
    session.add(entry)
    log.info("audit %s", event, extra={"event": event, "connection_id": connection_id, "user_id_resellio": user_id})
    return entry
