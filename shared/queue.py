"""The queue contract (DESIGN §8): queue name, job functions, JSON serializer, job ids."""
from __future__ import annotations

import logging
from datetime import datetime

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.serializers import JSONSerializer
from sqlalchemy import String, cast, update
from sqlalchemy.orm import Session

from shared.db import utcnow
from shared.models import ScheduledPost

log = logging.getLogger(__name__)

QUEUE_NAME = "meta-publish"
PUBLISH_POST = "publish_worker.jobs.publish_post"
PUBLISH_REQUEST = "publish_worker.jobs.publish_request"


def make_queue(redis: Redis) -> Queue:
    return Queue(QUEUE_NAME, connection=redis, serializer=JSONSerializer)


def job_timeout(settings) -> int:
    """Shorter than the lease, so a job is stopped before another worker may take the post."""
    return max(10, int(settings.lease_seconds) - 10)


def next_job_id(session: Session, post_id: str) -> str:
    """Reserve ``pub-<post id>-<n>`` and commit it: never reuse an RQ job id (DESIGN §11)."""
    following = ScheduledPost.enqueue_seq + 1
    seq = session.execute(
        update(ScheduledPost).where(ScheduledPost.id == post_id)
        .values(enqueue_seq=following, rq_job_id="pub-" + ScheduledPost.id + "-" + cast(following, String))
        .returning(ScheduledPost.enqueue_seq)
    ).scalar_one()
    session.commit()
    return f"pub-{post_id}-{seq}"


def enqueue_publish(session: Session, queue: Queue, settings, post_id: str, *, at: datetime | None = None,
                    lease: str | None = None) -> str | None:
    """Commit a new job id, then put ``publish_post`` on the queue (at ``at``, UTC-aware).

    A Redis failure is logged and swallowed on purpose: the post is in the database,
    and the sweeper enqueues any due post whose job is missing.
    """
    job_id = next_job_id(session, post_id)
    kwargs = {"lease": lease} if lease else {}
    options = dict(job_id=job_id, job_timeout=job_timeout(settings), result_ttl=3600, failure_ttl=7 * 86400,
                   retry=Retry(max=2, interval=[10, 60]), description=f"publish {post_id}")
    try:
        if at is None or at <= utcnow():
            queue.enqueue(PUBLISH_POST, args=(post_id,), kwargs=kwargs, **options)
        else:
            queue.enqueue_at(at, PUBLISH_POST, args=(post_id,), kwargs=kwargs, **options)
    except RedisError as exc:
        log.warning("enqueue failed (%s); the sweeper will enqueue the post", type(exc).__name__,
                    extra={"job_id": post_id})
        return None
    return job_id
