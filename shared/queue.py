"""The queue contract (DESIGN §8): queue name, job functions, JSON serializer, job ids.

JSON alone does not stop RQ from importing and calling whatever a job names, so every
Queue, Worker and the scheduler use ``PublishJob``: it runs only the functions of
``JOB_FUNCTIONS`` and moves anything else to the failed registry unrun (DESIGN §13.1, §13.5).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.exceptions import DeserializationError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer
from rq.types import FailureCallbackType, SuccessCallbackType
from rq.utils import import_attribute
from sqlalchemy import String, cast, update
from sqlalchemy.orm import Session

from shared.db import utcnow
from shared.metrics import JOBS_REFUSED
from shared.models import ScheduledPost
from shared.services import Services
from shared.settings import Settings

log = logging.getLogger(__name__)

QUEUE_NAME = "meta-publish"
PUBLISH_POST = "publish_worker.jobs.publish_post"
PUBLISH_REQUEST = "publish_worker.jobs.publish_request"
DELIVER_EVENT = "publish_worker.webhooks.deliver_event"

# The allow-list: the only functions a job on our queues may name. Add a job function of
# the contract here and nowhere else; nothing outside this set is ever imported.
JOB_FUNCTIONS = frozenset({PUBLISH_POST, PUBLISH_REQUEST, DELIVER_EVENT})

_LOG_CAP = 80
# A job must carry a real time limit (RQ reads -1 as "none"); ours is the lease minus 10 s.
MAX_JOB_TIMEOUT_SECONDS = 86400


class JobRefused(Exception):
    """A job the worker will not run. The message names the reason only, never the payload."""


class PublishJob(Job):
    """RQ's ``Job``, limited to the contract: ``func`` imports a function only when the job
    names one of ``JOB_FUNCTIONS`` (as a plain function, no instance) and carries no
    callbacks, dependencies or webhooks; otherwise it raises ``JobRefused`` and RQ moves
    the job to the failed registry, never retried. Callbacks are never imported and
    webhooks never sent, whichever RQ path (failure handling, registry cleanup) asks.
    """

    def refusal(self) -> str | None:
        """Why this job must not run (a short metric label), or None when it may."""
        try:
            name, instance = self.func_name, self.instance
        except DeserializationError:
            return "unreadable"
        if not isinstance(name, str) or name not in JOB_FUNCTIONS:
            return "not_allowed"
        if instance is not None:
            return "instance"
        if self._success_callback_name or self._failure_callback_name or self._stopped_callback_name:
            return "callback"
        if self._dependency_ids:
            return "dependency"
        if self.webhooks:
            return "webhook"
        if self.repeats_left or self.repeat_intervals:
            return "repeat"  # RQ would put the job back on the queue after every success
        if self.rate_limit_key or self.rate_limit_concurrency:
            return "rate_limit"
        if self.timeout is not None and not 0 < self.timeout <= MAX_JOB_TIMEOUT_SECONDS:
            return "timeout"
        if any(ttl is not None and ttl <= 0 for ttl in (self.ttl, self.failure_ttl)):
            return "expiry"  # RQ deletes such a job as it saves it, reading Redis mid-pipeline
        if self.group_id:
            return "group"
        return None

    @property
    def func(self) -> Callable[..., Any]:
        reason = self.refusal()
        if reason is not None:
            self.retries_left = None  # failed for good: a retry would only be refused again
            note_refusal(self, reason)
            raise JobRefused(f"job refused ({reason}): only the contract's job functions run here")
        return import_attribute(str(self.func_name))  # a name of JOB_FUNCTIONS: refusal() checked it

    @property
    def success_callback(self) -> SuccessCallbackType | None:
        return None

    @property
    def failure_callback(self) -> FailureCallbackType | None:
        return None

    @property
    def stopped_callback(self) -> Callable[[Job, Redis], Any] | None:
        return None

    def send_webhooks(self, status: str | JobStatus, *, exc_string: str | None = None) -> None:
        """Never: a job's webhooks would be a request from the worker to any URL."""
        return None


def _capped(value: object) -> str:
    text = value if isinstance(value, str) else type(value).__name__
    return repr(text[:_LOG_CAP]) + ("…" if len(text) > _LOG_CAP else "")


