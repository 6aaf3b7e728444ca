"""The interface every target's publisher implements, and the steps they share.

A publisher does the next due step of its target on each call of :meth:`step`, and
records each result under the lease (``self.save``): a sent marker is committed before
its request leaves, other results with the run's next write (see ``publishing``). The
first comment is the same for every target (a sent marker, a check among the object's
comments after an ambiguous failure); a publisher names where it goes and how to
recognise ours.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from publish_worker.failures import CONNECTION_CODES, NO_RETRY, Failure, classify, retry_delay
from publish_worker.side_by_side import RunDatabase
from shared.db import utcnow
from shared.errors import DEFER, message_for
from shared.graph import GraphClient, GraphError, GraphTransportError
from shared.models import FAILED, PENDING, PUBLISHED, UNCONFIRMED, PostTarget, ScheduledPost, SocialConnection
from shared.settings import Settings
from shared.targets import MediaItem, TargetSpec, media_items

log = logging.getLogger(__name__)

GRAPH_FAILURES = (GraphError, GraphTransportError)
DUE_TOLERANCE_SECONDS = 1.0


class CheckFailed(Exception):
    """Whether an earlier, ambiguous request was carried out cannot be told for sure."""


class Run(Protocol):
    """What a publisher uses of the run (``publish_worker.publishing.PublishRun``, which imports the
    publishers: naming it here would make an import circle)."""

    session: Session
    db: RunDatabase
    post: ScheduledPost
    conn: SocialConnection
    graph: GraphClient
    settings: Settings
    token: str | None
    connection_failure: Failure | None
    quota_defer_limit: timedelta

    def save_target(self, row: PostTarget, *, attempt: bool = False, **values: Any) -> None: ...

    def request_lifetime(self) -> timedelta: ...


class TargetPublisher:
    spec: ClassVar[TargetSpec]
    # The fields asked of ``GET /{object-id}/comments``: Meta refuses a field the node type
    # lacks (a Facebook Comment has ``message``, an Instagram one ``text`` and ``username``).
    comment_fields: ClassVar[str] = "id,message,from"

    def __init__(self, run: Run, row: PostTarget):
        self.run = run
        self.row = row
        self.post = run.post
        self.conn = run.conn
        self.graph = run.graph
        self.settings = run.settings

    # -- what the run asks --

    @property
    def token(self) -> str:
        assert self.run.token is not None
        return self.run.token

    @property
    def media(self) -> list[MediaItem]:
        return media_items(self.post.media, self.post.media_url)

    @property
    def kind(self) -> str:
        return self.spec.kind(self.post.format, self.media)

    def work_left(self) -> bool:
        """The target still has to be published, or its first comment still has to be posted."""
        return self.row.status == PENDING or (self.row.status == PUBLISHED and self.row.comment_status == PENDING)

    def next_due(self) -> datetime | None:
        return self.row.not_before

    def due(self) -> bool:
        not_before = self.row.not_before
        return not_before is None or (not_before - utcnow()).total_seconds() <= DUE_TOLERANCE_SECONDS

    def step(self) -> None:
        """Do what is due: publish (one step at a time), then the first comment."""
        if not self.work_left() or not self.due():
            return
        if self.row.status == PENDING:
            self.publish()
        if self.row.status == PUBLISHED and self.row.comment_status == PENDING and not self.run.connection_failure:
            if self.due():
                self.comment()

    # -- recording --

    def save(self, **values: Any) -> None:
        """Record this target's values under the lease (committed at once)."""
        self.run.save_target(self.row, **values)

    def save_attempt(self, **values: Any) -> None:
        """Like ``save``; the first time the run sends something it counts as an attempt."""
        self.run.save_target(self.row, attempt=True, **values)

    def published(self, remote_id: str | None, **values: Any) -> None:
        self.save(
            status=PUBLISHED,
            remote_id=remote_id,
            published_at=utcnow(),
            error_code=None,
            error_message=None,
            not_before=None,
            **values,
        )

    def uses_a_try(self, failure: Failure) -> bool:
        """Whether a failure counts against the retry budget (``RETRY_MAX_TRIES``).

        A deferral (a daily limit reached) is not a try: it is bounded by the post's age. A
        publisher that makes something again on ``RECREATE`` says so, and bounds that itself.
        """
        return failure.decision != DEFER

    def failed(self, failure: Failure, *, step_values: dict[str, Any] | None = None) -> None:
        """Record a failed publishing step: retry later, or give up (unconfirmed if it may have happened).

        A request that may have gone through is looked for before anything else happens, even
        when no try is left: found, it is published; surely not there, the target fails then.
        """
        counted = self.uses_a_try(failure)
        tries = self.row.tries + 1 if counted else self.row.tries
        values: dict[str, Any] = {"error_code": failure.error_code, **(step_values or {})}
        if counted:
            values["tries"] = tries
        if not failure.ambiguous:
            values["sent_at"] = None
        sent_at = values.get("sent_at", self.row.sent_at)
        if failure.error_code in CONNECTION_CODES:
            self.run.connection_failure = failure
        if failure.decision == DEFER:
            retry = utcnow() < self.post.publish_at + self.run.quota_defer_limit
        elif not counted:
            retry = failure.retryable  # bounded by the publisher (Instagram's re-creations)
        else:
            retry = failure.retryable and tries < self.settings.retry_max_tries
        if retry:
            not_before = utcnow() + retry_delay(failure, tries, self.settings)
            if failure.ambiguous and sent_at is not None:
                not_before = max(not_before, self.checkable_at(sent_at))
            values["not_before"] = not_before
            outcome = "retrying"
        elif failure.ambiguous and failure.retryable and sent_at is not None:
            # No try left, but it may have gone through: looked for once, then published or failed.
            values["not_before"] = self.checkable_at(sent_at)
            outcome = "checking before giving up"
        else:
            values["status"] = UNCONFIRMED if failure.ambiguous else FAILED
            values.setdefault("error_message", message_for(failure.error_code))
            outcome = "giving up"
        log.info(
            "%s step failed: %s (%s), %s",
            self.spec.name,
            failure.error_code,
            failure.decision,
            outcome,
            extra={"job_id": self.post.id},
        )
        self.save(**values)

    def out_of_tries(self) -> bool:
        """After a check found that a lost request did not go through: whether a try is left to send it
        again. None left: the target fails (nothing of it is live) and True is returned."""
        if self.row.tries < self.settings.retry_max_tries:
            return False
        code = self.row.error_code or "meta_unavailable"
        self.save(status=FAILED, sent_at=None, error_code=code, error_message=message_for(code))
        return True

    def give_up(self, error_code: str) -> None:
        """Stop this target now; if its last request may have gone through it is unconfirmed."""
        if self.row.status == PENDING:
            maybe_sent = self.row.sent_at is not None
            self.save(
                status=UNCONFIRMED if maybe_sent else FAILED,
                error_code=error_code,
                error_message=message_for(error_code),
            )
        elif self.row.comment_status == PENDING:
            self.save(
                comment_status=UNCONFIRMED if self.row.comment_sent_at is not None else FAILED,
                comment_error_code=error_code,
            )

    # -- an ambiguous request: looked for only once Meta can no longer be carrying it out --

    def checkable_at(self, sent_at: datetime) -> datetime:
        """When the result of a request sent at ``sent_at`` (its answer lost) may be looked for.

        Meta may still carry a request out after our read timeout gave up on its answer, until
        the request's lifetime is over; looking earlier can find nothing and send it a second
        time. Past the due tolerance too, so a run a little early does not look either.
        """
        return sent_at + self.run.request_lifetime() + timedelta(seconds=DUE_TOLERANCE_SECONDS)

    def in_flight(self, sent_at: datetime) -> bool:
        """An ambiguous request sent at ``sent_at`` may still be carried out: wait (recorded), look later.

        Whatever brought the run here — its own continuation, a take-over of a run that died
        mid-request, a continuation due for another target — nothing is looked for yet.
        """
        if utcnow() < sent_at + self.run.request_lifetime():
            self.save(not_before=self.checkable_at(sent_at))
            return True
        return False

    # -- publishing: each target's own --

    def publish(self) -> None:
        """The next publishing step of this target."""
        raise NotImplementedError

    # -- the first comment --

    def comment_object_id(self) -> str | None:
        """The id the comment is posted on (``POST /{id}/comments``)."""
        return self.row.remote_id

    def is_our_comment(self, item: dict[str, Any]) -> bool:
        """After an ambiguous attempt: whether a listed comment is ours (our account, our text)."""
        raise NotImplementedError

    def comment(self) -> None:
        object_id = self.comment_object_id()
        message = self.post.first_comment or ""
        if not object_id or not message:
            self.save(comment_status=FAILED, comment_error_code="internal_error")
            return
        if self.row.comment_sent_at is not None:
            if self.in_flight(self.row.comment_sent_at):
                return
            try:
                found = self.find_comment(object_id, message)
            except CheckFailed:
                self.save(comment_status=UNCONFIRMED, comment_error_code="meta_unavailable")
                return
            if found:
                self.save(comment_status=PUBLISHED, comment_id=found, comment_error_code=None)
                return
            if self.row.comment_tries >= self.settings.retry_max_tries:
                # Surely not posted, and no try is left to post it again.
                self.save(comment_status=FAILED, comment_sent_at=None)
                return
        self.save_attempt(comment_sent_at=utcnow())
        try:
            body = self.graph.post(f"/{object_id}/comments", token=self.token, data={"message": message})
        except GRAPH_FAILURES as exc:
            self.comment_failed(classify(exc))
            return
        self.save(comment_status=PUBLISHED, comment_id=str(body["id"]), comment_error_code=None)

    def comment_failed(self, failure: Failure) -> None:
        tries = self.row.comment_tries + 1
        values: dict[str, Any] = {"comment_tries": tries, "comment_error_code": failure.error_code}
        if not failure.ambiguous:
            values["comment_sent_at"] = None
        if failure.error_code in CONNECTION_CODES:
            self.run.connection_failure = failure
        sent_at = self.row.comment_sent_at
        retryable = failure.decision != NO_RETRY and failure.decision != DEFER
        if retryable and tries < self.settings.retry_max_tries:
            not_before = utcnow() + retry_delay(failure, tries, self.settings)
            if failure.ambiguous and sent_at is not None:
                not_before = max(not_before, self.checkable_at(sent_at))
            values["not_before"] = not_before
        elif retryable and failure.ambiguous and sent_at is not None:
            # No try left, but it may have been posted: looked for once, then published or failed.
            values["not_before"] = self.checkable_at(sent_at)
        else:
            values["comment_status"] = UNCONFIRMED if failure.ambiguous else FAILED
        self.save(**values)

    def find_comment(self, object_id: str, message: str) -> str | None:
        """Our comment's id among the object's comments, None if surely not there."""
        try:
            items = list(
                self.graph.paginate(
                    f"/{object_id}/comments",
                    token=self.token,
                    params={"fields": self.comment_fields, "limit": 100},
                    max_pages=20,
                )
            )
        except GRAPH_FAILURES as exc:
            log.warning("could not check the comments: %s", type(exc).__name__, extra={"job_id": self.post.id})
            raise CheckFailed("comments unavailable") from None
        ours = [str(item["id"]) for item in items if self.is_our_comment(item) and _text(item) == message]
        if len(ours) > 1:
            raise CheckFailed("more than one comment could be ours")
        return ours[0] if ours else None


def held_by_other_posts(session: Session, target: str, remote_ids: list[str], post_id: str) -> set[str]:
    """Which of ``remote_ids`` another post's row of ``target`` has already recorded as its own."""
    return set(
        session.scalars(
            select(PostTarget.remote_id).where(
                PostTarget.target == target,
                PostTarget.remote_id.in_(remote_ids),
                PostTarget.post_id != post_id,
            )
        )
    )


def _text(item: dict[str, Any]) -> str:
    return str(item.get("message") or item.get("text") or "")
