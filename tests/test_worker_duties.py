"""publish_request on RQ, the sweeper and the daily token check."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests_mock
from rq import Queue
from rq.job import Job
from sqlalchemy import func, select, update

from publish_worker import duties
from publish_worker.jobs import publish_request
from publish_worker.runner import make_worker
from shared.db import utcnow
from shared.models import ScheduledPost, SocialConnection
from shared.queue import PublishJob, enqueue_publish, make_queue
from tests.factories import make_connection, make_post
from tests.worker_fixtures import queued_jobs, reload, scheduled_jobs

DEBUG_TOKEN = "https://graph.meta.test/v25.0/debug_token"


@pytest.fixture
def conn(db_session):
    return make_connection(db_session)


def request_payload(**overrides) -> dict:
    publish_at = (utcnow() + timedelta(hours=1)).isoformat()
    return {
        "user_id_resellio": "user-1",
        "idempotency_key": "resellio-order-77",
        "publish_at": publish_at,
        "caption": "Promo",
        "media_url": "https://cdn.example.com/p.jpg",
        **overrides,
    }


def test_publish_request_stores_and_queues_the_post(worker_ctx, conn, db_session):
    result = publish_request(request_payload())
    assert result["ok"] is True and result["created"] is True
    post = db_session.get(ScheduledPost, result["job_id"])
    assert post.connection_id == conn.id and post.status == "queued"
    assert [j.id for j in scheduled_jobs(worker_ctx.redis)] == [f"pub-{post.id}-1"]


def test_a_duplicate_delivery_is_harmless(worker_ctx, conn, db_session):
    payload = request_payload()
    first = publish_request(payload)
    second = publish_request(dict(payload))
    assert second == {"ok": True, "job_id": first["job_id"], "created": False}
    assert db_session.scalar(select(func.count()).select_from(ScheduledPost)) == 1


@pytest.mark.parametrize(
    "payload, error_code, field",
    [
        (request_payload(idempotency_key=None), "validation_error", "idempotency_key"),
        (request_payload(user_id_resellio=""), "validation_error", "user_id_resellio"),
        (request_payload(media_url="http://x.example.com/a.jpg"), "validation_error", "media_url"),
        (request_payload(surprise=1), "validation_error", "surprise"),
        (request_payload(user_id_resellio="user-without-connection"), "not_connected", None),
    ],
)
def test_bad_requests_are_answered_not_raised(worker_ctx, conn, db_session, payload, error_code, field):
    result = publish_request(payload)
    assert result["ok"] is False and result["error_code"] == error_code
    if field:
        assert field in result["fields"]
    assert db_session.scalar(select(func.count()).select_from(ScheduledPost)) == 0


def test_publish_request_cannot_post_for_another_users_connection(worker_ctx, conn, db_session):
    mine = make_connection(db_session, "user-2", page_id="104000000000002")
    result = publish_request(request_payload(connection_id=conn.id, user_id_resellio="user-2"))
    assert result["error_code"] == "not_found"
    assert publish_request(request_payload(connection_id=mine.id, user_id_resellio="user-2"))["ok"] is True


def test_sweeper_restores_a_due_post_whose_job_vanished(worker_ctx, conn, db_session):
    post = make_post(db_session, conn)
    with worker_ctx.session() as session:
        enqueue_publish(session, worker_ctx, post.id)
    worker_ctx.redis.flushdb()  # Redis lost everything
    assert duties.sweep(worker_ctx) == {"missing_job": 1, "lease_expired": 0}
    [job] = queued_jobs(worker_ctx.redis)
    assert job.id == f"pub-{post.id}-2" and job.args == [post.id]
    assert duties.sweep(worker_ctx) == {"missing_job": 0, "lease_expired": 0}


def test_sweeper_leaves_posts_with_a_live_job_and_far_future_posts(worker_ctx, conn, db_session):
    soon = make_post(db_session, conn, publish_in=5)
    far = make_post(db_session, conn, publish_in=3600)
    with worker_ctx.session() as session:
        enqueue_publish(session, worker_ctx, soon.id, at=soon.publish_at)
    assert duties.sweep(worker_ctx)["missing_job"] == 0
    assert reload(db_session, far.id).rq_job_id is None


def test_sweeper_schedules_a_soon_due_post_whose_job_vanished_for_its_time(worker_ctx, conn, db_session):
    post = make_post(db_session, conn, publish_in=20)
    assert duties.sweep(worker_ctx)["missing_job"] == 1
    [job] = scheduled_jobs(worker_ctx.redis)
    assert job.id == reload(db_session, post.id).rq_job_id


def test_sweeper_takes_back_posts_whose_worker_died(worker_ctx, conn, db_session):
    stuck = make_post(
        db_session,
        conn,
        status="publishing",
        lease_owner="lease-dead",
        lease_expires_at=utcnow() - timedelta(seconds=1),
    )
    alive = make_post(
        db_session,
        conn,
        status="publishing",
        lease_owner="lease-live",
        lease_expires_at=utcnow() + timedelta(seconds=60),
    )
    assert duties.sweep(worker_ctx) == {"missing_job": 0, "lease_expired": 1}
    [job] = queued_jobs(worker_ctx.redis)
    assert job.args == [stuck.id] and job.kwargs == {}
    assert reload(db_session, alive.id).rq_job_id is None


def test_a_duty_runs_once_per_period_across_workers(worker_ctx):
    runs = []
    assert duties.run_once(worker_ctx, "sweep", 30, runs.append) is True
    assert duties.run_once(worker_ctx, "sweep", 30, runs.append) is False
    assert len(runs) == 1


def test_daily_token_check_marks_dead_connections(worker_ctx, db_session):
    stale = make_connection(db_session, "user-1", checked_minutes_ago=25 * 60)
    fresh = make_connection(db_session, "user-2", checked_minutes_ago=5, page_id="104000000000002")
    with requests_mock.Mocker() as m:
        m.get(DEBUG_TOKEN, json={"data": {"is_valid": False, "expires_at": 0, "scopes": []}})
        assert duties.check_tokens(worker_ctx) == 1
    assert m.call_count == 1
    db_session.expire_all()
    assert db_session.get(SocialConnection, stale.id).status == "needs_reauth"
    assert db_session.get(SocialConnection, fresh.id).status == "connected"


def test_job_ids_are_never_reused(worker_ctx, conn, db_session):
    post = make_post(db_session, conn, publish_in=3600)
    with worker_ctx.session() as session:
        ids = [enqueue_publish(session, worker_ctx, post.id, at=post.publish_at) for _ in range(3)]
    assert ids == [f"pub-{post.id}-1", f"pub-{post.id}-2", f"pub-{post.id}-3"]
    assert all(Job.exists(i, connection=worker_ctx.redis) for i in ids)


def _post_with_its_job(worker_ctx, conn, db_session) -> tuple[ScheduledPost, Queue, str | None]:
    """A post due now, its job enqueued as the scheduling path enqueues it."""
    post = make_post(db_session, conn)
    with worker_ctx.session() as session:
        job_id = enqueue_publish(session, worker_ctx, post.id)
    return post, make_queue(worker_ctx.redis), job_id


def test_sweeper_rescues_a_job_rq_still_calls_queued_but_nobody_will_run(worker_ctx, conn, db_session):
    post, queue, job_id = _post_with_its_job(worker_ctx, conn, db_session)
    worker_ctx.redis.lrem(queue.key, 0, job_id)  # dequeued by a worker that then stopped
    assert Job.fetch(job_id, connection=worker_ctx.redis).get_status() == "queued"
    assert duties.sweep(worker_ctx)["missing_job"] == 1


def test_sweeper_leaves_a_continuation_waiting_behind_a_backlog(worker_ctx, conn, db_session):
    post = make_post(
        db_session,
        conn,
        status="publishing",
        lease_owner="lease-busy",
        lease_expires_at=utcnow() - timedelta(seconds=5),
    )
    with worker_ctx.session() as session:
        enqueue_publish(session, worker_ctx, post.id, lease="lease-busy")
    assert duties.sweep(worker_ctx)["lease_expired"] == 0
    assert len(queued_jobs(worker_ctx.redis)) == 1


def test_a_periodic_duty_survives_a_failing_run(worker_ctx):
    import threading

    calls = []

    def flaky(ctx):
        calls.append(1)
        raise ValueError("a truncated answer from somewhere")

    stop = threading.Event()
    thread = duties.PeriodicDuty(worker_ctx, stop, "flaky", flaky, interval=0.05, lock_seconds=0.01)
    worker_ctx.redis.delete("social_connect:duty:flaky")
    thread.start()
    deadline = utcnow() + timedelta(seconds=5)
    while len(calls) < 2 and utcnow() < deadline:
        worker_ctx.redis.delete("social_connect:duty:flaky")
        stop.wait(0.05)
    assert thread.is_alive() and len(calls) >= 2
    stop.set()
    thread.join(timeout=5)


def test_a_publish_request_delivered_late_is_still_recorded_and_published_soon(worker_ctx, conn, db_session):
    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    payload = request_payload(publish_at=(utcnow() - timedelta(minutes=8)).isoformat())
    queue = make_queue(worker_ctx.redis)
    job = queue.enqueue("publish_worker.jobs.publish_request", payload)
    job.enqueued_at = (utcnow() - timedelta(minutes=10)).replace(tzinfo=None)  # the workers were down
    job.save()
    SimpleWorker([queue], connection=worker_ctx.redis, serializer=JSONSerializer, job_class=PublishJob).work(
        burst=True, max_jobs=1
    )
    result = job.latest_result().return_value
    assert result["ok"] is True
    assert db_session.get(ScheduledPost, result["job_id"]).status == "queued"


def test_a_refused_publish_request_leaves_an_audit_event(worker_ctx, conn, db_session):
    from shared.models import AuditEvent

    assert publish_request(request_payload(media_url="http://x.example.com/a.jpg"))["ok"] is False
    [event] = db_session.scalars(select(AuditEvent)).all()
    assert event.event == "post_failed" and event.error_code == "validation_error"
    assert event.detail["idempotency_key"] == "resellio-order-77"


def test_a_job_left_started_by_a_dead_worker_does_not_block_the_rescue(worker_ctx, conn, db_session):
    from rq.job import JobStatus

    post = make_post(
        db_session,
        conn,
        status="publishing",
        lease_owner="lease-dead",
        lease_expires_at=utcnow() - timedelta(seconds=5),
    )
    with worker_ctx.session() as session:
        job_id = enqueue_publish(session, worker_ctx, post.id)
    worker_ctx.redis.delete("rq:queue:meta-publish")
    job = Job.fetch(job_id, connection=worker_ctx.redis)
    job.set_status(JobStatus.STARTED)  # the worker was SIGKILLed while running it
    assert duties.sweep(worker_ctx)["lease_expired"] == 1


def test_a_scheduled_job_long_overdue_is_not_trusted(worker_ctx, conn, db_session):
    # The worker holding RQ's scheduler lock died: nobody moves its scheduled jobs for a while.
    overdue = 3 * worker_ctx.settings.sweep_interval_seconds
    post = make_post(db_session, conn, publish_in=-overdue)
    queue = make_queue(worker_ctx.redis)
    job = queue.enqueue_at(
        utcnow() - timedelta(seconds=overdue), "publish_worker.jobs.publish_post", post.id, job_id=f"pub-{post.id}-1"
    )
    with worker_ctx.session() as session:
        session.execute(update(ScheduledPost).where(ScheduledPost.id == post.id).values(rq_job_id=job.id))
        session.commit()
    assert duties.sweep(worker_ctx)["missing_job"] == 1
    assert [j.args for j in queued_jobs(worker_ctx.redis)] == [[post.id]]


def test_a_scheduled_job_just_due_is_left_to_the_scheduler(worker_ctx, conn, db_session):
    post = make_post(db_session, conn, publish_in=-1)
    queue = make_queue(worker_ctx.redis)
    job = queue.enqueue_at(
        utcnow() - timedelta(seconds=1), "publish_worker.jobs.publish_post", post.id, job_id=f"pub-{post.id}-1"
    )
    with worker_ctx.session() as session:
        session.execute(update(ScheduledPost).where(ScheduledPost.id == post.id).values(rq_job_id=job.id))
        session.commit()
    assert duties.sweep(worker_ctx)["missing_job"] == 0


def _over_rq(payload: dict) -> dict:
    """The payload as the worker gets it: through RQ's JSONSerializer."""
    from rq.serializers import JSONSerializer

    return JSONSerializer.loads(JSONSerializer.dumps(payload))


