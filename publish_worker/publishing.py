"""One run of one post (DESIGN §8): Facebook, then Instagram, each step recorded.

Every step's result is committed under the lease before the next step starts, so
a retry skips what is done. Before a request that creates something leaves, its
"sent" marker is committed; finding that marker without a result means the last
attempt is ambiguous, and the post is looked for before anything is sent again.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from publish_worker import lease
from publish_worker.failures import CONNECTION_CODES, NO_RETRY, Failure, classify, retry_delay
from publish_worker.outcome import finish, with_detail
from shared.db import utcnow
from shared.errors import DEFER, NOT_READY_SUBCODE, RECREATE
from shared.graph import GraphClient, GraphError, GraphTransportError
from shared.metrics import USAGE_SLOWDOWNS
from shared.models import (
    CONNECTED,
    DISCONNECTED,
    FAILED,
    PENDING,
    PUBLISHED,
    UNCONFIRMED,
    ScheduledPost,
    SocialConnection,
)
from shared.queue import enqueue_publish
from shared.services import Services
from shared.token_check import mark_needs_reauth
from shared.tokens import page_token

log = logging.getLogger(__name__)

QUOTA_DEFER_LIMIT = timedelta(hours=26)  # the IG window is 24 h; past this, give up

_SENT_MARKER = {"fb": "fb_sent_at", "ig": "ig_publish_sent_at"}


class CheckFailed(Exception):
    """Whether an earlier, ambiguous request was carried out cannot be told for sure."""


# Without ``config.quota_total`` in content_publishing_limit, assume 50 per 24 h: erring low only defers.
QUOTA_FALLBACK = 50
FEED_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
CLOCK_SKEW = timedelta(seconds=60)
DUE_TOLERANCE = timedelta(seconds=1)


class PublishRun:
    def __init__(
        self,
        context: Services,
        session: Session,
        post: ScheduledPost,
        owner: str,
        graph: GraphClient,
        *,
        fresh_take: bool = True,
    ):
        self.ctx = context
        self.settings = context.settings
        self.session = session
        self.post = post
        self.owner = owner
        self.graph = graph
        self.token: str | None = None
        conn = session.get(SocialConnection, post.connection_id)
        if conn is None:
            raise LookupError(f"post {post.id}: its connection is gone")
        self.conn: SocialConnection = conn
        # A failure that makes the whole connection unusable (token_expired, meta_action_required).
        self.connection_failure: Failure | None = None
        self.fresh_take = fresh_take
        self.counted_attempt = False

    # -- bookkeeping --

    def save(self, **values: Any) -> None:
        lease.record(self.session, self.post, self.owner, self.settings.lease_seconds, **values)

    def save_attempt(self, **values: Any) -> None:
        """Like ``save``, and the first time this run sends something it counts as an attempt."""
        if not self.counted_attempt:
            values["attempts"] = self.post.attempts + 1
            self.counted_attempt = True
        self.save(**values)

    def due(self, not_before: datetime | None) -> bool:
        # RQ schedules to the whole second, so a continuation may start a little early.
        return not_before is None or not_before <= utcnow() + DUE_TOLERANCE

    def pending(self) -> list[str]:
        out = []
        if self.post.wants("facebook") and self.post.fb_status == PENDING:
            out.append("fb")
        if self.post.wants("instagram") and self.post.ig_status == PENDING:
            out.append("ig")
        return out

    def fail_pending(self, error_code: str) -> None:
        """Give up on every pending target; one whose last request may have gone through is unconfirmed."""
        values: dict[str, Any] = {}
        for prefix in self.pending():
            maybe_sent = getattr(self.post, _SENT_MARKER[prefix]) is not None
            values[f"{prefix}_status"] = UNCONFIRMED if maybe_sent else FAILED
            values[f"{prefix}_error_code"] = error_code
        if values:
            self.save(**values)

    def target_failed(self, prefix: str, failure: Failure) -> None:
        """Record a failed step: retry later, or give up (unconfirmed if it may have happened)."""
        tries = getattr(self.post, f"{prefix}_tries") + 1
        values: dict[str, Any] = {f"{prefix}_tries": tries, f"{prefix}_error_code": failure.error_code}
        if not failure.ambiguous and prefix in _SENT_MARKER:
            values[_SENT_MARKER[prefix]] = None
        if failure.decision == RECREATE and prefix == "ig":
            # The container expired or Meta cannot use it: the next try makes a new one.
            values.update(ig_container_id=None, ig_container_at=None, ig_publish_sent_at=None)
        if failure.error_code in CONNECTION_CODES:
            self.connection_failure = failure
        if failure.decision == DEFER:
            retry = utcnow() < self.post.publish_at + QUOTA_DEFER_LIMIT
        else:
            retry = failure.decision != NO_RETRY and tries < self.settings.retry_max_tries
        if retry:
            values[f"{prefix}_not_before"] = utcnow() + retry_delay(failure, tries, self.settings)
        else:
            values[f"{prefix}_status"] = UNCONFIRMED if failure.ambiguous else FAILED
        log.info(
            "%s step failed: %s (%s), %s",
            prefix,
            failure.error_code,
            failure.decision,
            "retrying" if retry else "giving up",
            extra={"job_id": self.post.id},
        )
        self.save(**values)

    def slow_down_if_busy(self) -> None:
        """Meta's usage headers above 90%: pause before the next call."""
        percent = self.graph.last_usage.get("max_percent", 0) or 0
        if percent >= 90:
            USAGE_SLOWDOWNS.inc()
            time.sleep(min(self.settings.usage_slowdown_max_seconds, 0.2 * (percent - 89)))

    # -- Facebook --

    def facebook(self) -> None:
        post = self.post
        if "fb" not in self.pending() or not self.due(post.fb_not_before):
            return
        if post.fb_sent_at is not None:
            settled_at = post.fb_sent_at + self.request_lifetime()
            if self.fresh_take and utcnow() < settled_at:
                # Taken over from a run that died mid-request: that request may still be carried
                # out by Meta until its own timeout runs out, so look for the post only after that.
                self.save(fb_not_before=settled_at)
                return
            try:
                found = self.find_page_post(post.fb_sent_at)
            except CheckFailed:
                self.save(fb_status=UNCONFIRMED, fb_error_code="meta_unavailable")
                return
            if found:
                self.save(fb_status=PUBLISHED, fb_post_id=found, fb_published_at=utcnow(), fb_error_code=None)
                return
        self.save_attempt(fb_sent_at=utcnow())
        page_id = self.conn.facebook_page_id
        try:
            if post.media_url:
                body = self.graph.post(
                    f"/{page_id}/photos", token=self.token, data={"url": post.media_url, "caption": post.caption}
                )
                post_id = body.get("post_id") or f"{page_id}_{body['id']}"
            else:
                data = {"message": post.caption}
                if post.link:
                    data["link"] = post.link
                post_id = self.graph.post(f"/{page_id}/feed", token=self.token, data=data)["id"]
        except (GraphError, GraphTransportError) as exc:
            self.target_failed("fb", classify(exc))
            return
        self.save(fb_status=PUBLISHED, fb_post_id=str(post_id), fb_published_at=utcnow(), fb_error_code=None)

    def request_lifetime(self) -> timedelta:
        """How long a request we sent may still be running at Meta (both times are our clock's)."""
        return timedelta(seconds=self.settings.graph_connect_timeout + self.settings.graph_read_timeout + 2)

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
        except (GraphError, GraphTransportError) as exc:
            log.warning("could not check the Page's posts: %s", type(exc).__name__, extra={"job_id": post.id})
            raise CheckFailed("published_posts unavailable") from None
        candidates = [
            str(item["id"])
            for item in items
            if (item.get("message") or "") == post.caption and _created(item) >= window_start
        ]
        if not candidates:
            return None
        taken = set(
            self.session.scalars(
                select(ScheduledPost.fb_post_id).where(
                    ScheduledPost.fb_post_id.in_(candidates), ScheduledPost.id != post.id
                )
            )
        )
        candidates = [c for c in candidates if c not in taken]
        rivals = self.session.scalar(
            select(func.count())
            .select_from(ScheduledPost)
            .join(SocialConnection)
            .where(
                SocialConnection.facebook_page_id == self.conn.facebook_page_id,
                ScheduledPost.id != post.id,
                ScheduledPost.caption == post.caption,
                # Only sends whose post could have been created inside this window.
                ScheduledPost.fb_sent_at >= window_start - self.request_lifetime() - CLOCK_SKEW,
                ScheduledPost.fb_post_id.is_(None),
            )
        )
        if len(candidates) == 1 and not rivals:
            return candidates[0]
        if not candidates:
            return None
        raise CheckFailed("more than one post could be this one")

    # -- Instagram --

    def instagram(self) -> None:
        post = self.post
        if "ig" not in self.pending() or not self.due(post.ig_not_before):
            return
        if not post.ig_container_id:
            if not self.quota_left():
                return
            try:
                body = self.graph.post(
                    f"/{self.conn.instagram_business_account_id}/media",
                    token=self.token,
                    data={"image_url": post.media_url, "caption": post.caption},
                )
            except (GraphError, GraphTransportError) as exc:
                # A container nobody publishes is harmless: creating it again is safe.
                self.target_failed("ig", classify(exc))
                return
            self.save_attempt(ig_container_id=str(body["id"]), ig_container_at=utcnow(), ig_not_before=None)
        try:
            container = self.graph.get(
                f"/{post.ig_container_id}", token=self.token, params={"fields": "status_code,status"}
            )
        except (GraphError, GraphTransportError) as exc:
            if post.ig_publish_sent_at is not None:
                self.save(ig_status=UNCONFIRMED, ig_error_code="meta_unavailable")
            else:
                self.target_failed("ig", classify(exc))
            return
        status = container.get("status_code")
        if status == "PUBLISHED":
            self.save(ig_status=PUBLISHED, ig_published_at=utcnow(), ig_error_code=None)
        elif status == "FINISHED":
            self.publish_container()
        elif status == "EXPIRED":
            # Too old to publish (24 h): the next run makes a fresh container.
            self.save(ig_container_id=None, ig_container_at=None, ig_publish_sent_at=None, ig_not_before=None)
        elif status == "ERROR":
            # Meta's own words (e.g. "Error: ... (2207004)") tell the seller what to fix.
            self.save(
                ig_status=FAILED,
                ig_error_code="media_invalid",
                error_message=with_detail(post.error_message, "ig", str(container.get("status") or "")),
            )
        else:
            self.wait_for_container()

    def wait_for_container(self) -> None:
        started = self.post.ig_container_at or utcnow()
        if utcnow() - started > timedelta(seconds=self.settings.ig_container_timeout_seconds):
            self.save(ig_status=FAILED, ig_error_code="media_invalid")
            return
        self.save(
            ig_not_before=utcnow() + timedelta(seconds=self.settings.ig_status_poll_seconds), ig_publish_sent_at=None
        )

    def quota_left(self) -> bool:
        ig_id = self.conn.instagram_business_account_id
        try:
            body = self.graph.get(
                f"/{ig_id}/content_publishing_limit", token=self.token, params={"fields": "quota_usage,config"}
            )
        except (GraphError, GraphTransportError) as exc:
            failure = classify(exc)
            if failure.retryable:
                return True  # media_publish enforces the limit anyway
            self.target_failed("ig", failure)
            return False
        entry = (body.get("data") or [{}])[0]
        used = entry.get("quota_usage") or 0
        total = (entry.get("config") or {}).get("quota_total") or QUOTA_FALLBACK
        if used >= total:
            self.target_failed("ig", Failure("publishing_limit_reached", DEFER))
            return False
        return True

    def publish_container(self) -> None:
        post = self.post
        self.save_attempt(ig_publish_sent_at=utcnow())
        try:
            body = self.graph.post(
                f"/{self.conn.instagram_business_account_id}/media_publish",
                token=self.token,
                data={"creation_id": post.ig_container_id},
            )
        except GraphError as exc:
            if exc.subcode == NOT_READY_SUBCODE:
                self.wait_for_container()
                return
            self.target_failed("ig", classify(exc))
            return
        except GraphTransportError as exc:
            self.target_failed("ig", classify(exc))
            return
        self.save(ig_status=PUBLISHED, ig_media_id=str(body["id"]), ig_published_at=utcnow(), ig_error_code=None)

    # -- the run --

    def run(self) -> str:
        post = self.post
        if self.conn.status != CONNECTED:
            code = (
                "not_connected" if self.conn.status == DISCONNECTED else (self.conn.last_error_code or "token_expired")
            )
            self.fail_pending(code)
        elif self.fresh_take and post.takes > self.settings.max_runs:
            # Taken over again and again (crashes, lost jobs): stop rather than loop forever.
            self.fail_pending("internal_error")
        else:
            self.token = page_token(self.conn, self.ctx.cipher)
            self.facebook()
            self.slow_down_if_busy()
            if not self.connection_failure:
                self.instagram()
                self.slow_down_if_busy()
            if self.connection_failure:
                # The seller must act (reconnect, or fix something on Facebook): nothing else is tried.
                code = self.connection_failure.error_code
                mark_needs_reauth(self.session, self.conn, code)
                self.session.commit()
                self.fail_pending(code)
        if self.pending():
            return self.continue_later()
        return finish(self.session, self.post, self.owner, self.settings)

    def continue_later(self) -> str:
        post = self.post
        times = [getattr(post, f"{p}_not_before") for p in self.pending()]
        at = max(utcnow(), min(t or utcnow() for t in times))
        lease.hold_until(self.session, post, self.owner, self.settings.lease_seconds, at)
        enqueue_publish(self.session, self.ctx, post.id, at=at, lease=self.owner)
        return "continuing"


def _created(item: dict[str, Any]) -> datetime:
    try:
        return datetime.strptime(item.get("created_time") or "", FEED_TIME_FORMAT)
    except ValueError:
        return datetime.max.replace(tzinfo=utcnow().tzinfo)  # no time given: do not rule it out
