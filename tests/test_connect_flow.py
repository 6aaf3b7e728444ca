"""The OAuth connect flow: every branch of the callback, page selection, browsers and APIs."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests_mock
from sqlalchemy import select

from connect_service.meta_oauth import state_key
from shared.models import AuditEvent, SocialConnection
from tests.conftest import DASHBOARD_URL, REDIRECT_URI, same_origin, session_jwt
from tests.meta_mock import META_USER_ID, MetaMock, assert_every_token_call_has_proof, page

JSON = {"Accept": "application/json"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture
def meta():
    with requests_mock.Mocker() as m:
        yield MetaMock(m)


def start(client) -> str:
    response = client.get("/api/meta/connect")
    assert response.status_code == 200
    return response.json["state"]


def callback(client, state, code, headers=JSON, **extra):
    return client.get("/api/meta/callback", query_string={"code": code, "state": state, **extra}, headers=headers)


def events(db_session) -> list[str]:
    db_session.expire_all()
    return [e.event for e in db_session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def connections(db_session) -> list[SocialConnection]:
    db_session.expire_all()
    return list(db_session.scalars(select(SocialConnection).order_by(SocialConnection.created_at)))


def test_connect_returns_the_dialog_url_with_state_and_scopes(client, redis_client):
    body = client.get("/api/meta/connect").json
    url = urlsplit(body["oauth_url"])
    query = parse_qs(url.query)
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://www.meta.test/v25.0/dialog/oauth"
    assert query["client_id"] == ["1234567890"]
    assert query["redirect_uri"] == [REDIRECT_URI]
    assert query["response_type"] == ["code"]
    assert query["state"] == [body["state"]]
    assert set(query["scope"][0].split(",")) >= {"pages_manage_posts", "instagram_content_publish"}
    assert len(body["state"]) >= 32  # 256 random bits, url-safe
    ttl = redis_client.ttl(state_key("user-1", body["state"]))
    assert 590 <= ttl <= 600


def test_connect_with_redirect_answers_302_to_meta(client):
    response = client.get("/api/meta/connect?redirect=1")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("https://www.meta.test/v25.0/dialog/oauth?")


def test_single_page_connects_at_once(client, meta, db_session):
    state = start(client)
    response = callback(client, state, meta.code)
    assert response.status_code == 200
    body = response.json
    assert body["connected"] is True and body["status"] == "connected"
    assert body["facebook_page_id"] == meta.pages[0].id
    assert body["instagram_business_account_id"] == meta.pages[0].ig_id
    [conn] = connections(db_session)
    assert conn.id == body["connection_id"] and conn.id.startswith("conn_")
    assert conn.user_id_resellio == "user-1" and conn.meta_user_id == META_USER_ID
    assert conn.page_name == "Toko 1" and conn.status == "connected"
    assert conn.expires_at is None  # Meta says the page token never expires
    assert conn.data_access_expires_at is not None and conn.token_last_checked_at is not None
    assert "instagram_content_publish" in conn.scopes_granted
    assert events(db_session) == ["connect_started", "connected"]
    # The long-lived exchange really happened, and the code was used exactly once.
    exchanges = meta.calls("POST", "/oauth/access_token")
    assert len(exchanges) == 2
    assert assert_every_token_call_has_proof(meta.m.request_history) >= 3

    status = client.get("/api/meta/status").json
    assert status["status"] == "connected" and status["page_name"] == "Toko 1"
    assert status["connection_id"] == conn.id


def test_several_pages_then_select(client, meta, db_session):
    meta.pages[:] = [page(1), page(2, ig=False), page(3)]
    response = callback(client, start(client), meta.code)
    assert response.status_code == 200
    assert response.json == {
        "connected": False,
        "requires_page_selection": True,
        "pages": [
            {"id": meta.pages[0].id, "name": "Toko 1", "has_instagram": True},
            {"id": meta.pages[1].id, "name": "Toko 2", "has_instagram": False},
            {"id": meta.pages[2].id, "name": "Toko 3", "has_instagram": True},
        ],
    }
    assert connections(db_session) == []
    assert client.get("/api/meta/pages").json["pages"] == response.json["pages"]

    chosen = client.post("/api/meta/select-page", json={"page_id": meta.pages[2].id}, headers=same_origin())
    assert chosen.status_code == 200
    assert chosen.json["connected"] is True
    assert chosen.json["facebook_page_id"] == meta.pages[2].id
    assert chosen.json["instagram_business_account_id"] == meta.pages[2].ig_id
    [conn] = connections(db_session)
    assert conn.facebook_page_id == meta.pages[2].id
    assert events(db_session)[-1] == "page_selected"
    # The code was exchanged once only; the page token was re-read with the stored user token.
    assert len(meta.calls("POST", "/oauth/access_token")) == 2
    [reread] = meta.calls("GET", f"/{meta.pages[2].id}")
    # The Page node has no "tasks": those come from /me/accounts, kept in the selection.
    assert reread.qs["fields"] == ["id,name,access_token,instagram_business_account{id,username}"]
    assert client.get("/api/meta/pages").status_code == 410
    assert_every_token_call_has_proof(meta.m.request_history)


def test_selecting_a_page_without_instagram_is_refused_and_the_choice_stays_open(client, meta, db_session):
    meta.pages[:] = [page(1), page(2, ig=False)]
    callback(client, start(client), meta.code)
    response = client.post("/api/meta/select-page", json={"page_id": meta.pages[1].id}, headers=same_origin())
    assert response.status_code == 422
    assert response.json["error_code"] == "instagram_not_connected_to_page"
    assert response.json["message"] == "Page Facebook belum terhubung ke Instagram Business."
    assert response.json["action"] == "link_instagram"
    assert connections(db_session) == []
    assert client.get("/api/meta/pages").status_code == 200


def test_single_page_without_instagram(client, meta, db_session):
    meta.pages[:] = [page(1, ig=False)]
    response = callback(client, start(client), meta.code)
    assert response.status_code == 422
    assert response.json["error_code"] == "instagram_not_connected_to_page"
    assert connections(db_session) == []
    assert events(db_session) == ["connect_started", "connect_failed"]


def test_not_admin_page(client, meta, db_session):
    meta.pages[:] = [page(1, admin=False)]
    response = callback(client, start(client), meta.code)
    assert response.status_code == 403
    assert response.json == {
        "error_code": "not_admin_page",
        "action": "switch_account",
        "message": "Akun Facebook ini tidak punya akses admin/editor ke Page yang dipilih.",
    }
    assert connections(db_session) == []


def test_pages_without_posting_tasks_are_not_offered(client, meta):
    meta.pages[:] = [page(1, admin=False), page(2), page(3, admin=False)]
    response = callback(client, start(client), meta.code)
    # Only one Page can be posted to, so it is connected at once.
    assert response.json["connected"] is True
    assert response.json["facebook_page_id"] == meta.pages[1].id


def test_permission_declined(client, meta, db_session):
    meta.permissions["instagram_content_publish"] = "declined"
    response = callback(client, start(client), meta.code)
    assert response.status_code == 403
    assert response.json["error_code"] == "permissions_missing"
    assert response.json["message"] == "Izin Meta belum lengkap untuk auto-posting."
    assert connections(db_session) == []


def test_declining_business_management_alone_still_connects(client, meta):
    meta.permissions["business_management"] = "declined"
    assert callback(client, start(client), meta.code).json["connected"] is True


def test_user_cancelled(client, meta, db_session):
    state = start(client)
    response = client.get(
        "/api/meta/callback",
        headers=JSON,
        query_string={
            "error": "access_denied",
            "error_reason": "user_denied",
            "error_description": "Permissions error",
            "state": state,
        },
    )
    assert response.status_code == 403
    assert response.json["error_code"] == "permissions_missing"
    assert meta.m.call_count == 0
    # The state was consumed with it.
    assert callback(client, state, meta.code).json["error_code"] == "invalid_state"


def test_accounts_split_across_several_paging_pages(client, meta):
    meta.pages[:] = [page(n, admin=(n == 7)) for n in range(1, 8)]
    meta.page_size = 3
    response = callback(client, start(client), meta.code)
    assert response.json["connected"] is True
    assert response.json["facebook_page_id"] == meta.pages[6].id
    listing_calls = meta.calls("GET", "/me/accounts")
    assert len(listing_calls) == 3
    assert_every_token_call_has_proof(meta.m.request_history)


def test_paging_next_to_another_host_is_not_followed(client, meta):
    meta.pages[:] = [page(1), page(2)]
    meta.m.get(
        "https://graph.meta.test/v25.0/me/accounts",
        json={
            "data": [meta.pages[0].as_graph()],
            "paging": {"next": "https://evil.example/v25.0/me/accounts?access_token=x&after=1"},
        },
    )
    response = callback(client, start(client), meta.code)
    # Only the first listing page was read, so its one Page was connected.
    assert response.json["connected"] is True
    assert response.json["facebook_page_id"] == meta.pages[0].id
    assert all(urlsplit(r.url).netloc == "graph.meta.test" for r in meta.m.request_history)


@pytest.mark.parametrize(
    "failure",
    [
        {"status_code": 500, "text": "<html>Internal Server Error</html>"},
        {
            "status_code": 500,
            "json": {
                "error": {
                    "message": "An unexpected error has occurred.",
                    "code": 2,
                    "type": "OAuthException",
                    "is_transient": True,
                }
            },
        },
        {"exc": requests.exceptions.ReadTimeout},
        {"exc": requests.exceptions.ConnectTimeout},
        {"exc": requests.exceptions.ConnectionError},
    ],
)
def test_meta_failures_answer_meta_unavailable(client, meta, db_session, failure):
    meta.m.get("https://graph.meta.test/v25.0/me/accounts", **failure)
    response = callback(client, start(client), meta.code)
    assert response.status_code == 502
    assert response.json["error_code"] == "meta_unavailable"
    assert response.json["action"] == "retry"
    assert connections(db_session) == []
    assert events(db_session)[-1] == "connect_failed"


def test_code_exchange_timeout_is_not_retried(client, meta):
    meta.m.post("https://graph.meta.test/v25.0/oauth/access_token", exc=requests.exceptions.ReadTimeout)
    response = callback(client, start(client), meta.code)
    assert response.json["error_code"] == "meta_unavailable"
    assert len(meta.calls("POST", "/oauth/access_token")) == 1


def test_used_code_is_an_error_not_a_crash(client, meta):
    response = callback(client, start(client), "AQD-a-code-already-used-elsewhere")
    assert response.status_code == 502
    assert response.json["error_code"] == "meta_unavailable"


def test_replayed_state(client, meta):
    state = start(client)
    assert callback(client, state, meta.code).status_code == 200
    replay = callback(client, state, meta.code)
    assert replay.status_code == 400
    assert replay.json["error_code"] == "invalid_state" and replay.json["action"] == "reconnect"


def test_expired_state(client, meta, redis_client):
    state = start(client)
    redis_client.delete(state_key("user-1", state))  # what the 10-minute TTL does
    assert callback(client, state, meta.code).json["error_code"] == "invalid_state"
    assert meta.m.call_count == 0


def test_state_of_another_user(app, client, meta):
    state = start(client)
    other = app.test_client()
    other.set_cookie("resellio_session", session_jwt("user-2"))
    response = callback(other, state, meta.code)
    assert response.json["error_code"] == "invalid_state"
    assert meta.m.call_count == 0
    # The rightful owner can still finish.
    assert callback(client, state, meta.code).json["connected"] is True


def test_missing_state(client, meta):
    response = client.get("/api/meta/callback", query_string={"code": meta.code}, headers=JSON)
    assert response.json["error_code"] == "invalid_state"


def test_no_session(anon_client, meta):
    response = callback(anon_client, "whatever", meta.code)
    assert response.status_code == 401
    assert response.json["error_code"] == "not_authenticated" and response.json["action"] == "login"


def test_browser_is_redirected_to_the_dashboard(client, meta):
    response = callback(client, start(client), meta.code, headers=BROWSER)
    assert response.status_code == 302
    assert response.headers["Location"] == DASHBOARD_URL + "?meta_status=connected"


def test_browser_gets_select_page_and_error_redirects(client, anon_client, meta):
    meta.pages[:] = [page(1), page(2)]
    response = callback(client, start(client), meta.code, headers=BROWSER)
    assert response.headers["Location"] == DASHBOARD_URL + "?meta_status=select_page"
    replay = callback(client, "not-a-live-state", meta.code, headers=BROWSER)
    assert replay.headers["Location"] == DASHBOARD_URL + "?meta_status=error&error_code=invalid_state"
    nobody = callback(anon_client, "x", meta.code, headers=BROWSER)
    assert nobody.headers["Location"] == DASHBOARD_URL + "?meta_status=error&error_code=not_authenticated"


def test_star_accept_gets_json(client, meta):
    response = callback(client, start(client), meta.code, headers={"Accept": "*/*"})
    assert response.status_code == 200 and response.json["connected"] is True


def test_select_page_unknown_page(client, meta):
    meta.pages[:] = [page(1), page(2)]
    callback(client, start(client), meta.code)
    response = client.post("/api/meta/select-page", json={"page_id": "999999"}, headers=same_origin())
    assert response.status_code == 404
    assert response.json["error_code"] == "page_not_found" and response.json["action"] == "choose_page"


def test_select_page_after_the_selection_expired(client, meta, redis_client):
    meta.pages[:] = [page(1), page(2)]
    callback(client, start(client), meta.code)
    assert 590 <= redis_client.ttl("social_connect:page_selection:user-1") <= 600
    redis_client.delete("social_connect:page_selection:user-1")
    response = client.post("/api/meta/select-page", json={"page_id": meta.pages[0].id}, headers=same_origin())
    assert response.status_code == 410
    assert response.json["error_code"] == "selection_expired"
    assert client.get("/api/meta/pages").json["error_code"] == "selection_expired"


def test_pending_selection_holds_no_page_token_and_no_plain_user_token(client, meta, redis_client):
    meta.pages[:] = [page(1), page(2)]
    callback(client, start(client), meta.code)
    stored = redis_client.get("social_connect:page_selection:user-1").decode()
    for secret in meta.secrets:
        assert secret not in stored


def test_reconnecting_the_same_page_keeps_the_connection(client, meta, db_session):
    first = callback(client, start(client), meta.code).json
    meta.pages[0].token = "EAApage" + "1" * 40
    second = callback(client, start(client), meta.code).json
    assert second["connection_id"] == first["connection_id"]
    assert len(connections(db_session)) == 1


def test_connecting_another_page_replaces_the_connection(client, meta, db_session):
    first = callback(client, start(client), meta.code).json
    meta.pages[:] = [page(5)]
    second = callback(client, start(client), meta.code).json
    assert second["connection_id"] != first["connection_id"]
    old, new = connections(db_session)
    assert old.id == first["connection_id"] and old.status == "disconnected"
    assert old.page_access_token_enc is None and old.user_access_token_enc is None
    assert new.status == "connected" and new.facebook_page_id == meta.pages[0].id


def test_two_users_may_connect_the_same_page(app, client, meta, db_session):
    callback(client, start(client), meta.code)
    other = app.test_client()
    other.set_cookie("resellio_session", session_jwt("user-2"))
    assert callback(other, start(other), meta.code).json["connected"] is True
    assert {c.user_id_resellio for c in connections(db_session)} == {"user-1", "user-2"}


def test_a_user_id_holding_a_colon_cannot_consume_another_users_state(app, meta, db_session):
    """Keys were ``oauth_state:<user>:<state>``: user "a" sending state "b:<S>" hit user "a:b"'s state S."""
    victim = app.test_client()
    victim.set_cookie("resellio_session", session_jwt("a:b"))
    attacker = app.test_client()
    attacker.set_cookie("resellio_session", session_jwt("a"))
    state = start(victim)
    response = callback(attacker, f"b:{state}", meta.code)
    assert response.status_code == 400 and response.json["error_code"] == "invalid_state"
    assert meta.m.call_count == 0 and connections(db_session) == []
    # The victim's state is untouched: their own callback still completes.
    assert callback(victim, state, meta.code).json["connected"] is True


