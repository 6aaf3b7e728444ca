"""The worker's concurrency (DESIGN §13.4): many posts in flight per process, per-Page caps,
job time limits inside the pool, warm shutdown, the Redis and database pools."""

from __future__ import annotations

import gc
import json
import linecache
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer

import pytest
from rq import Worker
from rq.executions import ExecutionRegistry
from rq.job import JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry, clean_registries
from rq.serializers import JSONSerializer
from rq.suspension import resume, suspend
from sqlalchemy import select

from publish_worker import pacing
from publish_worker.context import install_context, redis_pool_size, worker_services
from publish_worker.jobs import publish_post
from publish_worker.pacing import PAGE_SLOTS, PageSlots
from publish_worker.runner import InProcessWorker
from shared.metrics import USAGE_SLOWDOWNS
from shared.models import PUBLISHED, QUEUED, SocialConnection
from shared.queue import PUBLISH_POST, QUEUE_NAME, PublishJob, enqueue_publish, make_queue
from shared.settings import SettingsError, load_settings
from tests.conftest import make_test_env
from tests.factories import make_connection, make_post
from tests.json_stand_in import JsonHandler, serve_in_thread, stop_serving
from tests.worker_fixtures import FAST, reload

GIVE_UP_SECONDS = 30  # only reached when the behaviour under test is broken
FEED = re.compile(r"^/v[0-9.]+/(\d+)/feed$")


class Gate(ThreadingHTTPServer):
    """Meta on 127.0.0.1 for Facebook text posts on any Page: each ``POST /{page-id}/feed`` waits
    at the gate until the test opens it; counts the calls waiting together (per Page too).
    A real HTTP server: requests-mock lets only one request through at a time."""

    daemon_threads = True
    request_queue_size = 1024

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), GateHandler)
        self.lock = threading.Lock()
        self.opened = threading.Event()
        self.waiting: list[str] = []
        self.peak = 0
        self.peak_per_page: dict[str, int] = {}
        self.db_connections_seen: list[int] = []
        self.on_call: Callable[[], int] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def called(self) -> None:
        if self.on_call is not None:
            with self.lock:
                self.db_connections_seen.append(self.on_call())

    def feed(self, page: str) -> dict:
        with self.lock:
            self.waiting.append(page)
            self.peak = max(self.peak, len(self.waiting))
            self.peak_per_page[page] = max(self.peak_per_page.get(page, 0), self.waiting.count(page))
        self.opened.wait(GIVE_UP_SECONDS)
        with self.lock:
            self.waiting.remove(page)
        return {"id": f"{page}_{time.monotonic_ns()}"}

    def open(self) -> None:
        self.opened.set()

    def count(self) -> int:
        with self.lock:
            return len(self.waiting)


class GateHandler(JsonHandler):
    server: Gate

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.called()
        match = FEED.match(self.path.split("?")[0])
        if match:
            self.send_json(200, self.server.feed(match.group(1)))
        else:
            self.send_json(404, {"error": {"message": "not here", "code": 100}})

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.called()
        self.send_json(404, {"error": {"message": "not here", "code": 100}})


@pytest.fixture
def gate() -> Iterator[Gate]:
    server = Gate()
    serve_in_thread(server)
    yield server
    server.open()
    stop_serving(server)


@pytest.fixture
def start_worker(settings, redis_client, gate) -> Iterator[Callable[..., InProcessWorker]]:
    started: list[InProcessWorker] = []

    def start(concurrency: int | None = None, **overrides) -> InProcessWorker:
        tuned = settings.with_overrides(**FAST, meta_graph_url=gate.url, **overrides)
        worker = InProcessWorker(tuned, redis_client, concurrency=concurrency).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop_event.set()
    for worker in started:
        worker.stop()


def wait_until(condition: Callable[[], bool], what: str, give_up: float = GIVE_UP_SECONDS) -> None:
    deadline = time.monotonic() + give_up
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.02)


