"""The Facebook Page target: ``/feed`` and ``/photos`` (DESIGN §8, §13.2)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from publish_worker.failures import classify
from publish_worker.targets.base import GRAPH_FAILURES, CheckFailed, TargetPublisher
from shared.db import utcnow
from shared.models import UNCONFIRMED, PostTarget, ScheduledPost, SocialConnection
from shared.targets import FACEBOOK

log = logging.getLogger(__name__)

FEED_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
CLOCK_SKEW = timedelta(seconds=60)


class FacebookPublisher(TargetPublisher):
    spec = FACEBOOK

    def publish(self) -> None:
        row = self.row
        if row.sent_at is not None:
            settled_at = row.sent_at + self.run.request_lifetime()
            if self.run.fresh_take and utcnow() < settled_at:
                # Taken over from a run that died mid-request: that request may still be carried
                # out by Meta until its own timeout runs out, so look for the post only after that.
                self.save(not_before=settled_at)
                return
            try:
                found = self.find_page_post(row.sent_at)
            except CheckFailed:
                self.save(status=UNCONFIRMED, error_code="meta_unavailable")
                return
            if found:
                self.published(found)
                return
        self.save_attempt(sent_at=utcnow())
        try:
            post_id = self.send()
        except GRAPH_FAILURES as exc:
            self.failed(classify(exc))
            return
        self.published(post_id)

    def send(self) -> str:
        """The request that makes the post live; its post id."""
        page_id = self.conn.facebook_page_id
        post = self.post
        media = self.media
        if media:
            body = self.graph.post(
                f"/{page_id}/photos", token=self.token, data={"url": media[0].url, "caption": post.caption}
            )
            return str(body.get("post_id") or f"{page_id}_{body['id']}")
        data = {"message": post.caption}
        if post.link:
            data["link"] = post.link
        return str(self.graph.post(f"/{page_id}/feed", token=self.token, data=data)["id"])

    def find_page_post(self, sent_at: datetime) -> str | None:
        """After an ambiguous attempt: is the post on the Page? Its id, None if surely not there.

        Only the Page's own posts are looked at (``/published_posts``): the feed also
        holds visitors' posts, and a visitor's post with the same text is not ours.
        A match must be unique: same text, created since the attempt, not already
        recorded for another post, and no other post of this Page with the same text
        in the same uncertain state. Anything less certain raises :class:`CheckFailed`.
        """
        post = self.post
        if not post.caption:
            raise CheckFailed("nothing to recognise the post by")
        window_start = sent_at - CLOCK_SKEW
        try:
            # Every page since the attempt: on a busy Page ours may not be on the first one.
            items = list(
                self.graph.paginate(
                    f"/{self.conn.facebook_page_id}/published_posts",
                    token=self.token,
                    params={"fields": "id,message,created_time", "limit": 100, "since": int(window_start.timestamp())},
                    max_pages=20,
                )
            )
        except GRAPH_FAILURES as exc:
            log.warning("could not check the Page's posts: %s", type(exc).__name__, extra={"job_id": post.id})
            raise CheckFailed("published_posts unavailable") from None
        candidates = [
            str(item["id"])
            for item in items
            if (item.get("message") or "") == post.caption and _created(item) >= window_start
        ]
        if not candidates:
            return None
        session = self.run.session
        taken = set(
            session.scalars(
                select(PostTarget.remote_id).where(
                    PostTarget.target == self.spec.name,
                    PostTarget.remote_id.in_(candidates),
                    PostTarget.post_id != post.id,
                )
            )
        )
        candidates = [c for c in candidates if c not in taken]
        rivals = session.scalar(
            select(func.count())
            .select_from(PostTarget)
            .join(ScheduledPost, PostTarget.post_id == ScheduledPost.id)
            .join(SocialConnection, ScheduledPost.connection_id == SocialConnection.id)
            .where(
                PostTarget.target == self.spec.name,
                SocialConnection.facebook_page_id == self.conn.facebook_page_id,
                ScheduledPost.id != post.id,
                ScheduledPost.caption == post.caption,
                # Only sends whose post could have been created inside this window.
                PostTarget.sent_at >= window_start - self.run.request_lifetime() - CLOCK_SKEW,
                PostTarget.remote_id.is_(None),
            )
        )
        if len(candidates) == 1 and not rivals:
            return candidates[0]
        if not candidates:
            return None
        raise CheckFailed("more than one post could be this one")

    def is_our_comment(self, item: dict[str, Any]) -> bool:
        return str((item.get("from") or {}).get("id") or "") == str(self.conn.facebook_page_id)


def _created(item: dict[str, Any]) -> datetime:
    try:
        return datetime.strptime(item.get("created_time") or "", FEED_TIME_FORMAT)
    except ValueError:
        return datetime.max.replace(tzinfo=utcnow().tzinfo)  # no time given: do not rule it out