DEEP: list = ["deep"]
for _ in range(40):
    DEEP = [DEEP]


@pytest.mark.parametrize(
    "overrides",
    [
        {"caption": "Promo \ud800"},
        {"media_url": "https://cdn.example.com/\udfff.jpg"},
        {"\ud800": "x"},
        {"a\x00": "x"},
        {"caption": float("nan")},
        {"extra": DEEP},
    ],
)
def test_publish_request_refuses_pathological_payloads_without_crashing(worker_ctx, conn, db_session, overrides):
    result = publish_request(_over_rq(request_payload(**overrides)))
    assert result["ok"] is False and result["error_code"] == "validation_error"
    assert db_session.scalar(select(func.count()).select_from(ScheduledPost)) == 0
    # The refusal is recorded for operators (audit details must be storable too).
    from shared.models import AuditEvent

    assert db_session.scalars(select(AuditEvent.event)).all() == ["post_failed"]


def _age_job(redis, job_id: str, field: str, minutes: float) -> None:
    from rq.utils import utcformat

    moment = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=minutes)
    redis.hset(f"rq:job:{job_id}", field, utcformat(moment))


def test_long_overdue_posts_waiting_behind_a_backlog_are_not_enqueued_again_every_sweep(worker_ctx, conn, db_session):
    # After an outage: due 20 minutes ago, its job freshly enqueued and waiting its turn in the queue.
    post = make_post(db_session, conn, publish_in=-20 * 60)
    with worker_ctx.session() as session:
        job_id = enqueue_publish(session, worker_ctx, post.id)
    assert duties.sweep(worker_ctx)["missing_job"] == 0
    assert [job.id for job in queued_jobs(worker_ctx.redis)] == [job_id]  # not superseded by a new one


