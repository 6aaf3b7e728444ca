"""Audit events (DESIGN §6): what happened to a connection or a post, never a token."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, insert
from sqlalchemy.orm import Session

from shared.db import utcnow
from shared.models import AuditEvent

log = logging.getLogger("social_connect.audit")

_INSERT = insert(cast(Table, AuditEvent.__table__))


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
) -> None:
    """Write an audit event in the session's transaction (the caller commits it with its own change).

    A plain INSERT on the session's connection rather than an object added for the next flush:
    every post's outcome writes one, and the ORM's unit of work cost more than the statement.
    """
    row = audit_row(
        event,
        user_id=user_id,
        connection_id=connection_id,
        error_code=error_code,
        detail=detail,
        ip=ip,
        request_id=request_id,
    )
    insert_row(session.connection(), row)
    log_event(row)


def audit_row(
    event: str,
    *,
    user_id: str | None = None,
    connection_id: str | None = None,
    error_code: str | None = None,
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The ``audit_events`` row of an event, every column but its id (for a statement that
    writes it with others: the worker's outcome, see ``publish_worker.lease.record``)."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    return {
        "at": utcnow(),
        "event": event,
        "user_id_resellio": user_id,
        "connection_id": connection_id,
        "error_code": error_code,
        "detail": detail or None,
        "ip": ip,
        "request_id": request_id,
    }


def insert_row(connection: Connection, row: dict[str, Any]) -> None:
    """Write an audit event's row (as :func:`audit_row` made it) in the connection's transaction."""
    connection.execute(_INSERT, row)


def log_event(row: dict[str, Any]) -> None:
    """The log line of an audit event written (its row as :func:`audit_row` made it)."""
    event, user_id, connection_id = row["event"], row["user_id_resellio"], row["connection_id"]
    log.info("audit %s", event, extra={"event": event, "connection_id": connection_id, "user_id_resellio": user_id})
