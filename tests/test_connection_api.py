"""Status in each state, and disconnect."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
import requests_mock
from sqlalchemy import select, update

from shared.db import utcnow
from shared.models import AuditEvent, SocialConnection
from tests.conftest import same_origin
from tests.meta_mock import META_USER_ID, MetaMock, assert_every_token_call_has_proof, page
from tests.test_connect_flow import callback, start

DEBUG_TOKEN = "https://graph.meta.test/v25.0/debug_token"


@pytest.fixture
def meta():
    with requests_mock.Mocker() as m:
        yield MetaMock(m)


@pytest.fixture
def connected(client, meta):
    return callback(client, start(client), meta.code).json


def make_stale(db_session, minutes=11):
    db_session.execute(update(SocialConnection).values(token_last_checked_at=utcnow() - timedelta(minutes=minutes)))
    db_session.commit()


def the_connection(db_session) -> SocialConnection:
    db_session.expire_all()
    return db_session.scalars(select(SocialConnection)).one()


def test_status_not_connected(client):
    response = client.get("/api/meta/status")
    assert response.status_code == 200
    assert response.json == {"status": "not_connected"}


def test_status_connected_has_every_documented_key(client, connected, meta):
    body = client.get("/api/meta/status").json
    assert set(body) >= {
        "status",
        "connection_id",
        "facebook_page_id",
        "instagram_business_account_id",
        "page_name",
        "connected_at",
        "expires_at",
        "data_access_expires_at",
        "scopes_granted",
        "token_last_checked_at",
    }
    assert body["status"] == "connected"
    assert body["facebook_page_id"] == meta.pages[0].id
    assert body["expires_at"] is None
    assert body["connected_at"].endswith("Z")
    assert "error_code" not in body


def test_fresh_status_answers_from_the_database(client, connected, meta):
    before = len(meta.calls("GET", "/debug_token"))
    client.get("/api/meta/status")
    assert len(meta.calls("GET", "/debug_token")) == before


def test_stale_status_rechecks_and_finds_the_token_dead(client, connected, meta, db_session):
    make_stale(db_session)
    meta.token_valid = False
    body = client.get("/api/meta/status").json
    assert body["status"] == "needs_reauth"
    assert body["error_code"] == "token_expired"
    assert body["connection_id"] == connected["connection_id"]
    conn = the_connection(db_session)
    assert conn.status == "needs_reauth" and conn.last_error_code == "token_expired"
    assert db_session.scalars(select(AuditEvent.event).order_by(AuditEvent.id.desc())).first() == "token_expired"


def test_stale_status_finds_a_scope_removed(client, connected, meta, db_session):
    make_stale(db_session)
    meta.debug_scopes.remove("pages_manage_posts")
    body = client.get("/api/meta/status").json
    assert body["status"] == "needs_reauth" and body["error_code"] == "permissions_missing"


def test_stale_status_with_a_valid_token_updates_the_check_time(client, connected, meta, db_session):
    make_stale(db_session)
    body = client.get("/api/meta/status").json
    assert body["status"] == "connected"
    conn = the_connection(db_session)
    assert utcnow() - conn.token_last_checked_at < timedelta(seconds=30)


@pytest.mark.parametrize("failure", [{"exc": requests.exceptions.ReadTimeout}, {"status_code": 503, "text": "x"}])
def test_stale_status_when_meta_does_not_answer_returns_the_stored_state(client, connected, meta, db_session, failure):
    make_stale(db_session)
    meta.m.get(DEBUG_TOKEN, **failure)
    body = client.get("/api/meta/status").json
    assert body["status"] == "connected"
    assert the_connection(db_session).status == "connected"


def test_disconnect_revokes_wipes_and_keeps_the_row(client, connected, meta, db_session):
    response = client.post("/api/meta/disconnect", headers=same_origin())
    assert response.status_code == 200
    assert response.json == {"disconnected": True, "status": "not_connected"}
    [revoke] = meta.calls("DELETE", f"/{META_USER_ID}/permissions")
    assert revoke.headers["Authorization"] == f"Bearer {meta.long_token}"
    assert_every_token_call_has_proof([revoke])
    conn = the_connection(db_session)
    assert conn.status == "disconnected" and conn.disconnected_at is not None
    assert conn.page_access_token_enc is None and conn.user_access_token_enc is None
    assert conn.facebook_page_id == meta.pages[0].id  # history kept
    assert client.get("/api/meta/status").json == {"status": "not_connected"}


@pytest.mark.parametrize(
    "failure",
    [
        {
            "status_code": 400,
            "json": {
                "error": {
                    "message": "Error validating access token",
                    "type": "OAuthException",
                    "code": 190,
                    "error_subcode": 460,
                }
            },
        },
        {"exc": requests.exceptions.ConnectTimeout},
    ],
)
def test_disconnect_succeeds_when_the_token_is_already_dead(client, connected, meta, db_session, failure):
    meta.m.delete(f"https://graph.meta.test/v25.0/{META_USER_ID}/permissions", **failure)
    response = client.post("/api/meta/disconnect", headers=same_origin())
    assert response.status_code == 200 and response.json["status"] == "not_connected"
    assert the_connection(db_session).status == "disconnected"


def test_disconnect_is_idempotent(client, connected, meta, db_session):
    assert client.post("/api/meta/disconnect", headers=same_origin()).status_code == 200
    again = client.post("/api/meta/disconnect", headers=same_origin())
    assert again.status_code == 200 and again.json == {"disconnected": True, "status": "not_connected"}
    assert len(meta.calls("DELETE", f"/{META_USER_ID}/permissions")) == 1
    events = list(db_session.scalars(select(AuditEvent.event).where(AuditEvent.event == "disconnected")))
    assert events == ["disconnected"]


def test_disconnect_without_a_connection(client):
    response = client.post("/api/meta/disconnect", headers=same_origin())
    assert response.status_code == 200 and response.json["disconnected"] is True


def test_disconnect_keeps_the_grant_another_seller_still_uses(app, client, connected, meta):
    from tests.conftest import session_jwt

    other = app.test_client()
    other.set_cookie("resellio_session", session_jwt("user-2"))
    callback(other, start(other), meta.code)
    client.post("/api/meta/disconnect", headers=same_origin())
    assert meta.calls("DELETE", f"/{META_USER_ID}/permissions") == []
    assert other.get("/api/meta/status").json["status"] == "connected"


def test_a_disconnected_connection_is_not_revived_by_reconnecting(client, connected, meta, db_session):
    client.post("/api/meta/disconnect", headers=same_origin())
    again = callback(client, start(client), meta.code).json
    assert again["connection_id"] != connected["connection_id"]
    db_session.expire_all()
    statuses = {c.id: c.status for c in db_session.scalars(select(SocialConnection))}
    assert statuses == {connected["connection_id"]: "disconnected", again["connection_id"]: "connected"}


def test_disconnect_body_with_unknown_keys_is_refused(client, connected, db_session):
    response = client.post("/api/meta/disconnect", json={"everything": True}, headers=same_origin())
    assert response.status_code == 422
    assert response.json["fields"] == {"everything": ["Kolom ini tidak dikenal."]}
    assert the_connection(db_session).status == "connected"


def test_needs_reauth_then_reconnecting_the_same_page_restores_it(client, connected, meta, db_session):
    make_stale(db_session)
    meta.token_valid = False
    assert client.get("/api/meta/status").json["status"] == "needs_reauth"
    meta.token_valid = True
    meta.pages[0] = page(1)  # Meta hands out a new page token
    again = callback(client, start(client), meta.code).json
    assert again["connection_id"] == connected["connection_id"]
    assert client.get("/api/meta/status").json["status"] == "connected"


def set_expiry(db_session, *, expires_in_days=None, data_access_in_days=None):
    now = utcnow()
    db_session.execute(
        update(SocialConnection).values(
            expires_at=None if expires_in_days is None else now + timedelta(days=expires_in_days),
            data_access_expires_at=None if data_access_in_days is None else now + timedelta(days=data_access_in_days),
        )
    )
    db_session.commit()


@pytest.mark.parametrize(
    "expires_in_days, data_access_in_days, soon",
    [
        (None, 90, False),  # a fresh connect: page token never expires, data access 90 days
        (None, 13.9, True),  # data access runs out in under 14 days
        (13.9, 90, True),  # the token does
        (60, 10, True),  # the earlier of the two counts
        (14.1, 30, False),
        (None, None, False),  # no date: nothing to warn about
        (None, -1, True),  # already past
    ],
)
def test_status_says_expiring_soon(client, connected, db_session, expires_in_days, data_access_in_days, soon):
    set_expiry(db_session, expires_in_days=expires_in_days, data_access_in_days=data_access_in_days)
    body = client.get("/api/meta/status").json
    assert body["status"] == "connected"
    assert body["expiring_soon"] is soon


def test_expiring_soon_is_present_after_a_fresh_connect(client, connected):
    assert client.get("/api/meta/status").json["expiring_soon"] is False


def test_expiring_soon_is_documented(anon_client):
    spec = anon_client.get("/api/meta/openapi.json").json
    field = spec["components"]["schemas"]["StatusOut"]["properties"]["expiring_soon"]
    assert field["type"] == "boolean" and "14 days" in field["description"]


def test_a_connection_waiting_for_the_seller_on_facebook_stays_so_while_its_token_is_valid(
    client, connected, meta, db_session
):
    db_session.execute(update(SocialConnection).values(status="needs_reauth", last_error_code="meta_action_required"))
    db_session.commit()
    make_stale(db_session, minutes=60 * 24 * 2)
    body = client.get("/api/meta/status").json
    assert body["status"] == "needs_reauth" and body["error_code"] == "meta_action_required"
    assert the_connection(db_session).status == "needs_reauth"


@pytest.mark.parametrize("subcode", [459, 464])
def test_a_checkpointed_seller_is_told_to_fix_it_on_facebook_not_to_reconnect(
    client, connected, meta, db_session, subcode
):
    # Meta's debug_token says why the token is invalid: a checkpoint (459) or an unconfirmed user (464).
    meta.token_valid = False
    meta.debug_error = {"code": 190, "subcode": subcode, "message": "Error validating access token"}
    make_stale(db_session, minutes=60)
    body = client.get("/api/meta/status").json
    assert body["status"] == "needs_reauth" and body["error_code"] == "meta_action_required"


def test_a_later_token_check_does_not_turn_fix_it_on_facebook_into_reconnect(client, connected, meta, db_session):
    db_session.execute(update(SocialConnection).values(status="needs_reauth", last_error_code="meta_action_required"))
    db_session.commit()
    meta.token_valid = False  # Meta now calls the token invalid, without saying why
    from shared.token_check import mark_needs_reauth

    conn = the_connection(db_session)
    mark_needs_reauth(db_session, conn, "token_expired")
    db_session.commit()
    assert the_connection(db_session).last_error_code == "meta_action_required"