def posts_on_pages(ctx, db_session, pages: list[str], *, enqueue: bool = True) -> list[str]:
    """One Facebook text post per entry of ``pages`` (each Page its own seller's connection), due now."""
    conns: dict[str, SocialConnection] = {}
    ids: list[str] = []
    for page in pages:
        if page not in conns:
            known = db_session.scalars(select(SocialConnection).where(SocialConnection.facebook_page_id == page))
            conns[page] = known.first() or make_connection(db_session, f"seller-{page}", page_id=page, ig_id=None)
        post = make_post(db_session, conns[page], targets=("facebook",), media_url=None, caption=f"post {len(ids)}")
        ids.append(post.id)
    if enqueue:
        with ctx.session() as session:
            for post_id in ids:
                enqueue_publish(session, ctx, post_id)
    return ids


def posts_running(redis) -> set[str]:
    """The posts whose jobs RQ has running. The sweeper's first pass may have enqueued a second
    job for a post made just after the worker started: that one finds the post taken."""
    started = StartedJobRegistry(QUEUE_NAME, connection=redis, serializer=JSONSerializer)
    return {job_id.split("-")[1] for job_id in started.get_job_ids()}


def statuses(db_session, ids: list[str]) -> list[str]:
    return [reload(db_session, post_id).status for post_id in ids]


def page(n: int) -> str:
    return str(104000000100000 + n)


def test_fifty_posts_on_fifty_pages_are_all_in_flight_together(start_worker, gate, db_session, settings):
    assert settings.worker_concurrency >= 50  # the default
    worker = start_worker()
    ids = posts_on_pages(worker.ctx, db_session, [page(n) for n in range(50)])
    # Every post waits on Meta at once: the old eight RQ workers a process never got past 8.
    wait_until(lambda: gate.count() == 50, "50 Graph calls waiting together")
    # RQ's maintenance (any worker's, every 10 min) does not take the jobs in flight for abandoned ones.
    queue = make_queue(worker.ctx.redis)
    clean_registries(queue)
    assert posts_running(worker.ctx.redis) == set(ids) and len(queue.failed_job_registry) == 0
    assert [w.get_state() for w in Worker.all(queue=queue)] == ["busy"]
    gate.open()
    wait_until(lambda: statuses(db_session, ids) == [PUBLISHED] * 50, "all 50 published")
    assert gate.peak == 50


def test_a_page_has_at_most_its_cap_of_posts_in_flight(start_worker, gate, db_session, redis_client):
    worker = start_worker(worker_page_concurrency=5)
    ids = posts_on_pages(worker.ctx, db_session, [page(1)] * 12 + [page(2)] * 2)
    # Every post runs: five at the crowded Page's Meta, the other Page's two beside them, seven waiting their turn.
    wait_until(lambda: posts_running(redis_client) == set(ids) and gate.count() == 7, "14 posts running, 7 at Meta")
    time.sleep(0.3)  # room for a sixth call on the crowded Page, were the cap not kept
    assert gate.count() == 7
    gate.open()
    wait_until(lambda: statuses(db_session, ids) == [PUBLISHED] * 14, "all published")
    assert gate.peak_per_page == {page(1): 5, page(2): 2}


def test_posts_waiting_for_their_page_hold_no_database_connection(start_worker, gate, db_session, redis_client):
    worker = start_worker(worker_page_concurrency=5)
    ids = posts_on_pages(worker.ctx, db_session, [page(1)] * 12)
    wait_until(lambda: posts_running(redis_client) == set(ids) and gate.count() == 5, "12 posts running, 5 at Meta")
    # The seven waiting for the Page's turn read its accounts, then gave the connection back (held,
    # they would keep it until their jobs' time limits).
    wait_until(lambda: worker.ctx.engine.pool.checkedout() == 0, "no database connection held", give_up=5)
    gate.open()
    wait_until(lambda: statuses(db_session, ids) == [PUBLISHED] * 12, "all published")


