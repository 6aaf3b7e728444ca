"""The publish job: steps, retries by error class, ambiguity checks, leases (Graph mocked)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from publish_worker import lease, publishing
from publish_worker.jobs import publish_post
from shared.db import utcnow
from shared.errors import CATALOGUE
from shared.models import AuditEvent, PostTarget, SocialConnection
from shared.queue import PublishJob, enqueue_publish, make_queue
from tests.factories import IG_ID, PAGE_ID, PAGE_TOKEN, make_connection, make_post
from tests.meta_mock import assert_every_token_call_has_proof
from tests.publish_mock import BASE, feed_item, graph_error
from tests.worker_fixtures import (
    queued_jobs,
    reload,
    run_next_continuation,
    scheduled_jobs,
    set_target,
    skip_the_wait,
)


@pytest.fixture
def conn(db_session):
    return make_connection(db_session)


def taken_over(db_session, conn, **fields):
    """A post a worker was publishing when it died: still ``publishing``, its lease expired."""
    return make_post(
        db_session,
        conn,
        status="publishing",
        lease_owner="lease-dead",
        lease_expires_at=utcnow() - timedelta(seconds=1),
        **fields,
    )


def test_a_due_post_is_published_to_both_targets(worker_ctx, graph, conn, db_session):
    post = make_post(db_session, conn)
    assert publish_post(post.id) == "published"
    post = reload(db_session, post.id)
    assert post.status == "published" and post.attempts == 1
    fb, ig = post.target("facebook"), post.target("instagram")
    assert fb.status == "published" and fb.remote_id == "104000000000001_1"
    assert ig.status == "published" and ig.remote_id.startswith("1795")
    assert post.lease_owner is None and post.finished_at is not None
    [photo] = graph.calls("photos")
    assert "url=https%3A%2F%2Fcdn.example.com%2Fp.jpg" in photo.text and "caption=Promo" in photo.text
    assert photo.headers["Authorization"] == f"Bearer {PAGE_TOKEN}"
    assert assert_every_token_call_has_proof(graph.m.request_history) == 5
    events = db_session.scalars(select(AuditEvent.event)).all()
    assert events == ["post_published"]
    assert queued_jobs(worker_ctx.redis) == [] and scheduled_jobs(worker_ctx.redis) == []


def test_through_rq_with_a_simple_worker(worker_ctx, graph, conn, db_session):
    post = make_post(db_session, conn)
    with worker_ctx.session() as session:
        enqueue_publish(session, worker_ctx, post.id)
    SimpleWorker(
        [make_queue(worker_ctx.redis)], connection=worker_ctx.redis, serializer=JSONSerializer, job_class=PublishJob
    ).work(burst=True)
    assert reload(db_session, post.id).status == "published"


def test_facebook_only_text_post_goes_to_the_feed_with_its_link(worker_ctx, graph, conn, db_session):
    post = make_post(db_session, conn, targets=["facebook"], media_url=None, link="https://shop.example.com/x")
    assert publish_post(post.id) == "published"
    [feed] = graph.calls("feed")
    assert "message=Promo" in feed.text and "link=https%3A%2F%2Fshop.example.com%2Fx" in feed.text
    assert graph.calls("photos") == [] and graph.calls("media") == []
    assert reload(db_session, post.id).target("instagram").status == "skipped"


def test_the_outcome_event_names_each_targets_id_and_none_for_one_not_wanted(worker_ctx, graph, conn, db_session):
    post = make_post(db_session, conn, targets=["facebook"])
    assert publish_post(post.id) == "published"
    [event] = db_session.scalars(select(AuditEvent).where(AuditEvent.event == "post_published")).all()
    assert event.detail == {
        "job_id": post.id,
        "outcome": "published",
        "targets": {"facebook": "published"},
        "facebook_post_id": "104000000000001_1",
        "instagram_media_id": None,
    }


def test_a_duplicate_or_late_job_does_nothing(worker_ctx, graph, conn, db_session):
    post = make_post(db_session, conn)
    assert publish_post(post.id) == "published"
    calls = graph.m.call_count
    assert publish_post(post.id) == "skipped"
    assert graph.m.call_count == calls
    assert len(graph.calls("photos")) == 1


@pytest.mark.parametrize("status", ["cancelled", "failed"])
def test_cancelled_or_finished_posts_are_not_published(worker_ctx, graph, conn, db_session, status):
    post = make_post(db_session, conn, status=status)
    assert publish_post(post.id) == "skipped"
    assert graph.m.call_count == 0


def test_a_job_before_publish_at_does_nothing(worker_ctx, graph, conn, db_session):
    post = make_post(db_session, conn, publish_in=600)
    assert publish_post(post.id) == "skipped"
    assert reload(db_session, post.id).status == "queued"


def test_a_post_held_by_a_live_lease_is_left_alone(worker_ctx, graph, conn, db_session):
    post = make_post(
        db_session,
        conn,
        status="publishing",
        lease_owner="lease-other",
        lease_expires_at=utcnow() + timedelta(seconds=60),
    )
    assert publish_post(post.id) == "skipped"
    assert publish_post(post.id, lease="lease-wrong") == "skipped"
    assert graph.m.call_count == 0


def test_an_expired_lease_is_taken_over_and_recorded_steps_are_skipped(worker_ctx, graph, conn, db_session):
    post = taken_over(
        db_session,
        conn,
        facebook={"status": "published", "remote_id": "104000000000001_77"},
        instagram={"container_id": "container-900"},
    )
    assert publish_post(post.id) == "published"
    assert graph.calls("photos") == [] and graph.calls("media") == []
    assert len(graph.calls("media_publish")) == 1
    post = reload(db_session, post.id)
    assert post.target("facebook").remote_id == "104000000000001_77"
    assert post.target("instagram").status == "published"


def test_token_expired_fails_without_retry_and_marks_the_connection(worker_ctx, graph, conn, db_session):
    # Both targets work side by side, and an expired token fails each one's first call.
    graph.queue("photos", graph_error(190, 463, message="Session has expired"))
    graph.queue("limit", graph_error(190, 463, message="Session has expired"))
    post = make_post(db_session, conn)
    assert publish_post(post.id) == "failed"
    post = reload(db_session, post.id)
    assert post.error_code == "token_expired"
    fb, ig = post.target("facebook"), post.target("instagram")
    assert (fb.status, fb.error_code) == ("failed", "token_expired")
    assert (ig.status, ig.error_code) == ("failed", "token_expired")
    assert "Koneksi Meta kedaluwarsa" in post.error_message
    assert graph.calls("media") == []
    assert scheduled_jobs(worker_ctx.redis) == []
    connection = db_session.get(SocialConnection, conn.id)
    assert connection.status == "needs_reauth" and connection.last_error_code == "token_expired"


@pytest.mark.parametrize(
    "error, expected",
    [
        (graph_error(10, message="(#10) Requires instagram_content_publish permission"), "permissions_missing"),
        (graph_error(200), "permissions_missing"),
        (graph_error(9004, 2207052), "media_invalid"),
        (graph_error(100, 2207026), "media_invalid"),
        (graph_error(100), "bad_request"),
    ],
)
def test_errors_that_are_not_retried(worker_ctx, graph, conn, db_session, error, expected):
    graph.queue("media", error)
    post = make_post(db_session, conn)
    assert publish_post(post.id) == "partially_published"
    post = reload(db_session, post.id)
    ig = post.target("instagram")
    assert (ig.status, ig.error_code, ig.tries) == ("failed", expected, 1)
    assert post.target("facebook").status == "published" and post.error_code == expected
    assert post.error_message.startswith("Instagram: ")
    assert scheduled_jobs(worker_ctx.redis) == [] and queued_jobs(worker_ctx.redis) == []
    assert db_session.get(SocialConnection, conn.id).status == "connected"


def test_throttling_waits_for_the_time_meta_gives_then_publishes_once(worker_ctx, graph, conn, db_session):
    usage = '{"104000000000001": [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 2}]}'
    graph.queue(
        "photos",
        {**graph_error(32, message="Page request limit reached"), "headers": {"X-Business-Use-Case-Usage": usage}},
    )
    post = make_post(db_session, conn, targets=["facebook"], media_url="https://cdn.example.com/p.jpg")
    before = utcnow()
    assert publish_post(post.id) == "continuing"
    held = reload(db_session, post.id)
    fb = held.target("facebook")
    assert held.status == "publishing" and fb.status == "pending" and fb.error_code == "rate_limited"
    assert fb.sent_at is None  # Meta refused it: nothing was created
    assert timedelta(seconds=119) <= fb.not_before - before <= timedelta(seconds=125)
    [job] = scheduled_jobs(worker_ctx.redis)
    assert job.kwargs["lease"] == held.lease_owner and job.id == f"pub-{post.id}-1"
    set_target(worker_ctx, post.id, "facebook", not_before=utcnow())
    assert run_next_continuation(worker_ctx.redis) == "published"
    assert len(graph.calls("photos")) == 2
    assert reload(db_session, post.id).attempts == 2


@pytest.mark.parametrize(
    "failure, ambiguous",
    [
        ({"exc": requests.exceptions.ReadTimeout}, True),
        (graph_error(2, status=500, message="An unexpected error has occurred.", is_transient=True), True),
        ({"status_code": 503, "text": "Service Unavailable"}, True),
        ({"exc": requests.exceptions.ConnectTimeout}, False),
        (graph_error(4, message="Application request limit reached"), False),
    ],
)
def test_transient_failures_are_retried_and_ambiguous_ones_checked_first(
    worker_ctx, graph, conn, db_session, failure, ambiguous
):
    graph.queue("photos", failure)
    post = make_post(db_session, conn, targets=["facebook"])
    assert publish_post(post.id) == "continuing"
    held = reload(db_session, post.id)
    fb = held.target("facebook")
    assert (fb.sent_at is not None) is ambiguous
    assert fb.tries == 1 and fb.error_code in ("meta_unavailable", "rate_limited")
    skip_the_wait(worker_ctx, post.id)
    assert run_next_continuation(worker_ctx.redis) == "published"
    assert len(graph.calls("published_posts")) == (1 if ambiguous else 0)
    assert graph.calls("feed_get") == []
    assert len(graph.calls("photos")) == 2


def test_an_ambiguous_send_that_did_reach_meta_is_found_not_repeated(worker_ctx, graph, conn, db_session):
    graph.queue("photos", {"exc": requests.exceptions.ReadTimeout})
    graph.feed.append(feed_item("104000000000001_555", "Promo minggu ini #diskon"))  # it went through
    post = make_post(db_session, conn, targets=["facebook"])
    assert publish_post(post.id) == "continuing"
    skip_the_wait(worker_ctx, post.id)
    assert run_next_continuation(worker_ctx.redis) == "published"
    assert len(graph.calls("photos")) == 1
    assert reload(db_session, post.id).target("facebook").remote_id == "104000000000001_555"


def test_after_a_crash_mid_send_the_page_is_checked_before_sending(worker_ctx, graph, conn, db_session):
    # A worker died after committing "sent" and before recording the answer; its lease expired.
    post = taken_over(
        db_session,
        conn,
        targets=["facebook"],
        facebook={"sent_at": utcnow() - timedelta(seconds=30)},
    )
    graph.feed.append(feed_item("104000000000001_42", post.caption))
    assert publish_post(post.id) == "published"
    assert graph.calls("photos") == []
    assert reload(db_session, post.id).target("facebook").remote_id == "104000000000001_42"


def test_a_takeover_right_after_a_send_waits_for_that_request_before_looking(worker_ctx, graph, conn, db_session):
    # The dead worker's request may still be carried out by Meta until its timeouts run out:
    # looking at once would find nothing and send the post a second time.
    sent = utcnow() - timedelta(seconds=1)
    post = taken_over(
        db_session,
        conn,
        targets=["facebook"],
        facebook={"sent_at": sent},
    )
    assert publish_post(post.id) == "continuing"
    assert graph.calls("published_posts") == [] and graph.calls("photos") == []
    held = reload(db_session, post.id)
    settings = worker_ctx.settings
    lifetime = settings.graph_connect_timeout + settings.graph_read_timeout
    assert held.target("facebook").not_before >= sent + timedelta(seconds=lifetime)
    # Meta carried the old request out in the meantime; the continuation finds it and sends nothing.
    graph.feed.append(feed_item("104000000000001_43", post.caption))
    skip_the_wait(worker_ctx, post.id)
    assert run_next_continuation(worker_ctx.redis) == "published"
    assert graph.calls("photos") == []
    assert reload(db_session, post.id).target("facebook").remote_id == "104000000000001_43"


def test_the_check_reads_every_page_of_the_pages_own_posts(worker_ctx, graph, conn, db_session):
    # A busy Page: ours is not on the first page of /published_posts.
    post = taken_over(
        db_session,
        conn,
        targets=["facebook"],
        facebook={"sent_at": utcnow() - timedelta(seconds=30)},
    )
    graph.feed.append(feed_item("104000000000001_44", post.caption, seconds_ago=20))
    graph.feed.extend(feed_item(f"104000000000001_{500 + n}", f"Another post {n}") for n in range(30))
    assert publish_post(post.id) == "published"
    assert graph.calls("photos") == [] and len(graph.calls("published_posts")) == 2
    assert reload(db_session, post.id).target("facebook").remote_id == "104000000000001_44"


def test_an_old_unconfirmed_post_with_the_same_caption_does_not_block_the_check(worker_ctx, graph, conn, db_session):
    long_ago = utcnow() - timedelta(days=3)
    make_post(
        db_session,
        conn,
        targets=["facebook"],
        status="unconfirmed",
        facebook={"status": "unconfirmed", "sent_at": long_ago},
    )
    post = taken_over(
        db_session,
        conn,
        targets=["facebook"],
        facebook={"sent_at": utcnow() - timedelta(seconds=30)},
    )
    graph.feed.append(feed_item("104000000000001_45", post.caption))
    assert publish_post(post.id) == "published"
    assert graph.calls("photos") == []
    assert reload(db_session, post.id).target("facebook").remote_id == "104000000000001_45"


def test_when_the_check_cannot_be_made_the_target_is_unconfirmed(worker_ctx, graph, conn, db_session):
    post = taken_over(
        db_session,
        conn,
        targets=["facebook"],
        facebook={"sent_at": utcnow() - timedelta(seconds=30)},
    )
    graph.queue("published_posts", {"exc": requests.exceptions.ReadTimeout})
    assert publish_post(post.id) == "unconfirmed"
    post = reload(db_session, post.id)
    assert post.target("facebook").status == "unconfirmed" and post.status == "unconfirmed"
    assert "belum bisa dipastikan" in post.error_message
    assert graph.calls("photos") == []


def test_backoff_gives_up_after_five_tries(worker_ctx, graph, conn, db_session):
    graph.queue("photos", *[{"exc": requests.exceptions.ConnectTimeout}] * 5)
    post = make_post(db_session, conn, targets=["facebook"])
    result = publish_post(post.id)
    for _ in range(4):
        assert result == "continuing"
        set_target(worker_ctx, post.id, "facebook", not_before=utcnow())
        result = run_next_continuation(worker_ctx.redis)
    assert result == "failed"
    post = reload(db_session, post.id)
    fb = post.target("facebook")
    assert (fb.tries, fb.status, post.error_code) == (5, "failed", "meta_unavailable")
    assert len(graph.calls("photos")) == 5


def test_an_instagram_container_in_progress_is_checked_again_later(worker_ctx, graph, conn, db_session):
    graph.container_status = "IN_PROGRESS"
    post = make_post(db_session, conn, targets=["instagram"])
    assert publish_post(post.id) == "continuing"
    held = reload(db_session, post.id)
    ig = held.target("instagram")
    assert ig.container_id and ig.status == "pending" and held.attempts == 1
    [job] = scheduled_jobs(worker_ctx.redis) + queued_jobs(worker_ctx.redis)
    assert job.kwargs == {"lease": held.lease_owner}
    assert run_next_continuation(worker_ctx.redis) == "continuing"
    assert reload(db_session, post.id).attempts == 1  # a status check is not a new attempt
    graph.container_status = "FINISHED"
    assert run_next_continuation(worker_ctx.redis) == "published"
    post = reload(db_session, post.id)
    assert post.attempts == 2  # the container, then the publish
    assert len(graph.calls("media")) == 1 and len(graph.calls("media_publish")) == 1


def test_a_container_in_error_is_media_invalid(worker_ctx, graph, conn, db_session):
    graph.container_status = "ERROR"
    post = make_post(db_session, conn, targets=["instagram"])
    assert publish_post(post.id) == "failed"
    post = reload(db_session, post.id)
    ig = post.target("instagram")
    assert (ig.status, ig.error_code) == ("failed", "media_invalid")
    assert graph.calls("media_publish") == []


def test_an_expired_container_is_replaced(worker_ctx, graph, conn, db_session):
    graph.container_status = "EXPIRED"
    post = make_post(db_session, conn, targets=["instagram"])
    assert publish_post(post.id) == "continuing"
    graph.container_status = "FINISHED"
    assert run_next_continuation(worker_ctx.redis) == "published"
    assert len(graph.calls("media")) == 2 and len(graph.calls("media_publish")) == 1


def test_a_published_container_is_never_published_again(worker_ctx, graph, conn, db_session):
    graph.container_status = "PUBLISHED"
    post = taken_over(
        db_session,
        conn,
        targets=["instagram"],
        instagram={
            "container_id": "container-7",
            "container_at": utcnow() - timedelta(seconds=60),
            "sent_at": utcnow() - timedelta(seconds=30),
        },
    )
    # Meta's answer to media_publish was lost; the account's media list shows what it made.
    graph.ig_media.append(
        {
            "id": "17950000000000042",
            "caption": post.caption,
            "media_type": "IMAGE",
            "media_product_type": "FEED",
            "timestamp": utcnow().strftime("%Y-%m-%dT%H:%M:%S+0000"),
        }
    )
    assert publish_post(post.id) == "published"
    assert graph.calls("media_publish") == [] and graph.calls("media") == []
    assert reload(db_session, post.id).target("instagram").remote_id == "17950000000000042"


def test_a_full_daily_quota_defers_instagram(worker_ctx, graph, conn, db_session):
    graph.quota_used = 100
    post = make_post(db_session, conn)
    before = utcnow()
    assert publish_post(post.id) == "continuing"
    held = reload(db_session, post.id)
    ig = held.target("instagram")
    assert held.target("facebook").status == "published"
    assert ig.status == "pending" and ig.error_code == "publishing_limit_reached"
    assert timedelta(minutes=59) <= ig.not_before - before <= timedelta(minutes=61)
    assert graph.calls("media") == []
    [job] = scheduled_jobs(worker_ctx.redis)
    assert job.kwargs["lease"] == held.lease_owner


def test_media_publish_hitting_the_limit_is_deferred_too(worker_ctx, graph, conn, db_session):
    graph.queue("media_publish", graph_error(9, 2207042, message="limit"))
    post = make_post(db_session, conn, targets=["instagram"])
    assert publish_post(post.id) == "continuing"
    held = reload(db_session, post.id)
    ig = held.target("instagram")
    assert ig.error_code == "publishing_limit_reached" and ig.sent_at is None


def test_a_connection_that_needs_reauth_fails_the_post_without_calls(worker_ctx, graph, db_session):
    conn = make_connection(db_session, status="needs_reauth", last_error_code="token_expired")
    post = make_post(db_session, conn)
    assert publish_post(post.id) == "failed"
    assert reload(db_session, post.id).error_code == "token_expired"
    assert graph.m.call_count == 0


def test_high_usage_slows_the_worker_down(worker_ctx, graph, conn, db_session, monkeypatch):
    from publish_worker import publishing

    pauses = []
    monkeypatch.setattr(publishing.time, "sleep", pauses.append)
    graph.queue(
        "photos",
        {
            "json": {"id": "1", "post_id": "104000000000001_1"},
            "headers": {"X-App-Usage": '{"call_count": 95, "total_time": 20}'},
        },
    )
    post = make_post(db_session, conn, targets=["facebook"])
    assert publish_post(post.id) == "published"
    assert pauses and pauses[0] > 0


def test_a_post_taken_over_too_often_stops(worker_ctx, graph, conn, db_session):
    post = make_post(db_session, conn, takes=worker_ctx.settings.max_runs)
    assert publish_post(post.id) == "failed"
    assert reload(db_session, post.id).error_code == "internal_error"
    assert graph.m.call_count == 0


def test_a_post_taken_over_too_often_after_an_ambiguous_send_is_unconfirmed(worker_ctx, graph, conn, db_session):
    post = make_post(
        db_session,
        conn,
        targets=["facebook"],
        takes=worker_ctx.settings.max_runs,
        facebook={"sent_at": utcnow() - timedelta(seconds=30)},
    )
    assert publish_post(post.id) == "unconfirmed"


def test_polling_while_facebook_waits_neither_counts_attempts_nor_fails(worker_ctx, graph, conn, db_session):
    graph.queue("photos", graph_error(4, message="Application request limit reached"))
    graph.container_status = "IN_PROGRESS"
    post = make_post(db_session, conn)
    assert publish_post(post.id) == "continuing"
    # Facebook's backoff lasts a while
    set_target(worker_ctx, post.id, "facebook", not_before=utcnow() + timedelta(minutes=5))
    for _ in range(worker_ctx.settings.max_runs + 5):
        assert run_next_continuation(worker_ctx.redis) == "continuing"
    held = reload(db_session, post.id)
    assert held.status == "publishing" and held.attempts == 1
    graph.container_status = "FINISHED"
    set_target(worker_ctx, post.id, "facebook", not_before=utcnow())
    assert run_next_continuation(worker_ctx.redis) == "published"


def test_a_duplicate_delivery_of_a_continuation_runs_once(worker_ctx, graph, conn, db_session):
    graph.container_status = "IN_PROGRESS"
    post = make_post(db_session, conn, targets=["instagram"])
    publish_post(post.id)
    carried = reload(db_session, post.id).lease_owner
    graph.container_status = "FINISHED"
    assert publish_post(post.id, lease=carried) == "published"
    assert publish_post(post.id, lease=carried) == "skipped"
    assert len(graph.calls("media_publish")) == 1


def test_same_caption_posts_are_never_mistaken_for_each_other(worker_ctx, graph, conn, db_session):
    # A (already recorded) and B share a caption; B's send timed out before Meta acted on it.
    a = make_post(
        db_session,
        conn,
        targets=["facebook"],
        status="published",
        facebook={"status": "published", "remote_id": "104000000000001_900"},
    )
    graph.feed.append(feed_item("104000000000001_900", a.caption))
    b = taken_over(
        db_session,
        conn,
        targets=["facebook"],
        facebook={"sent_at": utcnow() - timedelta(seconds=30)},
    )
    assert publish_post(b.id) == "published"
    assert len(graph.calls("photos")) == 1  # A's entry was not taken for B: B was really sent
    assert reload(db_session, b.id).target("facebook").remote_id != "104000000000001_900"


def test_an_uncertain_match_is_unconfirmed_not_guessed(worker_ctx, graph, conn, db_session):
    sent = utcnow() - timedelta(seconds=30)
    stuck = dict(
        targets=["facebook"],
        status="publishing",
        lease_owner="lease-dead",
        lease_expires_at=utcnow() - timedelta(seconds=1),
        facebook={"sent_at": sent},
    )
    a = make_post(db_session, conn, **stuck)
    make_post(db_session, conn, **stuck)  # another post of this Page, same caption, same doubt
    graph.feed.append(feed_item("104000000000001_901", a.caption))
    assert publish_post(a.id) == "unconfirmed"
    assert graph.calls("photos") == []


def test_a_post_without_caption_cannot_be_recognised_so_it_is_unconfirmed(worker_ctx, graph, conn, db_session):
    post = taken_over(
        db_session,
        conn,
        targets=["facebook"],
        caption="",
        facebook={"sent_at": utcnow() - timedelta(seconds=30)},
    )
    assert publish_post(post.id) == "unconfirmed"
    assert graph.calls("photos") == []


def test_an_old_feed_entry_with_the_same_caption_is_not_this_post(worker_ctx, graph, conn, db_session):
    post = taken_over(
        db_session,
        conn,
        targets=["facebook"],
        facebook={"sent_at": utcnow() - timedelta(seconds=30)},
    )
    graph.feed.append(feed_item("104000000000001_77", post.caption, seconds_ago=3600))
    assert publish_post(post.id) == "published"
    assert len(graph.calls("photos")) == 1


def test_a_dead_connection_leaves_an_ambiguous_target_unconfirmed(worker_ctx, graph, db_session):
    conn = make_connection(db_session, status="needs_reauth", last_error_code="token_expired")
    post = taken_over(
        db_session,
        conn,
        facebook={"sent_at": utcnow() - timedelta(seconds=30)},
    )
    assert publish_post(post.id) == "unconfirmed"
    post = reload(db_session, post.id)
    assert (post.target("facebook").status, post.target("instagram").status) == ("unconfirmed", "failed")


def test_a_container_meta_wants_recreated_is_replaced(worker_ctx, graph, conn, db_session):
    graph.queue("media_publish", graph_error(-1, 2207032, message="Create media fail, please re-create media"))
    post = make_post(db_session, conn, targets=["instagram"])
    assert publish_post(post.id) == "continuing"
    assert reload(db_session, post.id).target("instagram").container_id is None
    set_target(worker_ctx, post.id, "instagram", not_before=utcnow())
    assert run_next_continuation(worker_ctx.redis) == "published"
    assert len(graph.calls("media")) == 2


@pytest.mark.parametrize("refusals, outcome", [(5, "published"), (6, "failed")])
def test_making_containers_again_uses_no_try_but_is_bounded(worker_ctx, graph, conn, db_session, refusals, outcome):
    recreate = graph_error(-1, 2207032, message="Create media fail, please re-create media")
    graph.queue("media_publish", *[recreate] * refusals)
    post = make_post(db_session, conn, targets=["instagram"])
    results = [publish_post(post.id)]
    while results[-1] == "continuing" and len(results) < 10:
        results.append(run_next_continuation(worker_ctx.redis))  # a fresh container is made at once
    assert results == ["continuing"] * 5 + [outcome]
    ig = reload(db_session, post.id).target("instagram")
    # Five fresh containers are not five tries; the sixth refusal stops making them.
    assert (ig.status, ig.tries) == (outcome, 0 if outcome == "published" else 1)
    assert len(graph.calls("media")) == 6 and len(graph.calls("media_publish")) == 6


@pytest.mark.parametrize("went_through", [True, False])
def test_the_last_lost_send_is_looked_for_before_giving_up(worker_ctx, graph, conn, db_session, went_through):
    failure = graph_error(2, status=500, message="An unexpected error has occurred.", is_transient=True)
    graph.queue("photos", {**failure, "carried_out": went_through})
    last = worker_ctx.settings.retry_max_tries
    post = make_post(db_session, conn, targets=["facebook"], facebook={"tries": last - 1})  # one try left
    assert publish_post(post.id) == "continuing"
    fb = reload(db_session, post.id).target("facebook")
    assert (fb.status, fb.tries) == ("pending", last) and fb.sent_at is not None
    skip_the_wait(worker_ctx, post.id)
    assert run_next_continuation(worker_ctx.redis) == ("published" if went_through else "failed")
    fb = reload(db_session, post.id).target("facebook")
    assert len(graph.calls("published_posts")) == 1 and len(graph.calls("photos")) == 1
    if went_through:
        assert fb.remote_id == graph.feed[0]["id"]
    else:  # surely not there and no try left: failed (nothing is live), never unconfirmed
        assert (fb.status, fb.error_code, fb.sent_at) == ("failed", "meta_unavailable", None)


def test_a_bare_429_is_throttling(worker_ctx, graph, conn, db_session):
    graph.queue("photos", {"status_code": 429, "text": "Too Many Requests"})
    post = make_post(db_session, conn, targets=["facebook"])
    assert publish_post(post.id) == "continuing"
    assert reload(db_session, post.id).target("facebook").error_code == "rate_limited"


def test_a_visitor_post_with_the_same_caption_is_not_taken_for_ours(worker_ctx, graph, conn, db_session):
    # A 5xx once the photo request reached Meta: ambiguous. A visitor wrote the same words on the Page.
    graph.queue("photos", graph_error(2, status=500, message="An unexpected error has occurred.", is_transient=True))
    graph.visitor_posts.append(feed_item("104000000000001_777", "Promo minggu ini #diskon"))
    post = make_post(db_session, conn, targets=["facebook"])
    assert publish_post(post.id) == "continuing"
    skip_the_wait(worker_ctx, post.id)
    assert run_next_continuation(worker_ctx.redis) == "published"
    post = reload(db_session, post.id)
    assert post.target("facebook").remote_id == "104000000000001_1"  # ours, sent again; not the visitor's
    assert len(graph.calls("photos")) == 2
    [check] = graph.calls("published_posts")
    assert "fields=id%2Cmessage%2Ccreated_time" in check.url and "since=" in check.url
    assert graph.calls("feed_get") == []


@pytest.mark.parametrize(
    "error, expected",
    [
        (graph_error(4, 2207051, message="Application request limit reached"), "account_restricted"),
        (graph_error(9, 2207050), "account_restricted"),
        (graph_error(368), "account_restricted"),
    ],
)
def test_restricted_accounts_are_never_retried(worker_ctx, graph, conn, db_session, error, expected):
    graph.queue("media", error)
    post = make_post(db_session, conn, targets=["instagram"])
    assert publish_post(post.id) == "failed"
    post = reload(db_session, post.id)
    ig = post.target("instagram")
    assert (ig.status, ig.error_code, ig.tries) == ("failed", expected, 1)
    assert len(graph.calls("media")) == 1 and scheduled_jobs(worker_ctx.redis) == []
    assert db_session.get(SocialConnection, conn.id).status == "connected"


@pytest.mark.parametrize(
    "error", [graph_error(-1, 2207001), graph_error(-2, 2207003), graph_error(-2, 2207020), graph_error(-1, 2207032)]
)
def test_meta_side_failures_at_container_creation_make_a_new_container(worker_ctx, graph, conn, db_session, error):
    graph.queue("media", error)
    post = make_post(db_session, conn, targets=["instagram"])
    assert publish_post(post.id) == "continuing"
    set_target(worker_ctx, post.id, "instagram", not_before=utcnow())
    assert run_next_continuation(worker_ctx.redis) == "published"
    assert len(graph.calls("media")) == 2 and len(graph.calls("media_publish")) == 1


def test_341_is_retried_after_ten_minutes_at_least(worker_ctx, graph, conn, db_session):
    graph.queue("photos", graph_error(341, message="Feed action request limit reached"))
    post = make_post(db_session, conn, targets=["facebook"])
    before = utcnow()
    assert publish_post(post.id) == "continuing"
    held = reload(db_session, post.id)
    fb = held.target("facebook")
    assert fb.error_code == "rate_limited" and fb.not_before - before >= timedelta(minutes=10)


@pytest.mark.parametrize(
    "error", [graph_error(190, 459), graph_error(190, 464), graph_error(200, 1404078), graph_error(368, 4854002)]
)
def test_meta_action_required_marks_the_connection(worker_ctx, graph, conn, db_session, error):
    graph.queue("photos", error)
    graph.queue("limit", error)  # side by side: the same answer to Instagram's first call
    post = make_post(db_session, conn)
    assert publish_post(post.id) == "failed"
    post = reload(db_session, post.id)
    fb, ig = post.target("facebook"), post.target("instagram")
    assert (fb.error_code, ig.error_code, post.error_code) == ("meta_action_required",) * 3
    assert graph.calls("media") == [] and len(graph.calls("photos")) == 1
    connection = db_session.get(SocialConnection, conn.id)
    assert (connection.status, connection.last_error_code) == ("needs_reauth", "meta_action_required")


def test_a_container_in_error_keeps_metas_status_text(worker_ctx, graph, conn, db_session):
    graph.container_status = "ERROR"
    graph.container_text = "Error: Media upload has failed with error code 2207004."
    post = make_post(db_session, conn)
    assert publish_post(post.id) == "partially_published"
    post = reload(db_session, post.id)
    assert post.error_message == (
        "Instagram: "
        + CATALOGUE["media_invalid"].message_id
        + " Meta: Error: Media upload has failed with error code 2207004."
    )
    [status] = graph.calls("container")
    assert "fields=status_code%2Cstatus" in status.url


@pytest.mark.parametrize("used, deferred", [(50, True), (49, False)])
def test_without_a_quota_total_fifty_posts_a_day_are_assumed(worker_ctx, graph, conn, db_session, used, deferred):
    graph.quota_total = None
    graph.quota_used = used
    post = make_post(db_session, conn, targets=["instagram"])
    assert publish_post(post.id) == ("continuing" if deferred else "published")
    assert len(graph.calls("media")) == (0 if deferred else 1)


@pytest.mark.parametrize(
    "code, subcode, expected, retry",
    [
        (-1, 2207001, "meta_unavailable", "backoff"),
        (-2, 2207003, "meta_unavailable", "backoff"),
        (1, None, "meta_unavailable", "backoff"),
        (2, None, "meta_unavailable", "backoff"),
        (341, None, "rate_limited", "wait"),
        (-2, 2207020, "meta_unavailable", "recreate"),
        (-1, 2207032, "meta_unavailable", "recreate"),
        (24, 2207008, "meta_unavailable", "backoff"),  # a temporary error publishing: then a new container
        (-1, 2207053, "meta_unavailable", "recreate"),  # an unknown video upload error: a new container
        (24, 2207006, "meta_unavailable", "recreate"),
        (4, 2207051, "account_restricted", "never"),
        (9, 2207050, "account_restricted", "never"),
        (368, None, "account_restricted", "never"),
        (190, 459, "meta_action_required", "never"),
        (190, 464, "meta_action_required", "never"),
        (102, 459, "meta_action_required", "never"),  # a subcode means the same whatever code carries it
        (200, 1404078, "meta_action_required", "never"),
        (10, 4854002, "meta_action_required", "never"),
        (9, 2207042, "publishing_limit_reached", "defer"),
        (190, 463, "token_expired", "never"),
        (4, None, "rate_limited", "wait"),
        (100, 2207026, "media_invalid", "never"),
    ],
)
def test_metas_error_table(code, subcode, expected, retry):
    from publish_worker.failures import classify
    from shared.graph import GraphError

    failure = classify(GraphError(http_status=400, code=code, subcode=subcode, message="ignored text"))
    assert (failure.error_code, failure.decision) == (expected, retry)
    assert failure.min_wait_seconds == {341: 600, 2207008: 30}.get(subcode or code, 0)
    assert failure.recreate_after == (3 if subcode == 2207008 else 0)


def _committed_targets(ctx, post_id: str) -> dict[str, tuple[bool, str, str | None]]:
    """What another connection sees of the post's targets right now: (sent marker?, status, remote id
    or else container id)."""
    with ctx.session() as other:
        rows = other.scalars(select(PostTarget).where(PostTarget.post_id == post_id)).all()
        return {row.target: (row.sent_at is not None, row.status, row.remote_id or row.container_id) for row in rows}


def test_each_send_leaves_only_once_its_marker_and_the_results_before_it_are_committed(
    worker_ctx, graph, conn, db_session
):
    """Results may ride with the run's next write, but never behind a request: when a send reaches
    Meta, its sent marker and everything the run learned before are already committed (DESIGN §8)."""
    post = make_post(db_session, conn)
    seen: dict[str, dict] = {}

    def watched(name: str, handler):
        answer = graph._wrap(name, handler)

        def respond(request, context):
            seen[name] = _committed_targets(worker_ctx, post.id)
            return answer(request, context)

        return respond

    graph.m.post(f"{BASE}/{PAGE_ID}/photos", json=watched("photos", graph._photos))
    graph.m.post(f"{BASE}/{IG_ID}/media_publish", json=watched("media_publish", graph._publish))
    assert publish_post(post.id) == "published"
    assert seen["photos"]["facebook"] == (True, "pending", None)
    # Facebook works beside Instagram: its answer may come before or after media_publish leaves.
    assert seen["media_publish"]["facebook"] in ((True, "pending", None), (True, "published", "104000000000001_1"))
    assert seen["media_publish"]["instagram"] == (True, "pending", "container-1")  # the container learned before
    assert reload(db_session, post.id).target("facebook").remote_id == "104000000000001_1"


def test_an_unexpected_error_mid_run_still_records_what_was_published(worker_ctx, graph, conn, db_session):
    """A bug or an unreadable answer in a later step does not lose the earlier step's result."""
    post = make_post(db_session, conn)

    def broken(request, context):
        raise RuntimeError("not a Graph failure")

    graph.m.post(f"{BASE}/{IG_ID}/media", json=broken)
    with pytest.raises(RuntimeError):
        publish_post(post.id)
    fb = reload(db_session, post.id).target("facebook")
    assert fb.status == "published" and fb.remote_id == "104000000000001_1"
    assert len(graph.calls("photos")) == 1


