"""Connecting, refreshing and disconnecting a seller's Page (DESIGN §4 "Connecting a Page")."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from connect_service.page_selection import PageChoice
from shared import webhooks
from shared.audit import RequestInfo, record_event
from shared.crypto import TokenCipher
from shared.db import utcnow
from shared.errors import AppError
from shared.graph import GraphClient, GraphError, GraphTransportError
from shared.models import (
    CONNECTED,
    DISCONNECTED,
    NEEDS_REAUTH,
    AuditEvent,
    SocialConnection,
    active_connection,
    new_id,
)
from shared.models import EXPIRING_SOON as EXPIRING_SOON  # the status answer's rule, kept under its old name here
from shared.models import expiring_soon as expiring_soon
from shared.posts import cancel_pending_posts
from shared.settings import REQUIRED_SCOPES
from shared.token_check import check_token
from shared.tokens import store_tokens, user_token, wipe_tokens

log = logging.getLogger(__name__)

PAGE_FIELDS = "id,name,access_token,tasks,instagram_business_account{id,username}"
POSTING_TASKS = frozenset({"CREATE_CONTENT", "MANAGE"})


@dataclass
class MetaGrant:
    """What the OAuth callback learned about the Meta user."""

    meta_user_id: str
    user_token: str
    scopes_granted: list[str]


def read_grant(graph: GraphClient, long_lived_token: str) -> MetaGrant:
    """Who the Meta user is and which scopes they granted; refuse if a required one is missing."""
    me = graph.get("/me", token=long_lived_token, params={"fields": "id"})
    permissions = graph.get("/me/permissions", token=long_lived_token)
    granted = [p.get("permission") for p in permissions.get("data", []) if p.get("status") == "granted"]
    if any(scope not in granted for scope in REQUIRED_SCOPES):
        raise AppError("permissions_missing")
    return MetaGrant(meta_user_id=str(me["id"]), user_token=long_lived_token, scopes_granted=granted)


def can_post(page: dict) -> bool:
    return bool(POSTING_TASKS & set(page.get("tasks") or ()))


def usable_pages(graph: GraphClient, grant: MetaGrant) -> list[dict]:
    """Every Page of ``/me/accounts`` (all paging pages) the user may post to."""
    pages = graph.paginate("/me/accounts", token=grant.user_token, params={"fields": PAGE_FIELDS, "limit": 100})
    return [page for page in pages if can_post(page)]


def page_choice(page: dict) -> PageChoice:
    ig = page.get("instagram_business_account") or {}
    return PageChoice(
        id=str(page["id"]),
        name=page.get("name") or str(page["id"]),
        instagram_business_account_id=str(ig["id"]) if ig.get("id") else None,
        instagram_username=ig.get("username"),
        tasks=list(page.get("tasks") or ()),
    )


PAGE_NODE_FIELDS = "id,name,access_token,instagram_business_account{id,username}"


def read_page(graph: GraphClient, choice: PageChoice, grant: MetaGrant) -> dict:
    """Re-read the chosen Page (its token, its Instagram account) with the user token.

    ``tasks`` belongs to the user's edge to the Page, so it comes from the selection.
    """
    page = graph.get(f"/{choice.id}", token=grant.user_token, params={"fields": PAGE_NODE_FIELDS})
    return {**page, "tasks": choice.tasks}


def connect_page(
    session: Session,
    graph: GraphClient,
    cipher: TokenCipher,
    *,
    user_id: str,
    grant: MetaGrant,
    page: dict,
    event: str,
    info: RequestInfo,
) -> SocialConnection:
    """Validate a Page and store it as the user's connection (not yet committed)."""
    if not can_post(page):
        raise AppError("not_admin_page")
    choice = page_choice(page)
    if not choice.has_instagram:
        raise AppError("instagram_not_connected_to_page")
    token = page.get("access_token")
    if not token:
        # Pages reached through a Business portfolio can come without a token: ask for it.
        token = graph.get(f"/{choice.id}", token=grant.user_token, params={"fields": "access_token"}).get(
            "access_token"
        )
    if not token:
        raise AppError("not_admin_page")
    check = check_token(graph, token)
    if not check.valid:
        raise AppError(check.error_code or "token_expired")
    if not granted_for(check.granular_scopes, choice.id, choice.instagram_business_account_id):
        raise AppError("permissions_missing")
    conn = active_connection(session, user_id, for_update=True)
    now = utcnow()
    if conn is None or conn.facebook_page_id != choice.id:
        if conn is not None:
            retire(session, conn, reason="replaced_by_other_page", info=info)
            session.flush()
        conn = SocialConnection(id=new_id("conn"), user_id_resellio=user_id, created_at=now)
        session.add(conn)
    conn.meta_user_id = grant.meta_user_id
    conn.facebook_page_id = choice.id
    conn.page_name = choice.name
    conn.instagram_business_account_id = choice.instagram_business_account_id
    conn.instagram_username = choice.instagram_username
    store_tokens(conn, cipher, page_token=token, user_token=grant.user_token)
    conn.expires_at = check.expires_at
    conn.data_access_expires_at = check.data_access_expires_at
    conn.scopes_granted = list(check.scopes) or grant.scopes_granted
    conn.token_last_checked_at = now
    conn.status = CONNECTED
    conn.last_error_code = None
    conn.connected_at = now
    conn.disconnected_at = None
    session.flush()
    record_event(
        session,
        event,
        user_id=user_id,
        connection_id=conn.id,
        detail={"facebook_page_id": choice.id, "instagram_business_account_id": choice.instagram_business_account_id},
        request_id=info.request_id,
        ip=info.ip,
    )
    webhooks.connection_event(session, conn, webhooks.CONNECTION_CONNECTED)
    return conn


