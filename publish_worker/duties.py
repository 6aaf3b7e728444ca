"""Periodic duties inside the worker process (DESIGN §8), not RQ jobs: a Redis wipe must not erase them.

Each run is guarded by a Redis ``SET NX EX`` lock so that one worker does it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.executions import ExecutionRegistry
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from rq.utils import current_timestamp
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError

from shared import webhooks
from shared.db import utcnow
from shared.metrics import SWEEPER_REQUEUED
from shared.models import (
    CONNECTED,
    EVENT_PENDING,
    EXPIRING_SOON,
    PUBLISHING,
    QUEUED,
    ScheduledPost,
    SocialConnection,
    WebhookEvent,
    earliest_expiry,
    expiring_soon,
)
from shared.queue import enqueue_publish, make_queue, rq_time
from shared.redis_conn import key
from shared.services import Services
from shared.token_check import recheck_connection

log = logging.getLogger(__name__)

SWEEP_BATCH = 500
# A job RQ has called queued for this long is put back on the queue whatever else RQ says of
# it: a job can be stranded where RQ still calls it queued. Duplicates are harmless (the lease).
# Counted from the job's own enqueue time, not the post's due time: after an outage, posts
# long overdue whose fresh jobs wait behind a backlog must not be enqueued again every sweep
# (each new job supersedes the last, so none would reach a worker before the backlog drained).
RESCUE_AFTER = timedelta(minutes=10)


# A periodic duty: what it returns is only for tests.
Duty = Callable[[Services], object]


def job_is_live(
    queue: Queue,
    job_id: str | None,
    *,
    overdue_after: timedelta,
    running_counts: bool = True,
    stranded_after: timedelta | None = None,
) -> bool:
    """The job will still run: really waiting in the queue (for less than ``stranded_after``,
    when given), scheduled and not long overdue (no scheduler moves an overdue job while the
    one holding RQ's scheduler lock is dead), or, if it counts, running."""
    if not job_id:
        return False
    try:
        job = Job.fetch(job_id, connection=queue.connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return False
    status = job.get_status()
    if status == JobStatus.QUEUED:
        # A job RQ's own worker has taken stays "queued" until it starts (under a burst, for
        # seconds): enqueuing its post again would supersede it, and send the post to the back
        # of the queue — also behind a backlog older than ``stranded_after``. This worker starts
        # a job in the step that registers its execution, right after taking it: a job it has
        # taken is queued only for that instant (the re-read below sees it started).
        if _taken(queue, job_id):
            return True
        if _older_than(job.enqueued_at, stranded_after):
            return False
        if queue.get_job_position(job_id) is not None:
            return True
        # On no list: stranded, or it moved on (taken, or started) since it was read.
        try:
            job.refresh()  # type: ignore[no-untyped-call]  # unannotated in RQ 3.0
        except NoSuchJobError:
            return False
        status = job.get_status()
        if status == JobStatus.QUEUED:
            return _taken(queue, job_id)
    if status == JobStatus.STARTED:
        if _older_than(job.started_at, stranded_after):
            return False  # far past any job's time limit: its worker is gone
        return running_counts
    if status == JobStatus.SCHEDULED:
        registry = ScheduledJobRegistry(  # type: ignore[no-untyped-call]  # RQ 3.0 leaves this __init__ unannotated
            queue.name, connection=queue.connection, serializer=JSONSerializer
        )
        try:
            return registry.get_scheduled_time(job) > utcnow() - overdue_after
        except NoSuchJobError:
            return False
    return status == JobStatus.DEFERRED


def _taken(queue: Queue, job_id: str) -> bool:
    """A worker has taken the job and not started it yet: it is on the queue's intermediate list
    and its execution, registered in the job's execution registry when it was taken, has not
    run out (RQ gives it the job's timeout plus two minutes there: 230 s with the default lease),
    so the post of a worker that died with it is rescued by the first sweep after that. RQ's own
    worker leaves a job so; this one registers the execution and starts the job in one step
    (``PoolPublishWorker.start_execution``)."""
    if queue.connection.lpos(queue.intermediate_queue_key, job_id) is None:
        return False
    executions = ExecutionRegistry(job_id=job_id, connection=queue.connection)
    return bool(queue.connection.zcount(executions.key, current_timestamp(), "+inf"))


def _older_than(moment: datetime | None, age: timedelta | None) -> bool:
    """``moment`` (one of RQ's times; None: unknown) lies more than ``age`` (None: no limit) ago."""
    when = rq_time(moment)
    return age is not None and when is not None and when < utcnow() - age


def sweep(ctx: Services) -> dict[str, int]:
    """Re-enqueue due posts whose RQ job is gone, and posts whose lease expired."""
    now = utcnow()
    horizon = now + timedelta(seconds=2 * ctx.settings.sweep_interval_seconds)
    counts = {"missing_job": 0, "lease_expired": 0}
    queue = make_queue(ctx.redis)
    # A live scheduler moves a due job within a second or two.
    overdue_after = timedelta(seconds=max(5.0, 2 * ctx.settings.sweep_interval_seconds))
    with ctx.session() as session:
        waiting = session.scalars(
            select(ScheduledPost)
            .where(ScheduledPost.status == QUEUED, ScheduledPost.publish_at <= horizon)
            .order_by(ScheduledPost.publish_at)
            .limit(SWEEP_BATCH)
        ).all()
        for post in waiting:
            if not job_is_live(queue, post.rq_job_id, overdue_after=overdue_after, stranded_after=RESCUE_AFTER):
                # Under a burst the loop takes a while: the post may have been taken (its job
                # started, or even finished) since it was read.
                checked = post.rq_job_id
                session.refresh(post)
                if post.status != QUEUED or post.rq_job_id != checked:
                    continue  # taken, or given a new job (an edit, a retry) meanwhile
                enqueue_publish(session, ctx, post.id, at=post.publish_at)
                counts["missing_job"] += 1
        expired = session.scalars(
            select(ScheduledPost)
            .where(ScheduledPost.status == PUBLISHING, ScheduledPost.lease_expires_at < now)
            .limit(SWEEP_BATCH)
        ).all()
        for post in expired:
            # Its continuation may just be waiting behind a backlog; if not, or for too long,
            # the owner is gone (crashed, or the job vanished) and a fresh job takes over.
            # A job still "started" under an expired lease belongs to a worker that is gone.
            expired_at = post.lease_expires_at or now  # never None here: the query compared it
            if expired_at > now - RESCUE_AFTER and job_is_live(
                queue, post.rq_job_id, overdue_after=overdue_after, running_counts=False
            ):
                continue
            enqueue_publish(session, ctx, post.id)
            counts["lease_expired"] += 1
    for reason, count in counts.items():
        if count:
            SWEEPER_REQUEUED.labels(reason=reason).inc(count)
            log.info("sweeper re-enqueued %d post(s): %s", count, reason)
    return counts


def check_tokens(ctx: Services) -> int:
    """Daily: mark connections whose token died ``needs_reauth`` before a post fails on them."""
    stale_before = utcnow() - timedelta(seconds=ctx.settings.token_daily_check_seconds)
    marked = 0
    graph = ctx.graph()
    with ctx.session() as session:
        conns = session.scalars(
            select(SocialConnection).where(
                SocialConnection.status == CONNECTED,
                or_(
                    SocialConnection.token_last_checked_at.is_(None),
                    and_(SocialConnection.token_last_checked_at < stale_before),
                ),
            )
        ).all()
        for conn in conns:
            check = recheck_connection(session, ctx, conn, graph=graph)
            marked += 1 if check is not None and not check.valid else 0
    if marked:
        log.info("daily token check: %d connection(s) need reconnecting", marked)
    return marked


def sweep_webhooks(ctx: Services, now: datetime | None = None) -> int:
    """Re-enqueue outcome events that are due but have no live delivery job (Redis was wiped,
    an enqueue failed, a worker died mid-attempt): a committed event is never lost (DESIGN §13.3)."""
    now = now or utcnow()
    queue = make_queue(ctx.redis)
    overdue_after = timedelta(seconds=max(5.0, 2 * ctx.settings.sweep_interval_seconds))
    requeued = 0
    with ctx.session() as session:
        due = session.scalars(
            select(WebhookEvent)
            .where(WebhookEvent.status == EVENT_PENDING, WebhookEvent.next_attempt_at <= now)
            .order_by(WebhookEvent.next_attempt_at)
            .limit(SWEEP_BATCH)
        ).all()
        for event in due:
            # Its claim is over, so a job still "started" died with its worker (running_counts=False).
            if job_is_live(queue, event.rq_job_id, overdue_after=overdue_after, running_counts=False):
                continue
            rq_job_id = webhooks.reserve_job(session, event.id, WebhookEvent.status == EVENT_PENDING)
            if rq_job_id is not None and webhooks.enqueue(ctx.redis, event.id, rq_job_id):
                requeued += 1
    if requeued:
        SWEEPER_REQUEUED.labels(reason="webhook_event").inc(requeued)
        log.info("sweeper re-enqueued %d outcome event(s)", requeued)
    return requeued


def announce_expiring(ctx: Services, now: datetime | None = None) -> int:
    """Daily: a ``connection.expiring_soon`` event for each connected connection whose token
    expires within 14 days, once per connection per expiry date (a reconnect moves the date)."""
    now = now or utcnow()
    horizon = now + EXPIRING_SOON
    announced = 0
    with ctx.session() as session:
        if webhooks.outbox_for(session) is None:
            return 0
        conns = session.scalars(
            select(SocialConnection).where(
                SocialConnection.status == CONNECTED,
                or_(SocialConnection.expires_at < horizon, SocialConnection.data_access_expires_at < horizon),
            )
        ).all()
        for conn in conns:
            expiry = earliest_expiry(conn)
            if expiry is None or not expiring_soon(conn, now):
                continue
            key = webhooks.expiry_key(conn, expiry)
            if webhooks.already_recorded(session, key):
                continue
            webhooks.connection_event(session, conn, webhooks.CONNECTION_EXPIRING_SOON, dedupe_key=key)
            try:
                session.commit()
            except IntegrityError:  # another run announced it just now
                session.rollback()
                continue
            announced += 1
    if announced:
        log.info("%d connection(s) expire within %d days", announced, EXPIRING_SOON.days)
    return announced


def daily(ctx: Services) -> None:
    """The daily duty: dead tokens first (those connections need a reconnect, not a warning)."""
    check_tokens(ctx)
    announce_expiring(ctx)


def run_once(ctx: Services, name: str, ttl_seconds: float, duty: Duty) -> bool:
    """Run ``duty`` if this worker wins the lock for this period."""
    try:
        if not ctx.redis.set(key("duty", name), b"1", nx=True, ex=max(1, int(ttl_seconds))):
            return False
    except RedisError as exc:
        log.warning("duty %s skipped: redis unavailable (%s)", name, type(exc).__name__)
        return False
    duty(ctx)
    return True


class PeriodicDuty(threading.Thread):
    """A daemon thread running ``duty`` every ``interval`` seconds, when this worker wins its lock.

    Nothing it meets may stop it: an error is logged and the next tick tries again.
    """

    def __init__(
        self, ctx: Services, stop: threading.Event, name: str, duty: Duty, interval: float, lock_seconds: float
    ):
        super().__init__(name=f"duty-{name}", daemon=True)
        self.ctx, self.stop_event, self.duty_name, self.duty = ctx, stop, name, duty
        self.interval, self.lock_seconds = interval, lock_seconds

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                run_once(self.ctx, self.duty_name, self.lock_seconds, self.duty)
            except Exception:  # noqa: BLE001 - a periodic duty must outlive any one failure
                log.exception("periodic duty %s failed; trying again next tick", self.duty_name)
            self.stop_event.wait(self.interval)


def periodic_duties(ctx: Services, stop: threading.Event) -> list[PeriodicDuty]:
    """The sweepers (posts, outcome events) every ``sweep_interval_seconds``; the daily token
    check and expiry warnings on their own thread.

    Every worker starts its duties, so this is also where the worker's services are bound to
    the outbox: its sessions record outcome events when RESELLIO_WEBHOOK_URL is set.
    """
    webhooks.bind(ctx)
    interval = ctx.settings.sweep_interval_seconds
    # The sweep lock lives slightly less than the interval, so the next tick can take it.
    lock = max(1, int(interval * 0.8))
    duties = [
        PeriodicDuty(ctx, stop, "sweep", sweep, interval, lock),
        PeriodicDuty(ctx, stop, "token_check", daily, 60, ctx.settings.token_daily_check_seconds),
    ]
    if ctx.settings.webhook_url:
        duties.append(PeriodicDuty(ctx, stop, "webhook_sweep", sweep_webhooks, interval, lock))
    return duties