def _database_down() -> OperationalError:
    return OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))


def test_a_database_error_at_the_outcome_still_records_what_was_published(
    worker_ctx, graph, conn, db_session, monkeypatch
):
    """The results waiting for the outcome's write are kept when that write fails, and written by the
    run's last effort: the next run finds both targets published instead of looking them up."""
    post = make_post(db_session, conn)

    def outcome_fails(*args, **kwargs):
        raise _database_down()

    monkeypatch.setattr(publishing, "finish", outcome_fails)
    with pytest.raises(OperationalError):
        publish_post(post.id)
    stored = reload(db_session, post.id)
    fb, ig = stored.target("facebook"), stored.target("instagram")
    assert (fb.status, fb.remote_id) == ("published", "104000000000001_1")
    assert ig.status == "published" and ig.remote_id.startswith("1795")
    assert len(graph.calls("photos")) == 1 and len(graph.calls("media_publish")) == 1


def test_a_database_error_writing_a_sent_marker_sends_nothing_and_records_no_marker(
    worker_ctx, graph, conn, db_session, monkeypatch
):
    """A marker that could not be committed stops its request, and is not written afterwards as if
    the request had left (which would make the next run look for a post that was never sent)."""
    post = make_post(db_session, conn, targets=("instagram",))
    record = lease.record

    def marker_write_fails(session, post_, owner, lease_seconds, *, targets=(), **values):
        targets = list(targets)
        if any(row.target == "instagram" and row_values.get("sent_at") for row, row_values in targets):
            raise _database_down()
        return record(session, post_, owner, lease_seconds, targets=targets, **values)

    monkeypatch.setattr(lease, "record", marker_write_fails)
    with pytest.raises(OperationalError):
        publish_post(post.id)
    assert graph.calls("media_publish") == []
    ig = reload(db_session, post.id).target("instagram")
    # The container learned before the marker is kept (its creation was the run's one try); no marker.
    assert ig.sent_at is None and ig.container_id == "container-1" and ig.status == "pending"
    assert reload(db_session, post.id).attempts == 1
