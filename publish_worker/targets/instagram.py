"""The Instagram target: containers, then ``media_publish`` (DESIGN §8, §13.1, §13.2).

What is published follows ``INSTAGRAM.kind``: an image container (with ``alt_text``), a
``CAROUSEL`` of child containers, ``REELS`` (also a post of one video) or ``STORIES``.
The containers' requests are in :mod:`publish_worker.targets.instagram_media`.

Each step is recorded under the lease: a carousel's children one by one in
``row.children`` (so a retry never makes a finished child again), then the container,
both riding with the run's next write and committed at the latest with the ``sent_at``
marker of ``media_publish`` (a run that dies before leaves only unpublished containers
behind, made again by the next run). Containers
are waited for without holding a worker: ``not_before`` is set and the run continues
later, up to ``IG_CONTAINER_TIMEOUT_SECONDS``. A container whose status is
``PUBLISHED`` is never published again; after a lost ``media_publish`` answer the
container is read only once that request's lifetime is over (until then Meta may be
publishing it while it still reads ``FINISHED``).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from publish_worker.failures import NO_RETRY, Failure, classify
from publish_worker.targets.base import GRAPH_FAILURES, TargetPublisher
from publish_worker.targets.instagram_media import (
    CAROUSEL,
    STORY,
    child_request,
    container_request,
    find_published_media,
)
from shared.db import utcnow
from shared.errors import DEFER, NOT_READY_SUBCODE, RECREATE, message_for
from shared.graph import GraphError, GraphTransportError
from shared.models import FAILED, UNCONFIRMED
from shared.targets import INSTAGRAM, Refused

log = logging.getLogger(__name__)

# Without ``config.quota_total`` in content_publishing_limit, assume 50 per 24 h: erring low only defers.
QUOTA_FALLBACK = 50

# A fresh container: the next try makes a new one.
NO_CONTAINER = {"container_id": None, "container_at": None, "sent_at": None}

# A container's ``status_code`` (Meta's words).
IN_PROGRESS = "IN_PROGRESS"
FINISHED = "FINISHED"
ERROR = "ERROR"
EXPIRED = "EXPIRED"
PUBLISHED_STATUS = "PUBLISHED"

# Why a first comment was not posted when the media id could not be learned (see ``comment``).
MEDIA_ID_UNKNOWN_CODE = "meta_unavailable"


class InstagramPublisher(TargetPublisher):
    spec = INSTAGRAM
    # Instagram's comment node: ``text``, ``username`` and ``from{id,username}`` (no ``message``).
    comment_fields = "id,text,username,from{id,username},timestamp"

    # -- failures --

    def uses_a_try(self, failure: Failure) -> bool:
        # A fresh container is not a retry of the same request: its own budget bounds it (``failed``).
        return super().uses_a_try(failure) and failure.decision != RECREATE

    def failed(self, failure: Failure, *, step_values: dict[str, Any] | None = None) -> None:
        values = dict(step_values or {})
        steps = dict(self.row.steps or {})
        if failure.decision == RECREATE:
            # The container expired or Meta cannot use it: the next try makes a new one. For a
            # carousel Meta does not say which child is at fault, so each is looked at again.
            # Not a try, but not endless either: past RETRY_MAX_TRIES fresh containers it fails.
            recreated = int(steps.get("recreated") or 0) + 1
            if recreated > self.settings.retry_max_tries:
                failure = replace(failure, decision=NO_RETRY)
            else:
                values.update(NO_CONTAINER, steps={"recreated": recreated})  # the old container's count goes
                if self.row.children and "children" not in values:
                    values["children"] = recheck(self.row.children)
        elif failure.recreate_after and self.row.container_id:
            # Retried on this container a few times (Meta's advice for 2207008), then a new one is
            # made: once the check shows the last media_publish did not go through after all.
            failures_here = int(steps.get("failures_here") or 0) + 1
            values["steps"] = {
                **steps,
                "failures_here": failures_here,
                "new_container": failures_here >= failure.recreate_after,
            }
        super().failed(failure, step_values=values)

    def failed_before_anything_live(self, exc: Exception, **step_values: Any) -> None:
        """A failure while making or reading containers: nothing can be live, so it is never ambiguous."""
        self.failed(replace(classify(exc), ambiguous=False), step_values=step_values)

    # -- publishing --

    def publish(self) -> None:
        row = self.row
        try:
            kind = self.kind
        except Refused as exc:
            # Validation lets no such post through; one stored before a rule changed fails plainly.
            self.save(status=FAILED, error_code="validation_error", error_message=exc.message)
            return
        if row.sent_at is not None and self.in_flight(row.sent_at):
            # media_publish's answer was lost and Meta may still be publishing: the container can
            # read FINISHED meanwhile, so it is neither read nor published again until that is over.
            return
        if not row.container_id:
            if not any(child.get("id") for child in row.children or []) and not self.quota_left():
                return
            if kind == CAROUSEL and not self.children_ready():
                return
            try:
                container_id = self.create_container(kind)
            except GRAPH_FAILURES as exc:
                # A container nobody publishes is harmless: creating it again is safe.
                self.failed_before_anything_live(exc)
                return
            self.save_attempt(container_id=container_id, container_at=utcnow(), not_before=None)
        try:
            container = self.container_status(str(row.container_id))
        except GRAPH_FAILURES as exc:
            if row.sent_at is not None:
                self.save(status=UNCONFIRMED, error_code="meta_unavailable")
            else:
                self.failed_before_anything_live(exc)
            return
        status = container.get("status_code")
        if status == PUBLISHED_STATUS:
            self.published(row.remote_id or self.find_media(kind))
        elif status == FINISHED:
            self.publish_finished()
        elif status == EXPIRED:
            # Too old to publish (24 h): the next try makes a fresh container (bounded by re-creations).
            self.failed(Failure("meta_unavailable", RECREATE, message="container expired"))
        elif status == ERROR:
            # Meta's own words (e.g. "Error: ... (2207004)") tell the seller what to fix.
            self.save(
                status=FAILED, error_code="media_invalid", error_message=with_meta_words("media_invalid", container)
            )
        else:
            self.wait_for(row.container_at)

    def create_container(self, kind: str) -> str:
        children = [str(child["id"]) for child in self.row.children or []]
        data = container_request(kind, self.post, self.media, children)
        body = self.graph.post(f"/{self.conn.instagram_business_account_id}/media", token=self.token, data=data)
        return str(body["id"])

    def container_status(self, container_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.graph.get(
            f"/{container_id}", token=self.token, params={"fields": "status_code,status"}
        )
        return body

    def wait_for(self, started: datetime | None) -> None:
        """Look at the container again a little later, unless it has been processing too long."""
        if utcnow() - (started or utcnow()) > timedelta(seconds=self.settings.ig_container_timeout_seconds):
            self.save(status=FAILED, error_code="media_invalid", error_message=message_for("media_invalid"))
            return
        self.save(not_before=self.next_poll(), sent_at=None)

    def next_poll(self) -> datetime:
        return utcnow() + timedelta(seconds=self.settings.ig_status_poll_seconds)

    # -- a carousel's children --

    def children_ready(self) -> bool:
        """Make the missing children one by one, then read the unfinished ones; True once all are FINISHED.

        Each child is recorded as soon as Meta gives its id, so a retry after a failure
        makes only the children that have none.
        """
        media = self.media
        children = [dict(child) for child in (self.row.children or [])][: len(media)]
        children += [{} for _ in range(len(media) - len(children))]
        for index, item in enumerate(media):
            if children[index].get("id"):
                continue
            try:
                body = self.graph.post(
                    f"/{self.conn.instagram_business_account_id}/media",
                    token=self.token,
                    data=child_request(item),
                )
            except GRAPH_FAILURES as exc:
                self.failed_before_anything_live(exc)
                return False
            children[index] = {"id": str(body["id"]), "status": IN_PROGRESS, "created_at": utcnow().isoformat()}
            self.save_attempt(children=copy.deepcopy(children), not_before=None)
        waiting: list[dict[str, Any]] = []
        for index, child in enumerate(children):
            if child.get("status") == FINISHED:
                continue
            try:
                body = self.container_status(str(child["id"]))
            except GRAPH_FAILURES as exc:
                self.failed_before_anything_live(exc, children=children)
                return False
            status = body.get("status_code") or IN_PROGRESS
            if status == ERROR:
                self.save(
                    children=[*children[:index], {**child, "status": ERROR}, *children[index + 1 :]],
                    status=FAILED,
                    error_code="media_invalid",
                    error_message=with_meta_words("media_invalid", body, item=index),
                )
                return False
            if status == PUBLISHED_STATUS:
                # Already in a published carousel, though none of ours is known to be: it may be this
                # post's, so nothing is made or sent again on a guess.
                self.save(children=children, status=UNCONFIRMED, error_code="meta_unavailable")
                return False
            if status == EXPIRED:
                # Too old to use: just this child is made again.
                children[index] = {}
                expired = Failure("meta_unavailable", RECREATE, message="carousel item expired")
                self.failed(expired, step_values={"children": children})
                return False
            children[index] = {**child, "status": status}
            if status != FINISHED:
                waiting.append(child)
        if waiting:
            oldest = min(_created(child) for child in waiting)
            if utcnow() - oldest > timedelta(seconds=self.settings.ig_container_timeout_seconds):
                self.save(
                    children=children,
                    status=FAILED,
                    error_code="media_invalid",
                    error_message=message_for("media_invalid"),
                )
            else:
                self.save(children=children, not_before=self.next_poll())
            return False
        if children != self.row.children:
            self.save(children=children)
        return True

    # -- quota and media_publish --

    def quota_left(self) -> bool:
        ig_id = self.conn.instagram_business_account_id
        try:
            body = self.graph.get(
                f"/{ig_id}/content_publishing_limit", token=self.token, params={"fields": "quota_usage,config"}
            )
        except GRAPH_FAILURES as exc:
            failure = classify(exc)
            if failure.retryable:
                return True  # media_publish enforces the limit anyway
            self.failed(failure)
            return False
        entry = (body.get("data") or [{}])[0]
        used = entry.get("quota_usage") or 0
        total = (entry.get("config") or {}).get("quota_total") or QUOTA_FALLBACK
        if used >= total:
            self.failed(Failure("publishing_limit_reached", DEFER))
            return False
        return True

    def publish_finished(self) -> None:
        """A ``FINISHED`` container (after a lost ``media_publish``, past that request's lifetime:
        it did not go through) is published, unless no try is left or it is to be made anew."""
        if self.row.sent_at is not None and self.out_of_tries():
            return
        if (self.row.steps or {}).get("new_container"):
            self.failed(Failure("meta_unavailable", RECREATE, message="temporary errors publishing this container"))
            return
        self.publish_container()

    def publish_container(self) -> None:
        self.save_attempt(sent_at=utcnow())
        try:
            body = self.graph.post(
                f"/{self.conn.instagram_business_account_id}/media_publish",
                token=self.token,
                data={"creation_id": self.row.container_id},
            )
        except GraphError as exc:
            if exc.subcode == NOT_READY_SUBCODE:
                # Not ready yet, or published already ("Media ID is not available"): the status tells.
                self.wait_for(self.row.container_at)
                return
            self.failed(classify(exc))
            return
        except GraphTransportError as exc:
            self.failed(classify(exc))
            return
        self.published(str(body["id"]))

    def find_media(self, kind: str) -> str | None:
        """The media id of a container found ``PUBLISHED`` after an ambiguous ``media_publish``, or None."""
        found = find_published_media(self, kind)
        if found is None:
            log.warning("instagram: published, but its media id could not be learned", extra={"job_id": self.post.id})
        return found

    # -- the first comment --

    def comment(self) -> None:
        try:
            takes_comment = self.kind != STORY
        except Refused:
            takes_comment = False
        if not takes_comment:
            # A story takes no comment (validation refuses one; Meta would answer 100): never sent.
            self.save(comment_status=FAILED, comment_error_code="validation_error")
            return
        if not self.row.remote_id:
            # Published, but Meta's answer was lost and the media could not be told apart among the
            # account's media: the comment is not posted on a guess.
            self.save(comment_status=FAILED, comment_error_code=MEDIA_ID_UNKNOWN_CODE)
            return
        super().comment()

    def is_our_comment(self, item: dict[str, Any]) -> bool:
        author = item.get("from") or {}
        return str(author.get("id") or "") == str(self.conn.instagram_business_account_id) or (
            bool(self.conn.instagram_username) and item.get("username") == self.conn.instagram_username
        )


def recheck(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The children, each to be read again before a new carousel container is made."""
    return [{**child, "status": None} if child.get("id") else {} for child in children]


def _created(child: dict[str, Any]) -> datetime:
    try:
        return datetime.fromisoformat(str(child.get("created_at")))
    except ValueError:
        return utcnow()


def with_meta_words(error_code: str, container: dict[str, Any], *, item: int | None = None) -> str:
    """The catalogue's message, and Meta's own words about a container when it gave any."""
    words = " ".join(str(container.get("status") or "").split())[:500]
    source = f"Meta (media.{item})" if item is not None else "Meta"
    return f"{message_for(error_code)} {source}: {words}" if words else message_for(error_code)
