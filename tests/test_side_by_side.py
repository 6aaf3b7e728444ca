"""A post's Facebook and Instagram work side by side (DESIGN §13.4), under every publishing rule
of DESIGN §8: a lease lost mid-run, a connection found unusable while the other target is at Meta."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer

import pytest
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import update

from publish_worker.context import install_context, worker_services
from publish_worker.jobs import publish_post
from publish_worker.runner import make_worker
from shared.models import PUBLISHED, AuditEvent, ScheduledPost, SocialConnection
from shared.queue import PUBLISH_POST, QUEUE_NAME, enqueue_publish, make_queue
from tests.factories import IG_ID, PAGE_ID, make_connection, make_post
from tests.json_stand_in import JsonHandler, serve_in_thread, stop_serving
from tests.worker_fixtures import FAST, reload, scheduled_jobs

GIVE_UP_SECONDS = 10  # only reached when the two calls are not at Meta together
PATH = re.compile(r"^/v[0-9.]+/([^?]+)")
EXPIRED = {"error": {"message": "Session has expired", "type": "OAuthException", "code": 190, "error_subcode": 463}}


class SideBySideMeta(ThreadingHTTPServer):
    """Meta on 127.0.0.1 for one Page and its Instagram account (a real HTTP server: requests-mock
    lets one request through at a time). The Page's ``/photos`` and the account's ``/media``
    are answered only once both are at Meta together; neither is if they never are."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), SideBySideHandler)
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []
        self.together = threading.Barrier(2, timeout=GIVE_UP_SECONDS, action=self.both_at_meta)
        self.apart = False
        self.photo_answer: tuple[int, dict] = (200, {"id": "1", "post_id": f"{PAGE_ID}_1"})
        self.container_status = "FINISHED"
        self.on_both: Callable[[], None] | None = None  # runs while both calls are held at Meta
        # Set: the two calls do not wait for each other; /media waits for this event instead.
        self.media_released: threading.Event | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def both_at_meta(self) -> None:
        if self.on_both is not None:
            self.on_both()

    def meet(self) -> bool:
        try:
            self.together.wait()
            return True
        except threading.BrokenBarrierError:
            self.apart = True
            return False

    def count(self, method: str, path: str) -> int:
        with self.lock:
            return self.calls.count((method, path))

    def answer(self, method: str, path: str) -> tuple[int, dict]:
        with self.lock:
            self.calls.append((method, path))
        apart = (503, {"error": {"message": "not at Meta together", "code": 1}})
        if (method, path) == ("POST", f"{PAGE_ID}/photos"):
            return self.photo_answer if self.media_released or self.meet() else apart
        if (method, path) == ("POST", f"{IG_ID}/media"):
            if self.media_released is not None:
                self.media_released.wait(GIVE_UP_SECONDS)
            return (200, {"id": "container-1"}) if self.media_released or self.meet() else apart
        if (method, path) == ("GET", f"{IG_ID}/content_publishing_limit"):
            return 200, {"data": [{"quota_usage": 0, "config": {"quota_total": 50}}]}
        if (method, path) == ("GET", "container-1"):
            return 200, {"id": "container-1", "status_code": self.container_status}
        if (method, path) == ("POST", f"{IG_ID}/media_publish"):
            return 200, {"id": "17950000000000001"}
        return 404, {"error": {"message": "not here", "code": 100}}


class SideBySideHandler(JsonHandler):
    server: SideBySideMeta

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.respond("POST")

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.respond("GET")

    def respond(self, method: str) -> None:
        match = PATH.match(self.path)
        self.send_json(*self.server.answer(method, match.group(1) if match else self.path))


@pytest.fixture
def meta() -> Iterator[SideBySideMeta]:
    server = SideBySideMeta()
    serve_in_thread(server)
    yield server
    server.together.abort()
    stop_serving(server)


@pytest.fixture
def ctx(settings, redis_client, engine, meta):
    ctx = worker_services(settings.with_overrides(**FAST, meta_graph_url=meta.url), redis_client)
    install_context(ctx)
    yield ctx
    install_context(None)
    ctx.close()


def stored(db_session, post_id: str) -> dict:
    post = reload(db_session, post_id)
    return {
        "post": (post.status, post.lease_owner, post.attempts, post.error_code),
        **{
            row.target: (row.status, row.sent_at, row.remote_id, row.container_id, row.error_code)
            for row in post.target_rows
        },
    }


def test_a_posts_facebook_and_instagram_calls_are_at_meta_together(ctx, meta, db_session):
    post = make_post(db_session, make_connection(db_session))
    assert publish_post(post.id) == "published"
    assert not meta.apart  # each of the two calls waited at Meta until the other came
    post = reload(db_session, post.id)
    fb, ig = post.target("facebook"), post.target("instagram")
    assert (fb.status, fb.remote_id) == ("published", f"{PAGE_ID}_1")
    assert (ig.status, ig.remote_id) == ("published", "17950000000000001")
    assert post.attempts == 1 and post.lease_owner is None
    assert meta.count("POST", f"{PAGE_ID}/photos") == meta.count("POST", f"{IG_ID}/media_publish") == 1
    assert db_session.query(AuditEvent.event).all() == [("post_published",)]


