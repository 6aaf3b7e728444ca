"""The RQ job functions of queue ``meta-publish`` (DESIGN §8).

The worker runs only the functions named in ``shared.queue.JOB_FUNCTIONS`` (the
allow-list); a job function added here must be added there too.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial
from typing import Any

from rq import get_current_job
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, joinedload

from publish_worker import lease
from publish_worker.context import get_context
from publish_worker.pacing import PAGE_SLOTS, accounts_of, release_connection
from publish_worker.publishing import PublishRun
from publish_worker.side_by_side import RunDatabase
from shared.audit import record_event
from shared.errors import AppError
from shared.log import log_context
from shared.models import ScheduledPost, SocialConnection
from shared.queue import rq_time
from shared.scheduling import PostCaller, schedule_post
from shared.services import Services

log = logging.getLogger(__name__)


def publish_post(post_id: str, lease: str | None = None) -> str:
    """Publish one post. A duplicate or late job (the post is not ours to take) does nothing.

    ``lease`` is carried by continuation jobs (retries, container status checks).
    Known failures are recorded on the post; an unexpected error raises.
    """
    return _publish(post_id, lease)


def _publish(post_id: str, carried: str | None) -> str:
    ctx = get_context()
    with log_context(job_id=post_id), ctx.session() as session:
        # The Page's turn is waited for before the lease is taken, holding no database connection;
        # when the Page has room at once, the take follows on the same connection as the read. A
        # job's fresh take on PostgreSQL is one statement: the read before it needs no transaction.
        job_id = _own_job_id(post_id) if carried is None else None
        taking_in_one = job_id if session.get_bind().dialect.name == "postgresql" else None
        if taking_in_one is not None:
            lease.statements_alone(session)
        accounts = accounts_of(session, post_id)
        limit = ctx.settings.worker_page_concurrency
        with PAGE_SLOTS.hold(accounts, limit, before_wait=partial(release_connection, session)):
            if taking_in_one is not None:
                return _take_and_run(ctx, session, post_id, taking_in_one)
            return _run(ctx, session, post_id, carried, job_id)


def _take_and_run(ctx: Services, session: Session, post_id: str, job_id: str) -> str:
    owner = lease.new_owner()
    taken = lease.take_and_load(session, post_id, owner, ctx.settings.lease_seconds, job_id=job_id)
    if taken is None:
        return _not_taken(session)
    session.commit()
    return _publish_taken(ctx, session, taken[0], owner, None)  # ``taken`` keeps the connection loaded


def _run(ctx: Services, session: Session, post_id: str, carried: str | None, job_id: str | None) -> str:
    owner = lease.new_owner()
    # The lease is taken and the post read in one transaction (one commit, not two).
    if carried is None:
        mine = lease.take(session, post_id, owner, ctx.settings.lease_seconds, job_id=job_id)
    else:
        mine = lease.resume(session, post_id, carried, owner, ctx.settings.lease_seconds)
    if not mine:
        return _not_taken(session)
    # Referenced here: the session keeps loaded objects only while they are referenced.
    post, _conn = load_post(session, post_id)
    if post is None:  # cannot happen (its row is locked by the take), but never leave the take behind
        session.rollback()
        raise LookupError(f"post {post_id} is gone")
    session.commit()
    return _publish_taken(ctx, session, post, owner, carried)


def _not_taken(session: Session) -> str:
    session.rollback()
    log.info("post not taken (published, cancelled, not due, superseded by a newer job, or held by another run)")
    return "skipped"


def _publish_taken(ctx: Services, session: Session, post: ScheduledPost, owner: str, carried: str | None) -> str:
    with log_context(connection_id=post.connection_id):
        try:
            db = RunDatabase(session)
            return PublishRun(ctx, db, post, owner, fresh_take=carried is None).run()
        except lease.LeaseLost:
            session.rollback()
            log.warning("lease lost mid-run; another run carries on")
            return "lease_lost"


def _own_job_id(post_id: str) -> str | None:
    """This RQ job's id if it is one of the post's (``pub-<post id>-<n>``): such a job takes the
    post only while the post still names it, since an edit or a retry enqueues a newer one (a
    crash re-run or a duplicate delivery of the current one still takes the lease as before)."""
    job = get_current_job()
    if job is None or not job.id.startswith(f"pub-{post_id}-"):
        return None
    return job.id


_LOAD_POST = (
    select(ScheduledPost, SocialConnection)
    .outerjoin(SocialConnection, SocialConnection.id == ScheduledPost.connection_id)
    .where(ScheduledPost.id == bindparam("post_id"))
    .options(joinedload(ScheduledPost.target_rows))
)


def load_post(session: Session, post_id: str) -> tuple[ScheduledPost | None, SocialConnection | None]:
    """The post with its target rows, and its connection, in one query (while the connection is
    referenced, the run's ``session.get`` finds it in the session and asks nothing more)."""
    row = session.execute(_LOAD_POST, {"post_id": post_id}).unique().first()
    return (row[0], row[1]) if row is not None else (None, None)


def publish_request(payload: dict[str, Any]) -> dict[str, Any]:
    """A post handed over on RQ by the Resellio scheduler: recorded and queued like any other.

    ``payload`` is the ``POST /api/meta/schedule`` body plus ``user_id_resellio``
    and a required ``idempotency_key``, so a duplicate delivery is harmless.
    Invalid input is a known failure: logged and answered, not raised.
    """
    ctx = get_context()
    body = dict(payload) if isinstance(payload, dict) else {}
    user_id = body.pop("user_id_resellio", None)
    key = body.pop("idempotency_key", None)
    problems = {
        name: ["Must be a non-empty string of at most 255 printable characters."]
        for name, value in (("user_id_resellio", user_id), ("idempotency_key", key))
        if not _printable(value)
    }
    with ctx.session() as session:
        try:
            if problems:
                raise AppError("validation_error", fields=problems)
            outcome = schedule_post(
                session,
                ctx,
                caller=PostCaller(user_id=user_id, via="rq"),
                payload=body,
                idempotency_key=key,
                graph=ctx.graph(),
                received_at=_enqueued_at(),
            )
        except AppError as exc:
            session.rollback()
            # Recorded, so a refused hand-over is visible to operators and never silently lost.
            record_event(
                session,
                "post_failed",
                user_id=user_id if _printable(user_id) else None,
                error_code=exc.error_code,
                detail={
                    "via": "publish_request",
                    "fields": exc.fields_in("id"),
                    "idempotency_key": key if _printable(key) else None,
                },
            )
            session.commit()
            log.warning("publish_request refused: %s", exc.error_code)
            return {"ok": False, "error_code": exc.error_code, "fields": exc.fields_in("id")}
        return {"ok": True, "job_id": outcome.post.id, "created": outcome.created}


def _printable(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value.strip()) and len(value) <= 255 and value.isprintable()


def _enqueued_at() -> datetime | None:
    """When the scheduler handed the request over (the RQ job's enqueue time), if known."""
    job = get_current_job()
    return rq_time(job.enqueued_at) if job is not None else None
