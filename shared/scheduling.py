"""``schedule_post``: what ``POST /api/meta/schedule`` does, for every caller (DESIGN §4, §8).

Validate, check the connection and its token, store the post (committed first),
then enqueue it for ``publish_at``. The endpoint, ``publish_request`` jobs and any
Python caller go through this one function.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.audit import NO_REQUEST, RequestInfo, record_event
from shared.errors import AppError
from shared.graph import GraphClient
from shared.media_check import Fetcher, MediaRef, precheck
from shared.metrics import POSTS_SCHEDULED
from shared.models import (
    CONNECTED,
    DISCONNECTED,
    PENDING,
    QUEUED,
    SKIPPED,
    PostTarget,
    ScheduledPost,
    SocialConnection,
    active_connection,
    new_id,
)
from shared.post_schema import ScheduleBody, body_media, normalized, stored_media
from shared.queue import enqueue_publish
from shared.services import Services
from shared.targets import TARGET_NAMES
from shared.token_check import is_fresh, recheck_connection
from shared.validation import flatten_errors

log = logging.getLogger(__name__)

# What scheduling on a ``needs_reauth`` connection answers, by its ``last_error_code``.
NEEDS_REAUTH_ANSWERS = ("permissions_missing", "meta_action_required")


@dataclass(frozen=True)
class PostCaller:
    """A Resellio user (``user_id``), the scheduler over HTTP (``is_scheduler``), or
    the scheduler on RQ acting for a user (``via="rq"``)."""

    user_id: str | None
    is_scheduler: bool = False
    via: str = "user"

    @property
    def idempotency_scope(self) -> str:
        return "scheduler" if self.is_scheduler else f"{self.via}:{self.user_id}"


@dataclass
class ScheduleOutcome:
    post: ScheduledPost
    created: bool


def validate_body(
    payload: dict[str, Any], now: datetime | None = None, *, allow_hosts: Collection[str] = ()
) -> dict[str, Any]:
    """The body validated (``allow_hosts``: ``MEDIA_PRECHECK_ALLOW_HOSTS``), or ``422 validation_error``."""
    try:
        body: dict[str, Any] = ScheduleBody(now=now, allow_hosts=allow_hosts).load(payload)
    except ValidationError as exc:
        raise AppError("validation_error", fields=flatten_errors(exc.messages)) from None
    return body


def request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(normalized(body), sort_keys=True).encode()).hexdigest()


def _existing_for_key(session: Session, caller: PostCaller, key: str) -> ScheduledPost | None:
    return session.scalars(
        select(ScheduledPost).where(
            ScheduledPost.idempotency_scope == caller.idempotency_scope, ScheduledPost.idempotency_key == key
        )
    ).first()


def _replay(existing: ScheduledPost, digest: str) -> ScheduleOutcome:
    if existing.request_hash != digest:
        raise AppError("idempotency_conflict")
    return ScheduleOutcome(existing, created=False)


def resolve_connection(session: Session, caller: PostCaller, connection_id: str | None) -> SocialConnection:
    """The connection the post is for; another user's is ``not_found``, never ``forbidden``."""
    if caller.is_scheduler:
        if not connection_id:
            raise AppError("validation_error", fields={"connection_id": ["Missing data for required field."]})
        conn = session.get(SocialConnection, connection_id)
        if conn is None:
            raise AppError("not_found")
    elif connection_id:
        conn = session.get(SocialConnection, connection_id)
        if conn is None or conn.user_id_resellio != caller.user_id:
            raise AppError("not_found")
    else:
        conn = active_connection(session, caller.user_id) if caller.user_id is not None else None
        if conn is None:
            raise AppError("not_connected")
    check_usable(conn)
    return conn


def check_usable(conn: SocialConnection) -> None:
    """A post may go out on ``conn`` only while it is ``connected``; else ``409`` with its error code."""
    if conn.status == DISCONNECTED:
        raise AppError("not_connected")
    if conn.status != CONNECTED:
        # The seller's next step differs: reconnect (token_expired, permissions_missing) or
        # fix something on Facebook first (meta_action_required).
        raise AppError(conn.last_error_code if conn.last_error_code in NEEDS_REAUTH_ANSWERS else "token_expired")


def ensure_token_valid(
    session: Session, services: Services, conn: SocialConnection, *, graph: GraphClient, info: RequestInfo = NO_REQUEST
) -> None:
    """``debug_token`` at most every ten minutes; a dead token marks the connection ``needs_reauth``.

    If Meta cannot answer, the post is still accepted: the worker checks again at publish time.
    """
    if is_fresh(conn, services.settings.token_check_max_age_seconds):
        return
    check = recheck_connection(session, services, conn, graph=graph, info=info)
    if check is not None and not check.valid:
        raise AppError(check.error_code or "token_expired")