def note_refusal(job: Job, reason: str) -> None:
    """Log (job id and function name, capped; never the arguments) and count one refusal."""
    try:
        name = job.func_name
    except DeserializationError:
        name = "<unreadable>"
    log.warning("job refused (%s): id=%s func=%s", reason, _capped(job.id), _capped(name))
    JOBS_REFUSED.labels(reason=reason).inc()


def note_unreadable(job_id: str) -> None:
    """Log and count a scheduled job whose hash RQ cannot even read (dropped unrun)."""
    log.warning("job refused (unreadable): id=%s", _capped(job_id))
    JOBS_REFUSED.labels(reason="unreadable").inc()


REFUSED_JOB_TTL_SECONDS = 7 * 86400


def refuse(job: Job, reason: str, queue_name: str, pipeline: Pipeline) -> None:
    """Move ``job`` to the failed registry of ``queue_name`` without running it (the scheduler's path)."""
    note_refusal(job, reason)
    job.set_status(JobStatus.FAILED, pipeline=pipeline)
    # Kept for our own time, not the job's: a forged ttl of 0 would make RQ delete the job
    # right here (reading Redis in the middle of the scheduler's pipeline), a negative one keep it forever.
    FailedJobRegistry(queue_name, connection=job.connection, job_class=PublishJob, serializer=JSONSerializer).add(
        job, ttl=REFUSED_JOB_TTL_SECONDS, exc_string=f"JobRefused: {reason}", pipeline=pipeline
    )


def rq_time(value: datetime | None) -> datetime | None:
    """A time RQ gives back (naive UTC) as an aware UTC datetime."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def make_queue(redis: Redis) -> Queue:
    return Queue(QUEUE_NAME, connection=redis, serializer=JSONSerializer, job_class=PublishJob)


def job_timeout(settings: Settings) -> int:
    """Shorter than the lease, so a job is stopped before another worker may take the post."""
    return max(10, int(settings.lease_seconds) - 10)


def reserve_job_id(session: Session, post_id: str) -> str:
    """Name ``pub-<post id>-<n+1>`` the post's job, in the caller's transaction (not committed):
    a job the post no longer names does nothing (``publish_worker.jobs``)."""
    following = ScheduledPost.enqueue_seq + 1
    seq = session.execute(
        update(ScheduledPost)
        .where(ScheduledPost.id == post_id)
        .values(enqueue_seq=following, rq_job_id="pub-" + ScheduledPost.id + "-" + cast(following, String))
        .returning(ScheduledPost.enqueue_seq)
    ).scalar_one()
    return f"pub-{post_id}-{seq}"


def next_job_id(session: Session, post_id: str) -> str:
    """Reserve ``pub-<post id>-<n>`` and commit it: never reuse an RQ job id (DESIGN §11)."""
    job_id = reserve_job_id(session, post_id)
    session.commit()
    return job_id


def enqueue_publish(
    session: Session,
    services: Services,
    post_id: str,
    *,
    at: datetime | None = None,
    lease: str | None = None,
    job_id: str | None = None,
) -> str | None:
    """Commit a new job id (or use ``job_id``, reserved and committed by the caller), then put
    ``publish_post`` on the services' queue (at ``at``, UTC-aware).

    A Redis failure is logged and swallowed on purpose: the post is in the database,
    and the sweeper enqueues any due post whose job is missing.
    """
    job_id = job_id or next_job_id(session, post_id)
    queue = make_queue(services.redis)
    kwargs = {"lease": lease} if lease else {}
    options: dict[str, Any] = dict(
        job_id=job_id,
        job_timeout=job_timeout(services.settings),
        result_ttl=3600,
        failure_ttl=7 * 86400,
        retry=Retry(max=2, interval=[10, 60]),
        description=f"publish {post_id}",
    )
    try:
        if at is None or at <= utcnow():
            queue.enqueue(PUBLISH_POST, args=(post_id,), kwargs=kwargs, **options)
        else:
            queue.enqueue_at(at, PUBLISH_POST, args=(post_id,), kwargs=kwargs, **options)
    except RedisError as exc:
        log.warning(
            "enqueue failed (%s); the sweeper will enqueue the post", type(exc).__name__, extra={"job_id": post_id}
        )
        return None
    return job_id
