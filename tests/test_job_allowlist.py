"""Anyone who can write to Redis must not run code in the worker (DESIGN §8, §13.1, §13.5).

The attacker here writes jobs with stock RQ (no allow-list), as any Redis client could;
the worker, the scheduler and RQ's registry cleanup must run none of what they name.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Callback, Queue, Repeat, Retry, SimpleWorker
from rq.job import JobStatus
from rq.registry import StartedJobRegistry, clean_registries
from rq.serializers import JSONSerializer
from rq.utils import current_timestamp
from rq.webhook import Webhook

from publish_worker import runner
from publish_worker.runner import MOVE_CHUNK, PublishScheduler, SchedulerLoop, start_threads
from shared.db import utcnow
from shared.queue import (
    JOB_FUNCTIONS,
    PUBLISH_POST,
    PUBLISH_REQUEST,
    QUEUE_NAME,
    PublishJob,
    enqueue_publish,
    make_queue,
)
from tests.conftest import free_port
from tests.factories import make_connection, make_post
from tests.worker_fixtures import reload

MARKER_JOB = "tests.marker_jobs.make_marker"
MARKER_CALLBACK = "tests.marker_jobs.marker_callback"


def refused(reason: str) -> float:
    return REGISTRY.get_sample_value("social_connect_jobs_refused_total", {"reason": reason}) or 0.0


def attacker_queue(redis) -> Queue:
    """What anyone with write access to Redis can do: stock RQ, no allow-list."""
    return Queue(QUEUE_NAME, connection=redis, serializer=JSONSerializer)


def run_burst(redis) -> None:
    SimpleWorker([make_queue(redis)], connection=redis, serializer=JSONSerializer, job_class=PublishJob).work(
        burst=True
    )


def refusal_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "shared.queue" and "job refused" in r.getMessage()]


def failed_ids(redis) -> list[str]:
    return make_queue(redis).failed_job_registry.get_job_ids()


@pytest.fixture
def conn(db_session):
    return make_connection(db_session)


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "pwned"


def test_the_allow_list_is_the_contract_job_functions():
    from rq.utils import import_attribute

    contract = {f"publish_worker.jobs.{name}" for name in ("publish_post", "publish_request")}
    contract.add("publish_worker.webhooks.deliver_event")  # outcome events to Resellio (DESIGN §13.3)
    assert JOB_FUNCTIONS == contract
    assert all(callable(import_attribute(name)) for name in JOB_FUNCTIONS)


@pytest.mark.parametrize("how", ["helper", "os.system"])
def test_a_foreign_job_is_not_run_and_lands_in_the_failed_registry(worker_ctx, marker, how, caplog):
    redis = worker_ctx.redis
    if how == "helper":
        job = attacker_queue(redis).enqueue(MARKER_JOB, str(marker), description="SECRET-PAYLOAD-1")
    else:
        job = attacker_queue(redis).enqueue("os.system", f"touch {marker}", description="SECRET-PAYLOAD-1")
    before = refused("not_allowed")
    with caplog.at_level(logging.INFO):
        run_burst(redis)
    assert not marker.exists()
    assert failed_ids(redis) == [job.id]
    assert PublishJob.fetch(job.id, connection=redis, serializer=JSONSerializer).get_status() == JobStatus.FAILED
    assert refused("not_allowed") == before + 1
    [line] = refusal_lines(caplog)
    assert job.id in line and job.func_name in line
    assert str(marker) not in line  # never the arguments
    assert "touch" not in caplog.text.replace(job.func_name, "")


def test_a_refused_job_with_retries_is_not_retried(worker_ctx, marker):
    job = attacker_queue(worker_ctx.redis).enqueue(MARKER_JOB, str(marker), retry=Retry(max=5))
    before = refused("not_allowed")
    run_burst(worker_ctx.redis)
    assert not marker.exists() and failed_ids(worker_ctx.redis) == [job.id]
    assert refused("not_allowed") == before + 1
    assert make_queue(worker_ctx.redis).get_job_ids() == []


def test_a_long_function_name_is_logged_capped(worker_ctx, caplog):
    name = "os." + "x" * 5000 + "\nFORGED LOG LINE"
    attacker_queue(worker_ctx.redis).enqueue(name)
    with caplog.at_level(logging.INFO):
        run_burst(worker_ctx.redis)
    [line] = refusal_lines(caplog)
    assert len(line) < 300 and "\n" not in line and "FORGED" not in line


@pytest.mark.parametrize("kind", ["on_success", "on_failure", "on_stopped"])
def test_an_allowed_job_carrying_a_callback_is_refused_and_the_callback_never_runs(
    worker_ctx, graph, conn, db_session, marker, kind
):
    post = make_post(db_session, conn)
    job = attacker_queue(worker_ctx.redis).enqueue(
        PUBLISH_POST, post.id, meta={"marker": str(marker)}, **{kind: Callback(MARKER_CALLBACK)}
    )
    before = refused("callback")
    run_burst(worker_ctx.redis)
    assert not marker.exists()
    assert failed_ids(worker_ctx.redis) == [job.id] and refused("callback") == before + 1
    assert reload(db_session, post.id).status == "queued" and graph.m.call_count == 0  # unrun


@pytest.mark.parametrize(
    "options, reason",
    [
        ({"repeat": Repeat(times=1000, interval=0)}, "repeat"),  # would run again after every success
        ({"job_timeout": -1}, "timeout"),  # no time limit: longer than any lease
    ],
)
def test_an_allowed_job_with_rq_options_we_never_set_is_refused(worker_ctx, graph, conn, db_session, options, reason):
    post = make_post(db_session, conn)
    job = attacker_queue(worker_ctx.redis).enqueue(PUBLISH_POST, post.id, **options)
    before = refused(reason)
    run_burst(worker_ctx.redis)
    assert failed_ids(worker_ctx.redis) == [job.id] and refused(reason) == before + 1
    assert make_queue(worker_ctx.redis).get_job_ids() == []  # not put back on the queue
    assert reload(db_session, post.id).status == "queued" and graph.m.call_count == 0  # unrun


def test_an_allowed_job_with_a_dependency_is_refused(worker_ctx, graph, conn, db_session):
    post = make_post(db_session, conn)
    attacker = attacker_queue(worker_ctx.redis)
    job = attacker.create_job(PUBLISH_POST, args=[post.id], depends_on="pub-elsewhere-1")
    job.save()
    attacker.push_job_id(job.id)  # straight onto the queue, as a Redis client can
    before = refused("dependency")
    run_burst(worker_ctx.redis)
    assert failed_ids(worker_ctx.redis) == [job.id] and refused("dependency") == before + 1
    assert reload(db_session, post.id).status == "queued" and graph.m.call_count == 0


@pytest.fixture
def hook_server():
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()


def test_a_job_with_webhooks_is_refused_and_no_webhook_is_sent(worker_ctx, graph, conn, db_session, hook_server):
    url, hits = hook_server
    post = make_post(db_session, conn)
    job = attacker_queue(worker_ctx.redis).enqueue(
        PUBLISH_POST, post.id, webhooks=[Webhook(f"{url}/failed", "failed"), Webhook(f"{url}/done", "finished")]
    )
    before = refused("webhook")
    run_burst(worker_ctx.redis)
    assert failed_ids(worker_ctx.redis) == [job.id] and refused("webhook") == before + 1
    assert hits == []
    assert reload(db_session, post.id).status == "queued" and graph.m.call_count == 0


def test_a_function_called_on_an_instance_is_refused(worker_ctx, marker):
    queue = attacker_queue(worker_ctx.redis)
    job = queue.create_job(PUBLISH_POST, args=[])
    job.instance = "os"  # JSON carries a value here: getattr(value, func_name)(...) in stock RQ
    job.save()
    queue.push_job_id(job.id)
    before = refused("instance")
    run_burst(worker_ctx.redis)
    assert failed_ids(worker_ctx.redis) == [job.id] and refused("instance") == before + 1


def test_registry_cleanup_never_calls_callbacks_or_sends_webhooks(worker_ctx, marker, hook_server):
    """RQ calls the failure callback and sends webhooks for an abandoned 'started' job
    (a worker died) outside any job run: in every worker's maintenance (§13.5)."""
    url, hits = hook_server
    redis = worker_ctx.redis
    job = attacker_queue(redis).enqueue(
        MARKER_JOB,
        str(marker),
        meta={"marker": str(marker)},
        on_failure=Callback(MARKER_CALLBACK),
        webhooks=[Webhook(f"{url}/failed", "failed")],
    )
    redis.lrem(f"rq:queue:{QUEUE_NAME}", 0, job.id)
    job.set_status(JobStatus.STARTED)
    redis.zadd(StartedJobRegistry(QUEUE_NAME, connection=redis).key, {f"{job.id}:exec-1": current_timestamp() - 60})
    clean_registries(make_queue(redis))
    assert not marker.exists() and hits == []
    assert failed_ids(redis) == [job.id]


