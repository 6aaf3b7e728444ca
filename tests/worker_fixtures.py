"""Fixtures (a plugin, see tests/conftest.py) and helpers for running publish jobs in the test process."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests_mock
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import case, update

from publish_worker.context import install_context, worker_services
from publish_worker.failures import request_lifetime
from shared.db import utcnow
from shared.models import PostTarget, ScheduledPost
from shared.queue import make_queue
from tests.publish_mock import PublishMock

FAST = dict(
    retry_base_seconds=0.01,
    ig_status_poll_seconds=0.01,
    lease_seconds=30,
    quota_defer_seconds=3600,
    usage_slowdown_max_seconds=0.01,
)


@pytest.fixture
def worker_ctx(settings, redis_client, engine):
    ctx = worker_services(settings.with_overrides(**FAST), redis_client)
    install_context(ctx)
    yield ctx
    install_context(None)
    ctx.close()


@pytest.fixture
def graph():
    with requests_mock.Mocker() as m:
        yield PublishMock(m)


def scheduled_jobs(redis) -> list[Job]:
    registry = ScheduledJobRegistry("meta-publish", connection=redis, serializer=JSONSerializer)
    return [Job.fetch(job_id, connection=redis, serializer=JSONSerializer) for job_id in registry.get_job_ids()]


def queued_jobs(redis) -> list[Job]:
    return make_queue(redis).get_jobs()


def run_next_continuation(redis) -> str:
    """Run the post's pending continuation job now, as if its time had come."""
    from publish_worker.jobs import publish_post

    jobs = scheduled_jobs(redis) + queued_jobs(redis)
    assert len(jobs) == 1, [j.id for j in jobs]
    job = jobs[0]
    job.delete()
    return publish_post(*job.args, **job.kwargs)


def reload(db_session, post_id: str) -> ScheduledPost:
    db_session.expire_all()
    return db_session.get(ScheduledPost, post_id)


def set_target(ctx, post_id: str, target: str, **values) -> None:
    """Change a post's row for one target behind the worker's back (e.g. make its retry due now)."""
    with ctx.session() as session:
        session.execute(
            update(PostTarget).where(PostTarget.post_id == post_id, PostTarget.target == target).values(**values)
        )
        session.commit()


def skip_the_wait(ctx, post_id: str) -> None:
    """As if the post's waits had passed: each target is due now, and a request of its whose
    answer was lost (``sent_at``, ``comment_sent_at``) is past its lifetime, so it may be looked for."""
    over = utcnow() - request_lifetime(ctx.settings) - timedelta(seconds=1)

    def at_the_latest(column):
        return case((column > over, over), else_=column)

    with ctx.session() as session:
        session.execute(
            update(PostTarget)
            .where(PostTarget.post_id == post_id)
            .values(
                not_before=utcnow(),
                sent_at=at_the_latest(PostTarget.sent_at),
                comment_sent_at=at_the_latest(PostTarget.comment_sent_at),
            )
        )
        session.commit()
