"""One run of one post (DESIGN §8, §13.2, §13.4): the targets' publishers side by side (see
``side_by_side``), each step recorded.

Before a request that creates something leaves, its "sent" marker is committed under
the lease; finding that marker without a result means the last attempt is ambiguous,
and the post is looked for before anything is sent again. The other results (a
publish's remote id, a container, a failure and its retry time) ride with the run's
next write — the next sent marker, a wait, or the outcome — so a post takes about four
commits, not one per step; every one is written before the job ends, and a run that
dies between leaves a marker without a result, which the next run looks up. The waiting
results are the run's, whichever target's thread wrote them: each write takes them all,
under the run's database lock.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from functools import partial
from typing import Any

from publish_worker import lease
from publish_worker.failures import Failure, request_lifetime
from publish_worker.outcome import finish
from publish_worker.pacing import RunGraphClient
from publish_worker.side_by_side import RunDatabase, helper_pool, side_by_side
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

# A target value that is the "sent" marker of a request about to leave: committed at once.
SENT_MARKERS = ("sent_at", "comment_sent_at")


class ConnectionUnusable(Exception):
    """Another target of the run found the connection unusable: this one's step stops."""


class PublishRun:
    quota_defer_limit = QUOTA_DEFER_LIMIT

    def __init__(
        self,
        context: Services,
        db: RunDatabase,
        post: ScheduledPost,
        owner: str,
        *,
        fresh_take: bool = True,
    ):
        self.ctx = context
        self.settings = context.settings
        self.db = db
        self.session = db.session
        self.post = post
        self.owner = owner
        self.graph = self.thread_graph()
        self.token: str | None = None
        conn = self.session.get(SocialConnection, post.connection_id)
        if conn is None:
            raise LookupError(f"post {post.id}: its connection is gone")
        self.conn: SocialConnection = conn
        # A failure that makes the whole connection unusable (token_expired, meta_action_required).
        self.connection_failure: Failure | None = None
        self.fresh_take = fresh_take
        self.counted_attempt = False
        # Results not yet written, by target (and the post's), waiting for the run's next write.
        self.unsaved_targets: dict[str, tuple[PostTarget, dict[str, Any]]] = {}
        self.unsaved_post: dict[str, Any] = {}
        self.publishers = [
            PUBLISHERS[spec.name](self, row) for spec in TARGETS if (row := post.target(spec.name)) is not None
        ]

    def thread_graph(self) -> GraphClient:
        """A Graph client for this thread (its own HTTP session) giving the run's database
        connection back before each call."""
        return self.ctx.graph(client=RunGraphClient, before_call=self.db.release)

    # -- bookkeeping --

    def write(self, **values: Any) -> None:
        """Write the post's ``values`` and every result waiting, under the lease; committed at once
        (from a step, under ``self.db.use()``). The results stop waiting only once written: if the
        write fails they are still there for ``save_unsaved_after``."""
        lease.record(
            self.session,
            self.post,
            self.owner,
            self.settings.lease_seconds,
            targets=list(self.unsaved_targets.values()),
            **{**self.unsaved_post, **values},
        )
        self.forget_unsaved()

    def save_target(self, row: PostTarget, *, attempt: bool = False, **values: Any) -> None:
        """Record a target's values under the lease; with ``attempt``, the run's first send counts.

        A sent marker is committed at once, with every result waiting, before its request
        leaves (DESIGN §8); anything else waits for the run's next write. Once another target
        found the connection unusable, no marker is written: its request is not sent
        (:class:`ConnectionUnusable` ends the target's step).
        """
        marker = any(values.get(marker) is not None for marker in SENT_MARKERS)
        if marker and self.connection_failure is not None:
            raise ConnectionUnusable(self.connection_failure.error_code)
        # A marker only while the run goes on (else it would be written after, for a request never sent).
        with self.db.use() if marker else self.db.locked():
            before = (dict(self.unsaved_post), self.counted_attempt, self.unsaved_targets.get(row.target))
            if attempt and not self.counted_attempt:
                self.unsaved_post["attempts"] = self.post.attempts + 1
                self.counted_attempt = True
            waiting = self.unsaved_targets.get(row.target, (row, {}))[1]
            self.unsaved_targets[row.target] = (row, {**waiting, **values})
            if marker:
                try:
                    self.write()
                except Exception:
                    # Its request will not leave: the marker (and its try) must not be written
                    # later as if it had; the results waiting before it still are.
                    self.unsaved_post, self.counted_attempt, previous = before
                    if previous is None:
                        self.unsaved_targets.pop(row.target, None)
                    else:
                        self.unsaved_targets[row.target] = previous
                    raise
            else:
                lease.refresh(row, values)
                lease.refresh(self.post, self.unsaved_post)

    def forget_unsaved(self) -> None:
        """The waiting results have been written."""
        self.unsaved_targets = {}
        self.unsaved_post = {}

    def save_unsaved_after(self, exc: Exception) -> None:
        """The run failed unexpectedly: still write the results it had (best effort), then it raises.

        Every thread of the run has ended by now (``side_by_side`` waits for them): the session is
        this thread's. Should the time limit have left one at work, it is stopped and waited for first.
        """
        self.db.stop(exc)
        self.db.wait_for_helpers()
        if not self.unsaved_targets and not self.unsaved_post:
            return
        try:
            self.session.rollback()
            self.write()
        except Exception as late:  # noqa: BLE001 - the first failure is the one to raise
            self.session.rollback()
            log.warning("the failed run's results not recorded: %s (after %s)", type(late).__name__, type(exc).__name__)

    def pending(self) -> list[TargetPublisher]:
        return [publisher for publisher in self.publishers if publisher.work_left()]

    def fail_pending(self, error_code: str) -> None:
        """Give up on every target with work left; one whose last request may have gone through is unconfirmed."""
        for publisher in self.pending():
            publisher.give_up(error_code)

    def request_lifetime(self) -> timedelta:
        """How long a request we sent may still be running at Meta (both times are our clock's)."""
        return request_lifetime(self.settings)

    def slow_down_if_busy(self, graph: GraphClient) -> None:
        """Meta's usage headers above 90% (as ``graph`` last read them): pause before the next call."""
        percent = graph.last_usage.get("max_percent", 0) or 0
        if percent >= 90:
            USAGE_SLOWDOWNS.inc()
            time.sleep(min(self.settings.usage_slowdown_max_seconds, 0.2 * (percent - 89)))

    # -- the run --

    def run(self) -> str:
        try:
            return self.run_steps()
        except lease.LeaseLost:
            raise
        except Exception as exc:
            self.save_unsaved_after(exc)
            raise

    def run_steps(self) -> str:
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
            self.step_targets()
            if self.connection_failure:
                # The seller must act (reconnect, or fix something on Facebook): nothing else is tried.
                code = self.connection_failure.error_code
                mark_needs_reauth(self.session, self.conn, code)
                self.session.commit()
                self.fail_pending(code)
        if self.pending():
            return self.continue_later()
        outcome = finish(
            self.session,
            self.post,
            self.owner,
            self.settings,
            targets=list(self.unsaved_targets.values()),
            **self.unsaved_post,
        )
        self.forget_unsaved()
        return outcome

    def step_targets(self) -> None:
        """Each target with a step due does it; two or more do theirs at once (DESIGN §13.4), the
        first on this thread, the others each on a helper thread with its own Graph client."""
        due = [publisher for publisher in self.publishers if publisher.work_left() and publisher.due()]
        if len(due) <= 1:
            for publisher in due:
                self.step_target(publisher, self.graph)
            return
        first, *others = due
        steps = [partial(self.step_target, first, self.graph), *(partial(self.step_target, other) for other in others)]
        side_by_side(self.db, steps, helper_pool(self.settings.worker_concurrency))

    def step_target(self, publisher: TargetPublisher, graph: GraphClient | None = None) -> None:
        """The publisher's step, its Graph calls through ``graph`` (None: a client of this thread's)."""
        graph = publisher.graph = graph or self.thread_graph()
        try:
            publisher.step()
        except ConnectionUnusable:
            return  # another target found the connection unusable: this one sends nothing more
        self.slow_down_if_busy(graph)

    def continue_later(self) -> str:
        post = self.post
        times = [publisher.next_due() for publisher in self.pending()]
        at = max(utcnow(), min(t or utcnow() for t in times))
        lease.hold_until(
            self.session,
            post,
            self.owner,
            self.settings.lease_seconds,
            at,
            targets=list(self.unsaved_targets.values()),
            **self.unsaved_post,
        )
        self.forget_unsaved()
        enqueue_publish(self.session, self.ctx, post.id, at=at, lease=self.owner)
        return "continuing"