def test_a_job_queued_or_started_far_too_long_is_rescued(worker_ctx, conn, db_session):
    from rq.job import JobStatus

    waiting, running = make_post(db_session, conn), make_post(db_session, conn)
    with worker_ctx.session() as session:
        waiting_job = enqueue_publish(session, worker_ctx, waiting.id)
        running_job = enqueue_publish(session, worker_ctx, running.id)
    _age_job(worker_ctx.redis, waiting_job, "enqueued_at", 11)  # still "queued" after 11 minutes
    Job.fetch(running_job, connection=worker_ctx.redis).set_status(JobStatus.STARTED)
    _age_job(worker_ctx.redis, running_job, "started_at", 11)  # far past any job's time limit
    assert duties.sweep(worker_ctx)["missing_job"] == 2
    assert {reload(db_session, p.id).rq_job_id for p in (waiting, running)} == {
        f"pub-{waiting.id}-2",
        f"pub-{running.id}-2",
    }


def _taken_by_a_worker(worker_ctx, queue) -> Job:
    """The next job taken off the queue as the worker takes it (onto RQ's intermediate list, its
    execution registered), and not started."""
    taken = queue.dequeue_any([queue], timeout=None, connection=worker_ctx.redis, job_class=PublishJob)
    assert taken is not None
    make_worker(worker_ctx, 4, threading.Event()).prepare_execution(taken[0])
    return taken[0]


