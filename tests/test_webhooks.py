"""Outcome events to Resellio (DESIGN §13.3): the outbox, signed delivery, retries, the sweeper, replay.

A receiver on 127.0.0.1 stands in for Resellio and checks each request with the
``standardwebhooks`` package, as the README tells Resellio to.
"""

from __future__ import annotations

import base64
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from click.testing import CliRunner
from prometheus_client import REGISTRY
from rq import SimpleWorker
from rq.job import JobStatus
from rq.serializers import JSONSerializer
from sqlalchemy import select
from standardwebhooks import Webhook

from connect_service.cli import main as cli
from publish_worker import duties, lease
from publish_worker.jobs import publish_post
from publish_worker.outcome import finish
from publish_worker.webhooks import BACKOFF, LATER, attempt, deliver_event
from shared import webhooks
from shared.db import utcnow
from shared.models import PUBLISHED, PUBLISHING, ScheduledPost, SocialConnection, WebhookEvent
from shared.queue import DELIVER_EVENT, PublishJob, make_queue
from shared.services import build_services
from shared.settings import load_settings
from shared.token_check import mark_needs_reauth
from tests.conftest import make_test_env, same_origin
from tests.factories import make_connection, make_post
from tests.test_meta_callbacks import good
from tests.worker_fixtures import scheduled_jobs

SECRET = "whsec_" + base64.b64encode(b"resellio-webhook-test-secret-32b").decode()


class Receiver:
    """Resellio's end: records each request; answers with the queued statuses, then 204."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/meta"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.answers.pop(0) if receiver.answers else 204
                self.send_response(status)
                if status in (301, 302, 307, 308):
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Down: nothing listens on the port any more (connection refused)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def verified(self) -> list[dict]:
        """Every request's body, checked with standardwebhooks (raises if one is not ours)."""
        return [Webhook(SECRET).verify(body, headers) for headers, body in self.received]


@pytest.fixture
def receiver():
    hook = Receiver()
    hook.start()
    yield hook
    hook.stop()


@pytest.fixture
def settings(database_url, redis_url, receiver):
    """This module's settings name the receiver (the app, the worker and the CLI use them)."""
    return load_settings(
        make_test_env(database_url, redis_url, RESELLIO_WEBHOOK_URL=receiver.url, RESELLIO_WEBHOOK_SECRET=SECRET)
    )


@pytest.fixture
def hooked(worker_ctx):
    """The worker's services, recording events as a running worker's do (its duties bind them)."""
    webhooks.bind(worker_ctx)
    yield worker_ctx
    webhooks.unbind(worker_ctx.engine)


def run_deliveries(redis) -> None:
    """What a worker does with the queue: run every queued job through the allow-list."""
    SimpleWorker([make_queue(redis)], connection=redis, serializer=JSONSerializer, job_class=PublishJob).work(
        burst=True
    )


def stored(db_session) -> list[WebhookEvent]:
    db_session.expire_all()
    return list(db_session.scalars(select(WebhookEvent).order_by(WebhookEvent.created_at)))


def queued_deliveries(redis) -> list[str]:
    return [job.args[0] for job in make_queue(redis).get_jobs() if job.func_name == DELIVER_EVENT]


# --- events recorded with the change they report ---


def test_a_disconnect_is_delivered_once_signed_with_the_connections_own_status(
    client, db_session, hooked, receiver, redis_client
):
    conn = make_connection(db_session)
    conn.meta_user_id = None  # nothing to revoke at Meta (no traffic beyond 127.0.0.1)
    db_session.commit()
    assert client.post("/api/meta/disconnect", headers=same_origin()).status_code == 200
    [event] = stored(db_session)
    assert event.type == "connection.disconnected" and event.status == "pending"
    assert queued_deliveries(redis_client) == [event.id]  # enqueued once the disconnect committed

    run_deliveries(redis_client)

    [payload] = receiver.verified()
    [(headers, _)] = receiver.received
    assert headers["webhook-id"] == event.id and headers["content-type"] == "application/json"
    assert payload["type"] == "connection.disconnected" and payload["timestamp"].endswith("Z")
    data = payload["data"]
    assert data["status"] == "disconnected" and data["connection_id"] == conn.id
    assert data["user_id_resellio"] == "user-1" and data["facebook_page_id"] == conn.facebook_page_id
    assert "error_code" not in data and not [key for key in data if "access_token" in key or key.endswith("_enc")]
    [event] = stored(db_session)
    assert event.status == "delivered" and event.attempts == 1 and event.delivered_at is not None
    assert event.last_status == 204 and event.last_error is None


