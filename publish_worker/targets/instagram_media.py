"""Instagram's requests for each kind of post (DESIGN §13.2's table), and finding a published media.

``POST /{ig-user-id}/media`` takes different parameters for an image, a carousel item,
a ``CAROUSEL``, ``REELS`` and ``STORIES``; the publisher asks :func:`container_request`
and :func:`child_request` what to send.

After an ambiguous ``media_publish`` the container may read ``PUBLISHED`` while Meta's
answer (the media id) was lost. Meta does not tell which media a container became, so
:func:`find_published_media` looks among the account's recent media for the one that is
surely this post: the same caption and kind, made since the container, not recorded for
another post, and no other post of ours that could be it. Anything less certain gives
None (the target stays published; a first comment is not posted on a guess).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select

from publish_worker.targets.base import GRAPH_FAILURES, TargetPublisher, held_by_other_posts
from shared.db import utcnow
from shared.models import PUBLISHED, UNCONFIRMED, PostTarget, ScheduledPost, SocialConnection
from shared.targets import IMAGE, VIDEO, MediaItem

log = logging.getLogger(__name__)

# What ``INSTAGRAM.kind`` answers.
SINGLE_IMAGE = "image"
CAROUSEL = "carousel"
REEL = "reel"
STORY = "story"

# A published media as ``GET /{ig-user-id}/media`` lists it: (media_product_type, media_type).
LISTED_AS = {
    SINGLE_IMAGE: ("FEED", "IMAGE"),
    CAROUSEL: ("FEED", "CAROUSEL_ALBUM"),
    REEL: ("REELS", "VIDEO"),
}
MEDIA_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
CLOCK_SKEW = timedelta(seconds=60)
CONTAINER_LIFETIME = timedelta(hours=24)
MEDIA_PAGES = 4  # 50 a page, newest first: far more than an account publishes in a container's life


def child_request(item: MediaItem) -> dict[str, Any]:
    """A carousel item: an image (with its ``alt_text``) or a ``VIDEO``."""
    if item.type == VIDEO:
        return {"is_carousel_item": "true", "media_type": "VIDEO", "video_url": item.url}
    data = {"is_carousel_item": "true", "image_url": item.url}
    if item.alt_text:
        data["alt_text"] = item.alt_text
    return data


def container_request(
    kind: str, post: ScheduledPost, media: Sequence[MediaItem], children: Sequence[str]
) -> dict[str, Any]:
    """The parameters of the container that ``media_publish`` makes live."""
    caption = {"caption": post.caption} if post.caption else {}
    if kind == CAROUSEL:
        return {"media_type": "CAROUSEL", "children": ",".join(children), **caption}
    item = media[0]
    if kind == REEL:
        data = {"media_type": "REELS", "video_url": item.url, "share_to_feed": "true", **caption}
        if post.cover_url:
            data["cover_url"] = post.cover_url
        return data
    if kind == STORY:
        # A story has no caption: Meta refuses one.
        return {"media_type": "STORIES", ("video_url" if item.type == VIDEO else "image_url"): item.url}
    if kind != SINGLE_IMAGE or item.type != IMAGE:
        raise ValueError(f"no Instagram container for {kind}")
    data = {"image_url": item.url, **caption}
    if item.alt_text:
        data["alt_text"] = item.alt_text
    return data


def find_published_media(publisher: TargetPublisher, kind: str) -> str | None:
    """The media id of this target's container, found among the account's media, or None if unsure.

    A story is not looked for: it takes no comment, has no caption to be recognised by,
    and is listed on another edge (``/{ig-user-id}/stories``).
    """
    row, post, conn = publisher.row, publisher.post, publisher.conn
    expected = LISTED_AS.get(kind)
    since = row.container_at or row.sent_at
    if expected is None or not post.caption or since is None:
        return None
    window_start = since - CLOCK_SKEW
    candidates = []
    try:
        for item in publisher.graph.paginate(
            f"/{conn.instagram_business_account_id}/media",
            token=publisher.token,
            params={"fields": "id,caption,media_type,media_product_type,timestamp", "limit": 50},
            max_pages=MEDIA_PAGES,
        ):
            made = _timestamp(item)
            if made < window_start:
                break  # newest first: the rest is older than this container
            if (item.get("caption") or "").strip() == post.caption.strip() and (
                item.get("media_product_type"),
                item.get("media_type"),
            ) == expected:
                candidates.append(str(item["id"]))
    except GRAPH_FAILURES as exc:
        log.warning("could not list the account's media: %s", type(exc).__name__, extra={"job_id": post.id})
        return None
    if not candidates:
        return None
    with publisher.run.db.use() as session:
        taken = held_by_other_posts(session, publisher.spec.name, candidates, post.id)
        candidates = [c for c in candidates if c not in taken]
        # Another post of ours on this account with the same caption, no known media id, and a
        # media_publish that may have gone through in this window: the two cannot be told apart.
        rivals = session.scalar(
            select(func.count())
            .select_from(PostTarget)
            .join(ScheduledPost, PostTarget.post_id == ScheduledPost.id)
            .join(SocialConnection, ScheduledPost.connection_id == SocialConnection.id)
            .where(
                PostTarget.target == publisher.spec.name,
                SocialConnection.instagram_business_account_id == conn.instagram_business_account_id,
                ScheduledPost.id != post.id,
                ScheduledPost.caption == post.caption,
                PostTarget.remote_id.is_(None),
                or_(PostTarget.sent_at.is_not(None), PostTarget.status.in_((PUBLISHED, UNCONFIRMED))),
                PostTarget.container_at >= window_start - CONTAINER_LIFETIME,
            )
        )
    if len(candidates) == 1 and not rivals:
        return candidates[0]
    return None


def _timestamp(item: dict[str, Any]) -> datetime:
    try:
        return datetime.strptime(item.get("timestamp") or "", MEDIA_TIME_FORMAT)
    except ValueError:
        return utcnow()  # no time given: do not rule it out
