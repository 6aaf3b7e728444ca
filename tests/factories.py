"""Rows for tests that need a connection or a post without going through OAuth."""

from __future__ import annotations

from datetime import timedelta

from shared.crypto import EnvKeyRing, TokenCipher
from shared.db import utcnow
from shared.models import PENDING, QUEUED, SKIPPED, PostTarget, ScheduledPost, SocialConnection, new_id
from shared.settings import DEFAULT_SCOPES, parse_key_ring
from shared.targets import TARGET_NAMES
from shared.tokens import store_tokens
from tests.conftest import KEY_A

PAGE_ID = "104000000000001"
IG_ID = "17841400000000009"
PAGE_TOKEN = "EAApagetoken" + "x" * 40
USER_TOKEN = "EAAusertoken" + "y" * 40


def cipher() -> TokenCipher:
    return TokenCipher(EnvKeyRing(parse_key_ring(KEY_A)))


def make_connection(
    session,
    user_id: str = "user-1",
    *,
    status: str = "connected",
    checked_minutes_ago: float = 1,
    page_id: str = PAGE_ID,
    ig_id: str | None = IG_ID,
    last_error_code: str | None = None,
    meta_user_id: str = "10150000000000001",
) -> SocialConnection:
    now = utcnow()
    conn = SocialConnection(
        id=new_id("conn"),
        user_id_resellio=user_id,
        meta_user_id=meta_user_id,
        facebook_page_id=page_id,
        page_name="Toko Uji",
        instagram_business_account_id=ig_id,
        instagram_username="tokouji",
        status=status,
        last_error_code=last_error_code,
        scopes_granted=list(DEFAULT_SCOPES),
        connected_at=now,
        token_last_checked_at=now - timedelta(minutes=checked_minutes_ago),
    )
    if status != "disconnected":
        store_tokens(conn, cipher(), page_token=PAGE_TOKEN, user_token=USER_TOKEN)
    session.add(conn)
    session.commit()
    return conn


def make_post(
    session,
    conn: SocialConnection,
    *,
    publish_in: float = -1,
    targets=("facebook", "instagram"),
    caption: str = "Promo minggu ini #diskon",
    media_url: str | None = "https://cdn.example.com/p.jpg",
    link: str | None = None,
    status: str = QUEUED,
    **fields,
) -> ScheduledPost:
    target_fields = {name: fields.pop(name, {}) for name in TARGET_NAMES}
    post = ScheduledPost(
        id=new_id("job"),
        connection_id=conn.id,
        user_id_resellio=conn.user_id_resellio,
        publish_at=utcnow() + timedelta(seconds=publish_in),
        caption=caption,
        media_url=media_url,
        link=link,
        targets=list(targets),
        status=status,
        **fields,
    )
    if media_url and not post.media:
        post.media = [{"url": media_url, "type": "image"}]
    post.target_rows = [
        PostTarget(target=name, **{"status": PENDING if name in targets else SKIPPED, **target_fields[name]})
        for name in TARGET_NAMES
    ]
    session.add(post)
    session.commit()
    return post