def test_a_post_outcome_event_carries_exactly_the_posts_api_body(client, db_session, hooked, receiver, redis_client):
    """``post_event`` called as ``publish_worker/outcome.finish`` does: in the session holding
    the post's lease, once the outcome is recorded, committed with the audit event."""
    conn = make_connection(db_session)
    owner = lease.new_owner()
    post = make_post(
        db_session,
        conn,
        status=PUBLISHING,
        lease_owner=owner,
        lease_expires_at=utcnow() + timedelta(minutes=1),
        facebook={"status": "published", "remote_id": "104_1", "published_at": utcnow()},
        instagram={"status": "published", "remote_id": "1790001", "published_at": utcnow()},
    )
    with hooked.session() as session:
        mine = session.get(ScheduledPost, post.id)
        lease.record(session, mine, owner, 30, status=PUBLISHED, finished_at=utcnow(), lease_owner=None)
        event = webhooks.post_event(session, mine)
        session.commit()
    assert event is not None and event.type == "post.published" and event.post_id == post.id

    run_deliveries(redis_client)

    [payload] = receiver.verified()
    assert payload["type"] == "post.published"
    assert payload["data"] == client.get(f"/api/meta/schedule/{post.id}").json
    assert payload["data"]["targets"]["facebook"]["post_id"] == "104_1"
    assert [e.status for e in stored(db_session)] == ["delivered"]


@pytest.mark.parametrize(
    ("status", "event_type"),
    [
        ("partially_published", "post.partially_published"),
        ("failed", "post.failed"),
        ("unconfirmed", "post.unconfirmed"),
    ],
)
def test_each_post_outcome_has_its_event_and_other_statuses_none(db_session, hooked, status, event_type):
    post = make_post(db_session, make_connection(db_session), status=status)
    with hooked.session() as session:
        assert webhooks.post_event(session, session.get(ScheduledPost, post.id)).type == event_type
        session.commit()
    queued = make_post(db_session, make_connection(db_session, "user-2"))
    with hooked.session() as session:
        assert webhooks.post_event(session, session.get(ScheduledPost, queued.id)) is None
        session.commit()
    assert [e.type for e in stored(db_session)] == [event_type]


@pytest.fixture
def meta(graph, receiver):
    """Meta mocked, while the deliveries reach the real receiver."""
    graph.m.register_uri("POST", receiver.url, real_http=True)
    return graph


def test_a_published_post_sends_one_signed_post_published_event_with_its_api_body(
    client, db_session, hooked, receiver, redis_client, meta
):
    post = make_post(db_session, make_connection(db_session))
    assert publish_post(post.id) == "published"
    assert publish_post(post.id) == "skipped"  # a duplicate job changes nothing and says nothing

    run_deliveries(redis_client)

    [payload] = receiver.verified()
    assert payload["type"] == "post.published"
    assert payload["data"] == client.get(f"/api/meta/schedule/{post.id}").json
    assert payload["data"]["status"] == "published"
    assert [(e.type, e.post_id, e.status) for e in stored(db_session)] == [("post.published", post.id, "delivered")]