def test_a_job_past_its_time_limit_while_waiting_for_its_page_is_stopped_alone(
    start_worker, gate, db_session, redis_client
):
    worker = start_worker(worker_page_concurrency=5)
    ids = posts_on_pages(worker.ctx, db_session, [page(1)] * 5)
    wait_until(lambda: gate.count() == 5, "the Page's five slots taken")
    (late,) = posts_on_pages(worker.ctx, db_session, [page(1)], enqueue=False)
    job = make_queue(redis_client).enqueue(PUBLISH_POST, args=(late,), job_id=f"pub-{late}-9", job_timeout=1)
    failed = FailedJobRegistry(QUEUE_NAME, connection=redis_client, serializer=JSONSerializer)
    # Waiting for the Page's turn, the job is still stopped at its limit (the wait is taken in slices).
    wait_until(lambda: job.id in failed.get_job_ids(), "the late job stopped by its time limit")
    job.refresh()
    assert "JobTimeoutException" in (job.latest_result().exc_string or "")  # type: ignore[union-attr]
    assert gate.count() == 5  # the five in flight were not touched
    assert reload(db_session, late).status == QUEUED  # never taken: the sweeper enqueues it again
    gate.open()
    wait_until(lambda: statuses(db_session, ids) == [PUBLISHED] * 5, "the five published")


def test_warm_shutdown_lets_the_posts_in_flight_finish_and_takes_no_new_one(
    start_worker, gate, db_session, redis_client
):
    worker = start_worker()
    ids = posts_on_pages(worker.ctx, db_session, [page(n) for n in range(3)])
    wait_until(lambda: gate.count() == 3, "three posts in flight")
    stopping = threading.Thread(target=worker.stop, kwargs={"timeout": GIVE_UP_SECONDS})
    stopping.start()
    wait_until(worker.stop_event.is_set, "stop requested")
    time.sleep(1.5)  # past a dequeue slice: a job enqueued now must stay queued
    later = posts_on_pages(worker.ctx, db_session, [page(9)])
    time.sleep(1.5)
    # Still registered (heartbeats go on) while its jobs finish.
    assert [w.name for w in Worker.all(queue=make_queue(redis_client))] != []
    assert stopping.is_alive() and gate.count() == 3
    gate.open()
    stopping.join(GIVE_UP_SECONDS)
    assert not stopping.is_alive()
    assert statuses(db_session, ids) == [PUBLISHED] * 3
    assert statuses(db_session, later) == [QUEUED] and make_queue(redis_client).count == 1
    assert Worker.all(queue=make_queue(redis_client)) == []


def test_rq_suspend_stops_the_worker_taking_posts_until_rq_resume(start_worker, gate, db_session, redis_client):
    worker = start_worker()
    wait_until(lambda: Worker.all(queue=make_queue(redis_client)) != [], "the worker listening")
    time.sleep(1.5)  # well into its wait for a job
    suspend(redis_client)
    time.sleep(1.5)  # past the worker's once-a-second look for a suspension
    try:
        ids = posts_on_pages(worker.ctx, db_session, [page(n) for n in range(3)])
        time.sleep(1.5)
        assert gate.count() == 0 and make_queue(redis_client).count == 3
    finally:
        resume(redis_client)
    wait_until(lambda: gate.count() == 3, "the three posts taken once resumed")
    gate.open()
    wait_until(lambda: statuses(db_session, ids) == [PUBLISHED] * 3, "published")


def test_a_suspended_worker_still_stops_on_request(start_worker, redis_client):
    worker = start_worker()
    suspend(redis_client)
    try:
        time.sleep(1.5)
        stopping = threading.Thread(target=worker.stop, kwargs={"timeout": GIVE_UP_SECONDS})
        stopping.start()
        stopping.join(10)
        assert not stopping.is_alive()
        assert Worker.all(queue=make_queue(redis_client)) == []
    finally:
        resume(redis_client)


def test_concurrency_one_publishes_one_post_at_a_time(start_worker, gate, db_session):
    worker = start_worker(concurrency=1)
    ids = posts_on_pages(worker.ctx, db_session, [page(n) for n in range(3)])
    gate.open()
    wait_until(lambda: statuses(db_session, ids) == [PUBLISHED] * 3, "all published")
    assert gate.peak == 1


