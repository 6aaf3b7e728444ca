"""Scheduling: create, read, list, edit, retry and cancel posts (DESIGN §4, §13.3)."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from datetime import datetime
from typing import Any, cast

from flask import Blueprint, request
from sqlalchemy import CursorResult, and_, or_, select, update

from connect_service.auth import current_caller, require_caller, require_user
from connect_service.extensions import db, services
from connect_service.parsing import json_body_raw, query_args
from connect_service.request_context import request_info
from connect_service.responses import answer, responds
from connect_service.schemas import CancelOut, PostListOut, PostListQuery, PostOut, ScheduleOut
from shared.errors import AppError
from shared.models import CANCELLED, QUEUED, ScheduledPost
from shared.post_changes import edit_post, retry_post
from shared.posts import cancel_rq_job
from shared.scheduling import PostCaller, schedule_post

log = logging.getLogger(__name__)

bp = Blueprint("schedule", __name__, url_prefix="/api/meta")

MAX_IDEMPOTENCY_KEY = 255


def _post_caller() -> PostCaller:
    caller = current_caller()
    return PostCaller(user_id=caller.user_id, is_scheduler=caller.is_scheduler)


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise AppError("validation_error", fields={"Idempotency-Key": ["Must be 1 to 255 printable characters."]})
    return key


@bp.post("/schedule")
@responds(ScheduleOut)
@require_caller(allow_scheduler=True)
def create():
    """Store a post and queue it for ``publish_at``."""
    payload = json_body_raw()
    key = _idempotency_key()
    outcome = schedule_post(
        db.session(), services(), caller=_post_caller(), payload=payload, idempotency_key=key, info=request_info()
    )
    return answer(ScheduleOut, outcome.post)


def _visible_post(job_id: str, *, for_update: bool = False) -> ScheduledPost:
    """The post if the caller may see it; otherwise ``not_found`` (no existence oracle)."""
    query = select(ScheduledPost).where(ScheduledPost.id == job_id)
    caller = current_caller()
    if not caller.is_scheduler:
        query = query.where(ScheduledPost.user_id_resellio == caller.user_id)
    post = db.session.scalars(query).first()
    if post is None:
        raise AppError("not_found")
    return post


@bp.get("/schedule/<job_id>")
@responds(PostOut)
@require_caller(allow_scheduler=True)
def read(job_id: str):
    return answer(PostOut, _visible_post(job_id))


def _encode_cursor(post: ScheduledPost) -> str:
    raw = json.dumps([post.created_at.isoformat(), post.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, post_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        created = datetime.fromisoformat(created)
    except (ValueError, TypeError, binascii.Error):
        created, post_id = None, ""
    if created is None or created.tzinfo is None or not str(post_id).isprintable():
        raise AppError("validation_error", fields={"cursor": ["Invalid cursor."]})
    return created, str(post_id)


@bp.get("/schedule")
@responds(PostListOut)
@require_caller(allow_scheduler=True)
def list_posts():
    """The caller's posts, newest first, ``?status=&limit=&cursor=``."""
    args = query_args(PostListQuery())
    caller = current_caller()
    query = select(ScheduledPost)
    if caller.is_scheduler:
        if not args["connection_id"]:
            raise AppError("validation_error", fields={"connection_id": ["Missing data for required field."]})
    else:
        query = query.where(ScheduledPost.user_id_resellio == caller.user_id)
    if args["connection_id"]:
        query = query.where(ScheduledPost.connection_id == args["connection_id"])
    if args["status"]:
        query = query.where(ScheduledPost.status == args["status"])
    if args["cursor"]:
        created, post_id = _decode_cursor(args["cursor"])
        query = query.where(
            or_(
                ScheduledPost.created_at < created,
                and_(ScheduledPost.created_at == created, ScheduledPost.id < post_id),
            )
        )
    limit = args["limit"]
    posts = list(
        db.session.scalars(query.order_by(ScheduledPost.created_at.desc(), ScheduledPost.id.desc()).limit(limit + 1))
    )
    next_cursor = _encode_cursor(posts[limit - 1]) if len(posts) > limit else None
    return answer(PostListOut, {"items": posts[:limit], "next_cursor": next_cursor})


@bp.patch("/schedule/<job_id>")
@responds(PostOut)
@require_user
def edit(job_id: str):
    """A JSON merge patch of a queued post (sellers only): the merged post is validated as
    ``POST /schedule`` validates a body; ``409 not_editable`` once publishing has started."""
    post = _visible_post(job_id)
    patch = json_body_raw()
    return answer(PostOut, edit_post(db.session(), services(), post, patch, info=request_info()))


@bp.post("/schedule/<job_id>/retry")
@responds(PostOut)
@require_caller(allow_scheduler=True)
def retry(job_id: str):
    """Re-queue the targets that failed with a retryable cause (sellers and the scheduler)."""
    post = _visible_post(job_id)
    payload = json_body_raw(allow_empty=True)
    by = "scheduler" if current_caller().is_scheduler else "user"
    return answer(PostOut, retry_post(db.session(), services(), post, payload, by=by, info=request_info()))


@bp.delete("/schedule/<job_id>")
@responds(CancelOut)
@require_user
def cancel(job_id: str):
    """Cancel a post that has not started publishing."""
    post = _visible_post(job_id)
    if post.status != CANCELLED:
        result = db.session.execute(
            update(ScheduledPost)
            .where(ScheduledPost.id == post.id, ScheduledPost.status == QUEUED)
            .values(status=CANCELLED, error_code=None, error_message="Dibatalkan.")
        )
        changed = cast(CursorResult[Any], result).rowcount  # an UPDATE answers a CursorResult
        if not changed:
            db.session.rollback()
            raise AppError("not_cancellable")
        db.session.commit()
        cancel_rq_job(services().redis, post.rq_job_id)
    return answer(CancelOut, post)