@pytest.mark.parametrize(
    ("how", "event_type", "error_code"),
    [
        ("container_error", "post.failed", "media_invalid"),
        ("instagram_fails", "post.partially_published", "media_invalid"),
        ("answer_lost", "post.unconfirmed", "meta_unavailable"),
    ],
)
def test_a_failed_partial_or_unconfirmed_outcome_sends_exactly_one_event_of_its_type(
    client, db_session, hooked, receiver, redis_client, meta, how, event_type, error_code
):
    conn = make_connection(db_session)
    if how == "answer_lost":
        # A worker died after sending; Meta cannot be asked whether the post exists.
        post = make_post(
            db_session,
            conn,
            targets=["facebook"],
            status=PUBLISHING,
            lease_owner="lease-dead",
            lease_expires_at=utcnow() - timedelta(seconds=1),
            facebook={"sent_at": utcnow() - timedelta(seconds=30)},
        )
        meta.queue("published_posts", {"exc": requests.exceptions.ReadTimeout})
    else:
        meta.container_status = "ERROR"
        targets = ["instagram"] if how == "container_error" else ["facebook", "instagram"]
        post = make_post(db_session, conn, targets=targets)

    assert publish_post(post.id) == event_type.removeprefix("post.")
    run_deliveries(redis_client)

    [payload] = receiver.verified()
    assert payload["type"] == event_type
    assert payload["data"] == client.get(f"/api/meta/schedule/{post.id}").json
    assert payload["data"]["error_code"] == error_code
    assert [e.type for e in stored(db_session)] == [event_type]


def test_an_outcome_whose_lease_was_lost_records_no_event(db_session, hooked, graph):
    """A run that lost its lease writes nothing, the event included (it is in the same transaction)."""
    post = make_post(
        db_session,
        make_connection(db_session),
        status=PUBLISHING,
        lease_owner="someone-else",
        lease_expires_at=utcnow() + timedelta(minutes=1),
    )
    with hooked.session() as session:
        mine = session.get(ScheduledPost, post.id)
        with pytest.raises(lease.LeaseLost):
            finish(session, mine, "not-the-owner", hooked.settings)
    assert stored(db_session) == []


def test_needs_reauth_is_one_event_per_change(db_session, hooked, redis_client):
    conn = make_connection(db_session)
    with hooked.session() as session:
        mine = session.get(SocialConnection, conn.id)
        mark_needs_reauth(session, mine, "token_expired")
        session.commit()
        mark_needs_reauth(session, mine, "token_expired")  # the same state again: nothing new
        session.commit()
    [event] = stored(db_session)
    data = json.loads(event.body)["data"]
    assert event.type == "connection.needs_reauth"
    assert data["status"] == "needs_reauth" and data["error_code"] == "token_expired"
    assert queued_deliveries(redis_client) == [event.id]


def test_a_rolled_back_change_leaves_no_event_and_no_job(db_session, hooked, redis_client):
    conn = make_connection(db_session)
    with hooked.session() as session:
        mark_needs_reauth(session, session.get(SocialConnection, conn.id), "token_expired")
        session.rollback()
        session.commit()
    assert stored(db_session) == [] and queued_deliveries(redis_client) == []


def test_without_a_url_no_event_is_recorded(database_url, redis_url, redis_client, engine, db_session):
    plain = build_services(load_settings(make_test_env(database_url, redis_url)), redis=redis_client, engine=engine)
    webhooks.bind(plain)
    conn = make_connection(db_session)
    mark_needs_reauth(db_session, conn, "token_expired")
    db_session.commit()
    assert db_session.get(SocialConnection, conn.id).status == "needs_reauth"
    assert stored(db_session) == [] and queued_deliveries(redis_client) == []


def test_deauthorize_and_data_deletion_send_disconnected_without_metas_data(anon_client, db_session, redis_client):
    conn = make_connection(db_session)
    assert anon_client.post("/api/meta/deauthorize", data={"signed_request": good()}).status_code == 200
    [event] = stored(db_session)
    assert event.type == "connection.disconnected" and json.loads(event.body)["data"]["status"] == "disconnected"

    erased = make_connection(db_session, "user-2", meta_user_id="10150000000000002")
    assert json.loads(event.body)["data"]["facebook_page_id"] == conn.facebook_page_id
    response = anon_client.post("/api/meta/data-deletion", data={"signed_request": good("10150000000000002")})
    assert response.status_code == 200
    [deleted] = [e for e in stored(db_session) if e.connection_id == erased.id]
    data = json.loads(deleted.body)["data"]
    assert data["status"] == "disconnected" and data["connection_id"] == erased.id
    assert not {"facebook_page_id", "page_name", "instagram_username", "instagram_business_account_id"} & set(data)