def test_rq_keeps_its_account_of_each_running_job(worker_ctx, start_worker, gate, db_session, redis_client):
    """The worker registers a job's execution and marks it started in one round trip: while the
    posts wait on Meta, RQ's record of each job is what RQ's own two steps write."""
    ids = posts_on_pages(worker_ctx, db_session, [page(n) for n in range(3)])
    job_ids = [reload(db_session, post_id).rq_job_id for post_id in ids]
    for job_id in job_ids:
        redis_client.expire(f"rq:job:{job_id}", 600)  # as RQ's ``ttl=``: a job kept only while queued
    start_worker()
    wait_until(lambda: gate.count() == 3, "3 Graph calls waiting")
    queue = make_queue(redis_client)
    [registered] = [w for w in Worker.all(connection=redis_client) if w.name.startswith("publish-")]
    started = StartedJobRegistry(QUEUE_NAME, connection=redis_client)
    assert sorted(started.get_job_ids()) == sorted(job_ids)  # one job a post: the sweeper found them queued
    for job_id in job_ids:
        job = PublishJob.fetch(job_id, connection=redis_client, serializer=JSONSerializer)
        assert job.get_status() == JobStatus.STARTED and job.worker_name == registered.name
        assert job.started_at is not None and job.last_heartbeat >= job.started_at
        assert redis_client.ttl(job.key) == -1  # kept while it runs
        [execution] = ExecutionRegistry(job_id=job_id, connection=redis_client).get_executions()
        assert execution.composite_key in {m.decode() for m in redis_client.smembers(execution.worker_executions_key)}
        assert redis_client.zscore(started.key, execution.composite_key) > time.time()
    assert redis_client.lrange(queue.intermediate_queue_key, 0, -1) == [] and queue.count == 0
    assert registered.get_state() == "busy"
    gate.open()
    wait_until(lambda: statuses(db_session, ids) == [PUBLISHED] * 3, "all published")


def test_rq_keeps_its_account_of_each_published_posts_job(start_worker, gate, db_session, redis_client):
    """The worker writes a success's bookkeeping in one round trip: RQ's record is the same."""
    worker = start_worker()
    ids = posts_on_pages(worker.ctx, db_session, [page(n) for n in range(3)])
    gate.open()
    wait_until(lambda: statuses(db_session, ids) == [PUBLISHED] * 3, "all published")
    finished = FinishedJobRegistry(QUEUE_NAME, connection=redis_client, serializer=JSONSerializer)
    started = StartedJobRegistry(QUEUE_NAME, connection=redis_client, serializer=JSONSerializer)
    # A post made just after the worker started may also get a job from the sweeper's first pass:
    # each post has one job that published it, and any other skipped. Wait for all of them.

    def results() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {post_id: [] for post_id in ids}
        for job_id in finished.get_job_ids():
            job = PublishJob.fetch(job_id, connection=redis_client, serializer=JSONSerializer)
            found[job.args[0]].append(str(job.return_value()))
        return found

    def all_done() -> bool:
        idle = not started.get_job_ids() and make_queue(redis_client).count == 0
        return idle and all("published" in values for values in results().values())

    wait_until(all_done, "every post's jobs finished")
    assert all(sorted(values) == ["published"] + ["skipped"] * (len(values) - 1) for values in results().values())
    for job_id in finished.get_job_ids():
        job = PublishJob.fetch(job_id, connection=redis_client, serializer=JSONSerializer)
        assert job.get_status() == JobStatus.FINISHED
        assert job.started_at <= job.ended_at <= job.last_heartbeat  # its heartbeat written as it ended
        assert redis_client.zcard(f"rq:executions:{job_id}") == 0  # its execution cleaned up
        assert 0 < redis_client.ttl(job.key) <= 3600  # kept for its result's lifetime, as RQ keeps it
    [registered] = [w for w in Worker.all(connection=redis_client) if w.name.startswith("publish-")]
    assert registered.successful_job_count >= 3 and registered.total_working_time > 0


def test_a_forged_dependent_does_not_turn_a_published_posts_job_into_a_failure(
    start_worker, gate, db_session, redis_client
):
    """A writer to the queue's keys naming another job as a dependent of a publish job: RQ's own
    success handling read it and failed on it, recording a published post's job as failed."""
    worker = start_worker()
    post_id, other_id = posts_on_pages(worker.ctx, db_session, [page(1), page(2)], enqueue=False)
    queue = make_queue(redis_client)
    other = queue.enqueue(PUBLISH_POST, args=(other_id,), job_id=f"pub-{other_id}-9")
    redis_client.sadd(f"rq:job:pub-{post_id}-9:dependents", other.id)
    job = queue.enqueue(PUBLISH_POST, args=(post_id,), job_id=f"pub-{post_id}-9")
    gate.open()
    wait_until(lambda: job.get_status(refresh=True) in (JobStatus.FINISHED, JobStatus.FAILED), "the job ended")
    # Finished, whether it published the post or found it published by the sweeper's job.
    assert job.get_status() == JobStatus.FINISHED and job.return_value() in ("published", "skipped")
    wait_until(lambda: reload(db_session, post_id).status == PUBLISHED, "the post published")


