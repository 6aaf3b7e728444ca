"""The Facebook Page target (DESIGN §8, §13.2): what each format publishes, step by step.

Per kind: the steps before (recorded), the sent step (behind ``sent_at``), the remote id,
and how an ambiguous send is checked before anything is sent again:

- ``feed``: ``/feed``; post id; ``/published_posts`` by caption.
- ``photo``: ``/photos``; post id; ``/published_posts`` by caption.
- ``album``: each image ``/photos`` unpublished (``children``), then ``/feed`` with
  ``attached_media``; post id; ``/published_posts`` by our photos, else by caption.
- ``video``: ``{META_GRAPH_VIDEO_URL}/<v>/{page-id}/videos``; video id; ``GET /{page-id}/videos``
  by description (video ids: the id space the send records, so another post's video is
  recognised as taken).
- ``reel``: start, upload (``steps``), then the ``/video_reels`` finish; video id; ``GET /{video-id}``.
- ``photo_story``: ``/photos`` unpublished (``steps``), then ``/photo_stories``; story post id;
  ``GET /{photo-id}`` (``page_story_id``).
- ``video_story``: start, upload (``steps``), then the ``/video_stories`` finish; story post id;
  ``GET /{video-id}``.

The remote id is what the API shows as ``post_id`` and what the first comment is posted on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from publish_worker.targets.base import GRAPH_FAILURES, CheckFailed, held_by_other_posts
from publish_worker.targets.facebook_uploads import VIDEO_EDGES, FacebookUploads
from shared.db import utcnow
from shared.errors import message_for
from shared.models import FAILED, PostTarget, ScheduledPost, SocialConnection
from shared.targets import FACEBOOK, Refused

log = logging.getLogger(__name__)

FEED_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
CLOCK_SKEW = timedelta(seconds=60)


class FacebookPublisher(FacebookUploads):
    spec = FACEBOOK
    comment_fields = "id,message,from{id,name},created_time"

    def publish(self) -> None:
        try:
            kind = self.kind
        except Refused:
            # Validated when scheduled; a post stored before a rule changed is not sent half-right.
            self.save(status=FAILED, error_code="validation_error", error_message=message_for("validation_error"))
            return
        if kind in VIDEO_EDGES:
            self.publish_video_session(kind)
        elif kind == "photo_story":
            self.publish_photo_story()
        elif kind == "album":
            photo_ids = self.album_photos()
            if photo_ids is not None:
                self.send_once(
                    lambda: self.find_page_post(self.row.sent_at or utcnow(), photo_ids=photo_ids),
                    lambda: self.send_album(photo_ids),
                )
        elif kind == "video":
            self.send_once(lambda: self.find_page_video(self.row.sent_at or utcnow()), lambda: self.send(kind))
        else:
            self.send_once(lambda: self.find_page_post(self.row.sent_at or utcnow()), lambda: self.send(kind))

    def send(self, kind: str) -> str:
        """The request that makes a one-request post live; its post id (a video's id)."""
        page_id = self.conn.facebook_page_id
        post = self.post
        if kind == "photo":
            body = self.graph.post(
                f"/{page_id}/photos", token=self.token, data={"url": self.media[0].url, "caption": post.caption}
            )
            return str(body.get("post_id") or f"{page_id}_{body['id']}")
        if kind == "video":
            body = self.graph.post(
                f"{self.settings.graph_video_base}/{page_id}/videos",
                token=self.token,
                data={"file_url": self.media[0].url, "description": post.caption},
            )
            return str(body["id"])
        data = {"message": post.caption}
        if post.link:
            data["link"] = post.link
        return str(self.graph.post(f"/{page_id}/feed", token=self.token, data=data)["id"])

    # -- albums --

    def album_photos(self) -> list[str] | None:
        """Each image uploaded unpublished, each id recorded in ``children`` as it comes;
        all the ids, or None when a step failed (recorded, retried later)."""
        urls = [item.url for item in self.media]
        children = [dict(child) for child in (self.row.children or [])]
        if [child.get("url") for child in children] != urls:
            children = [{"url": url} for url in urls]
        for child in children:
            if child.get("photo_id"):
                continue
            try:
                # An unpublished photo is harmless: after an ambiguous failure it is simply uploaded again.
                child["photo_id"] = self.upload_unpublished_photo(child["url"])
            except GRAPH_FAILURES as exc:
                self.step_failed(exc)
                return None
            self.save_attempt(children=[dict(c) for c in children], not_before=None)
        return [str(child["photo_id"]) for child in children]

    def send_album(self, photo_ids: list[str]) -> str:
        data: dict[str, Any] = {
            f"attached_media[{i}]": json.dumps({"media_fbid": photo_id}) for i, photo_id in enumerate(photo_ids)
        }
        if self.post.caption:
            data["message"] = self.post.caption
        return str(self.graph.post(f"/{self.conn.facebook_page_id}/feed", token=self.token, data=data)["id"])

    def find_page_post(self, sent_at: datetime, *, photo_ids: Collection[str] = ()) -> str | None:
        """After an ambiguous attempt: is the post on the Page? Its id, None if surely not there.

        Only the Page's own posts are looked at (``/published_posts``): the feed also
        holds visitors' posts, and a visitor's post with the same text is not ours.
        The match must be unique (see :meth:`only_match`); anything less certain raises
        :class:`CheckFailed`.

        An album is recognised first by its photos (``photo_ids``, ours alone), listed in
        each post's ``attachments``; by its caption only when Meta lists no attachments.
        """
        post = self.post
        if not post.caption and not photo_ids:
            raise CheckFailed("nothing to recognise the post by")
        window_start = sent_at - CLOCK_SKEW
        fields = "id,message,created_time,attachments" if photo_ids else "id,message,created_time"
        items = self.listed_since("published_posts", fields, window_start)
        if photo_ids:
            ours = {str(item["id"]) for item in items if _attached_ids(item) & set(photo_ids)}
            if len(ours) > 1:
                raise CheckFailed("our photos are in more than one post")
            if ours:
                return ours.pop()
            if any(_attached_ids(item) for item in items):
                return None  # Meta lists the posts' photos, and ours are in none of them
            if not post.caption:
                raise CheckFailed("nothing to recognise the post by")
        return self.only_match(items, "message", window_start)

    def find_page_video(self, sent_at: datetime) -> str | None:
        """After an ambiguous ``/videos``: the video on the Page (its video id), None if surely not there.

        The Page's videos are listed by video id, the id ``send`` records for a video, so a
        video recorded for another post is recognised as that post's.
        """
        if not self.post.caption:
            raise CheckFailed("nothing to recognise the video by")
        window_start = sent_at - CLOCK_SKEW
        items = self.listed_since("videos", "id,description,created_time", window_start)
        return self.only_match(items, "description", window_start)

    def listed_since(self, edge: str, fields: str, window_start: datetime) -> list[dict[str, Any]]:
        """The Page's ``edge`` since the attempt, every page of it (on a busy Page ours may not be on the first)."""
        try:
            return list(
                self.graph.paginate(
                    f"/{self.conn.facebook_page_id}/{edge}",
                    token=self.token,
                    params={"fields": fields, "limit": 100, "since": int(window_start.timestamp())},
                    max_pages=20,
                )
            )
        except GRAPH_FAILURES as exc:
            log.warning("could not list the Page's %s: %s", edge, type(exc).__name__, extra={"job_id": self.post.id})
            raise CheckFailed(f"{edge} unavailable") from None

    def only_match(self, items: list[dict[str, Any]], text_field: str, window_start: datetime) -> str | None:
        """The one listed item that is surely this post: its id; None when none can be.

        A match has the same text and was created since the attempt, and is not recorded
        for another post. It must be the only one, and no other post of this Page with the
        same text may have been sent in the window unless its recorded id is among those
        listed (then it is accounted for): a post whose id is not known, or known in another
        id space (a reel's video id among post ids), could be any of the matches.
        """
        post = self.post
        candidates = [
            str(item["id"])
            for item in items
            if (item.get(text_field) or "") == post.caption and _created(item) >= window_start
        ]
        if not candidates:
            return None
        with self.run.db.use() as session:
            taken = held_by_other_posts(session, self.spec.name, candidates, post.id)
            candidates = [c for c in candidates if c not in taken]
            listed = {str(item["id"]) for item in items}
            others = session.scalars(
                select(PostTarget.remote_id)
                .join(ScheduledPost, PostTarget.post_id == ScheduledPost.id)
                .join(SocialConnection, ScheduledPost.connection_id == SocialConnection.id)
                .where(
                    PostTarget.target == self.spec.name,
                    SocialConnection.facebook_page_id == self.conn.facebook_page_id,
                    ScheduledPost.id != post.id,
                    ScheduledPost.caption == post.caption,
                    # Only sends whose post could have been created inside this window.
                    PostTarget.sent_at >= window_start - self.run.request_lifetime() - CLOCK_SKEW,
                )
            ).all()
        rivals = [remote_id for remote_id in others if remote_id is None or remote_id not in listed]
        if len(candidates) == 1 and not rivals:
            return candidates[0]
        if not candidates:
            return None
        raise CheckFailed("more than one post could be this one")

    def is_our_comment(self, item: dict[str, Any]) -> bool:
        return str((item.get("from") or {}).get("id") or "") == str(self.conn.facebook_page_id)


def _attached_ids(item: dict[str, Any]) -> set[str]:
    """The ids of the photos (or video) a listed post holds, from its ``attachments``."""
    ids: set[str] = set()
    for attachment in _data(item.get("attachments")):
        ids.update(_target_id(attachment))
        for sub in _data(attachment.get("subattachments")):
            ids.update(_target_id(sub))
    return ids


def _data(edge: Any) -> list[dict[str, Any]]:
    data = edge.get("data") if isinstance(edge, dict) else None
    return [entry for entry in data if isinstance(entry, dict)] if isinstance(data, list) else []


def _target_id(attachment: dict[str, Any]) -> set[str]:
    target = attachment.get("target")
    return {str(target["id"])} if isinstance(target, dict) and target.get("id") else set()


def _created(item: dict[str, Any]) -> datetime:
    try:
        return datetime.strptime(item.get("created_time") or "", FEED_TIME_FORMAT)
    except ValueError:
        return datetime.max.replace(tzinfo=utcnow().tzinfo)  # no time given: do not rule it out