def test_a_job_a_worker_has_taken_but_not_yet_started_is_not_enqueued_again(worker_ctx, conn, db_session):
    # Under a burst a job waits seconds between its worker taking it off the queue and starting it;
    # RQ still calls it queued. Enqueuing its post again would supersede it (its run would then
    # do nothing) and send the post to the back of the queue.
    post, queue, job_id = _post_with_its_job(worker_ctx, conn, db_session)
    taken = _taken_by_a_worker(worker_ctx, queue)
    assert taken.id == job_id and taken.get_status() == "queued"
    _age_job(worker_ctx.redis, job_id, "enqueued_at", 11)  # behind a backlog: long queued, just taken
    assert duties.sweep(worker_ctx)["missing_job"] == 0
    assert reload(db_session, post.id).rq_job_id == job_id


def test_a_job_taken_by_a_worker_that_died_before_starting_it_is_rescued(worker_ctx, conn, db_session):
    post, queue, job_id = _post_with_its_job(worker_ctx, conn, db_session)
    assert _taken_by_a_worker(worker_ctx, queue).id == job_id
    # The worker died: its execution is not renewed and runs out.
    executions = f"rq:executions:{job_id}"
    [(execution, _)] = worker_ctx.redis.zrange(executions, 0, -1, withscores=True)
    worker_ctx.redis.zadd(executions, {execution: time.time() - 1})
    assert duties.sweep(worker_ctx)["missing_job"] == 1
    assert reload(db_session, post.id).rq_job_id == f"pub-{post.id}-2"