def test_at_concurrency_256_the_worker_publishes(settings, gate, db_session, caplog):
    """The Redis pool is sized from the concurrency (redis-py's default of 100 connections
    ran out at WORKER_THREADS=64 and nothing was published)."""
    if not settings.redis_url:
        pytest.skip("needs a Redis server: the embedded one has no connection pool")
    env = make_test_env(settings.database_url, settings.redis_url, WORKER_CONCURRENCY="256")
    tuned = load_settings(env).with_overrides(**FAST, meta_graph_url=gate.url)
    worker = InProcessWorker(tuned).start()
    try:
        assert worker.concurrency == 256
        assert worker.ctx.redis.connection_pool.max_connections == redis_pool_size(256) >= 3 * 256
        ids = posts_on_pages(worker.ctx, db_session, [page(n) for n in range(60)])
        wait_until(lambda: gate.count() == 60, "60 posts in flight")
        gate.open()
        wait_until(lambda: statuses(db_session, ids) == [PUBLISHED] * 60, "all published")
    finally:
        worker.stop()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]


def test_no_database_connection_is_held_while_meta_is_called(settings, redis_client, gate, db_session):
    ctx = worker_services(settings.with_overrides(**FAST, meta_graph_url=gate.url), redis_client)
    install_context(ctx)
    try:
        conn = make_connection(db_session, "seller-both", page_id=page(1), ig_id="17841400000000042")
        post = make_post(db_session, conn, targets=("instagram",))  # its first call, the quota read, follows reads only
        gate.on_call = ctx.engine.pool.checkedout  # type: ignore[attr-defined]
        publish_post(post.id)
    finally:
        install_context(None)
        ctx.close()
    assert gate.db_connections_seen == [0]  # held through the call, it would read 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, (128, 16, 20, 0)),
        ({"WORKER_CONCURRENCY": "256", "WORKER_PAGE_CONCURRENCY": "5"}, (256, 5, 20, 0)),
        ({"WORKER_THREADS": "32"}, (32, 16, 20, 0)),  # the deprecated name, read when the new one is unset
        ({"WORKER_THREADS": "32", "WORKER_CONCURRENCY": "64"}, (64, 16, 20, 0)),
        ({"WORKER_DB_POOL_SIZE": "4", "WORKER_DB_MAX_OVERFLOW": "0"}, (128, 16, 4, 0)),
    ],
)
def test_worker_sizing_settings(database_url, env, expected):
    settings = load_settings(make_test_env(database_url, None, **env))
    assert (
        settings.worker_concurrency,
        settings.worker_page_concurrency,
        settings.worker_db_pool_size,
        settings.worker_db_max_overflow,
    ) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WORKER_CONCURRENCY", "0"),
        ("WORKER_CONCURRENCY", "257"),
        ("WORKER_CONCURRENCY", "many"),
        ("WORKER_THREADS", "1000"),
        ("WORKER_PAGE_CONCURRENCY", "4"),
        ("WORKER_DB_POOL_SIZE", "0"),
        ("WORKER_DB_MAX_OVERFLOW", "-1"),
    ],
)
def test_worker_sizing_out_of_range_is_refused_by_name(database_url, name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings(make_test_env(database_url, None, **{name: value}))


def test_the_worker_pools_follow_the_settings(settings):
    if not settings.redis_url:
        pytest.skip("needs a Redis server URL")
    ctx = worker_services(
        settings.with_overrides(worker_concurrency=64, worker_db_pool_size=3, worker_db_max_overflow=2)
    )
    try:
        assert ctx.redis.connection_pool.max_connections == 3 * 64 + 16
        if ctx.engine.dialect.name == "postgresql":
            assert (ctx.engine.pool.size(), ctx.engine.pool._max_overflow) == (3, 2)  # type: ignore[attr-defined]
    finally:
        ctx.close()


def test_meta_usage_above_90_percent_still_slows_the_run(worker_ctx, graph, db_session):
    post = make_post(db_session, make_connection(db_session), targets=("facebook",))
    busy = {"X-App-Usage": json.dumps({"call_count": 95, "total_time": 10, "total_cputime": 10})}
    graph.queue("photos", {"json": {"id": "1", "post_id": "p_1"}, "headers": busy})
    before = USAGE_SLOWDOWNS._value.get()
    assert publish_post(post.id) == PUBLISHED
    assert USAGE_SLOWDOWNS._value.get() > before


def test_page_slots_keep_every_account_under_its_cap_and_all_posts_get_their_turn():
    slots = PageSlots()
    lock = threading.Lock()
    in_flight: dict[str, int] = {}
    peak: dict[str, int] = {}
    done: list[int] = []

    def post(n: int) -> None:
        # Posts on the Page and its Instagram account, some on the Page alone, some on another Page.
        accounts = [("page:1", "ig:1"), ("page:1",), ("page:2", "ig:1")][n % 3]
        with slots.hold(set(accounts), 5, before_wait=lambda: None):
            with lock:
                for account in accounts:
                    in_flight[account] = in_flight.get(account, 0) + 1
                    peak[account] = max(peak.get(account, 0), in_flight[account])
            time.sleep(0.01)
            with lock:
                for account in accounts:
                    in_flight[account] -= 1
                done.append(n)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GIVE_UP_SECONDS)
    assert sorted(done) == list(range(60))
    assert set(peak) == {"page:1", "ig:1", "page:2"} and max(peak.values()) == 5
    assert [slots.in_flight(a) for a in ("page:1", "ig:1", "page:2")] == [0, 0, 0]


