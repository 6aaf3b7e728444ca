"""What Meta's data deletion erases (DESIGN §13.1 "Meta callbacks").

A person's Meta-derived data — Meta user id, page name, Page/Instagram ids, Instagram
username, remote post ids — goes from their connections, those connections' posts, audit
details and outcome events (sent or not); the tokens are wiped. Only a keyed hash of the Meta user id stays, so a
later callback for the same person still finds the rows.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from shared.db import affected_rows
from shared.models import AuditEvent, PostTarget, ScheduledPost, SocialConnection, WebhookEvent
from shared.tokens import wipe_tokens

HASH_CONTEXT = b"resellio-social-connect/meta-user-id/v1"

# Audit detail keys that hold Meta-derived values (ids Meta gave us, names from Meta).
META_DETAIL_KEYS = frozenset(
    {
        "meta_user_id",
        "facebook_page_id",
        "page_id",
        "page_name",
        "instagram_business_account_id",
        "instagram_username",
        "facebook_post_id",
        "fb_post_id",
        "post_id",
        "instagram_media_id",
        "ig_media_id",
        "media_id",
        "ig_container_id",
        "container_id",
        "instagram_container_id",
    }
)
ERASED_MARK = "meta_data_erased"


def meta_user_hash(app_secret: str, meta_user_id: str) -> str:
    """HMAC-SHA256 of the Meta user id under a key derived from the app secret (hex)."""
    key = hmac.new(app_secret.encode(), HASH_CONTEXT, hashlib.sha256).digest()
    return hmac.new(key, meta_user_id.encode(), hashlib.sha256).hexdigest()


def connections_of(session: Session, meta_user_id: str, hashed: str) -> list[SocialConnection]:
    """Every connection of that Meta user, erased ones included (locked, in a stable order)."""
    return list(
        session.scalars(
            select(SocialConnection)
            .where(or_(SocialConnection.meta_user_id == meta_user_id, SocialConnection.meta_user_hash == hashed))
            .order_by(SocialConnection.id)
            .with_for_update()
        )
    )


def connected_after(conn: SocialConnection, issued_at: datetime) -> bool:
    """Whether the connection was made after Meta issued the callback (it is not the callback's)."""
    return conn.connected_at is not None and conn.connected_at.replace(microsecond=0) > issued_at


def erase_connection(conn: SocialConnection, hashed: str) -> None:
    """Tokens and Meta-derived fields out of the row; the keyed hash stays to find it again."""
    wipe_tokens(conn)
    conn.meta_user_id = None
    conn.meta_user_hash = hashed
    conn.facebook_page_id = None
    conn.page_name = None
    conn.instagram_business_account_id = None
    conn.instagram_username = None
    conn.scopes_granted = []
    conn.expires_at = None
    conn.data_access_expires_at = None


def erase_posts(session: Session, connection_ids: list[str]) -> int:
    """Meta's ids (posts, media, containers, uploads, comments) out of those connections' posts' targets."""
    if not connection_ids:
        return 0
    of_those = select(ScheduledPost.id).where(ScheduledPost.connection_id.in_(connection_ids))
    result = session.execute(
        update(PostTarget)
        .where(PostTarget.post_id.in_(of_those))
        .values(remote_id=None, container_id=None, children=None, steps=None, comment_id=None),
        execution_options={"synchronize_session": False},
    )
    return affected_rows(result)


def scrub(value: Any) -> tuple[Any, bool]:
    """``value`` without Meta-derived keys (at any depth), and whether anything was removed."""
    if isinstance(value, dict):
        changed = False
        clean = {}
        for name, item in value.items():
            if name in META_DETAIL_KEYS:
                changed = True
                continue
            clean[name], inner = scrub(item)
            changed = changed or inner
        return clean, changed
    if isinstance(value, list):
        items = [scrub(item) for item in value]
        return [item for item, _ in items], any(changed for _, changed in items)
    return value, False


def erase_audit_details(session: Session, connection_ids: list[str]) -> int:
    """Meta-derived values out of those connections' audit details; returns events changed."""
    if not connection_ids:
        return 0
    changed = 0
    for event in session.scalars(select(AuditEvent).where(AuditEvent.connection_id.in_(connection_ids))):
        clean, removed = scrub(event.detail)
        if removed:
            event.detail = {**clean, ERASED_MARK: True}
            changed += 1
    return changed


def erase_webhook_events(session: Session, connection_ids: list[str]) -> int:
    """Meta-derived values out of those connections' outcome events (DESIGN §13.3), delivered
    or still to be sent: a pending one goes out without them. Returns events changed."""
    if not connection_ids:
        return 0
    changed = 0
    for event in session.scalars(select(WebhookEvent).where(WebhookEvent.connection_id.in_(connection_ids))):
        body = json.loads(event.body)
        clean, removed = scrub(body.get("data"))
        if removed:
            event.body = json.dumps({**body, "data": clean}, ensure_ascii=False, separators=(",", ":"))
            changed += 1
    return changed