# Per-object grants a connection needs (a seller can untick a Page or account per scope).
GRANULAR_TARGETS = ("pages_manage_posts", "instagram_content_publish")


def granted_for(granular_scopes, page_id: str, ig_id: str | None) -> bool:
    """Does debug_token's ``granular_scopes`` cover this Page and its Instagram account?

    Absent granular scopes say nothing (True). Otherwise ``pages_manage_posts`` must
    list the Page and ``instagram_content_publish`` the account; an entry without
    ``target_ids`` is Meta's way of saying the grant is not limited to some objects.
    """
    if not granular_scopes:
        return True
    entries = {str(g.get("scope")): g for g in granular_scopes}
    for scope, target in zip(GRANULAR_TARGETS, (page_id, ig_id), strict=True):
        entry = entries.get(scope)
        if entry is None:
            return False
        targets = entry.get("target_ids")
        if targets is not None and (not isinstance(targets, list) or target not in {str(t) for t in targets}):
            return False
    return True


def needs_rerequest(session: Session, user_id: str) -> bool:
    """Has a connect ended in ``permissions_missing`` since the seller last connected
    (or has the connection lost a scope)?

    Meta does not ask again for a declined permission unless the dialog URL says
    ``auth_type=rerequest``. Read from what is durable: the connection row's
    ``last_error_code`` and the audit trail (``connect_failed`` events).
    """
    conn = active_connection(session, user_id)
    if conn is not None and conn.status == NEEDS_REAUTH and conn.last_error_code == "permissions_missing":
        return True
    last = session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.user_id_resellio == user_id,
            or_(
                AuditEvent.event.in_(("connected", "page_selected")),
                and_(AuditEvent.event == "connect_failed", AuditEvent.error_code == "permissions_missing"),
            ),
        )
        .order_by(AuditEvent.id.desc())
        .limit(1)
    ).first()
    return last is not None and last.event == "connect_failed"


def retire(
    session: Session, conn: SocialConnection, *, reason: str, info: RequestInfo, event: str = "disconnected"
) -> None:
    """Wipe the tokens and keep the row as history; its pending posts are cancelled.

    Every way a connection ends comes here (disconnect, Meta's deauthorize and data deletion,
    another Page replacing it), so here its ``connection.disconnected`` event is recorded.
    """
    wipe_tokens(conn)
    conn.status = DISCONNECTED
    conn.disconnected_at = utcnow()
    cancelled = cancel_pending_posts(session, conn.id, reason)
    record_event(
        session,
        event,
        user_id=conn.user_id_resellio,
        connection_id=conn.id,
        detail={"reason": reason, "posts_cancelled": len(cancelled)},
        request_id=info.request_id,
        ip=info.ip,
    )
    webhooks.connection_event(session, conn, webhooks.CONNECTION_DISCONNECTED)


def revoke_grant(session: Session, graph: GraphClient, cipher: TokenCipher, conn: SocialConnection) -> bool:
    """Best effort ``DELETE /{meta-user-id}/permissions``; a dead token must not block anything.

    Skipped when another Resellio user's active connection relies on the same Meta grant.
    """
    if not conn.meta_user_id or not conn.user_access_token_enc:
        return False
    shared_grant = session.scalars(
        select(SocialConnection.id).where(
            SocialConnection.meta_user_id == conn.meta_user_id,
            SocialConnection.id != conn.id,
            SocialConnection.status != DISCONNECTED,
        )
    ).first()
    if shared_grant:
        log.info("grant kept: another connection uses the same Meta user", extra={"connection_id": conn.id})
        return False
    try:
        graph.delete(f"/{conn.meta_user_id}/permissions", token=user_token(conn, cipher))
        return True
    except (GraphError, GraphTransportError) as exc:
        log.info(
            "revoking the Meta grant failed (%s); disconnecting anyway",
            type(exc).__name__,
            extra={"connection_id": conn.id},
        )
        return False
