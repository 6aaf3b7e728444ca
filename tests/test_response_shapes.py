"""The key presence rules of DESIGN §4, kept by the schemas that write the answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from shared.db import utcnow
from shared.errors import CATALOGUE
from shared.models import PostTarget, ScheduledPost, SocialConnection
from shared.targets import UNCONFIRMED_MESSAGE
from tests.factories import make_connection, make_post


def status_of(client, db_session, **values) -> dict:
    db_session.execute(update(SocialConnection).values(**values))
    db_session.commit()
    return client.get("/api/meta/status").json


@pytest.fixture
def conn(db_session):
    return make_connection(db_session)


def test_status_keys_follow_the_connection_state(client, conn, db_session):
    connected = client.get("/api/meta/status").json
    assert connected["status"] == "connected" and "error_code" not in connected
    assert connected["expiring_soon"] is False and connected["connected_at"].endswith("Z")
    assert connected["connection_id"] == conn.id and connected["instagram_username"] == "tokouji"
    # needs_reauth: always an error_code (token_expired when none was stored), still expiring_soon
    stale = status_of(client, db_session, status="needs_reauth", last_error_code=None, scopes_granted=None)
    assert stale["error_code"] == "token_expired" and stale["scopes_granted"] == []
    assert "expiring_soon" in stale and stale["connection_id"] == conn.id
    stored = status_of(client, db_session, status="needs_reauth", last_error_code="permissions_missing")
    assert stored["error_code"] == "permissions_missing"
    assert status_of(client, db_session, status="disconnected") == {"status": "not_connected"}


PENDING_TARGET = {"status": "pending", "error_code": None, "error_message": None, "published_at": None, "comment": None}


def test_a_post_shows_its_next_attempt_only_while_it_may_still_run(client, conn, db_session):
    retry_at = utcnow() + timedelta(minutes=3)
    post = make_post(db_session, conn, publish_in=600, next_attempt_at=retry_at, attempts=1)
    body = client.get(f"/api/meta/schedule/{post.id}").json
    assert body["next_attempt_at"].endswith("Z")
    assert abs(datetime.fromisoformat(body["next_attempt_at"]) - retry_at) < timedelta(seconds=1)
    assert body["targets"] == {
        "facebook": {**PENDING_TARGET, "post_id": None},
        "instagram": {**PENDING_TARGET, "media_id": None},
    }
    db_session.execute(
        update(PostTarget)
        .where(PostTarget.post_id == post.id, PostTarget.target == "facebook")
        .values(status="failed", error_code="media_invalid")
    )
    db_session.execute(update(ScheduledPost).values(status="failed"))
    db_session.commit()
    failed = client.get(f"/api/meta/schedule/{post.id}").json
    assert failed["next_attempt_at"] is None and failed["finished_at"] is None
    assert failed["targets"]["facebook"] == {
        **PENDING_TARGET,
        "status": "failed",
        "post_id": None,
        "error_code": "media_invalid",
        "error_message": CATALOGUE["media_invalid"].message_id,
    }
    assert failed["publish_at"].endswith("Z") and failed["job_id"] == post.id


def test_each_target_says_when_it_went_live_what_went_wrong_and_how_its_comment_fared(client, conn, db_session):
    live_at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    post = make_post(
        db_session,
        conn,
        status="partially_published",
        first_comment="#batik #promo",
        facebook={
            "status": "published",
            "remote_id": "104_555",
            "published_at": live_at,
            "comment_status": "failed",
            "comment_error_code": "rate_limited",
        },
        instagram={
            "status": "failed",
            "error_code": "media_invalid",
            "error_message": "The aspect ratio is not supported.",
            "comment_status": "pending",
        },
    )
    targets = client.get(f"/api/meta/schedule/{post.id}").json["targets"]
    assert targets["facebook"] == {
        "status": "published",
        "post_id": "104_555",
        "error_code": None,
        "error_message": None,
        "published_at": "2026-12-01T09:30:00Z",
        "comment": {"status": "failed", "comment_id": None, "error_code": "rate_limited"},
    }
    # Meta's own words about the failure are kept with the target.
    assert targets["instagram"]["error_message"] == "The aspect ratio is not supported."
    assert targets["instagram"]["comment"] == {"status": "pending", "comment_id": None, "error_code": None}

    db_session.execute(
        update(PostTarget)
        .where(PostTarget.post_id == post.id, PostTarget.target == "instagram")
        .values(status="unconfirmed", error_code=None, error_message=None)
    )
    db_session.commit()
    unconfirmed = client.get(f"/api/meta/schedule/{post.id}").json["targets"]["instagram"]
    assert unconfirmed["error_message"] == UNCONFIRMED_MESSAGE


def test_a_post_lists_its_media_and_an_earlier_post_its_one_image(client, conn, db_session):
    media = [
        {"url": "https://cdn.example.com/1.jpg", "type": "image", "alt_text": "Kemeja batik biru"},
        {"url": "https://cdn.example.com/2.mp4", "type": "video"},
    ]
    carousel = make_post(
        db_session, conn, targets=("instagram",), media_url=media[0]["url"], media=media, first_comment="#batik"
    )
    body = client.get(f"/api/meta/schedule/{carousel.id}").json
    assert body["format"] == "post" and body["first_comment"] == "#batik" and body["cover_url"] is None
    assert body["media"] == [media[0], {**media[1], "alt_text": None}]
    assert body["media_url"] == media[0]["url"]
    assert body["targets"]["facebook"] == {**PENDING_TARGET, "status": "skipped", "post_id": None}

    # A row written before content v2 that has only media_url still shows its one image.
    earlier = make_post(db_session, conn, media_url="https://cdn.example.com/old.jpg")
    db_session.execute(update(ScheduledPost).where(ScheduledPost.id == earlier.id).values(media=[]))
    db_session.commit()
    old = client.get(f"/api/meta/schedule/{earlier.id}").json
    assert old["media"] == [{"url": "https://cdn.example.com/old.jpg", "type": "image", "alt_text": None}]
    assert old["media_url"] == "https://cdn.example.com/old.jpg" and old["first_comment"] is None
