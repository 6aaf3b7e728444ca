"""POST/GET/DELETE /api/meta/schedule: validation, ownership, token checks, idempotency, cancel."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis as redis_lib
import requests
import requests_mock
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import func, select, update

from shared.db import utcnow
from shared.errors import CATALOGUE
from shared.models import AuditEvent, ScheduledPost, SocialConnection
from tests.conftest import SCHEDULER_TOKEN, same_origin, session_jwt
from tests.factories import make_connection, make_post

DEBUG_TOKEN = "https://graph.meta.test/v25.0/debug_token"
IMAGE = "https://cdn.example.com/promo.jpg"


def later(seconds: int = 3600) -> str:
    return (utcnow() + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def body(**overrides) -> dict:
    return {"publish_at": later(), "caption": "Promo minggu ini #diskon", "media_url": IMAGE, **overrides}


def schedule(client, payload: dict, **headers):
    return client.post("/api/meta/schedule", json=payload, headers={**same_origin(), **headers})


def post_count(db_session) -> int:
    db_session.expire_all()
    return db_session.scalar(select(func.count()).select_from(ScheduledPost))


def debug_data(valid=True, scopes=None):
    from shared.settings import DEFAULT_SCOPES

    return {
        "data": {
            "is_valid": valid,
            "expires_at": 0,
            "data_access_expires_at": 0,
            "scopes": list(DEFAULT_SCOPES) if scopes is None else scopes,
        }
    }


@pytest.fixture
def conn(db_session):
    return make_connection(db_session)


def test_scheduling_stores_then_enqueues_at_publish_at(client, conn, db_session, redis_client):
    publish_at = later(600)
    response = schedule(client, body(publish_at=publish_at))
    assert response.status_code == 200
    job_id = response.json["job_id"]
    assert response.json == {"queued": True, "job_id": job_id} and job_id.startswith("job_")
    post = db_session.get(ScheduledPost, job_id)
    assert post.status == "queued" and post.connection_id == conn.id
    assert post.targets == ["facebook", "instagram"]
    assert post.target("facebook").status == "pending" and post.target("instagram").status == "pending"
    rq_job = Job.fetch(f"pub-{job_id}-1", connection=redis_client, serializer=JSONSerializer)
    assert rq_job.func_name == "publish_worker.jobs.publish_post" and rq_job.args == [job_id]
    registry = ScheduledJobRegistry("meta-publish", connection=redis_client, serializer=JSONSerializer)
    assert registry.get_scheduled_time(rq_job).isoformat().replace("+00:00", "Z")[:19] == publish_at[:19]
    assert db_session.scalars(select(AuditEvent.event)).all() == ["post_scheduled"]


def test_a_post_due_now_is_queued_at_once(client, conn, redis_client):
    job_id = schedule(client, body(publish_at=later(-60))).json["job_id"]
    queued = redis_client.lrange("rq:queue:meta-publish", 0, -1)
    assert [q.decode() for q in queued] == [f"pub-{job_id}-1"]


@pytest.mark.parametrize(
    "payload, field, message",
    [
        (
            body(publish_at="2026-12-01T10:00:00"),
            "publish_at",
            "Must include a time zone (Z or an offset such as +07:00).",
        ),
        (
            body(publish_at="tomorrow"),
            "publish_at",
            "Must be an ISO-8601 date and time with a time zone, e.g. 2026-02-20T10:00:00Z.",
        ),
        (body(publish_at=later(-400)), "publish_at", "Must not be more than 5 minutes in the past."),
        (body(media_url="http://cdn.example.com/a.jpg"), "media_url", "Must be an absolute https URL."),
        (body(media_url="/uploads/a.jpg"), "media_url", "Must be an absolute https URL."),
        (
            body(media_url="https://localhost/a.jpg"),
            "media_url",
            "Must be reachable from the internet (Meta fetches it).",
        ),
        (
            body(media_url="https://192.168.1.10/a.jpg"),
            "media_url",
            "Must be reachable from the internet (Meta fetches it).",
        ),
        (body(caption="x" * 2201), "caption", "Must be at most 2200 characters."),
        (body(caption=" ".join(f"#tag{n}" for n in range(31))), "caption", "Must have at most 30 hashtags."),
        (body(caption=" ".join(f"@user{n}" for n in range(21))), "caption", "Must have at most 20 @mentions."),
        (body(targets=["facebook", "tiktok"]), "targets.1", "Must be one of: facebook, instagram."),
        (body(targets=[]), "targets", "Choose at least one target."),
        (body(targets=["facebook", "facebook"]), "targets", "Each target at most once."),
        (body(media_url=None), "media_url", "Required when instagram is a target."),
        (body(targets=["instagram"], link="https://shop.example.com"), "link", "A link is only posted to Facebook."),
        (body(color="red"), "color", "Unknown field."),
        ({"caption": "x"}, "publish_at", "Missing data for required field."),
    ],
)
def test_each_bad_field_is_named_and_nothing_is_stored(client, conn, db_session, payload, field, message):
    response = schedule(client, payload, **{"Accept-Language": "en"})
    assert response.status_code == 422
    assert response.json["error_code"] == "validation_error"
    assert message in response.json["fields"][field]
    indonesian = schedule(client, payload).json["fields"][field]  # the default: the server's Indonesian
    assert message not in indonesian and len(indonesian) == len(response.json["fields"][field])
    assert post_count(db_session) == 0


def test_exactly_thirty_hashtags_and_2200_characters_are_fine(client, conn):
    caption = " ".join(f"#t{n}" for n in range(30))
    caption += "x" * (2200 - len(caption))
    assert schedule(client, body(caption=caption)).status_code == 200


def test_facebook_only_text_post_with_a_link_needs_no_media(client, conn, db_session):
    response = schedule(client, body(media_url=None, targets=["facebook"], link="https://shop.example.com/promo"))
    assert response.status_code == 200
    post = db_session.get(ScheduledPost, response.json["job_id"])
    assert post.target("instagram").status == "skipped" and post.link == "https://shop.example.com/promo"


def test_another_users_connection_is_not_found(client, db_session):
    other = make_connection(db_session, "user-2")
    response = schedule(client, body(connection_id=other.id))
    assert response.status_code == 404 and response.json["error_code"] == "not_found"
    assert post_count(db_session) == 0


def test_without_a_connection(client, db_session):
    response = schedule(client, body())
    assert response.status_code == 409 and response.json["error_code"] == "not_connected"


def test_disconnected_connection(client, db_session):
    old = make_connection(db_session, status="disconnected")
    response = schedule(client, body(connection_id=old.id))
    assert response.status_code == 409 and response.json["error_code"] == "not_connected"


def test_needs_reauth_connection(client, db_session):
    make_connection(db_session, status="needs_reauth", last_error_code="token_expired")
    response = schedule(client, body())
    assert response.status_code == 409
    assert response.json == {
        "error_code": "token_expired",
        "action": "reconnect",
        "message": "Koneksi Meta kedaluwarsa. Silakan connect ulang.",
    }


def test_a_connection_the_seller_must_fix_on_facebook_answers_meta_action_required(client, db_session):
    make_connection(db_session, status="needs_reauth", last_error_code="meta_action_required", checked_minutes_ago=60)
    with requests_mock.Mocker() as m:
        response = schedule(client, body())
        english = schedule(client, body(), **{"Accept-Language": "en"})
    assert m.call_count == 0  # a valid token changes nothing: the seller must act on Facebook
    assert response.status_code == 403
    assert response.json == {
        "error_code": "meta_action_required",
        "action": "fix_on_meta",
        "message": CATALOGUE["meta_action_required"].message_id,
    }
    assert english.json["message"] == CATALOGUE["meta_action_required"].message_en


def test_a_recently_checked_token_is_not_checked_again(client, conn):
    with requests_mock.Mocker() as m:
        assert schedule(client, body()).status_code == 200
    assert m.call_count == 0


def test_a_stale_token_is_checked_once_and_the_result_cached(client, db_session):
    make_connection(db_session, checked_minutes_ago=11)
    with requests_mock.Mocker() as m:
        m.get(DEBUG_TOKEN, json=debug_data())
        assert schedule(client, body()).status_code == 200
        assert schedule(client, body()).status_code == 200
    assert m.call_count == 1


def test_a_dead_token_refuses_the_post_and_asks_to_reconnect(client, db_session):
    conn = make_connection(db_session, checked_minutes_ago=11)
    with requests_mock.Mocker() as m:
        m.get(DEBUG_TOKEN, json=debug_data(valid=False))
        response = schedule(client, body())
    assert response.status_code == 409 and response.json["error_code"] == "token_expired"
    db_session.expire_all()
    assert db_session.get(SocialConnection, conn.id).status == "needs_reauth"
    assert post_count(db_session) == 0
    assert client.get("/api/meta/status").json["status"] == "needs_reauth"


def test_a_removed_scope_refuses_the_post(client, db_session):
    make_connection(db_session, checked_minutes_ago=11)
    with requests_mock.Mocker() as m:
        m.get(DEBUG_TOKEN, json=debug_data(scopes=["pages_show_list", "pages_manage_posts"]))
        response = schedule(client, body())
    assert response.status_code == 403 and response.json["error_code"] == "permissions_missing"
    assert post_count(db_session) == 0


def test_when_meta_cannot_check_the_token_the_post_is_still_accepted(client, db_session):
    make_connection(db_session, checked_minutes_ago=11)
    with requests_mock.Mocker() as m:
        m.get(DEBUG_TOKEN, exc=requests.exceptions.ConnectTimeout)
        response = schedule(client, body())
    assert response.status_code == 200
    assert post_count(db_session) == 1


def test_idempotency_key_replays_the_same_job(client, conn, db_session, redis_client):
    payload = body()
    first = schedule(client, payload, **{"Idempotency-Key": "order-42"})
    second = schedule(client, payload, **{"Idempotency-Key": "order-42"})
    assert first.status_code == second.status_code == 200
    assert first.json["job_id"] == second.json["job_id"]
    assert post_count(db_session) == 1
    assert Job.exists(f"pub-{first.json['job_id']}-1", connection=redis_client)
    assert not Job.exists(f"pub-{first.json['job_id']}-2", connection=redis_client)


def test_idempotency_key_with_another_body_conflicts(client, conn, db_session):
    schedule(client, body(), **{"Idempotency-Key": "order-42"})
    response = schedule(client, body(caption="something else"), **{"Idempotency-Key": "order-42"})
    assert response.status_code == 409 and response.json["error_code"] == "idempotency_conflict"
    assert post_count(db_session) == 1


def test_idempotency_keys_are_per_caller(app, client, conn, db_session):
    make_connection(db_session, "user-2", page_id="104000000000002")
    other = app.test_client()
    other.set_cookie("resellio_session", session_jwt("user-2"))
    a = schedule(client, body(), **{"Idempotency-Key": "same-key"}).json["job_id"]
    b = schedule(other, body(), **{"Idempotency-Key": "same-key"}).json["job_id"]
    assert a != b


def test_scheduler_must_name_the_connection_and_may_use_any(anon_client, conn, db_session):
    auth = {"Authorization": f"Bearer {SCHEDULER_TOKEN}"}
    missing = anon_client.post("/api/meta/schedule", json=body(), headers=auth)
    assert missing.status_code == 422 and "connection_id" in missing.json["fields"]
    created = anon_client.post("/api/meta/schedule", json=body(connection_id=conn.id), headers=auth)
    assert created.status_code == 200
    read = anon_client.get(f"/api/meta/schedule/{created.json['job_id']}", headers=auth)
    assert read.status_code == 200 and read.json["connection_id"] == conn.id
    listing = anon_client.get("/api/meta/schedule", query_string={"connection_id": conn.id}, headers=auth)
    assert [p["job_id"] for p in listing.json["items"]] == [created.json["job_id"]]


def test_reading_a_post(client, conn, db_session):
    job_id = schedule(client, body(link=None)).json["job_id"]
    post = client.get(f"/api/meta/schedule/{job_id}").json
    assert post["job_id"] == job_id and post["status"] == "queued"
    assert set(post) >= {
        "job_id",
        "status",
        "publish_at",
        "caption",
        "media_url",
        "targets",
        "attempts",
        "error_code",
        "error_message",
        "format",
        "media",
        "first_comment",
        "cover_url",
    }
    assert post["media_url"] == IMAGE and post["media"] == [{"url": IMAGE, "type": "image", "alt_text": None}]
    assert (post["format"], post["first_comment"], post["cover_url"]) == ("post", None, None)
    pending = {"status": "pending", "error_code": None, "error_message": None, "published_at": None, "comment": None}
    assert post["targets"] == {
        "facebook": {**pending, "post_id": None},
        "instagram": {**pending, "media_id": None},
    }


def test_another_users_post_is_not_found_for_read_and_cancel(app, client, db_session):
    other_conn = make_connection(db_session, "user-2")
    theirs = make_post(db_session, other_conn, publish_in=3600)
    assert client.get(f"/api/meta/schedule/{theirs.id}").status_code == 404
    response = client.delete(f"/api/meta/schedule/{theirs.id}", headers=same_origin())
    assert response.status_code == 404 and response.json["error_code"] == "not_found"
    db_session.expire_all()
    assert db_session.get(ScheduledPost, theirs.id).status == "queued"
    assert client.get("/api/meta/schedule").json == {"items": [], "next_cursor": None}


def test_listing_is_newest_first_with_cursor_and_status_filter(client, conn, db_session):
    ids = [make_post(db_session, conn, publish_in=3600 + n).id for n in range(5)]
    make_post(db_session, conn, status="published")
    first = client.get("/api/meta/schedule?status=queued&limit=2").json
    assert [p["job_id"] for p in first["items"]] == ids[::-1][:2]
    second = client.get(f"/api/meta/schedule?status=queued&limit=2&cursor={first['next_cursor']}").json
    third = client.get(f"/api/meta/schedule?status=queued&limit=2&cursor={second['next_cursor']}").json
    assert [p["job_id"] for p in second["items"] + third["items"]] == ids[::-1][2:]
    assert third["next_cursor"] is None
    bad = client.get("/api/meta/schedule?status=lost")
    assert bad.status_code == 422 and "status" in bad.json["fields"]
    assert client.get("/api/meta/schedule?cursor=%%%").status_code == 422


def test_cancel_a_queued_post(client, conn, db_session, redis_client):
    job_id = schedule(client, body()).json["job_id"]
    response = client.delete(f"/api/meta/schedule/{job_id}", headers=same_origin())
    assert response.status_code == 200 and response.json == {"cancelled": True, "job_id": job_id}
    db_session.expire_all()
    assert db_session.get(ScheduledPost, job_id).status == "cancelled"
    assert Job.fetch(f"pub-{job_id}-1", connection=redis_client, serializer=JSONSerializer).get_status() == "canceled"
    again = client.delete(f"/api/meta/schedule/{job_id}", headers=same_origin())
    assert again.status_code == 200


@pytest.mark.parametrize("status", ["publishing", "published", "failed"])
def test_a_post_that_started_cannot_be_cancelled(client, conn, db_session, status):
    post = make_post(db_session, conn, status=status)
    response = client.delete(f"/api/meta/schedule/{post.id}", headers=same_origin())
    assert response.status_code == 409 and response.json["error_code"] == "not_cancellable"
    db_session.expire_all()
    assert db_session.get(ScheduledPost, post.id).status == status


def test_disconnect_cancels_pending_posts_with_a_reason(client, conn, db_session):
    pending = make_post(db_session, conn, publish_in=3600)
    done = make_post(db_session, conn, status="published")
    with requests_mock.Mocker() as m:
        m.delete(requests_mock.ANY, json={"success": True})
        assert client.post("/api/meta/disconnect", headers=same_origin()).status_code == 200
    db_session.expire_all()
    cancelled = db_session.get(ScheduledPost, pending.id)
    assert cancelled.status == "cancelled"
    assert cancelled.error_message == "Dibatalkan karena koneksi Facebook & Instagram diputus."
    assert db_session.get(ScheduledPost, done.id).status == "published"


def test_redis_down_at_enqueue_still_keeps_the_post(settings, conn, db_session):
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from connect_service import create_app

    # No retries: redis-py's default backoff would spend seconds before each failure.
    dead = redis_lib.Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.3, retry=Retry(NoBackoff(), retries=0))
    app = create_app({"SETTINGS": settings, "REDIS": dead})
    client = app.test_client()
    client.set_cookie("resellio_session", session_jwt("user-1"))
    response = schedule(client, body())
    assert response.status_code == 200
    post = db_session.get(ScheduledPost, response.json["job_id"])
    assert post.status == "queued" and post.rq_job_id == f"pub-{post.id}-1"


def test_scheduling_requires_a_session(anon_client):
    assert anon_client.post("/api/meta/schedule", json=body()).status_code == 401


def test_a_late_retry_with_the_same_key_still_gets_the_same_job(client, conn, db_session, settings, redis_client):
    from shared.scheduling import PostCaller, schedule_post
    from shared.services import build_services

    payload = body(publish_at=(utcnow() - timedelta(minutes=9)).isoformat())
    first = schedule_post(
        db_session,
        build_services(settings, redis=redis_client, engine=db_session.get_bind()),
        caller=PostCaller(user_id="user-1"),
        payload=payload,
        idempotency_key="k-late",
        received_at=utcnow() - timedelta(minutes=10),
    )
    db_session.execute(update(ScheduledPost).values(created_at=utcnow() - timedelta(minutes=10)))
    db_session.commit()
    retry = schedule(client, payload, **{"Idempotency-Key": "k-late"})
    assert retry.status_code == 200 and retry.json["job_id"] == first.post.id


def test_nul_characters_are_refused_not_crashing(client, conn, db_session):
    response = schedule(client, body(caption="promo\x00"))
    assert response.status_code == 422 and "caption" in response.json["fields"]
    assert client.get("/api/meta/schedule/job_%00x").status_code in (400, 404)
    assert client.get("/api/meta/schedule?connection_id=a%00b").status_code in (400, 422)
    bad_key = schedule(client, body(), **{"Idempotency-Key": "k\x01"})
    assert bad_key.status_code == 422
    assert post_count(db_session) == 0


def test_a_cursor_with_a_naive_time_is_a_validation_error(client, conn):
    import base64
    import json as jsonlib

    cursor = base64.urlsafe_b64encode(jsonlib.dumps(["2026-01-01T00:00:00", "job_x"]).encode()).decode()
    assert client.get(f"/api/meta/schedule?cursor={cursor}").status_code == 422


def test_a_malformed_connection_id_is_simply_not_found(client, conn):
    response = schedule(client, body(connection_id="not-a-connection"))
    assert response.status_code == 404 and response.json["error_code"] == "not_found"


def test_the_scheduler_may_not_cancel(anon_client, conn, db_session):
    post = make_post(db_session, conn, publish_in=3600)
    response = anon_client.delete(
        f"/api/meta/schedule/{post.id}", headers={"Authorization": f"Bearer {SCHEDULER_TOKEN}"}
    )
    assert response.status_code == 403 and response.json["error_code"] == "forbidden"
    db_session.expire_all()
    assert db_session.get(ScheduledPost, post.id).status == "queued"


PRIVATE_HOSTS = [
    "127.1",
    "0x7f.1",
    "0177.0.0.1",
    "2130706433",
    "0x7f000001",
    "10.1",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[64:ff9b::7f00:1]",
    "[64:ff9b::a9fe:a9fe]",
    "[2002:7f00:1::]",
    "[2002:a00:1::1]",
    "[::127.0.0.1]",
    "localhost.",
    "LOCALHOST",
    "shop.localhost.",
    "[::1]",
    "[::]",
    "0.0.0.0",
    "10.0.0.7",
    "172.16.5.4",
    "192.168.0.1",
    "169.254.169.254",
    "100.64.0.1",
    "[fe80::1]",
    "[fd00::1]",
    "224.0.0.1",
    "[ff02::1]",
    "999.1.1.1",
    "cdn.example.123",
    "%6c%6fcalhost",
    "127.0.0.\uff11",  # a fullwidth digit: UTS #46 (what requests and browsers apply) makes it 127.0.0.1
    "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54",  # fullwidth "localhost"
    "192.0.0.8",  # IETF protocol assignments: ipaddress calls it global
]


@pytest.mark.parametrize("host", PRIVATE_HOSTS)
def test_private_addresses_in_any_spelling_are_refused(client, conn, db_session, host):
    for field, url in (("media_url", f"https://{host}/a.jpg"), ("link", f"https://{host}/produk")):
        response = schedule(client, body(**{field: url}))
        assert response.status_code == 422, (field, url)
        assert response.json["fields"][field] == [
            "URL harus bisa diakses dari internet, karena Meta mengambilnya langsung."
        ]
    assert post_count(db_session) == 0


@pytest.mark.parametrize(
    "host",
    [
        "cdn.example.com",
        "cdn.example.com.",
        "b\u00fccher.example.com",  # an internationalised name stays fine
        "93.184.215.14",
        "[2606:4700::1111]",
        "[::ffff:93.184.215.14]",
        "[64:ff9b::5db8:d70e]",
    ],
)
def test_public_hosts_pass_the_host_check(host):
    from shared.post_schema import check_public_https_url

    check_public_https_url(f"https://{host}/a.jpg")  # no DNS lookup: a literal judgement
