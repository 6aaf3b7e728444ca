"""Changing a post after it was scheduled (DESIGN §13.3): an edit while it is queued, a retry
of what failed.

Both commit the change first, with the post's next RQ job id reserved in the same transaction,
and only then put that job on the queue: the post's earlier job is cancelled in Redis, and
should it run anyway it does nothing, because the post no longer names it
(``publish_worker.jobs``).

Idempotency: an edit leaves the post's ``request_hash`` alone. An ``Idempotency-Key`` stands
for the request that created the post, so a replay of that original body answers the same
``job_id`` (the post as edited since), and a different body under that key is still
``idempotency_conflict``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validates
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.audit import NO_REQUEST, RequestInfo, record_event
from shared.db import iso_z, utcnow
from shared.errors import AppError
from shared.graph import GraphClient
from shared.media_check import Fetcher
from shared.models import (
    FAILED,
    PARTIALLY_PUBLISHED,
    PENDING,
    PUBLISHED,
    QUEUED,
    SKIPPED,
    UNCONFIRMED,
    PostTarget,
    ScheduledPost,
    SocialConnection,
)
from shared.post_schema import check_publish_time, publish_at_field, stored_media
from shared.posts import cancel_rq_job
from shared.queue import enqueue_publish, reserve_job_id
from shared.scheduling import check_media, check_usable, ensure_token_valid, validate_body
from shared.services import Services
from shared.targets import IMAGE, TARGET_NAMES, media_items
from shared.validation import flatten_errors

# What a PATCH may change (DESIGN §13.3); ``media`` and ``media_url`` are one field.
EDITABLE = ("publish_at", "caption", "media", "media_url", "link", "targets", "format", "first_comment", "cover_url")
MEDIA_KEYS = ("media", "media_url")
# What the media pre-check's verdict depends on: a change to any of these fetches the media again.
PRECHECKED = ("media", "cover_url", "targets", "format")
OTHER_CONNECTION = "A post cannot move to another connection; schedule a new one."

# Failures a retry may re-queue (DESIGN §13.3); token_expired only once the connection is
# connected again, which the retry checks for every target anyway.
RETRYABLE_CODES = frozenset(
    {"meta_unavailable", "rate_limited", "publishing_limit_reached", "internal_error", "token_expired"}
)
# A published post too: its targets are live, but a first comment may have failed.
RETRYABLE_POSTS = (FAILED, PARTIALLY_PUBLISHED, UNCONFIRMED, PUBLISHED)
# Per-target step counters a retry starts again (a full budget of fresh Instagram containers).
RETRY_RESETS_STEPS = ("recreated", "failures_here")


EDIT_ATTEMPTS = 3


def _locked(session: Session, post_id: str) -> ScheduledPost:
    """The post re-read under a row lock (PostgreSQL): the worker's lease waits for our commit.

    A job waiting to take the post reads its targets as they were before our commit
    (``publish_worker.lease.take_and_load``): a change to them must give the post a new job (or
    cancel it), so that the waiting job's take is refused."""
    return session.scalars(
        select(ScheduledPost)
        .where(ScheduledPost.id == post_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def _check_connection(
    session: Session, services: Services, post: ScheduledPost, *, graph: GraphClient | None, info: RequestInfo
) -> None:
    """The post's connection is usable and its token still valid, as ``POST /schedule`` checks."""
    conn = _connection(session, post)
    check_usable(conn)
    settings = services.settings
    graph = graph or services.graph(timeout=(settings.graph_connect_timeout, settings.status_check_timeout))
    ensure_token_valid(session, services, conn, graph=graph, info=info)


def _connection(session: Session, post: ScheduledPost) -> SocialConnection:
    conn = session.get(SocialConnection, post.connection_id)
    if conn is None:  # a post always has its connection; only a deletion in between gets here
        raise AppError("not_connected")
    return conn


def _enqueue(session: Session, services: Services, post: ScheduledPost, job_id: str, stale_job: str | None) -> None:
    cancel_rq_job(services.redis, stale_job)
    enqueue_publish(session, services, post.id, at=post.publish_at, job_id=job_id)


# --- PATCH /api/meta/schedule/<job_id> ---


def is_editable(post: ScheduledPost) -> bool:
    """Queued, not taken, and no target has started (a retried post keeps what it did)."""
    if post.status != QUEUED or post.lease_owner is not None:
        return False
    return all(
        row.status in (PENDING, SKIPPED)
        and row.remote_id is None
        and row.container_id is None
        and row.sent_at is None
        and row.comment_sent_at is None
        and not row.steps
        and not row.children
        for row in post.target_rows
    )


def post_body(post: ScheduledPost) -> dict[str, Any]:
    """The stored post as the ``POST /schedule`` body that would make it (the merge patch's base)."""
    body: dict[str, Any] = {
        "publish_at": iso_z(post.publish_at),
        "caption": post.caption or "",
        "targets": list(post.targets or ()),
        "format": post.format,
    }
    media = [
        {"url": item.url, "type": item.type, **({"alt_text": item.alt_text} if item.alt_text is not None else {})}
        for item in media_items(post.media, post.media_url)
    ]
    if len(media) == 1 and media[0] == {"url": media[0]["url"], "type": IMAGE}:
        body["media_url"] = media[0]["url"]  # the short form: problems are named as it was given
    elif media:
        body["media"] = media
    for name in ("link", "first_comment", "cover_url"):
        value = getattr(post, name)
        if value is not None:
            body[name] = value
    return body


def merge_patch(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7396 on the post's body: a key absent is unchanged, ``null`` removes it (its default
    applies), a value replaces it (lists whole). ``media`` or ``media_url`` replaces the media."""
    merged = dict(base)
    if any(key in patch for key in MEDIA_KEYS):
        for key in MEDIA_KEYS:
            merged.pop(key, None)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _changes(post: ScheduledPost, body: dict[str, Any]) -> dict[str, Any]:
    """The columns the validated ``body`` changes, by API field name."""
    wanted = {
        "publish_at": body["publish_at"],
        "caption": body["caption"],
        "media": stored_media(body),
        "link": body["link"],
        "targets": list(body["targets"]),
        "format": body["format"],
        "first_comment": body["first_comment"],
        "cover_url": body["cover_url"],
    }
    current = {
        "publish_at": post.publish_at,
        "caption": post.caption or "",
        "media": [
            {"url": i.url, "type": i.type, **({"alt_text": i.alt_text} if i.alt_text is not None else {})}
            for i in media_items(post.media, post.media_url)
        ],
        "link": post.link,
        "targets": list(post.targets or ()),
        "format": post.format,
        "first_comment": post.first_comment,
        "cover_url": post.cover_url,
    }
    return {name: value for name, value in wanted.items() if value != current[name]}


def _apply(post: ScheduledPost, changes: dict[str, Any]) -> None:
    for name, value in changes.items():
        if name == "media":
            post.media = value
            post.media_url = value[0]["url"] if value else None
        else:
            setattr(post, name, value)
    rows = {row.target: row for row in post.target_rows}
    comment = PENDING if post.first_comment is not None else None
    for name in TARGET_NAMES:
        row = rows.get(name)
        if row is None:
            row = PostTarget(target=name)
            post.target_rows.append(row)
        wanted = name in post.targets
        row.status = PENDING if wanted else SKIPPED
        row.comment_status = comment if wanted else None
        row.error_code = row.error_message = None
        row.not_before = None


def edit_post(
    session: Session,
    services: Services,
    post: ScheduledPost,
    patch: dict[str, Any],
    *,
    info: RequestInfo = NO_REQUEST,
    graph: GraphClient | None = None,
    fetcher: Fetcher | None = None,
) -> ScheduledPost:
    """Apply a merge patch to a queued post, validated as ``POST /schedule`` validates a body.

    ``409 not_editable`` once publishing has started; nothing is changed by any refusal.
    The patch is merged onto the post as it is under the row lock: when another edit changed
    it while this one checked the token and media (outside the lock), this one starts over
    from the new state rather than write back what it read before.
    """
    for _ in range(EDIT_ATTEMPTS):
        outcome = _try_edit(session, services, post, patch, info=info, graph=graph, fetcher=fetcher)
        if outcome is not None:
            return outcome
        post = session.get(ScheduledPost, post.id) or post
    raise AppError("not_editable")


def _try_edit(
    session: Session,
    services: Services,
    post: ScheduledPost,
    patch: dict[str, Any],
    *,
    info: RequestInfo,
    graph: GraphClient | None,
    fetcher: Fetcher | None,
) -> ScheduledPost | None:
    """One attempt of :func:`edit_post`; None when the post changed before the lock was taken."""
    if not is_editable(post):
        raise AppError("not_editable")
    patch = dict(patch)
    if "connection_id" in patch:
        if patch.pop("connection_id") not in (None, post.connection_id):
            raise AppError("validation_error", fields={"connection_id": [OTHER_CONNECTION]})
    read = post_body(post)
    merged = merge_patch(read, patch)
    # An untouched publish_at of a post already due (a backlog) is not held against the edit.
    reference = None if "publish_at" in patch else min(utcnow(), post.publish_at)
    body = validate_body(merged, now=reference, allow_hosts=services.settings.media_precheck_allow_hosts)
    changes = _changes(post, body)
    if not changes:
        return post
    _check_connection(session, services, post, graph=graph, info=info)
    if any(name in changes for name in PRECHECKED):
        check_media(services, body, fetcher=fetcher)

    post = _locked(session, post.id)
    if not is_editable(post):
        session.rollback()
        raise AppError("not_editable")
    if post_body(post) != read:
        session.rollback()  # another edit landed meanwhile: merge onto what it left
        return None
    stale_job = post.rq_job_id
    changes = _changes(post, body)
    _apply(post, changes)
    session.flush()
    job_id = reserve_job_id(session, post.id)
    record_event(
        session,
        "post_edited",
        user_id=post.user_id_resellio,
        connection_id=post.connection_id,
        detail={"job_id": post.id, "changed": sorted(changes), "publish_at": iso_z(post.publish_at)},
        request_id=info.request_id,
        ip=info.ip,
    )
    session.commit()
    _enqueue(session, services, post, job_id, stale_job)
    return post


# --- POST /api/meta/schedule/<job_id>/retry ---


class RetryBody(Schema):
    """``{"publish_at"?, "confirm_unconfirmed"?}``; an empty body retries now."""

    class Meta:
        unknown = RAISE

    publish_at = publish_at_field(load_default=None, allow_none=True)
    confirm_unconfirmed = fields.Boolean(load_default=False)

    @validates("publish_at")
    def check_publish_at(self, value: datetime | None, data_key: str) -> None:
        if value is not None:
            check_publish_time(value)


@dataclass
class RetryPlan:
    """What a retry re-queues: targets to publish again, and first comments to post again."""

    targets: list[PostTarget] = field(default_factory=list)
    comments: list[PostTarget] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.targets or self.comments)


def retry_plan(post: ScheduledPost, *, confirm_unconfirmed: bool) -> RetryPlan:
    plan = RetryPlan()
    if post.status not in RETRYABLE_POSTS or post.lease_owner is not None:
        return plan
    for row in _wanted(post.target_rows, post):
        if row.status == FAILED and row.error_code in RETRYABLE_CODES:
            plan.targets.append(row)
        elif row.status == UNCONFIRMED and confirm_unconfirmed:
            plan.targets.append(row)
        elif row.status == PUBLISHED and _comment_retryable(row, confirm_unconfirmed):
            plan.comments.append(row)
    return plan


def _comment_retryable(row: PostTarget, confirm_unconfirmed: bool) -> bool:
    if row.comment_status == FAILED:
        return row.comment_error_code in RETRYABLE_CODES
    return row.comment_status == UNCONFIRMED and confirm_unconfirmed


def _wanted(rows: Iterable[PostTarget], post: ScheduledPost) -> list[PostTarget]:
    return [row for row in rows if row.status != SKIPPED and post.wants(row.target)]


def _requeue_target(row: PostTarget) -> None:
    """Pending again with a full budget. Recorded steps stay, so nothing made before is made
    again, and so does the sent marker of an unconfirmed target: the worker looks for the
    post first (a container already published, a Page post already there) and sends again only
    when it is surely not there; when Meta still cannot tell, the target is unconfirmed again
    (never re-sent blindly, DESIGN §8 step 5)."""
    row.status = PENDING
    row.error_code = row.error_message = None
    row.tries = 0
    row.not_before = None
    if row.steps and any(key in row.steps for key in RETRY_RESETS_STEPS):
        row.steps = {key: value for key, value in row.steps.items() if key not in RETRY_RESETS_STEPS}


def _requeue_comment(row: PostTarget) -> None:
    """The first comment pending again; an unconfirmed one is looked for before it is sent again."""
    row.comment_status = PENDING
    row.comment_error_code = None
    row.comment_tries = 0
    row.not_before = None


def retry_post(
    session: Session,
    services: Services,
    post: ScheduledPost,
    payload: dict[str, Any],
    *,
    by: str,
    info: RequestInfo = NO_REQUEST,
    graph: GraphClient | None = None,
) -> ScheduledPost:
    """Re-queue what failed with a retryable cause, now or at ``publish_at``.

    ``409 not_retryable`` when nothing is (an unconfirmed target counts only with
    ``confirm_unconfirmed``); ``409`` with the connection's code while it is not connected.
    """
    try:
        body: dict[str, Any] = RetryBody().load(payload)
    except ValidationError as exc:
        raise AppError("validation_error", fields=flatten_errors(exc.messages)) from None
    confirm = body["confirm_unconfirmed"]
    if not retry_plan(post, confirm_unconfirmed=confirm):
        raise AppError("not_retryable")
    _check_connection(session, services, post, graph=graph, info=info)

    post = _locked(session, post.id)
    plan = retry_plan(post, confirm_unconfirmed=confirm)
    if not plan:
        session.rollback()
        raise AppError("not_retryable")
    for row in plan.targets:
        _requeue_target(row)
    for row in plan.comments:
        _requeue_comment(row)
    stale_job = post.rq_job_id
    post.status = QUEUED
    post.publish_at = body["publish_at"] or utcnow()
    post.error_code = post.error_message = None
    post.lease_owner = None
    post.lease_expires_at = None
    post.next_attempt_at = None
    post.started_at = post.finished_at = None
    post.takes = 0
    session.flush()
    job_id = reserve_job_id(session, post.id)
    record_event(
        session,
        "post_retried",
        user_id=post.user_id_resellio,
        connection_id=post.connection_id,
        detail={
            "job_id": post.id,
            "targets": [row.target for row in plan.targets],
            "comments": [row.target for row in plan.comments],
            "confirm_unconfirmed": confirm,
            "publish_at": iso_z(post.publish_at),
            "by": by,
        },
        request_id=info.request_id,
        ip=info.ip,
    )
    session.commit()
    _enqueue(session, services, post, job_id, stale_job)
    return post
