"""Is a stored connection's token still good? (``debug_token``, DESIGN §4 and §8)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.orm import Session

from shared import webhooks
from shared.audit import NO_REQUEST, RequestInfo, record_event
from shared.crypto import DecryptionError
from shared.db import utcnow
from shared.errors import classify_graph_error
from shared.graph import GraphClient, GraphError, GraphTransportError, as_int
from shared.models import CONNECTED, DISCONNECTED, NEEDS_REAUTH, SocialConnection
from shared.services import Services
from shared.settings import REQUIRED_SCOPES
from shared.tokens import page_token

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenCheck:
    valid: bool
    error_code: str | None = None
    expires_at: datetime | None = None
    data_access_expires_at: datetime | None = None
    scopes: tuple[str, ...] = field(default_factory=tuple)
    # debug_token's per-Page/per-account grants; None when Meta did not send them.
    granular_scopes: tuple[dict[str, Any], ...] | None = None


def _from_unix(value: Any) -> datetime | None:
    """Meta's unix times; 0 means "never"."""
    if not value:
        return None
    return datetime.fromtimestamp(int(value), tz=UTC)


def check_token(graph: GraphClient, token: str) -> TokenCheck:
    """Ask Meta about ``token``. Raises GraphError/GraphTransportError if Meta cannot answer."""
    data = graph.debug_token(token)
    expires_at = _from_unix(data.get("expires_at"))
    data_access = _from_unix(data.get("data_access_expires_at"))
    scopes = tuple(data.get("scopes") or ())
    granular = data.get("granular_scopes")
    granular = tuple(g for g in granular if isinstance(g, dict)) if isinstance(granular, list) and granular else None
    now = utcnow()
    if not data.get("is_valid") or (expires_at and expires_at <= now) or (data_access and data_access <= now):
        return TokenCheck(False, _invalid_reason(data.get("error")), expires_at, data_access, scopes, granular)
    if any(scope not in scopes for scope in REQUIRED_SCOPES):
        return TokenCheck(False, "permissions_missing", expires_at, data_access, scopes, granular)
    return TokenCheck(True, None, expires_at, data_access, scopes, granular)


def _invalid_reason(error: object) -> str:
    """Why Meta calls the token invalid: a checkpoint or unconfirmed user (190/459, 190/464)
    needs the seller on Facebook, not a reconnect; anything else is an expired token."""
    if isinstance(error, dict):
        code, subcode = as_int(error.get("code")), as_int(error.get("subcode"))
        if classify_graph_error(code, subcode) == "meta_action_required":
            return "meta_action_required"
    return "token_expired"


class TokenChecked(Protocol):
    """A connection as a stored row or as the status answer's read of it."""

    @property
    def token_last_checked_at(self) -> datetime | None: ...


def is_fresh(conn: TokenChecked, max_age_seconds: int) -> bool:
    checked = conn.token_last_checked_at
    return checked is not None and utcnow() - checked < timedelta(seconds=max_age_seconds)


def apply_token_check(
    session: Session, conn: SocialConnection, check: TokenCheck, *, info: RequestInfo = NO_REQUEST
) -> None:
    """Record the check on the row; a dead token turns the connection ``needs_reauth``.

    A valid token never turns a ``needs_reauth`` connection back to ``connected``: a
    ``meta_action_required`` connection has a perfectly valid token, and only the seller
    (fixing it on Facebook, then connecting again) can say the problem is gone.
    """
    conn.token_last_checked_at = utcnow()
    if check.valid:
        conn.expires_at = check.expires_at
        conn.data_access_expires_at = check.data_access_expires_at
        conn.scopes_granted = list(check.scopes)
        return
    mark_needs_reauth(session, conn, check.error_code or "token_expired", info=info)


def recheck_connection(
    session: Session,
    services: Services,
    conn: SocialConnection,
    *,
    graph: GraphClient | None = None,
    info: RequestInfo = NO_REQUEST,
) -> TokenCheck | None:
    """``debug_token`` the connection's page token and record the answer (committed).

    ``graph`` is a client with the caller's timeouts (default: the services' usual ones).
    ``None`` when Meta cannot answer or the token cannot be read: the stored state stands.
    """
    try:
        check = check_token(graph or services.graph(), page_token(conn, services.cipher) or "")
    except (GraphError, GraphTransportError, DecryptionError) as exc:
        log.warning("token check skipped: %s", type(exc).__name__, extra={"connection_id": conn.id})
        return None
    apply_token_check(session, conn, check, info=info)
    session.commit()
    return check


def mark_needs_reauth(
    session: Session, conn: SocialConnection, error_code: str, *, info: RequestInfo = NO_REQUEST
) -> None:
    """The seller must reconnect; pending posts wait for the same Page to come back.

    Every path that finds a dead token (the status check, scheduling, the daily check, a
    publish) comes here, so here its ``connection.needs_reauth`` event is recorded.
    """
    if conn.status == DISCONNECTED:
        return
    if conn.last_error_code == "meta_action_required" and error_code == "token_expired" and conn.status == NEEDS_REAUTH:
        return  # a token check must not turn "fix it on Facebook" into a reconnect loop
    if conn.status == CONNECTED or conn.last_error_code != error_code:
        conn.status = NEEDS_REAUTH
        conn.last_error_code = error_code
        record_event(
            session,
            "token_expired",
            user_id=conn.user_id_resellio,
            connection_id=conn.id,
            error_code=error_code,
            request_id=info.request_id,
            ip=info.ip,
        )
        webhooks.connection_event(session, conn, webhooks.CONNECTION_NEEDS_REAUTH)
