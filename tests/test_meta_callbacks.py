"""Meta's deauthorize and data-deletion callbacks, with signed_request checked."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from sqlalchemy import select

from shared.models import AuditEvent, ScheduledPost, SocialConnection
from tests.conftest import APP_SECRET
from tests.factories import make_connection, make_post

META_USER = "10150000000000001"


def signed(payload: dict, secret: str = APP_SECRET) -> str:
    encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    sig = hmac.new(secret.encode(), encoded.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(sig).decode().rstrip("=") + "." + encoded


def good(user_id: str = META_USER, *, issued_in: int = 0) -> str:
    """A well-signed request issued now (or ``issued_in`` seconds from now, negative: ago)."""
    return signed({"algorithm": "HMAC-SHA256", "issued_at": int(time.time()) + issued_in, "user_id": user_id})


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "no-dot",
        signed({"algorithm": "HMAC-SHA256", "user_id": META_USER}, secret="another-secret"),
        signed({"algorithm": "HMAC-SHA1", "user_id": META_USER}),
        signed({"algorithm": "HMAC-SHA256"}),
        "###.###",
    ],
)
def test_bad_signed_requests_are_refused_and_change_nothing(anon_client, db_session, value):
    conn = make_connection(db_session)
    for path in ("/api/meta/deauthorize", "/api/meta/data-deletion"):
        response = anon_client.post(path, data={} if value is None else {"signed_request": value})
        assert response.status_code == 400 and response.json["error_code"] == "bad_request"
    db_session.expire_all()
    assert db_session.get(SocialConnection, conn.id).status == "connected"


def test_deauthorize_ends_that_meta_users_connections(anon_client, db_session):
    mine = make_connection(db_session, "user-1")
    other_person = make_connection(db_session, "user-2", meta_user_id="10150000000000002")
    pending = make_post(db_session, mine, publish_in=3600)
    response = anon_client.post("/api/meta/deauthorize", data={"signed_request": good()})
    assert response.status_code == 200
    db_session.expire_all()
    conn = db_session.get(SocialConnection, mine.id)
    assert conn.status == "disconnected" and conn.page_access_token_enc is None
    assert db_session.get(SocialConnection, other_person.id).status == "connected"
    post = db_session.get(ScheduledPost, pending.id)
    assert post.status == "cancelled" and "izin aplikasi dicabut" in post.error_message
    assert "deauthorized" in db_session.scalars(select(AuditEvent.event)).all()


def test_data_deletion_erases_and_gives_a_status_url(anon_client, db_session):
    conn = make_connection(db_session)
    response = anon_client.post("/api/meta/data-deletion", data={"signed_request": good()})
    assert response.status_code == 200
    code = response.json["confirmation_code"]
    assert response.json["url"] == f"http://localhost/api/meta/data-deletion/{code}"
    db_session.expire_all()
    erased = db_session.get(SocialConnection, conn.id)
    assert erased.status == "disconnected" and erased.meta_user_id is None
    assert erased.page_name is None and erased.instagram_username is None
    assert erased.page_access_token_enc is None and erased.user_access_token_enc is None
    status = anon_client.get(f"/api/meta/data-deletion/{code}")
    assert status.status_code == 200
    assert status.json["status"] == "completed" and status.json["confirmation_code"] == code
    assert anon_client.get("/api/meta/data-deletion/unknown").status_code == 404