def test_the_scheduler_never_moves_a_foreign_job_onto_the_queue(worker_ctx, graph, conn, db_session, marker):
    redis = worker_ctx.redis
    post = make_post(db_session, conn)
    past = utcnow() - timedelta(seconds=5)
    foreign = attacker_queue(redis).enqueue_at(past, MARKER_JOB, str(marker))
    ours = make_queue(redis).enqueue_at(past, PUBLISH_POST, post.id, job_id=f"pub-{post.id}-1")
    scheduler = PublishScheduler([QUEUE_NAME], connection=redis, serializer=JSONSerializer)
    scheduler._connection = redis
    before = refused("not_allowed")
    assert scheduler.acquire_locks() == {QUEUE_NAME}
    scheduler.enqueue_scheduled_jobs()
    scheduler.release_locks()
    assert make_queue(redis).get_job_ids() == [ours.id]
    assert failed_ids(redis) == [foreign.id] and refused("not_allowed") == before + 1
    run_burst(redis)
    assert not marker.exists()
    assert reload(db_session, post.id).status == "published"


def test_a_forged_unreadable_scheduled_job_does_not_stop_the_scheduler(worker_ctx, graph, conn, db_session):
    redis = worker_ctx.redis
    post = make_post(db_session, conn)
    past = utcnow() - timedelta(seconds=5)
    ours = make_queue(redis).enqueue_at(past, PUBLISH_POST, post.id, job_id=f"pub-{post.id}-1")
    # A hash RQ itself cannot restore (an unknown status), scheduled before ours.
    redis.hset("rq:job:req-forged", mapping={"status": "bogus", "data": "x", "created_at": "nonsense"})
    redis.zadd(f"rq:scheduled:{QUEUE_NAME}", {"req-forged": 0})
    scheduler = PublishScheduler([QUEUE_NAME], connection=redis, serializer=JSONSerializer)
    scheduler._connection = redis
    before = refused("unreadable")
    assert scheduler.acquire_locks() == {QUEUE_NAME}
    scheduler.enqueue_scheduled_jobs()
    scheduler.release_locks()
    assert make_queue(redis).get_job_ids() == [ours.id]
    assert redis.zcard(f"rq:scheduled:{QUEUE_NAME}") == 0 and refused("unreadable") == before + 1
    run_burst(redis)
    assert reload(db_session, post.id).status == "published"


