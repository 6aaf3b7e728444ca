"""The Facebook Page target's multi-step formats (DESIGN §13.2): uploads that come before
the request that makes something live, and that request sent exactly once.

- **Reels and video stories** upload in three phases, each recorded in ``row.steps``:
  ``upload_phase=start`` (``video_id``), the file handed to the upload host by URL
  (``uploaded``), then ``upload_phase=finish`` — the sent step, with the ``sent_at`` marker
  committed before it leaves. After an ambiguous finish the video itself is read
  (``GET /{video-id}``): finished → recorded, not finished → finished again; "Video already
  published" on a resend means it is live.
- **Photo stories**: the photo is uploaded unpublished (``steps.photo_id``: an unpublished
  photo is harmless to upload again), then ``/photo_stories`` is the sent step; after an
  ambiguous attempt the photo's ``page_story_id`` tells whether the story exists.
- **Facebook Reels limit**: at most 30 per Page per 24 h. Ours are counted from our own
  rows before a reel starts; a full window defers the target until it frees, like the
  Instagram quota; Meta's own refusal (code 9) defers it too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select

from publish_worker.failures import NO_RETRY, Failure, classify
from publish_worker.targets.base import GRAPH_FAILURES, CheckFailed, TargetPublisher
from shared.db import utcnow
from shared.errors import BACKOFF, DEFER
from shared.graph import GraphError
from shared.models import (
    FORMAT_REEL,
    PENDING,
    PUBLISHED,
    UNCONFIRMED,
    PostTarget,
    ScheduledPost,
    SocialConnection,
)

log = logging.getLogger(__name__)

REELS_PER_DAY = 30
REELS_WINDOW = timedelta(hours=24)
# Shown to the seller with ``publishing_limit_reached`` (the catalogue's text is Instagram's).
REELS_LIMIT_MESSAGE = "Batas Facebook sudah tercapai: paling banyak 30 Reels per Page dalam 24 jam."
# Meta's numbers for these answers (DESIGN §13.1 keeps classification to numbers).
REELS_LIMIT_CODE = 9
UPLOAD_MISSING_SUBCODE = 1363130  # finish before the upload host has the file: upload again
UPLOAD_PROBLEM_CODE = 6000  # "There was a problem uploading your video file": at start, Meta says retry
ALREADY_PUBLISHED_CODE = 100  # "Video already published": only its title tells it apart

# kind -> the Page edge of its three-phase upload
VIDEO_EDGES = {"reel": "video_reels", "video_story": "video_stories"}

# A failed send: what to record (the failure, and step values to record with it).
FailureFor = Callable[[Exception], tuple[Failure, dict[str, Any] | None]]


class FacebookUploads(TargetPublisher):
    """The steps the Facebook publisher's formats share, and its video and story formats."""

    # -- the sent step: exactly once --

    def send_once(
        self,
        check: Callable[[], str | None],
        send: Callable[[], str],
        failure_for: FailureFor | None = None,
    ) -> None:
        """The request that makes the target live, behind its ``sent_at`` marker.

        A marker found without a result means the last attempt is ambiguous: once that request's
        lifetime is over (never before: Meta may still be carrying it out), ``check`` says
        whether it went through (its remote id), None when it surely did not, or raises
        :class:`CheckFailed` when it cannot tell (then the target is ``unconfirmed``).
        """
        row = self.row
        if row.sent_at is not None:
            if self.in_flight(row.sent_at):
                return
            try:
                found = check()
            except CheckFailed:
                self.save(status=UNCONFIRMED, error_code="meta_unavailable")
                return
            if found:
                self.published(found)
                return
            if self.out_of_tries():
                return
        self.save_attempt(sent_at=utcnow())
        try:
            remote_id = send()
        except GRAPH_FAILURES as exc:
            failure, step_values = failure_for(exc) if failure_for else (classify(exc), None)
            self.failed(failure, step_values=step_values)
            return
        self.published(remote_id)

    def step_failed(self, exc: Exception, *, step_values: dict[str, Any] | None = None) -> None:
        """A failed step before the sent step: nothing is live, so giving up is ``failed``, never unconfirmed."""
        self.failed(replace(classify(exc), ambiguous=False), step_values=step_values)

    def upload_unpublished_photo(self, url: str) -> str:
        """``POST /{page-id}/photos`` with ``published=false``: a photo id for an album or a story."""
        body = self.graph.post(
            f"/{self.conn.facebook_page_id}/photos", token=self.token, data={"url": url, "published": "false"}
        )
        return str(body["id"])

    # -- reels and video stories: start, upload, finish --

    def publish_video_session(self, kind: str) -> None:
        edge = VIDEO_EDGES[kind]
        page_id = self.conn.facebook_page_id
        steps = dict(self.row.steps or {})
        if kind == "reel" and self.row.sent_at is None and not self.reels_left():
            return
        video_id = steps.get("video_id")
        if not video_id:
            try:
                body = self.graph.post(f"/{page_id}/{edge}", token=self.token, data={"upload_phase": "start"})
            except GRAPH_FAILURES as exc:
                if isinstance(exc, GraphError) and exc.code == UPLOAD_PROBLEM_CODE:
                    # No file is involved yet: Meta's advice is to retry several times (at finish,
                    # the same code means the file itself failed: media_invalid).
                    self.failed(Failure("meta_unavailable", BACKOFF, message=exc.message))
                else:
                    self.step_failed(exc)
                return
            video_id = str(body["video_id"])
            steps = {"video_id": video_id}
            self.save_attempt(steps=steps, not_before=None)
        if not steps.get("uploaded"):
            url = f"{self.settings.meta_upload_url}/video-upload/{self.settings.meta_graph_version}/{video_id}"
            try:
                self.graph.upload(url, token=self.token, headers={"file_url": self.media[0].url})
            except GRAPH_FAILURES as exc:
                failure, restart = upload_failure(exc)
                self.failed(failure, step_values={"steps": None} if restart else None)
                return
            steps = {**steps, "uploaded": True}
            self.save(steps=steps, not_before=None)

        def failure_for(exc: Exception) -> tuple[Failure, dict[str, Any] | None]:
            if isinstance(exc, GraphError) and exc.subcode == UPLOAD_MISSING_SUBCODE:
                # Meta does not have the file: hand it over again, then finish.
                return Failure("meta_unavailable", BACKOFF), {"steps": {"video_id": video_id}}
            if kind == "reel" and isinstance(exc, GraphError) and exc.code == REELS_LIMIT_CODE:
                return Failure("publishing_limit_reached", DEFER), {"error_message": REELS_LIMIT_MESSAGE}
            return classify(exc), None

        self.send_once(
            lambda: self.find_finished_video(video_id, kind),
            lambda: self.finish_video(edge, video_id, kind),
            failure_for,
        )

    def finish_video(self, edge: str, video_id: str, kind: str) -> str:
        data = {"upload_phase": "finish", "video_id": video_id}
        if kind == "reel":
            data.update(video_state="PUBLISHED", description=self.post.caption)
        try:
            body = self.graph.post(f"/{self.conn.facebook_page_id}/{edge}", token=self.token, data=data)
        except GraphError as exc:
            if not already_published(exc):
                raise
            # An earlier finish went through after all: it is live.
            log.info("facebook %s already published", kind, extra={"job_id": self.post.id})
            try:
                found = self.find_finished_video(video_id, kind)
            except CheckFailed:
                found = None
            return found or video_id
        if kind == "reel":
            return video_id  # a reel is its video: comments go on it
        return str(body.get("post_id") or video_id)

    def find_finished_video(self, video_id: str, kind: str) -> str | None:
        """After an ambiguous finish: whether Meta took it (the remote id), None if it surely did not."""
        try:
            body = self.graph.get(f"/{video_id}", token=self.token, params={"fields": "id,post_id,status"})
        except GRAPH_FAILURES as exc:
            log.warning("could not read the video: %s", type(exc).__name__, extra={"job_id": self.post.id})
            raise CheckFailed("video unavailable") from None
        status = body.get("status") if isinstance(body.get("status"), dict) else {}
        publishing = (status.get("publishing_phase") or {}).get("status")
        if publishing is None:
            raise CheckFailed("the video's publishing phase is not given")
        if publishing not in ("complete", "in_progress"):
            return None  # not_started (or Meta's error): the finish did not take
        return video_id if kind == "reel" else str(body.get("post_id") or video_id)

    # -- photo stories --

    def publish_photo_story(self) -> None:
        steps = dict(self.row.steps or {})
        photo_id = steps.get("photo_id")
        if not photo_id:
            try:
                photo_id = self.upload_unpublished_photo(self.media[0].url)
            except GRAPH_FAILURES as exc:
                self.step_failed(exc)
                return
            self.save_attempt(steps={"photo_id": photo_id}, not_before=None)

        def send() -> str:
            body = self.graph.post(
                f"/{self.conn.facebook_page_id}/photo_stories", token=self.token, data={"photo_id": photo_id}
            )
            return str(body["post_id"])

        self.send_once(lambda: self.find_photo_story(photo_id), send)

    def find_photo_story(self, photo_id: str) -> str | None:
        """After an ambiguous ``/photo_stories``: the story made of our photo, None if there is none."""
        try:
            body = self.graph.get(f"/{photo_id}", token=self.token, params={"fields": "id,page_story_id"})
        except GRAPH_FAILURES as exc:
            log.warning("could not read the photo: %s", type(exc).__name__, extra={"job_id": self.post.id})
            raise CheckFailed("photo unavailable") from None
        story = body.get("page_story_id")
        return str(story) if story else None

    # -- the Reels limit --

    def reels_left(self) -> bool:
        """Fewer than 30 of our reels on this Page in the last 24 h; else deferred until one ages out."""
        now = utcnow()
        cutoff = now - REELS_WINDOW
        with self.run.db.use() as session:
            rows = session.execute(
                select(PostTarget.published_at, PostTarget.sent_at)
                .join(ScheduledPost, PostTarget.post_id == ScheduledPost.id)
                .join(SocialConnection, ScheduledPost.connection_id == SocialConnection.id)
                .where(
                    PostTarget.target == self.spec.name,
                    ScheduledPost.format == FORMAT_REEL,
                    ScheduledPost.id != self.post.id,
                    SocialConnection.facebook_page_id == self.conn.facebook_page_id,
                    or_(
                        and_(PostTarget.status == PUBLISHED, PostTarget.published_at >= cutoff),
                        # Sent and not known to have failed: it may be live, so it counts.
                        and_(PostTarget.status.in_((PENDING, UNCONFIRMED)), PostTarget.sent_at >= cutoff),
                    ),
                )
            ).all()
            session.commit()  # end the read's transaction: nothing is held while Meta is called
        times = sorted(_when(published_at, sent_at) for published_at, sent_at in rows)
        if len(times) < REELS_PER_DAY:
            return True
        frees_at = times[len(times) - REELS_PER_DAY] + REELS_WINDOW
        wait = max(1.0, (frees_at - now).total_seconds())
        log.info("facebook reels limit reached on the page", extra={"job_id": self.post.id})
        self.failed(
            Failure("publishing_limit_reached", DEFER, wait_seconds=wait),
            step_values={"error_message": REELS_LIMIT_MESSAGE},
        )
        return False


