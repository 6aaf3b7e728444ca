"""One run of one post (DESIGN §8, §13.2): each target's publisher in turn, each step recorded.

Every step's result is committed under the lease before the next step starts, so
a retry skips what is done. Before a request that creates something leaves, its
"sent" marker is committed; finding that marker without a result means the last
attempt is ambiguous, and the post is looked for before anything is sent again.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from publish_worker import lease
from publish_worker.failures import Failure, request_lifetime
from publish_worker.outcome import finish
from publish_worker.targets import PUBLISHERS, TargetPublisher
from shared.db import utcnow
from shared.graph import GraphClient
from shared.metrics import USAGE_SLOWDOWNS
from shared.models import CONNECTED, DISCONNECTED, PostTarget, ScheduledPost, SocialConnection
from shared.queue import enqueue_publish
from shared.services import Services
from shared.targets import TARGETS
from shared.token_check import mark_needs_reauth
from shared.tokens import page_token

log = logging.getLogger(__name__)

QUOTA_DEFER_LIMIT = timedelta(hours=26)  # the IG window is 24 h; past this, give up


class PublishRun:
    quota_defer_limit = QUOTA_DEFER_LIMIT

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
        self.publishers = [
            PUBLISHERS[spec.name](self, row) for spec in TARGETS if (row := post.target(spec.name)) is not None
        ]

    # -- bookkeeping --

    def save(self, **values: Any) -> None:
        lease.record(self.session, self.post, self.owner, self.settings.lease_seconds, **values)

    def save_target(self, row: PostTarget, *, attempt: bool = False, **values: Any) -> None:
        """Record a target's values under the lease; with ``attempt``, the run's first send counts."""
        post_values: dict[str, Any] = {}
        if attempt and not self.counted_attempt:
            post_values["attempts"] = self.post.attempts + 1
            self.counted_attempt = True
        lease.record(
            self.session,
            self.post,
            self.owner,
            self.settings.lease_seconds,
            target=row,
            target_values=values,
            **post_values,
        )

    def pending(self) -> list[TargetPublisher]:
        return [publisher for publisher in self.publishers if publisher.work_left()]

    def fail_pending(self, error_code: str) -> None:
        """Give up on every target with work left; one whose last request may have gone through is unconfirmed."""
        for publisher in self.pending():
            publisher.give_up(error_code)

    def request_lifetime(self) -> timedelta:
        """How long a request we sent may still be running at Meta (both times are our clock's)."""
        return request_lifetime(self.settings)

    def slow_down_if_busy(self) -> None:
        """Meta's usage headers above 90%: pause before the next call."""
        percent = self.graph.last_usage.get("max_percent", 0) or 0
        if percent >= 90:
            USAGE_SLOWDOWNS.inc()
            time.sleep(min(self.settings.usage_slowdown_max_seconds, 0.2 * (percent - 89)))

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
            for publisher in self.publishers:
                if self.connection_failure:
                    break
                publisher.step()
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
        times = [publisher.next_due() for publisher in self.pending()]
        at = max(utcnow(), min(t or utcnow() for t in times))
        lease.hold_until(self.session, post, self.owner, self.settings.lease_seconds, at)
        enqueue_publish(self.session, self.ctx, post.id, at=at, lease=self.owner)
        return "continuing"