# --- delivery: retries, the sweeper, dead, replay ---


def test_a_receiver_down_for_a_while_gets_the_event_later_with_the_same_id_re_signed(
    db_session, hooked, receiver, redis_client
):
    conn = make_connection(db_session)
    counted = {
        result: REGISTRY.get_sample_value(
            "social_connect_webhook_deliveries_total", {"type": "connection.connected", "result": result}
        )
        or 0
        for result in ("retry", "delivered")
    }
    receiver.stop()
    with hooked.session() as session:
        event = webhooks.connection_event(session, session.get(SocialConnection, conn.id), "connection.connected")
        session.commit()
    t0 = utcnow()
    assert attempt(hooked, event.id, now=t0) == "retry"  # connection refused
    [row] = stored(db_session)
    assert row.last_status is None and row.last_error == "ConnectionError"
    assert row.next_attempt_at == t0 + BACKOFF[0]
    [job] = scheduled_jobs(redis_client)
    assert job.id == row.rq_job_id and job.args == [event.id]

    receiver.start()  # back on the same port, but failing at first
    receiver.answers = [503]
    t1 = row.next_attempt_at
    assert attempt(hooked, event.id, now=t1) == "retry"
    [row] = stored(db_session)
    assert row.last_status == 503 and row.next_attempt_at == t1 + BACKOFF[1]
    assert attempt(hooked, event.id, now=t1) == "skipped"  # not due yet: an early duplicate does nothing
    assert attempt(hooked, event.id, now=row.next_attempt_at) == "delivered"

    first, second = receiver.verified()  # each attempt verifies on its own timestamp
    assert first == second
    (h1, body1), (h2, body2) = receiver.received
    assert h1["webhook-id"] == h2["webhook-id"] == event.id and body1 == body2
    assert int(h2["webhook-timestamp"]) - int(h1["webhook-timestamp"]) == BACKOFF[1].total_seconds()
    assert h1["webhook-signature"] != h2["webhook-signature"]
    [row] = stored(db_session)
    assert row.status == "delivered" and row.attempts == 3
    for result, more in (("retry", 2), ("delivered", 1)):
        labels = {"type": "connection.connected", "result": result}
        assert REGISTRY.get_sample_value("social_connect_webhook_deliveries_total", labels) == counted[result] + more


def test_an_attempt_changes_only_its_own_event(db_session, hooked, receiver):
    conn = make_connection(db_session)
    with hooked.session() as session:
        mine = session.get(SocialConnection, conn.id)
        first = webhooks.connection_event(session, mine, "connection.connected")
        other = webhooks.connection_event(session, mine, "connection.expiring_soon")
        session.commit()
    assert attempt(hooked, first.id) == "delivered"
    states = {event.id: (event.status, event.attempts) for event in stored(db_session)}
    assert states == {first.id: ("delivered", 1), other.id: ("pending", 0)}


def test_a_redirect_is_not_followed_and_counts_as_a_failure(db_session, hooked, receiver):
    conn = make_connection(db_session)
    receiver.answers = [302]
    with hooked.session() as session:
        event = webhooks.connection_event(session, session.get(SocialConnection, conn.id), "connection.connected")
        session.commit()
    assert attempt(hooked, event.id) == "retry"
    assert [headers.get("webhook-id") for headers, _ in receiver.received] == [event.id]  # /elsewhere never asked
    [row] = stored(db_session)
    assert row.last_status == 302 and row.last_error == "redirect not followed"


def test_after_a_redis_wipe_the_sweeper_still_delivers(db_session, hooked, receiver, redis_client):
    conn = make_connection(db_session)
    with hooked.session() as session:
        mark_needs_reauth(session, session.get(SocialConnection, conn.id), "permissions_missing")
        session.commit()
    assert duties.sweep_webhooks(hooked) == 0  # its job is waiting: nothing to do
    redis_client.flushdb()
    assert duties.sweep_webhooks(hooked) == 1
    run_deliveries(redis_client)
    [payload] = receiver.verified()
    assert payload["type"] == "connection.needs_reauth" and payload["data"]["error_code"] == "permissions_missing"
    assert [e.status for e in stored(db_session)] == ["delivered"]
    assert duties.sweep_webhooks(hooked) == 0