@pytest.mark.parametrize("bad_state", ["short", "x" * 31, "b:" + "x" * 40, "x" * 40 + "\n", "*" * 40, "x" * 129])
def test_a_malformed_state_is_refused_without_asking_redis(client, meta, redis_client, monkeypatch, bad_state):
    asked = []
    monkeypatch.setattr(redis_client, "getdel", lambda *a, **k: asked.append(a))
    response = callback(client, bad_state, meta.code)
    assert response.json["error_code"] == "invalid_state"
    assert asked == [] and meta.m.call_count == 0


def dialog_query(client) -> dict:
    return parse_qs(urlsplit(client.get("/api/meta/connect").json["oauth_url"]).query)


def test_after_a_declined_permission_the_next_dialog_asks_again(client, meta, db_session):
    assert "auth_type" not in dialog_query(client)
    meta.permissions["instagram_content_publish"] = "declined"
    assert callback(client, start(client), meta.code).json["error_code"] == "permissions_missing"
    # Meta does not show a declined permission again unless asked to.
    assert dialog_query(client)["auth_type"] == ["rerequest"]
    # Other failures in between do not make it forget.
    assert callback(client, "x" * 43, meta.code).json["error_code"] == "invalid_state"
    assert dialog_query(client)["auth_type"] == ["rerequest"]
    # Once connected, the dialog goes back to normal.
    meta.permissions["instagram_content_publish"] = "granted"
    assert callback(client, start(client), meta.code).json["connected"] is True
    assert "auth_type" not in dialog_query(client)