class TimeLimit(Exception):
    """Stands for RQ's job time limit, raised asynchronously in the job's thread."""


def test_a_time_limit_landing_as_a_waiting_post_wakes_leaves_the_lock_with_its_holder(monkeypatch):
    # The limit lands where a post waiting for its Page's turn takes the lock back, while
    # another thread holds it: the post ends (no slot counted) and the holder keeps the lock.
    monkeypatch.setattr(pacing, "WAIT_SLICE_SECONDS", GIVE_UP_SECONDS)  # it wakes when notified only
    slots = PageSlots()
    armed, landed = threading.Event(), threading.Event()
    ended: list[BaseException] = []

    def land_at_reacquire(frame, event, _arg):
        if event == "call" and frame.f_code is threading.Condition.wait.__code__:
            return land_at_reacquire
        if (
            event == "line"
            and armed.is_set()
            and "_acquire_restore" in linecache.getline(frame.f_code.co_filename, frame.f_lineno)
        ):
            armed.clear()
            landed.set()
            raise TimeLimit()
        return land_at_reacquire if event != "call" else None

    def waiting_post() -> None:
        sys.settrace(land_at_reacquire)  # this thread's own (coverage's goes with it)
        try:
            with slots.hold({"page:1"}, 1, before_wait=lambda: None):
                pass
        except (TimeLimit, RuntimeError) as exc:
            ended.append(exc)
        finally:
            sys.settrace(None)

    def taken_by_another() -> bool:
        taken: list[bool] = []
        probe = threading.Thread(target=lambda: taken.append(slots._lock.acquire(blocking=False)))
        probe.start()
        probe.join(GIVE_UP_SECONDS)
        return taken == [True]

    with slots.hold({"page:1"}, 1, before_wait=lambda: None):
        post = threading.Thread(target=waiting_post)
        post.start()
        wait_until(lambda: "page:1" in slots._turns and bool(slots._turns["page:1"]._waiters), "the post waiting")
        with slots._lock:
            armed.set()
            slots._turns["page:1"].notify()
            assert landed.wait(GIVE_UP_SECONDS)
            # Time for the post to leave its wait: a plain lock would now be free for anyone.
            deadline = time.monotonic() + 1
            while time.monotonic() < deadline:
                assert not taken_by_another()
                time.sleep(0.05)
        post.join(GIVE_UP_SECONDS)
        assert not post.is_alive() and len(ended) == 1
        assert slots.in_flight("page:1") == 1  # the holder's only
    assert slots.in_flight("page:1") == 0