def test_a_burst_larger_than_a_move_is_moved_whole_in_order_with_a_foreign_job_refused(
    worker_ctx, conn, db_session, marker
):
    """The scheduler moves a burst a chunk at a time (MOVE_CHUNK): every due job reaches the queue
    once, in due order, and a foreign one in the middle of it is still refused."""
    redis = worker_ctx.redis
    queue = make_queue(redis)
    past = utcnow() - timedelta(seconds=200)
    ids = []
    for n in range(2 * MOVE_CHUNK + 5):  # each a second later than the one before (RQ's scores are seconds)
        post = make_post(db_session, conn, caption=f"burst {n}")
        ids.append(queue.enqueue_at(past + timedelta(seconds=n), PUBLISH_POST, post.id).id)
        if n == MOVE_CHUNK:
            foreign = attacker_queue(redis).enqueue_at(past + timedelta(seconds=n), MARKER_JOB, str(marker))
    scheduler = PublishScheduler([QUEUE_NAME], connection=redis, serializer=JSONSerializer)
    scheduler._connection = redis
    assert scheduler.acquire_locks() == {QUEUE_NAME}
    scheduler.enqueue_scheduled_jobs()
    scheduler.release_locks()
    assert queue.get_job_ids() == ids
    assert failed_ids(redis) == [foreign.id] and redis.zcard(f"rq:scheduled:{QUEUE_NAME}") == 0