def media_refs(body: dict[str, Any]) -> list[MediaRef]:
    """What the pre-check fetches, each named by the field a problem is reported on."""
    media = body_media(body)
    if body.get("media") is None:
        refs = [MediaRef("media_url", item.url, item.type) for item in media]
    else:
        refs = [MediaRef(f"media.{index}.url", item.url, item.type) for index, item in enumerate(media)]
    if body.get("cover_url"):
        refs.append(MediaRef("cover_url", body["cover_url"], "image", cover=True))
    return refs


def check_media(services: Services, body: dict[str, Any], *, fetcher: Fetcher | None = None) -> None:
    """``MEDIA_PRECHECK=enforce``: fetch each media URL safely and judge it for the post's targets
    (DESIGN §13.2 "Pre-check"); ``422 media_unreachable`` or ``validation_error`` naming the item."""
    settings = services.settings
    if settings.media_precheck != "enforce":
        return
    refs = media_refs(body)
    if not refs:
        return
    verdict = precheck(
        refs,
        targets=body["targets"],
        post_format=body["format"],
        allow_hosts=settings.media_precheck_allow_hosts,
        fetcher=fetcher,
    )
    error = verdict.error()
    if error is not None:
        raise error


def schedule_post(
    session: Session,
    services: Services,
    *,
    caller: PostCaller,
    payload: dict[str, Any],
    idempotency_key: str | None = None,
    graph: GraphClient | None = None,
    info: RequestInfo = NO_REQUEST,
    received_at: datetime | None = None,
    fetcher: Fetcher | None = None,
) -> ScheduleOutcome:
    """Validate, store (committed) and enqueue one post. Raises :class:`AppError`.

    ``graph`` checks the token (default: the services' client with the short status-check
    read timeout). ``received_at`` is when the request was handed over (an RQ job's
    enqueue time): a post delivered late is measured against it, so a worker backlog
    loses nothing. ``fetcher`` reads media for the pre-check (default: the safe fetcher).
    """
    settings = services.settings
    allow_hosts = settings.media_precheck_allow_hosts
    if idempotency_key:
        existing = _existing_for_key(session, caller, idempotency_key)
        if existing is not None:
            # A repeat is judged as of the first delivery, so a late retry still replays.
            replayed = validate_body(payload, now=existing.created_at, allow_hosts=allow_hosts)
            return _replay(existing, request_hash(replayed))
    body = validate_body(payload, now=received_at, allow_hosts=allow_hosts)
    digest = request_hash(body)
    conn = resolve_connection(session, caller, body["connection_id"])
    graph = graph or services.graph(timeout=(settings.graph_connect_timeout, settings.status_check_timeout))
    ensure_token_valid(session, services, conn, graph=graph, info=info)
    check_media(services, body, fetcher=fetcher)
    media = stored_media(body)
    comment_status = PENDING if body["first_comment"] is not None else None

    post = ScheduledPost(
        id=new_id("job"),
        connection_id=conn.id,
        user_id_resellio=conn.user_id_resellio,
        publish_at=body["publish_at"],
        caption=body["caption"],
        media_url=media[0]["url"] if media else None,
        link=body["link"],
        targets=list(body["targets"]),
        format=body["format"],
        media=media,
        first_comment=body["first_comment"],
        cover_url=body["cover_url"],
        status=QUEUED,
        target_rows=[
            PostTarget(target=name, status=PENDING, comment_status=comment_status)
            if name in body["targets"]
            else PostTarget(target=name, status=SKIPPED)
            for name in TARGET_NAMES
        ],
        idempotency_scope=caller.idempotency_scope if idempotency_key else None,
        idempotency_key=idempotency_key,
        request_hash=digest,
    )
    session.add(post)
    record_event(
        session,
        "post_scheduled",
        user_id=conn.user_id_resellio,
        connection_id=conn.id,
        detail={
            "job_id": post.id,
            "publish_at": body["publish_at"].isoformat(),
            "targets": list(body["targets"]),
            "by": "scheduler" if caller.is_scheduler else "user",
        },
        request_id=info.request_id,
        ip=info.ip,
    )
    try:
        session.commit()
    except IntegrityError:
        # The same Idempotency-Key arrived twice at once: the other request won.
        session.rollback()
        existing = _existing_for_key(session, caller, idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return _replay(existing, digest)
    POSTS_SCHEDULED.inc()
    enqueue_publish(session, services, post.id, at=post.publish_at)
    return ScheduleOutcome(post, created=True)