def test_an_attempt_whose_worker_died_is_taken_up_by_the_sweeper(db_session, hooked, receiver, redis_client):
    conn = make_connection(db_session)
    with hooked.session() as session:
        event = webhooks.connection_event(session, session.get(SocialConnection, conn.id), "connection.connected")
        session.commit()
    [job] = make_queue(redis_client).get_jobs()
    job.set_status(JobStatus.STARTED)  # taken by a worker that then died mid-attempt
    make_queue(redis_client).remove(job.id)
    with hooked.session() as session:
        claimed = session.get(WebhookEvent, event.id)
        claimed.attempts, claimed.next_attempt_at = 1, utcnow() - timedelta(seconds=1)  # its claim ran out
        session.commit()
    assert duties.sweep_webhooks(hooked) == 1
    run_deliveries(redis_client)
    assert [headers["webhook-id"] for headers, _ in receiver.received] == [event.id]
    assert [(e.status, e.attempts) for e in stored(db_session)] == [("delivered", 2)]


def test_a_failing_receiver_is_retried_on_schedule_for_three_days_then_dead(db_session, hooked, receiver):
    conn = make_connection(db_session)
    with hooked.session() as session:
        event = webhooks.connection_event(session, session.get(SocialConnection, conn.id), "connection.connected")
        session.commit()
    [row] = stored(db_session)
    created, retry_until = row.created_at, row.retry_until
    assert retry_until - created == timedelta(days=3)
    receiver.answers = [500] * 100
    waits: list[timedelta] = []
    at = created
    while (result := attempt(hooked, event.id, now=at)) == "retry":
        [row] = stored(db_session)
        waits.append(row.next_attempt_at - at)
        at = row.next_attempt_at
    assert result == "dead" and at == retry_until
    assert waits[: len(BACKOFF)] == list(BACKOFF)
    assert set(waits[len(BACKOFF) : -1]) == {LATER} and waits[-1] <= LATER
    [row] = stored(db_session)
    assert row.status == "dead" and row.attempts == len(waits) + 1 and row.next_attempt_at is None
    assert row.last_status == 500 and len(receiver.received) == row.attempts
    assert attempt(hooked, event.id, now=at + LATER) == "skipped"