def one_tick(redis) -> None:
    scheduler = PublishScheduler([QUEUE_NAME], connection=redis, serializer=JSONSerializer)
    scheduler._connection = redis
    assert scheduler.acquire_locks() == {QUEUE_NAME}
    try:
        scheduler.enqueue_scheduled_jobs()
    finally:
        scheduler.release_locks()


@pytest.mark.parametrize(
    ("forged", "reason"),
    [
        ({"data": "garbage", "failure_ttl": "0"}, "unreadable"),  # no status; RQ would delete it mid-pipeline
        ({"ttl": "0"}, "expiry"),
        ({"failure_ttl": "-1"}, "expiry"),
        ({"group_id": "no-such-group"}, "group"),
    ],
)
def test_a_scheduled_job_forged_to_break_rqs_bookkeeping_is_refused_and_the_rest_still_move(
    worker_ctx, conn, db_session, forged, reason
):
    redis = worker_ctx.redis
    post = make_post(db_session, conn)
    past = utcnow() - timedelta(seconds=5)
    ours = make_queue(redis).enqueue_at(past, PUBLISH_POST, post.id, job_id=f"pub-{post.id}-1")
    other = make_post(db_session, conn, caption="second")
    forged_job = make_queue(redis).enqueue_at(past, PUBLISH_POST, other.id, job_id="req-forged")
    redis.hset(forged_job.key, mapping=forged)
    if "data" in forged:
        redis.hdel(forged_job.key, "status")
    redis.zadd(f"rq:scheduled:{QUEUE_NAME}", {forged_job.id: 0})  # first in line
    before = refused(reason)
    for _ in range(2):  # a second tick finds nothing left to trip on
        one_tick(redis)
    assert make_queue(redis).get_job_ids() == [ours.id]
    assert redis.zcard(f"rq:scheduled:{QUEUE_NAME}") == 0 and refused(reason) == before + 1
    assert failed_ids(redis) == [forged_job.id] and redis.ttl(forged_job.key) > 86400  # kept for our week


def test_a_redis_failure_while_reading_due_jobs_leaves_them_scheduled(worker_ctx, conn, db_session, monkeypatch):
    redis = worker_ctx.redis
    post = make_post(db_session, conn)
    ours = make_queue(redis).enqueue_at(utcnow() - timedelta(seconds=5), PUBLISH_POST, post.id)

    def redis_down(*args, **kwargs):
        raise RedisConnectionError("pool exhausted")

    with monkeypatch.context() as patch:
        patch.setattr(PublishJob, "fetch_many", redis_down)
        patch.setattr(PublishJob, "fetch", redis_down)
        with pytest.raises(RedisConnectionError):
            one_tick(redis)
    assert redis.zcard(f"rq:scheduled:{QUEUE_NAME}") == 1 and failed_ids(redis) == []
    one_tick(redis)
    assert make_queue(redis).get_job_ids() == [ours.id]


