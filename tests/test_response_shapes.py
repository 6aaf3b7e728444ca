"""The key presence rules of DESIGN §4, kept by the schemas that write the answers."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import update

from shared.db import utcnow
from shared.models import ScheduledPost, SocialConnection
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


def test_a_post_shows_its_next_attempt_only_while_it_may_still_run(client, conn, db_session):
    retry_at = utcnow() + timedelta(minutes=3)
    post = make_post(db_session, conn, publish_in=600, next_attempt_at=retry_at, attempts=1)
    body = client.get(f"/api/meta/schedule/{post.id}").json
    assert body["next_attempt_at"].endswith("Z")
    assert abs(datetime.fromisoformat(body["next_attempt_at"]) - retry_at) < timedelta(seconds=1)
    assert body["targets"] == {
        "facebook": {"status": "pending", "post_id": None, "error_code": None},
        "instagram": {"status": "pending", "media_id": None, "error_code": None},
    }
    db_session.execute(update(ScheduledPost).values(status="failed", fb_status="failed", fb_error_code="media_invalid"))
    db_session.commit()
    failed = client.get(f"/api/meta/schedule/{post.id}").json
    assert failed["next_attempt_at"] is None and failed["finished_at"] is None
    assert failed["targets"]["facebook"] == {"status": "failed", "post_id": None, "error_code": "media_invalid"}
    assert failed["publish_at"].endswith("Z") and failed["job_id"] == post.id
