"""Periodic duties inside the worker process (DESIGN §8), not RQ jobs: a Redis wipe must not erase them.

Each run is guarded by a Redis ``SET NX EX`` lock so that one worker does it.
"""
from __future__ import annotations

import logging
import threading
from datetime import timedelta

from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import SQLAlchemyError

from shared.crypto import DecryptionError
from shared.db import utcnow
from shared.graph import GraphError, GraphTransportError
from shared.metrics import SWEEPER_REQUEUED
from shared.models import CONNECTED, PUBLISHING, QUEUED, ScheduledPost, SocialConnection
from shared.queue import enqueue_publish, make_queue
from shared.redis_conn import key
from shared.token_check import apply_token_check, check_token
from shared.tokens import page_token

log = logging.getLogger(__name__)

LIVE_JOB_STATES = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED}
SWEEP_BATCH = 500


def job_is_live(redis, job_id: str | None) -> bool:
    if not job_id:
        return False
    try:
        return Job.fetch(job_id, connection=redis, serializer=JSONSerializer).get_status() in LIVE_JOB_STATES
    except NoSuchJobError:
        return False


def sweep(ctx) -> dict[str, int]:
    """Re-enqueue due posts whose RQ job is gone, and posts whose lease expired."""
    now = utcnow()
    horizon = now + timedelta(seconds=2 * ctx.settings.sweep_interval_seconds)
    counts = {"missing_job": 0, "lease_expired": 0}
    queue = make_queue(ctx.redis)
    with ctx.session() as session:
        waiting = session.scalars(
            select(ScheduledPost).where(ScheduledPost.status == QUEUED, ScheduledPost.publish_at <= horizon)
            .order_by(ScheduledPost.publish_at).limit(SWEEP_BATCH)).all()
        for post in waiting:
            if not job_is_live(ctx.redis, post.rq_job_id):
                enqueue_publish(session, queue, ctx.settings, post.id, at=post.publish_at)
                counts["missing_job"] += 1
        expired = session.scalars(
            select(ScheduledPost).where(ScheduledPost.status == PUBLISHING, ScheduledPost.lease_expires_at < now)
            .limit(SWEEP_BATCH)).all()
        for post in expired:
            # The old owner is gone (crashed, or its continuation job vanished): a fresh job takes over.
            enqueue_publish(session, queue, ctx.settings, post.id)
            counts["lease_expired"] += 1
    for reason, count in counts.items():
        if count:
            SWEEPER_REQUEUED.labels(reason=reason).inc(count)
            log.info("sweeper re-enqueued %d post(s): %s", count, reason)
    return counts


def check_tokens(ctx) -> int:
    """Daily: mark connections whose token died ``needs_reauth`` before a post fails on them."""
    stale_before = utcnow() - timedelta(seconds=ctx.settings.token_daily_check_seconds)
    marked = 0
    graph = ctx.graph()
    with ctx.session() as session:
        conns = session.scalars(select(SocialConnection).where(
            SocialConnection.status == CONNECTED,
            or_(SocialConnection.token_last_checked_at.is_(None),
                and_(SocialConnection.token_last_checked_at < stale_before)))).all()
        for conn in conns:
            try:
                check = check_token(graph, page_token(conn, ctx.cipher) or "")
            except (GraphError, GraphTransportError, DecryptionError) as exc:
                log.warning("daily token check skipped: %s", type(exc).__name__, extra={"connection_id": conn.id})
                continue
            apply_token_check(session, conn, check)
            session.commit()
            marked += 0 if check.valid else 1
    if marked:
        log.info("daily token check: %d connection(s) need reconnecting", marked)
    return marked


def run_once(ctx, name: str, ttl_seconds: int, duty) -> bool:
    """Run ``duty`` if this worker wins the lock for this period."""
    try:
        if not ctx.redis.set(key("duty", name), b"1", nx=True, ex=max(1, int(ttl_seconds))):
            return False
    except RedisError as exc:
        log.warning("duty %s skipped: redis unavailable (%s)", name, type(exc).__name__)
        return False
    duty(ctx)
    return True


class PeriodicDuties(threading.Thread):
    """A daemon thread: the sweeper every ``sweep_interval_seconds``, the token check daily."""

    def __init__(self, ctx, stop: threading.Event):
        super().__init__(name="periodic-duties", daemon=True)
        self.ctx = ctx
        self.stop_event = stop

    def run(self) -> None:
        interval = self.ctx.settings.sweep_interval_seconds
        while not self.stop_event.is_set():
            try:
                # The lock lives slightly less than the interval, so the next tick can take it.
                run_once(self.ctx, "sweep", max(1, int(interval * 0.8)), sweep)
                run_once(self.ctx, "token_check", self.ctx.settings.token_daily_check_seconds, check_tokens)
            except (SQLAlchemyError, RedisError):
                log.exception("periodic duty failed; trying again next tick")
            self.stop_event.wait(interval)