def hold_with_a_time_limit_at(slots: PageSlots, step: int, *, after_work: bool = False, cycle: bool = False) -> bool:
    """A post takes its turn on ``page:1`` and ``ig:1`` and gives it back, its time limit landing
    at the ``step``-th line of the slots' own code it runs (before its work, or ``after_work``);
    False if it landed. With ``cycle``, the limit's exception is kept alive by a reference
    cycle, as a run's stored failure can keep it (and with it the hold's frame)."""
    pacing_file = PageSlots.hold.__wrapped__.__code__.co_filename  # type: ignore[attr-defined]
    state = {"steps": 0, "working": False}

    def land(frame, event, _arg):
        if frame.f_code is PageSlots._forget.__code__:
            return None  # a dead token's clean-up: its job's limit has already landed
        if state["working"] != after_work or frame.f_code.co_filename != pacing_file:
            return land if after_work and frame.f_code.co_filename == pacing_file else None
        if event == "line":
            state["steps"] += 1
            if state["steps"] == step:
                raise TimeLimit()
        return land

    measuring = sys.gettrace()  # coverage's, on this thread: given back after
    sys.settrace(land)
    try:
        with slots.hold({"page:1", "ig:1"}, 5, before_wait=lambda: None):
            state["working"] = True
        return True
    except TimeLimit as exc:
        if cycle:
            exc.itself = exc  # type: ignore[attr-defined]
        return False
    finally:
        sys.settrace(measuring)


@pytest.mark.parametrize(
    ("after_work", "lines_at_least"),
    [(False, 5), (True, 2)],
    ids=["taking its turn", "giving it back"],
)
def test_a_time_limit_landing_anywhere_in_the_slots_leaves_the_post_counted_nowhere(after_work, lines_at_least):
    # Each run lets the limit land one line further into the slots' own code, before the post's
    # work (taking its turn) or after it (giving it back), until a post runs through: wherever it
    # landed, the post is counted nowhere once its job is over (else, after a few, its Page would
    # be full for good).
    slots = PageSlots()
    step = 1
    while True:
        with slots.hold({"page:1"}, 5, before_wait=lambda: None):  # another post on the Page
            ran_through = hold_with_a_time_limit_at(slots, step, after_work=after_work)
            assert (slots.in_flight("page:1"), slots.in_flight("ig:1")) == (1, 0), step
        assert slots.in_flight("page:1") == 0
        if ran_through:
            break
        step += 1
    assert step > lines_at_least  # it did land at each line the post ran there


def test_a_turn_a_reference_cycle_keeps_is_given_back_once_its_job_has_ended():
    # The limit lands as the post gives its turn back, before the pop; a cycle keeps the hold's
    # token alive, so only the garbage collector would free the entry: the worker gives it back.
    slots = PageSlots()
    gc.disable()
    try:
        assert hold_with_a_time_limit_at(slots, 1, after_work=True, cycle=True) is False
        assert (slots.in_flight("page:1"), slots.in_flight("ig:1")) == (1, 1)
        slots.release_left_by(threading.get_ident() + 1)  # another thread's job ended: not this one's turn
        assert slots.in_flight("page:1") == 1
        slots.release_left_by(threading.get_ident())
        assert (slots.in_flight("page:1"), slots.in_flight("ig:1")) == (0, 0)
    finally:
        gc.enable()
        gc.collect()


def test_the_worker_gives_back_what_each_job_thread_left_once_its_job_has_ended(
    start_worker, gate, db_session, monkeypatch
):
    ended: list[int] = []
    real = PAGE_SLOTS.release_left_by

    def release_left_by(thread: int) -> None:
        ended.append(thread)
        real(thread)

    monkeypatch.setattr(PAGE_SLOTS, "release_left_by", release_left_by)
    worker = start_worker()
    ids = posts_on_pages(worker.ctx, db_session, [page(1), page(2)])
    gate.open()
    wait_until(lambda: statuses(db_session, ids) == [PUBLISHED] * 2, "both published")
    wait_until(lambda: len(ended) >= 2, "both jobs ended")
    assert threading.get_ident() not in ended  # the job threads', not the caller's
    assert PAGE_SLOTS.in_flight(f"page:{page(1)}") == PAGE_SLOTS.in_flight(f"page:{page(2)}") == 0