def test_a_tick_moves_a_bounded_number_and_the_next_tick_the_rest(worker_ctx, conn, db_session, monkeypatch):
    monkeypatch.setattr(runner, "MOVED_PER_TICK", 2 * MOVE_CHUNK)
    redis = worker_ctx.redis
    queue = make_queue(redis)
    past = utcnow() - timedelta(seconds=5)
    for n in range(2 * MOVE_CHUNK + 3):
        queue.enqueue_at(past, PUBLISH_POST, make_post(db_session, conn, caption=f"tick {n}").id)
    one_tick(redis)
    assert queue.count == 2 * MOVE_CHUNK  # the lock is renewed between ticks
    one_tick(redis)
    assert queue.count == 2 * MOVE_CHUNK + 3 and redis.zcard(f"rq:scheduled:{QUEUE_NAME}") == 0


def test_the_scheduler_wakes_at_the_second_a_post_falls_due_not_a_tick_later(worker_ctx, graph, conn, db_session):
    redis = worker_ctx.redis
    post = make_post(db_session, conn)
    loop = SchedulerLoop(redis, threading.Event(), interval=1.0)
    assert loop.scheduler.acquire_locks() == {QUEUE_NAME}
    try:
        loop.scheduler.enqueue_scheduled_jobs()
        assert loop._wait_for_next_due() == 1.0  # nothing scheduled: the ordinary tick
        due = datetime.fromtimestamp(int(time.time()) + 2, UTC)  # scores are whole seconds
        make_queue(redis).enqueue_at(due, PUBLISH_POST, post.id, job_id=f"pub-{post.id}-1")
        assert loop._wait_for_next_due() == 1.0  # due later than a tick away
        wait = loop._wait_for_next_due(now=due.timestamp() - 0.3)
        assert 0.3 <= wait < 0.35  # wakes at the due second, not up to a second after it
        assert loop._wait_for_next_due(now=due.timestamp() + 3) > 0  # overdue: still a short pause, no spin
    finally:
        loop.scheduler.release_locks()


def test_real_publish_post_and_publish_request_jobs_still_run(worker_ctx, graph, conn, db_session):
    post = make_post(db_session, conn)
    with worker_ctx.session() as session:
        enqueue_publish(session, worker_ctx, post.id)
    payload = {
        "user_id_resellio": conn.user_id_resellio,
        "idempotency_key": "order-1",
        "caption": "Later",
        "publish_at": (utcnow() + timedelta(hours=1)).isoformat(),
        "media_url": "https://cdn.example.com/p.jpg",
    }
    # The Resellio scheduler enqueues with stock RQ under its own id prefix (README, Redis ACL).
    request = attacker_queue(worker_ctx.redis).enqueue(PUBLISH_REQUEST, payload, job_id="req-order-1")
    before = {reason: refused(reason) for reason in ("not_allowed", "callback", "dependency", "webhook")}
    run_burst(worker_ctx.redis)
    assert reload(db_session, post.id).status == "published"
    result = (
        PublishJob.fetch(request.id, connection=worker_ctx.redis, serializer=JSONSerializer)
        .latest_result()
        .return_value
    )
    assert result["ok"] is True and reload(db_session, result["job_id"]).status == "queued"
    assert failed_ids(worker_ctx.redis) == []
    assert {reason: refused(reason) for reason in before} == before


def test_the_threaded_worker_refuses_foreign_jobs_and_publishes_ours(worker_ctx, graph, conn, db_session, marker):
    redis = worker_ctx.redis
    attacker = attacker_queue(redis)
    foreign = [attacker.enqueue(MARKER_JOB, str(marker)), attacker.enqueue("os.system", f"touch {marker}")]
    unreadable = attacker.enqueue(PUBLISH_POST, "x", retry=Retry(max=3))
    redis.hset(unreadable.key, "data", b'{"not": "a job"}')
    foreign.append(unreadable)
    post = make_post(db_session, conn)
    with worker_ctx.session() as session:
        enqueue_publish(session, worker_ctx, post.id)
    before = refused("not_allowed"), refused("unreadable")
    stop = threading.Event()
    threads = start_threads(worker_ctx, 2, stop)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if reload(db_session, post.id).status == "published" and len(failed_ids(redis)) == 3:
                break
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert reload(db_session, post.id).status == "published"
    assert sorted(failed_ids(redis)) == sorted(j.id for j in foreign)
    assert not marker.exists() and (refused("not_allowed"), refused("unreadable")) == (before[0] + 2, before[1] + 1)
    assert make_queue(redis).get_job_ids() == []  # the unreadable one was not retried