def test_an_expired_token_on_facebook_while_instagram_is_at_meta_fails_both_and_sends_nothing_more(
    ctx, meta, db_session
):
    meta.photo_answer = (400, EXPIRED)
    meta.container_status = "IN_PROGRESS"  # Instagram would come back later, were the connection usable
    conn = make_connection(db_session)
    post = make_post(db_session, conn)
    assert publish_post(post.id) == "failed"
    assert not meta.apart
    post = reload(db_session, post.id)
    fb, ig = post.target("facebook"), post.target("instagram")
    assert (fb.status, fb.error_code) == ("failed", "token_expired")
    assert (ig.status, ig.error_code, ig.sent_at) == ("failed", "token_expired", None)
    connection = db_session.get(SocialConnection, conn.id)
    assert (connection.status, connection.last_error_code) == ("needs_reauth", "token_expired")
    assert scheduled_jobs(ctx.redis) == []
    assert publish_post(post.id) == "skipped"  # a late or duplicate job sends nothing again
    assert meta.count("POST", f"{PAGE_ID}/photos") == meta.count("POST", f"{IG_ID}/media") == 1
    assert meta.count("POST", f"{IG_ID}/media_publish") == 0


def test_an_expired_token_while_instagram_could_publish_sends_its_publish_at_most_once(ctx, meta, db_session):
    """Whether Instagram's ``media_publish`` left before Facebook's answer was read is a race;
    either way it is sent at most once and the post says what happened."""
    meta.photo_answer = (400, EXPIRED)
    conn = make_connection(db_session)
    post = make_post(db_session, conn)
    outcome = publish_post(post.id)
    post = reload(db_session, post.id)
    ig = post.target("instagram")
    published = meta.count("POST", f"{IG_ID}/media_publish")
    assert published <= 1
    if published:
        assert (outcome, ig.status, ig.remote_id) == ("partially_published", "published", "17950000000000001")
    else:
        assert (outcome, ig.status, ig.sent_at) == ("failed", "failed", None)
    assert post.target("facebook").error_code == "token_expired"
    assert db_session.get(SocialConnection, conn.id).status == "needs_reauth"
    assert publish_post(post.id) == "skipped"
    assert meta.count("POST", f"{IG_ID}/media_publish") == published


def test_a_lease_lost_while_both_targets_are_at_meta_writes_nothing_more(ctx, meta, db_session, engine):
    post = make_post(db_session, make_connection(db_session))
    before: dict = {}

    def another_run_takes_the_post() -> None:
        with engine.begin() as connection:
            connection.execute(
                update(ScheduledPost).where(ScheduledPost.id == post.id).values(lease_owner="lease-another-run")
            )
        before.update(stored(db_session, post.id))

    meta.on_both = another_run_takes_the_post
    assert publish_post(post.id) == "lease_lost"
    assert not meta.apart
    # Facebook's answer and Instagram's container are not recorded, and Instagram's publish,
    # behind a sent marker the lost lease refuses, never leaves.
    assert stored(db_session, post.id) == before
    assert before["post"][:2] == ("publishing", "lease-another-run")
    assert before["instagram"][2:4] == (None, None) and before["facebook"][2] is None
    assert meta.count("POST", f"{IG_ID}/media_publish") == 0
    assert db_session.query(AuditEvent.event).all() == []


def test_a_job_past_its_time_limit_stops_its_other_target_which_sends_nothing_more(
    settings, redis_client, engine, meta, db_session, caplog
):
    """The job's time limit lands in the job's thread while Instagram's call is held at Meta on a
    helper thread: the job ends once that call is answered, what it learned is recorded under
    the lease, nothing more is sent, and the worker goes on publishing."""
    caplog.set_level(logging.WARNING, logger="publish_worker.side_by_side")  # whatever the root's level
    meta.media_released = threading.Event()
    conn = make_connection(db_session)
    post = make_post(db_session, conn)
    job_id = f"pub-{post.id}-9"
    job = make_queue(redis_client).enqueue(PUBLISH_POST, args=(post.id,), job_id=job_id, job_timeout=2)
    # The RQ worker alone (no sweeper to race the job with one of its own).
    ctx = worker_services(settings.with_overrides(**FAST, meta_graph_url=meta.url), redis_client)
    install_context(ctx)
    stop = threading.Event()
    worker = make_worker(ctx, 4, stop)
    working = threading.Thread(target=worker.work, kwargs={"with_scheduler": False}, daemon=True)
    working.start()
    try:
        wait_until(lambda: "run stopping (JobTimeoutException)" in caplog.text, "the job's time limit reached")
        meta.media_released.set()
        failed = FailedJobRegistry(QUEUE_NAME, connection=redis_client, serializer=JSONSerializer)
        wait_until(lambda: job.id in failed.get_job_ids(), "the job ended by its time limit")
        assert meta.count("GET", "container-1") == meta.count("POST", f"{IG_ID}/media_publish") == 0
        held = reload(db_session, post.id)
        fb, ig = held.target("facebook"), held.target("instagram")
        assert held.status == "publishing"  # under its lease still: the sweeper takes it over after
        assert (fb.status, fb.remote_id) == ("published", f"{PAGE_ID}_1")
        assert (ig.status, ig.container_id, ig.sent_at) == ("pending", "container-1", None)
        other = make_post(db_session, conn, targets=("facebook",))
        with ctx.session() as session:
            enqueue_publish(session, ctx, other.id)
        wait_until(lambda: reload(db_session, other.id).status == PUBLISHED, "the next post published")
    finally:
        stop.set()
        working.join(GIVE_UP_SECONDS)
        worker.close()
        install_context(None)
        ctx.close()


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GIVE_UP_SECONDS * 2
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.02)