@pytest.mark.parametrize(
    "meanwhile",
    [{"status": "published"}, {"rq_job_id": "pub-edited-7"}],
    ids=["published", "given-a-new-job"],
)
def test_a_post_taken_while_the_sweep_looked_at_other_posts_is_not_enqueued_again(
    worker_ctx, conn, db_session, monkeypatch, meanwhile
):
    # The sweep reads the due posts first, then looks at each one's job: by then its job may have
    # run (RQ keeps a finished job, whose status says nothing of being live), or an edit may have
    # given the post a new job.
    post = make_post(db_session, conn)
    with worker_ctx.session() as session:
        enqueue_publish(session, worker_ctx, post.id)

    def changed_meanwhile(queue, job_id, **_):
        with worker_ctx.session() as session:
            session.execute(update(ScheduledPost).where(ScheduledPost.id == post.id).values(**meanwhile))
            session.commit()
        return False

    monkeypatch.setattr(duties, "job_is_live", changed_meanwhile)
    assert duties.sweep(worker_ctx)["missing_job"] == 0
    assert reload(db_session, post.id).enqueue_seq == 1  # no job reserved, none enqueued


def test_a_job_that_started_while_the_sweep_looked_at_it_is_live(worker_ctx, conn, db_session, monkeypatch):
    from rq.job import JobStatus

    post, queue, job_id = _post_with_its_job(worker_ctx, conn, db_session)

    def started_meanwhile(self, job_id):
        # Between the sweep reading the job's status (queued) and looking for it on the queue,
        # a worker took it and started it.
        worker_ctx.redis.lrem(queue.key, 0, job_id)
        Job.fetch(job_id, connection=worker_ctx.redis).set_status(JobStatus.STARTED)
        return None

    monkeypatch.setattr(Queue, "get_job_position", started_meanwhile)
    assert duties.job_is_live(queue, job_id, overdue_after=timedelta(seconds=60)) is True


def test_a_job_taken_while_the_sweep_looked_at_it_is_live(worker_ctx, conn, db_session, monkeypatch):

    post, queue, job_id = _post_with_its_job(worker_ctx, conn, db_session)

    def taken_meanwhile(self, job_id):
        # Between the sweep looking on the intermediate list and on the queue, a worker took it.
        _taken_by_a_worker(worker_ctx, queue)
        return None

    monkeypatch.setattr(Queue, "get_job_position", taken_meanwhile)
    assert duties.job_is_live(queue, job_id, overdue_after=timedelta(seconds=60)) is True
