"""PATCH /api/meta/schedule/<job_id> and POST …/retry (DESIGN §13.3), with the worker run in process
(RQ's SimpleWorker in burst mode) against the Graph stand-in, which holds what was published."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from rq import SimpleWorker
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from publish_worker.jobs import publish_post
from shared import post_changes
from shared.db import utcnow
from shared.models import AuditEvent, ScheduledPost, SocialConnection
from shared.queue import PUBLISH_POST, PublishJob, make_queue
from tests.conftest import SCHEDULER_TOKEN, same_origin, session_jwt
from tests.factories import make_connection, make_post
from tests.publish_mock import graph_error
from tests.test_schedule_api import body, later, schedule
from tests.worker_fixtures import queued_jobs, reload, run_next_continuation, scheduled_jobs, skip_the_wait

SCHEDULER = {"Authorization": f"Bearer {SCHEDULER_TOKEN}"}


@pytest.fixture
def conn(db_session):
    return make_connection(db_session)


def edit(client, job_id: str, patch: dict, **headers):
    return client.patch(f"/api/meta/schedule/{job_id}", json=patch, headers={**same_origin(), **headers})


def retry(client, job_id: str, payload: dict | None = None, **headers):
    return client.post(f"/api/meta/schedule/{job_id}/retry", json=payload, headers={**same_origin(), **headers})


def run_worker(redis) -> None:
    SimpleWorker([make_queue(redis)], connection=redis, serializer=JSONSerializer, job_class=PublishJob).work(
        burst=True
    )


def captions(requests) -> list[str]:
    return [parse_qs(request.text).get("caption", [""])[0] for request in requests]


def job_status(redis, job_id: str) -> str:
    return Job.fetch(job_id, connection=redis, serializer=JSONSerializer).get_status()


def snapshot(db_session, job_id: str) -> tuple:
    post = reload(db_session, job_id)
    rows = tuple((row.target, row.status, row.error_code, row.sent_at, row.tries) for row in post.target_rows)
    return (post.status, post.caption, post.publish_at, post.targets, post.rq_job_id, post.enqueue_seq, rows)


def events(db_session) -> list[str]:
    db_session.expire_all()
    return db_session.scalars(select(AuditEvent.event).order_by(AuditEvent.id)).all()


# --- editing ---


def test_an_edit_while_queued_publishes_the_new_content_once_and_the_old_job_does_nothing(
    client, conn, db_session, worker_ctx, graph
):
    job_id = schedule(client, body(caption="Harga lama", publish_at=later(3600))).json["job_id"]
    old_job = f"pub-{job_id}-1"

    response = edit(client, job_id, {"caption": "Harga baru #promo", "publish_at": later(-1)})

    assert response.status_code == 200, response.json
    assert response.json["job_id"] == job_id and response.json["status"] == "queued"
    assert response.json["caption"] == "Harga baru #promo"
    assert response.json == client.get(f"/api/meta/schedule/{job_id}").json
    redis = worker_ctx.redis
    assert job_status(redis, old_job) == "canceled"
    assert [job.id for job in queued_jobs(redis)] == [f"pub-{job_id}-2"]
    # The old job delivered anyway (a copy RQ still held, say), and first in line: it does nothing.
    make_queue(redis).enqueue(PUBLISH_POST, args=(job_id,), job_id=old_job, at_front=True)
    run_worker(redis)

    assert Job.fetch(old_job, connection=redis, serializer=JSONSerializer).return_value() == "skipped"
    assert Job.fetch(f"pub-{job_id}-2", connection=redis, serializer=JSONSerializer).return_value() == "published"
    assert captions(graph.calls("photos")) == ["Harga baru #promo"]
    assert [post["message"] for post in graph.feed] == ["Harga baru #promo"]
    assert len(graph.calls("media")) == 1 and len(graph.calls("media_publish")) == 1
    assert "caption=Harga+baru" in graph.calls("media")[0].text
    assert reload(db_session, job_id).status == "published"
    assert events(db_session)[:2] == ["post_scheduled", "post_edited"]


def test_an_edit_is_a_merge_patch_and_the_targets_follow(client, conn, db_session):
    job_id = schedule(
        client,
        body(link="https://shop.example.com/batik", first_comment="#batik", targets=["facebook", "instagram"]),
    ).json["job_id"]

    response = edit(client, job_id, {"link": None, "first_comment": None, "targets": ["facebook"]})

    assert response.status_code == 200, response.json
    post = response.json
    assert post["link"] is None and post["first_comment"] is None
    assert post["caption"] == "Promo minggu ini #diskon"  # absent: unchanged
    assert post["media_url"] == "https://cdn.example.com/promo.jpg"
    assert post["targets"]["instagram"]["status"] == "skipped"
    assert post["targets"]["facebook"]["status"] == "pending" and post["targets"]["facebook"]["comment"] is None
    # media_url replaces the media list as a whole; null removes it.
    two = [
        {"url": "https://cdn.example.com/1.jpg", "type": "image"},
        {"url": "https://cdn.example.com/2.jpg", "type": "image"},
    ]
    assert [m["url"] for m in edit(client, job_id, {"media": two}).json["media"]] == [m["url"] for m in two]
    again = edit(client, job_id, {"media_url": None, "caption": "Teks saja"}).json
    assert again["media"] == [] and again["media_url"] is None and again["caption"] == "Teks saja"
    [edited, *_] = db_session.scalars(
        select(AuditEvent).where(AuditEvent.event == "post_edited").order_by(AuditEvent.id)
    ).all()
    assert edited.detail["changed"] == ["first_comment", "link", "targets"]
    assert reload(db_session, job_id).enqueue_seq == 4


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"caption": "x" * 2201}, "caption"),
        ({"publish_at": None}, "publish_at"),
        ({"publish_at": "2020-01-01T00:00:00Z"}, "publish_at"),
        ({"media_url": None}, "media_url"),  # instagram is a target: it needs media
        ({"targets": ["instagram"], "link": "https://shop.example.com"}, "link"),
        (
            {
                "media_url": "https://cdn.example.com/a.jpg",
                "media": [{"url": "https://cdn.example.com/b.jpg", "type": "image"}],
            },
            "media_url",
        ),
        ({"color": "red"}, "color"),
        ({"connection_id": "conn_someone_else"}, "connection_id"),
    ],
)
def test_a_refused_edit_changes_nothing(client, conn, db_session, redis_client, patch, field):
    job_id = schedule(client, body()).json["job_id"]
    before = snapshot(db_session, job_id)
    response = edit(client, job_id, patch)
    assert response.status_code == 422, response.json
    assert response.json["error_code"] == "validation_error" and field in response.json["fields"]
    assert snapshot(db_session, job_id) == before
    assert job_status(redis_client, f"pub-{job_id}-1") == "scheduled"
    assert events(db_session) == ["post_scheduled"]


def test_an_edit_answers_in_english_when_asked(client, conn):
    job_id = schedule(client, body()).json["job_id"]
    response = edit(client, job_id, {"caption": None, "media_url": None}, **{"Accept-Language": "en"})
    assert response.status_code == 422 and response.json["fields"]["media_url"] == [
        "Required when instagram is a target."
    ]


@pytest.mark.parametrize(
    "status, fields",
    [
        ("publishing", {"lease_owner": "lease-live", "lease_expires_at": utcnow() + timedelta(minutes=5)}),
        ("published", {}),
        ("failed", {}),
        ("cancelled", {}),
        # Retried: queued again, but one target is already live.
        ("queued", {"facebook": {"status": "published", "remote_id": "104000000000001_9"}}),
    ],
)
def test_an_edit_after_publishing_started_is_not_editable_and_changes_nothing(client, conn, db_session, status, fields):
    post = make_post(db_session, conn, status=status, publish_in=600, **fields)
    before = snapshot(db_session, post.id)
    response = edit(client, post.id, {"caption": "Baru"})
    assert response.status_code == 409 and response.json["error_code"] == "not_editable"
    assert response.json["message"] == "Postingan ini sudah mulai dipublikasikan dan tidak bisa diubah lagi."
    assert snapshot(db_session, post.id) == before


def test_an_edit_racing_the_worker_is_not_editable(client, conn, db_session, worker_ctx, graph):
    job_id = schedule(client, body(publish_at=later(-1))).json["job_id"]
    assert publish_post(job_id) == "published"
    response = edit(client, job_id, {"caption": "Terlambat"})
    assert response.status_code == 409 and response.json["error_code"] == "not_editable"
    assert captions(graph.calls("photos")) == ["Promo minggu ini #diskon"]


def test_two_overlapping_edits_keep_each_others_changes(client, conn, db_session, engine, monkeypatch):
    """An edit that lands while another checks the token (outside the row lock) is not undone by it."""
    job_id = schedule(client, body(caption="Harga lama", publish_at=later(3600))).json["job_id"]
    real_check = post_changes.ensure_token_valid
    landed = []

    def check_while_another_edit_lands(*args, **kwargs):
        real_check(*args, **kwargs)
        if not landed:  # the other tab's edit commits now, between this edit's read and its lock
            landed.append(True)
            with Session(engine) as other:
                other.execute(update(ScheduledPost).where(ScheduledPost.id == job_id).values(caption="Harga baru"))
                other.commit()

    monkeypatch.setattr(post_changes, "ensure_token_valid", check_while_another_edit_lands)
    new_time = later(7200)
    response = edit(client, job_id, {"publish_at": new_time})

    assert response.status_code == 200, response.json
    assert response.json["caption"] == "Harga baru"
    post = reload(db_session, job_id)
    assert post.caption == "Harga baru"
    assert post.publish_at.isoformat().replace("+00:00", "Z") == new_time


def test_only_sellers_edit_theirs_the_scheduler_is_forbidden(app, client, conn, db_session):
    job_id = schedule(client, body()).json["job_id"]
    scheduler = app.test_client().patch(f"/api/meta/schedule/{job_id}", json={"caption": "x"}, headers=SCHEDULER)
    assert scheduler.status_code == 403 and scheduler.json["error_code"] == "forbidden"
    other = app.test_client()
    other.set_cookie("resellio_session", session_jwt("user-2"))
    assert edit(other, job_id, {"caption": "x"}).json["error_code"] == "not_found"
    no_origin = client.patch(f"/api/meta/schedule/{job_id}", json={"caption": "x"})
    assert no_origin.status_code == 403 and no_origin.json["error_code"] == "forbidden_origin"
    assert reload(db_session, job_id).caption == "Promo minggu ini #diskon"


def test_an_edit_on_a_connection_that_needs_reauth_is_refused(client, conn, db_session):
    job_id = schedule(client, body()).json["job_id"]
    db_session.execute(update(SocialConnection).values(status="needs_reauth", last_error_code="token_expired"))
    db_session.commit()
    response = edit(client, job_id, {"caption": "Baru"})
    assert response.status_code == 409 and response.json["error_code"] == "token_expired"
    assert reload(db_session, job_id).caption == "Promo minggu ini #diskon"


def test_the_original_idempotency_key_still_names_the_edited_post(client, conn, db_session):
    original = body()
    job_id = schedule(client, original, **{"Idempotency-Key": "k-edit"}).json["job_id"]
    assert edit(client, job_id, {"caption": "Sudah diubah"}).status_code == 200
    replay = schedule(client, original, **{"Idempotency-Key": "k-edit"})
    assert replay.status_code == 200 and replay.json["job_id"] == job_id
    assert reload(db_session, job_id).caption == "Sudah diubah"  # a replay does not undo the edit
    changed = schedule(client, {**original, "caption": "Sudah diubah"}, **{"Idempotency-Key": "k-edit"})
    assert changed.status_code == 409 and changed.json["error_code"] == "idempotency_conflict"


# --- retrying ---


def test_retry_publishes_a_retryable_failed_target_once_and_leaves_the_published_one_alone(
    app, conn, db_session, worker_ctx, graph
):
    # Instagram's daily quota stayed used past the deferral window: Facebook published, Instagram failed.
    graph.quota_used = graph.quota_total
    post = make_post(db_session, conn, publish_in=-27 * 3600)
    assert publish_post(post.id) == "partially_published"
    failed = reload(db_session, post.id)
    assert failed.target("instagram").error_code == "publishing_limit_reached"
    fb_id = failed.target("facebook").remote_id
    graph.quota_used = 0

    # The Resellio scheduler may retry (DESIGN §3).
    response = retry(app.test_client(), post.id, **SCHEDULER)

    assert response.status_code == 200, response.json
    assert response.json["status"] == "queued" and response.json["targets"]["instagram"]["status"] == "pending"
    assert response.json["targets"]["instagram"]["error_code"] is None
    facebook = response.json["targets"]["facebook"]
    assert facebook["status"] == "published" and facebook["post_id"] == fb_id
    run_worker(worker_ctx.redis)

    done = reload(db_session, post.id)
    assert done.status == "published" and done.error_code is None
    assert done.target("facebook").remote_id == fb_id and done.target("instagram").status == "published"
    assert len(graph.feed) == 1 and len(graph.calls("photos")) == 1  # Facebook: one post, not touched again
    assert len(graph.calls("media_publish")) == 1  # Instagram: exactly one publish
    [retried] = db_session.scalars(select(AuditEvent).where(AuditEvent.event == "post_retried")).all()
    assert retried.detail["targets"] == ["instagram"] and retried.detail["by"] == "scheduler"


def test_retry_of_a_media_invalid_failure_is_not_retryable(client, conn, db_session, worker_ctx, graph):
    graph.queue("media", graph_error(9004, 2207052))
    post = make_post(db_session, conn)
    assert publish_post(post.id) == "partially_published"
    before = snapshot(db_session, post.id)
    response = retry(client, post.id)
    assert response.status_code == 409 and response.json["error_code"] == "not_retryable"
    assert snapshot(db_session, post.id) == before
    assert queued_jobs(worker_ctx.redis) == [] and scheduled_jobs(worker_ctx.redis) == []


@pytest.mark.parametrize("status", ["queued", "publishing", "published", "cancelled"])
def test_a_post_that_did_not_fail_is_not_retryable(client, conn, db_session, status):
    post = make_post(db_session, conn, status=status, publish_in=600)
    response = retry(client, post.id)
    assert response.status_code == 409 and response.json["error_code"] == "not_retryable"
    assert reload(db_session, post.id).status == status


def test_an_unconfirmed_target_needs_the_confirmation_and_is_looked_for_before_a_second_send(
    client, conn, db_session, worker_ctx, graph
):
    # Facebook received the photo (Meta failed after creating it) and the check could not be made.
    graph.queue("photos", {**graph_error(2, status=500), "carried_out": True})
    graph.queue("published_posts", graph_error(2, status=500))
    post = make_post(db_session, conn)
    assert publish_post(post.id) == "continuing"
    skip_the_wait(worker_ctx, post.id)
    assert run_next_continuation(worker_ctx.redis) == "unconfirmed"
    assert reload(db_session, post.id).target("facebook").status == "unconfirmed"

    refused = retry(client, post.id)
    assert refused.status_code == 409 and refused.json["error_code"] == "not_retryable"
    assert reload(db_session, post.id).status == "unconfirmed"

    confirmed = retry(client, post.id, {"confirm_unconfirmed": True})
    assert confirmed.status_code == 200, confirmed.json
    assert confirmed.json["targets"]["facebook"]["status"] == "pending"
    assert confirmed.json["targets"]["instagram"]["status"] == "published"
    run_worker(worker_ctx.redis)

    done = reload(db_session, post.id)
    assert done.status == "published"
    assert done.target("facebook").remote_id == graph.feed[0]["id"]
    assert len(graph.feed) == 1 and len(graph.calls("photos")) == 1  # found, not posted a second time
    assert len(graph.calls("media_publish")) == 1


def test_retry_while_the_connection_needs_reauth_answers_token_expired_then_works_once_reconnected(
    client, conn, db_session, worker_ctx, graph
):
    # An expired token fails both targets' first calls (they work side by side).
    graph.queue("photos", graph_error(190, 463, message="Session has expired"))
    graph.queue("limit", graph_error(190, 463, message="Session has expired"))
    post = make_post(db_session, conn)
    assert publish_post(post.id) == "failed"
    db_session.expire_all()
    assert db_session.get(SocialConnection, conn.id).status == "needs_reauth"

    refused = retry(client, post.id)
    assert refused.status_code == 409 and refused.json["error_code"] == "token_expired"
    assert reload(db_session, post.id).status == "failed"

    # The seller reconnects the same Page (DESIGN §4: the same connection_id, fresh tokens).
    db_session.execute(
        update(SocialConnection)
        .where(SocialConnection.id == conn.id)
        .values(status="connected", last_error_code=None, token_last_checked_at=utcnow())
    )
    db_session.commit()
    assert retry(client, post.id).status_code == 200
    run_worker(worker_ctx.redis)

    done = reload(db_session, post.id)
    assert done.status == "published"
    assert len(graph.feed) == 1 and len(graph.calls("media_publish")) == 1


def test_retry_at_a_given_time_is_scheduled_then(client, conn, db_session, worker_ctx, graph):
    graph.queue("photos", graph_error(190, 463))
    post = make_post(db_session, conn, targets=["facebook"])
    assert publish_post(post.id) == "failed"
    db_session.execute(update(SocialConnection).values(status="connected", last_error_code=None))
    db_session.commit()
    at = later(1800)
    response = retry(client, post.id, {"publish_at": at})
    assert response.status_code == 200 and response.json["publish_at"][:19] == at[:19]
    [job] = scheduled_jobs(worker_ctx.redis)
    registry = ScheduledJobRegistry("meta-publish", connection=worker_ctx.redis, serializer=JSONSerializer)
    assert registry.get_scheduled_time(job).isoformat()[:19] == at[:19]
    assert publish_post(post.id) == "skipped"  # not before its time


@pytest.mark.parametrize(
    "payload, field",
    [({"publish_at": "tomorrow"}, "publish_at"), ({"publish_at": later(-3600)}, "publish_at"), ({"x": 1}, "x")],
)
def test_a_malformed_retry_is_a_validation_error(client, conn, db_session, payload, field):
    post = make_post(db_session, conn, status="failed")
    response = retry(client, post.id, payload)
    assert response.status_code == 422 and field in response.json["fields"]


def test_another_sellers_post_is_not_found_for_edit_and_retry(client, db_session):
    theirs = make_post(db_session, make_connection(db_session, "user-2"), status="failed")
    assert retry(client, theirs.id).json["error_code"] == "not_found"
    assert edit(client, theirs.id, {"caption": "x"}).json["error_code"] == "not_found"
    assert reload(db_session, theirs.id).status == "failed"


@pytest.fixture
def fb():
    import requests_mock

    from tests.facebook_mock import FacebookMock

    with requests_mock.Mocker() as m:
        yield FacebookMock(m)


def test_a_first_comment_that_failed_retryably_is_posted_once_on_retry(client, conn, db_session, worker_ctx, fb):
    fb.queue("comment", graph_error(32, message="Page request limit reached"))
    last = worker_ctx.settings.retry_max_tries
    post = make_post(
        db_session,
        conn,
        targets=["facebook"],
        first_comment="#promo",
        facebook={"comment_status": "pending", "comment_tries": last - 1},
    )
    assert publish_post(post.id) == "published"
    row = reload(db_session, post.id).target("facebook")
    assert (row.status, row.comment_status, row.comment_error_code) == ("published", "failed", "rate_limited")

    response = retry(client, post.id)

    assert response.status_code == 200, response.json
    assert response.json["targets"]["facebook"]["status"] == "published"
    assert response.json["targets"]["facebook"]["comment"]["status"] == "pending"
    run_worker(worker_ctx.redis)
    done = reload(db_session, post.id)
    assert done.status == "published" and done.target("facebook").comment_status == "published"
    assert len(fb.calls("photos")) == 1 and len(fb.posts) == 1  # the post itself is not sent again
    assert [c["message"] for c in fb.posts[0].comments] == ["#promo"]
    assert retry(client, post.id).json["error_code"] == "not_retryable"  # nothing failed any more


def test_a_confirmed_retry_of_a_post_surely_not_there_sends_it_once(client, conn, db_session, worker_ctx, graph):
    # The answer to the photo was lost and Meta had not made it; the check could not be made then.
    graph.queue("photos", {**graph_error(2, status=500)})
    graph.queue("published_posts", graph_error(2, status=500))
    post = make_post(db_session, conn, targets=["facebook"])
    assert publish_post(post.id) == "continuing"
    skip_the_wait(worker_ctx, post.id)
    assert run_next_continuation(worker_ctx.redis) == "unconfirmed"
    assert graph.feed == []

    assert retry(client, post.id, {"confirm_unconfirmed": True}).status_code == 200
    run_worker(worker_ctx.redis)

    assert reload(db_session, post.id).status == "published"
    assert len(graph.calls("published_posts")) == 2  # looked for again before sending
    assert len(graph.calls("photos")) == 2 and len(graph.feed) == 1  # one post on the Page