def _when(published_at: datetime | None, sent_at: datetime | None) -> datetime:
    moment = published_at or sent_at
    assert moment is not None
    return moment


def already_published(exc: GraphError) -> bool:
    """Meta's answer to finishing an upload session that was finished already."""
    title = (exc.user_title or "").lower()
    return exc.code == ALREADY_PUBLISHED_CODE and ("already published" in title or "already been published" in title)


def upload_failure(exc: Exception) -> tuple[Failure, bool]:
    """A failed hand-over to the upload host: the failure, and whether a new session must be started.

    The upload host answers ``{"debug_info": {"retriable", "type", "message"}}`` without
    Meta's numbers, so its HTTP status tells what happened. Handing the file over again
    is harmless, so no upload failure is ambiguous.
    """
    restart = False
    if isinstance(exc, GraphError) and exc.code is None and not exc.is_transient and exc.http_status < 500:
        if exc.http_status == 401:
            failure = Failure("token_expired", NO_RETRY, message=exc.message)
        elif exc.http_status == 403:
            failure = Failure("permissions_missing", NO_RETRY, message=exc.message)
        elif exc.http_status == 404:
            # Meta no longer knows the upload session: start a new one.
            failure, restart = Failure("meta_unavailable", BACKOFF, message=exc.message), True
        elif exc.error_type == "ProcessingError":
            failure = Failure("media_invalid", NO_RETRY, message=exc.message)
        else:
            failure = Failure("bad_request", NO_RETRY, message=exc.message)
    else:
        failure = classify(exc)
    return replace(failure, ambiguous=False), restart