def test_a_cancelled_dialog_also_asks_again_next_time(client, meta):
    response = client.get(
        "/api/meta/callback", headers=JSON, query_string={"error": "access_denied", "state": start(client)}
    )
    assert response.json["error_code"] == "permissions_missing"
    assert dialog_query(client)["auth_type"] == ["rerequest"]


def test_a_connection_that_lost_a_scope_asks_again(client, meta, db_session):
    assert callback(client, start(client), meta.code).json["connected"] is True
    [conn] = connections(db_session)
    conn.status, conn.last_error_code = "needs_reauth", "permissions_missing"
    db_session.commit()
    assert dialog_query(client)["auth_type"] == ["rerequest"]


def granular(page_ids, ig_ids) -> list[dict]:
    return [
        {"scope": "pages_show_list", "target_ids": list(page_ids)},
        {"scope": "pages_manage_posts", "target_ids": list(page_ids)},
        {"scope": "instagram_basic", "target_ids": list(ig_ids)},
        {"scope": "instagram_content_publish", "target_ids": list(ig_ids)},
        {"scope": "business_management"},
    ]


@pytest.mark.parametrize(
    "grants",
    [
        lambda p, other: granular([other.id], [p.ig_id]),  # the Page itself unticked
        lambda p, other: granular([p.id], [other.ig_id]),  # its Instagram account unticked
        lambda p, other: [g for g in granular([p.id], [p.ig_id]) if g["scope"] != "pages_manage_posts"],
    ],
)
def test_granular_scopes_must_cover_the_page_and_its_instagram_account(client, meta, db_session, grants):
    other = page(9)
    meta.granular_scopes = grants(meta.pages[0], other)
    response = callback(client, start(client), meta.code)
    assert response.status_code == 403 and response.json["error_code"] == "permissions_missing"
    assert connections(db_session) == []
    assert events(db_session) == ["connect_started", "connect_failed"]
    assert dialog_query(client)["auth_type"] == ["rerequest"]


def test_granular_scopes_that_cover_the_page_connect(client, meta):
    meta.granular_scopes = granular([meta.pages[0].id], [meta.pages[0].ig_id])
    assert callback(client, start(client), meta.code).json["connected"] is True


def test_select_page_checks_granular_scopes_too(client, meta, db_session):
    meta.pages[:] = [page(1), page(2)]
    meta.granular_scopes = granular([meta.pages[0].id], [meta.pages[0].ig_id])
    assert callback(client, start(client), meta.code).json["requires_page_selection"] is True
    refused = client.post("/api/meta/select-page", json={"page_id": meta.pages[1].id}, headers=same_origin())
    assert refused.status_code == 403 and refused.json["error_code"] == "permissions_missing"
    assert connections(db_session) == []
    assert events(db_session)[-1] == "connect_failed"
    assert dialog_query(client)["auth_type"] == ["rerequest"]
    # The choice stays open: the granted Page can still be picked.
    chosen = client.post("/api/meta/select-page", json={"page_id": meta.pages[0].id}, headers=same_origin())
    assert chosen.status_code == 200 and chosen.json["connected"] is True