def test_replay_resends_events_since_a_time_with_their_ids(
    db_session, hooked, receiver, redis_client, monkeypatch, settings, redis_url
):
    if redis_url is None:
        pytest.skip("the command needs REDIS_URL (a Redis server)")
    conn = make_connection(db_session)
    with hooked.session() as session:
        old = webhooks.connection_event(session, session.get(SocialConnection, conn.id), "connection.connected")
        session.commit()
    with hooked.session() as session:
        session.get(WebhookEvent, old.id).created_at = utcnow() - timedelta(days=5)
        recent = webhooks.connection_event(session, session.get(SocialConnection, conn.id), "connection.expiring_soon")
        session.commit()
    receiver.answers = [204, 500]  # one delivered, one failing (later dead)
    run_deliveries(redis_client)
    assert {e.id: e.status for e in stored(db_session)}[recent.id] in ("delivered", "pending")
    with hooked.session() as session:
        session.get(WebhookEvent, recent.id).status = "dead"
        session.commit()
    receiver.received.clear()

    env = make_test_env(
        settings.database_url, redis_url, RESELLIO_WEBHOOK_URL=receiver.url, RESELLIO_WEBHOOK_SECRET=SECRET
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    since = (utcnow() - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    outcome = CliRunner().invoke(cli, ["webhooks", "replay", "--since", since])
    assert outcome.exit_code == 0, outcome.output
    assert outcome.output.startswith("1 event(s) since")
    run_deliveries(redis_client)
    [payload] = receiver.verified()
    assert payload["type"] == "connection.expiring_soon"
    assert [headers["webhook-id"] for headers, _ in receiver.received] == [recent.id]
    states = {e.id: (e.status, e.attempts) for e in stored(db_session)}
    assert states[recent.id] == ("delivered", 1)

    for bad in ("yesterday", "2026-12-01T00:00:00"):
        refused = CliRunner().invoke(cli, ["webhooks", "replay", "--since", bad])
        assert refused.exit_code != 0 and "--since" in refused.output


def test_the_delivery_job_is_on_the_allow_list_and_sends_nothing_when_the_url_is_unset(
    db_session, hooked, receiver, database_url, redis_url, redis_client
):
    conn = make_connection(db_session)
    with hooked.session() as session:
        event = webhooks.connection_event(session, session.get(SocialConnection, conn.id), "connection.connected")
        session.commit()
    assert deliver_event(event.id) == "delivered"  # the job function, with this process's services
    plain = build_services(load_settings(make_test_env(database_url, redis_url)), redis=redis_client)
    try:
        assert attempt(plain, event.id) == "skipped"
    finally:
        plain.close()
    assert len(receiver.received) == 1


# --- expiring_soon from the daily duty ---


def _expiring(db_session, user: str, days: float) -> SocialConnection:
    conn = make_connection(db_session, user, meta_user_id=f"1015{user}")
    conn.data_access_expires_at = utcnow() + timedelta(days=days)
    db_session.commit()
    return conn


def test_expiring_soon_is_announced_once_per_connection_per_expiry(db_session, hooked):
    soon = _expiring(db_session, "user-1", 10)
    _expiring(db_session, "user-2", 30)
    assert duties.announce_expiring(hooked) == 1
    assert duties.announce_expiring(hooked) == 0  # the next day: already said
    [event] = stored(db_session)
    data = json.loads(event.body)["data"]
    assert event.type == "connection.expiring_soon" and data["connection_id"] == soon.id
    assert data["expiring_soon"] is True and data["status"] == "connected"

    # The seller reconnected (a new expiry), and that one comes close too.
    later = utcnow() + timedelta(days=12)
    db_session.get(SocialConnection, soon.id).data_access_expires_at = later
    db_session.commit()
    assert duties.announce_expiring(hooked) == 1
    assert duties.announce_expiring(hooked, now=utcnow() + timedelta(days=1)) == 0
    assert [e.type for e in stored(db_session)] == ["connection.expiring_soon"] * 2


def test_the_worker_binds_its_services_and_sweeps_events_when_its_duties_start(hooked):
    webhooks.unbind(hooked.engine)
    stop = threading.Event()
    names = [duty.duty_name for duty in duties.periodic_duties(hooked, stop)]
    assert "webhook_sweep" in names
    with hooked.session() as session:
        assert webhooks.outbox_for(session) is not None


def test_the_connect_flow_records_connected_once_the_page_is_known(client, db_session, redis_client):
    import requests_mock

    from tests.meta_mock import MetaMock, page
    from tests.test_connect_flow import callback, start

    with requests_mock.Mocker() as m:
        meta = MetaMock(m)
        assert callback(client, start(client), meta.code).status_code == 200
        [event] = stored(db_session)
        data = json.loads(event.body)["data"]
        assert event.type == "connection.connected" and data["status"] == "connected"
        assert data["page_name"] == "Toko 1" and data["connection_id"] == event.connection_id

        # Another Page, picked from several: the first connection ends, the new one starts.
        meta.pages[:] = [page(2), page(3)]
        assert callback(client, start(client), meta.code).json["requires_page_selection"] is True
        assert len(stored(db_session)) == 1  # nothing is connected until the seller picks
        picked = client.post("/api/meta/select-page", json={"page_id": meta.pages[1].id}, headers=same_origin())
        assert picked.status_code == 200
    events = stored(db_session)
    assert [(e.type, e.connection_id) for e in events[1:]] == [
        ("connection.disconnected", event.connection_id),
        ("connection.connected", picked.json["connection_id"]),
    ]
    assert json.loads(events[2].body)["data"]["facebook_page_id"] == meta.pages[1].id
    assert queued_deliveries(redis_client) == [e.id for e in events]