SCHEDULER_ACL = (
    "resetkeys resetchannels -@all +hello +ping +multi +exec +discard +info +sadd +hset +rpush +zadd "
    "~rq:queues ~rq:queue:meta-publish ~rq:scheduled:meta-publish ~rq:job:req-*"
)


@pytest.fixture
def acl_redis(tmp_path):
    """A throwaway redis-server of this test's own (ACL users are server-wide)."""
    import shutil
    import subprocess

    import redis as redis_lib

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    admin = redis_lib.Redis(port=port)
    try:
        for _ in range(100):
            try:
                admin.ping()
                break
            except redis_lib.ConnectionError:
                time.sleep(0.05)
        admin.execute_command("ACL", "SETUSER", "resellio-scheduler", "on", ">scheduler-pw", *SCHEDULER_ACL.split())
        yield admin, redis_lib.Redis(port=port, username="resellio-scheduler", password="scheduler-pw")
    finally:
        admin.close()
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow  # starts a redis-server of its own
def test_the_readme_acl_lets_the_scheduler_enqueue_publish_requests_and_nothing_else(
    acl_redis, worker_ctx, conn, db_session
):
    from redis.exceptions import NoPermissionError

    readme = Path(__file__).resolve().parents[1] / "README.md"
    assert SCHEDULER_ACL in " ".join(readme.read_text().split())  # the README shows this ACL
    admin, scheduler = acl_redis
    payload = {
        "user_id_resellio": conn.user_id_resellio,
        "idempotency_key": "order-9",
        "caption": "Via ACL",
        "publish_at": (utcnow() + timedelta(hours=1)).isoformat(),
        "media_url": "https://cdn.example.com/p.jpg",
    }
    queue = Queue(QUEUE_NAME, connection=scheduler, serializer=JSONSerializer)
    queue.enqueue(PUBLISH_REQUEST, payload, job_id="req-order-9")
    queue.enqueue_at(utcnow() + timedelta(hours=2), PUBLISH_REQUEST, payload, job_id="req-order-10")

    for job_id in ("pub-someone-1", None):  # another prefix, or RQ's default random id
        with pytest.raises(NoPermissionError):
            queue.enqueue(PUBLISH_REQUEST, payload, job_id=job_id)
    for command in (
        ("HGETALL", "rq:job:req-order-9"),
        ("GET", "social_connect:anything"),
        ("KEYS", "*"),
        ("HSET", "rq:worker:x", "a", "b"),
        ("DEL", "rq:queue:meta-publish"),
        ("FLUSHDB",),
    ):
        with pytest.raises(NoPermissionError):
            scheduler.execute_command(*command)

    assert admin.zrange("rq:scheduled:meta-publish", 0, -1) == [b"req-order-10"]
    assert admin.lrange("rq:queue:meta-publish", 0, -1) == [b"req-order-9"]  # the refused enqueues left nothing
    assert sorted(admin.keys("rq:job:*")) == [b"rq:job:req-order-10", b"rq:job:req-order-9"]
    SimpleWorker([make_queue(admin)], connection=admin, serializer=JSONSerializer, job_class=PublishJob).work(
        burst=True
    )
    result = PublishJob.fetch("req-order-9", connection=admin, serializer=JSONSerializer).latest_result().return_value
    assert result["ok"] is True and reload(db_session, result["job_id"]).caption == "Via ACL"
