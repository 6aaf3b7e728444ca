"""The per-post lease (DESIGN §8 step 1): one run at a time, and a late or duplicate job is a no-op."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from shared.db import affected_rows, utcnow
from shared.models import PUBLISHING, QUEUED, PostTarget, ScheduledPost

# A job may start this much before publish_at (clock skew between hosts).
EARLY_TOLERANCE = timedelta(seconds=2)


class LeaseLost(Exception):
    """Another run owns the post now; this one must stop without writing."""


def new_owner() -> str:
    return "lease-" + secrets.token_hex(12)


def take(session: Session, post_id: str, owner: str, lease_seconds: float) -> bool:
    """Atomically move a due ``queued`` post (or one whose lease expired) to ``publishing``."""
    now = utcnow()
    due = and_(ScheduledPost.status == QUEUED, ScheduledPost.publish_at <= now + EARLY_TOLERANCE)
    abandoned = and_(ScheduledPost.status == PUBLISHING, ScheduledPost.lease_expires_at < now)
    result = session.execute(
        update(ScheduledPost)
        .where(ScheduledPost.id == post_id, or_(due, abandoned))
        .values(
            status=PUBLISHING,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            takes=ScheduledPost.takes + 1,
            started_at=func.coalesce(ScheduledPost.started_at, now),
            next_attempt_at=None,
        )
    )
    count = affected_rows(result)
    session.commit()
    return count == 1


def resume(session: Session, post_id: str, owner: str, new_owner: str, lease_seconds: float) -> bool:
    """A continuation job carrying the lease takes it over under a fresh owner token.

    Rotating the token fences duplicate deliveries of the same continuation: only
    the first one finds ``owner`` still there.
    """
    result = session.execute(
        update(ScheduledPost)
        .where(ScheduledPost.id == post_id, ScheduledPost.status == PUBLISHING, ScheduledPost.lease_owner == owner)
        .values(
            lease_owner=new_owner, lease_expires_at=utcnow() + timedelta(seconds=lease_seconds), next_attempt_at=None
        )
    )
    count = affected_rows(result)
    session.commit()
    return count == 1


def record(
    session: Session,
    post: ScheduledPost,
    owner: str,
    lease_seconds: float,
    *,
    target: PostTarget | None = None,
    target_values: dict[str, Any] | None = None,
    **values: Any,
) -> None:
    """Write step results only while holding the lease (and extend it); commit at once.

    ``target_values`` go to the ``target`` row in the same transaction, after the fenced
    UPDATE of the post (which locks its row, so a run that lost the lease writes nothing).
    The loaded objects are brought up to date without being marked dirty, so nothing is
    ever written outside these UPDATEs.
    """
    values.setdefault("lease_expires_at", utcnow() + timedelta(seconds=lease_seconds))
    result = session.execute(
        update(ScheduledPost)
        .where(ScheduledPost.id == post.id, ScheduledPost.lease_owner == owner, ScheduledPost.status == PUBLISHING)
        .values(**values),
        execution_options={"synchronize_session": False},
    )
    if affected_rows(result) != 1:
        session.rollback()
        raise LeaseLost(post.id)
    if target is not None and target_values:
        session.execute(
            update(PostTarget)
            .where(PostTarget.post_id == post.id, PostTarget.target == target.target)
            .values(**target_values),
            execution_options={"synchronize_session": False},
        )
    session.commit()
    for key, value in values.items():
        set_committed_value(post, key, value)
    if target is not None:
        for key, value in (target_values or {}).items():
            set_committed_value(target, key, value)


def hold_until(session: Session, post: ScheduledPost, owner: str, lease_seconds: float, at: datetime) -> None:
    """Keep the lease through a wait (a retry or a status poll), and past it by one lease."""
    record(
        session, post, owner, lease_seconds, next_attempt_at=at, lease_expires_at=at + timedelta(seconds=lease_seconds)
    )
