"""The per-post lease (DESIGN §8 step 1): one run at a time, and a late or duplicate job is a no-op."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, or_, update
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


_POSTS = cast(Table, ScheduledPost.__table__)
_TARGETS = cast(Table, PostTarget.__table__)
_TIME = _POSTS.c.lease_expires_at.type

# The lease statements, built once: each call only binds its values (the compiled SQL is cached
# per statement and set of columns, so building them anew per call was pure overhead). They run
# on the session's connection (in its transaction) rather than through ``Session.execute``,
# whose ORM machinery these plain UPDATEs do not need: several a post, most of their CPU.
_TAKE = (
    update(_POSTS)
    .where(
        _POSTS.c.id == bindparam("post_id"),
        or_(
            and_(_POSTS.c.status == QUEUED, _POSTS.c.publish_at <= bindparam("due_by", type_=_TIME)),
            and_(_POSTS.c.status == PUBLISHING, _POSTS.c.lease_expires_at < bindparam("now", type_=_TIME)),
        ),
    )
    .values(
        status=PUBLISHING,
        lease_owner=bindparam("owner"),
        lease_expires_at=bindparam("expires", type_=_TIME),
        takes=_POSTS.c.takes + 1,
        started_at=func.coalesce(_POSTS.c.started_at, bindparam("started", type_=_TIME)),
        next_attempt_at=None,
    )
)
# The same, for a job that is one of the post's (``pub-<post id>-<n>``): only while the post still
# names it, so a job an edit or a retry has replaced does nothing (checked in this one statement
# rather than by a query of its own before it).
_TAKE_AS_JOB = _TAKE.where(or_(_POSTS.c.rq_job_id.is_(None), _POSTS.c.rq_job_id == bindparam("job_id")))
_RESUME = (
    update(_POSTS)
    .where(
        _POSTS.c.id == bindparam("post_id"),
        _POSTS.c.status == PUBLISHING,
        _POSTS.c.lease_owner == bindparam("carried"),
    )
    .values(lease_owner=bindparam("owner"), lease_expires_at=bindparam("expires", type_=_TIME), next_attempt_at=None)
)
# The values to write are the execution's other parameters (their names are the columns').
_RECORD_POST = update(_POSTS).where(
    _POSTS.c.id == bindparam("fence_post_id"),
    _POSTS.c.lease_owner == bindparam("fence_owner"),
    _POSTS.c.status == PUBLISHING,
)
_RECORD_TARGET = update(_TARGETS).where(
    _TARGETS.c.post_id == bindparam("fence_post_id"), _TARGETS.c.target == bindparam("fence_target")
)


def take(session: Session, post_id: str, owner: str, lease_seconds: float, *, job_id: str | None = None) -> bool:
    """Atomically move a due ``queued`` post (or one whose lease expired) to ``publishing``.

    With ``job_id`` (the post's own ``pub-<post id>-<n>``), only while the post still names that
    job (or none): a superseded job takes nothing. The caller commits (the row stays locked until
    then, so no other run can take it meanwhile)."""
    now = utcnow()
    values = {
        "post_id": post_id,
        "due_by": now + EARLY_TOLERANCE,
        "now": now,
        "owner": owner,
        "expires": now + timedelta(seconds=lease_seconds),
        "started": now,
    }
    if job_id is None:
        result = session.connection().execute(_TAKE, values)
    else:
        result = session.connection().execute(_TAKE_AS_JOB, {**values, "job_id": job_id})
    return affected_rows(result) == 1


def resume(session: Session, post_id: str, owner: str, new_owner: str, lease_seconds: float) -> bool:
    """A continuation job carrying the lease takes it over under a fresh owner token.

    Rotating the token fences duplicate deliveries of the same continuation: only
    the first one finds ``owner`` still there. The caller commits, as for :func:`take`.
    """
    result = session.connection().execute(
        _RESUME,
        {
            "post_id": post_id,
            "carried": owner,
            "owner": new_owner,
            "expires": utcnow() + timedelta(seconds=lease_seconds),
        },
    )
    return affected_rows(result) == 1


def record(
    session: Session,
    post: ScheduledPost,
    owner: str,
    lease_seconds: float,
    *,
    target: PostTarget | None = None,
    target_values: dict[str, Any] | None = None,
    targets: Iterable[tuple[PostTarget, dict[str, Any]]] = (),
    commit: bool = True,
    **values: Any,
) -> None:
    """Write step results only while holding the lease (and extend it); commit at once.

    ``target_values`` go to the ``target`` row (and each of ``targets``' values to its row) in
    the same transaction, after the fenced UPDATE of the post (which locks its row, so a run
    that lost the lease writes nothing). The loaded objects are brought up to date without
    being marked dirty, so nothing is ever written outside these UPDATEs. With ``commit=False``
    the caller commits (adding its own rows to the same transaction).
    """
    writes = [*targets, *([(target, target_values)] if target is not None and target_values else [])]
    values.setdefault("lease_expires_at", utcnow() + timedelta(seconds=lease_seconds))
    connection = session.connection()  # asked once: each ask walks the session's transaction states
    result = connection.execute(_RECORD_POST, {"fence_post_id": post.id, "fence_owner": owner, **values})
    if affected_rows(result) != 1:
        session.rollback()
        raise LeaseLost(post.id)
    for row, row_values in writes:
        if row_values:
            connection.execute(_RECORD_TARGET, {"fence_post_id": post.id, "fence_target": row.target, **row_values})
    if commit:
        session.commit()
    refresh(post, values)
    for row, row_values in writes:
        refresh(row, row_values)


def refresh(loaded: ScheduledPost | PostTarget, values: dict[str, Any]) -> None:
    """Bring a loaded object up to date with values written (or about to be) without marking it dirty."""
    for key, value in values.items():
        set_committed_value(loaded, key, value)


def hold_until(
    session: Session,
    post: ScheduledPost,
    owner: str,
    lease_seconds: float,
    at: datetime,
    *,
    targets: Iterable[tuple[PostTarget, dict[str, Any]]] = (),
    **values: Any,
) -> None:
    """Keep the lease through a wait (a retry or a status poll), and past it by one lease."""
    record(
        session,
        post,
        owner,
        lease_seconds,
        targets=targets,
        **values,
        next_attempt_at=at,
        lease_expires_at=at + timedelta(seconds=lease_seconds),
    )
