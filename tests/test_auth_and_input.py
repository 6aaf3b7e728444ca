"""Who may call, from where, and what bad input gets back."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.conftest import DASHBOARD_ORIGIN, SCHEDULER_TOKEN, SESSION_SECRET, same_origin, session_jwt


@pytest.mark.parametrize(
    "token",
    [
        session_jwt("user-1", expires_in=-10),  # expired
        session_jwt("user-1", secret="not-the-secret-but-long-enough-x"),  # badly signed
        jwt.encode({"sub": "user-1"}, SESSION_SECRET, algorithm="HS256"),  # no exp
        jwt.encode({"exp": int(time.time()) + 60}, SESSION_SECRET, algorithm="HS256"),  # no sub
        jwt.encode({"sub": "user-1", "exp": int(time.time()) + 60}, SESSION_SECRET, algorithm="HS512"),  # wrong alg
        jwt.encode({"sub": "user-1", "exp": int(time.time()) + 60}, "", algorithm="none"),  # unsigned
        "not-a-jwt",
    ],
)
def test_bad_sessions_are_not_authenticated(anon_client, token):
    anon_client.set_cookie("resellio_session", token)
    response = anon_client.get("/api/meta/status")
    assert response.status_code == 401
    assert response.json == {
        "error_code": "not_authenticated",
        "action": "login",
        "message": "Sesi Resellio tidak ditemukan atau sudah berakhir. Silakan masuk lagi.",
    }


def test_bearer_session_works(anon_client):
    response = anon_client.get("/api/meta/status", headers={"Authorization": f"Bearer {session_jwt('user-9')}"})
    assert response.status_code == 200 and response.json == {"status": "not_connected"}


def test_scheduler_may_not_use_connection_endpoints(anon_client):
    headers = {"Authorization": f"Bearer {SCHEDULER_TOKEN}"}
    for method, path in [
        ("get", "/api/meta/status"),
        ("get", "/api/meta/connect"),
        ("get", "/api/meta/pages"),
        ("post", "/api/meta/disconnect"),
    ]:
        response = getattr(anon_client, method)(path, headers=headers)
        assert response.status_code == 403, path
        assert response.json["error_code"] == "forbidden"


def test_cookie_post_without_origin_is_refused(client):
    response = client.post("/api/meta/disconnect")
    assert response.status_code == 403
    assert response.json["error_code"] == "forbidden_origin"


def test_cookie_post_from_a_foreign_origin_is_refused(client):
    response = client.post("/api/meta/disconnect", headers={"Origin": "https://evil.example"})
    assert response.status_code == 403 and response.json["error_code"] == "forbidden_origin"


def test_referer_stands_in_for_a_missing_origin(client):
    ok = client.post("/api/meta/disconnect", headers={"Referer": "http://localhost/social-connect"})
    assert ok.status_code == 200
    bad = client.post("/api/meta/disconnect", headers={"Referer": "https://evil.example/x"})
    assert bad.status_code == 403


def test_dashboard_origin_is_allowed_with_cors_credentials(client):
    response = client.post("/api/meta/disconnect", headers={"Origin": DASHBOARD_ORIGIN})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == DASHBOARD_ORIGIN
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    foreign = client.get("/api/meta/status", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in foreign.headers


def test_an_ipv6_dashboard_origin_is_matched_exactly_not_as_a_pattern(settings, redis_client, engine):
    from dataclasses import replace

    from connect_service import create_app

    # flask-cors reads a string holding "[" as a regex; [::1] would then match "http://1.evil.com".
    app = create_app({"SETTINGS": replace(settings, cors_origins=("http://[::1]:3000",)), "REDIS": redis_client})
    client = app.test_client()
    client.set_cookie("resellio_session", session_jwt("user-1"))
    for evil in ("http://1.evil.com", "http://:3000", "http://[::1]:3000.evil.com"):
        response = client.get("/api/meta/status", headers={"Origin": evil})
        assert "Access-Control-Allow-Origin" not in response.headers, evil
    ours = client.get("/api/meta/status", headers={"Origin": "http://[::1]:3000"})
    assert ours.headers["Access-Control-Allow-Origin"] == "http://[::1]:3000"


def test_bearer_post_needs_no_origin(anon_client):
    response = anon_client.post("/api/meta/disconnect", headers={"Authorization": f"Bearer {session_jwt('user-1')}"})
    assert response.status_code == 200


def test_malformed_json_is_a_bad_request(client):
    response = client.post(
        "/api/meta/select-page", data="{not json", content_type="application/json", headers=same_origin()
    )
    assert response.status_code == 400
    assert response.json["error_code"] == "bad_request" and response.json["action"] == "fix_input"


def test_wrong_content_type_is_415(client):
    response = client.post(
        "/api/meta/select-page",
        data="page_id=1",
        headers=same_origin(),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 415 and response.json["error_code"] == "bad_request"


def test_select_page_validation_errors(client):
    response = client.post("/api/meta/select-page", json={"page_id": "12a", "extra": 1}, headers=same_origin())
    assert response.status_code == 422
    assert response.json["error_code"] == "validation_error"
    assert response.json["fields"] == {"page_id": ["Harus berupa id Page."], "extra": ["Kolom ini tidak dikenal."]}
    missing = client.post("/api/meta/select-page", json={}, headers={**same_origin(), "Accept-Language": "en"})
    assert missing.json["fields"] == {"page_id": ["Missing data for required field."]}
    not_object = client.post("/api/meta/select-page", json=["123"], headers=same_origin())
    assert not_object.status_code == 400 and not_object.json["error_code"] == "bad_request"


def test_wrong_method_and_unknown_path(client):
    wrong = client.get("/api/meta/select-page")
    assert wrong.status_code == 405 and wrong.json["error_code"] == "bad_request"
    unknown = client.get("/api/meta/nope")
    assert unknown.status_code == 404 and unknown.json["error_code"] == "not_found"


def test_english_messages_on_request(client):
    response = client.post(
        "/api/meta/select-page", json={"page_id": "1"}, headers={**same_origin(), "Accept-Language": "en"}
    )
    assert response.json["error_code"] == "selection_expired"
    assert response.json["message"] == "The time to choose a Page has run out. Please connect again."


def test_every_response_has_a_request_id(client):
    response = client.get("/api/meta/status")
    assert len(response.headers["X-Request-ID"]) >= 16
    echoed = client.get("/api/meta/status", headers={"X-Request-ID": "req-abc-12345"})
    assert echoed.headers["X-Request-ID"] == "req-abc-12345"


def test_an_unexpected_error_is_a_500_without_details(app, client, monkeypatch):
    from connect_service import connection_api
    from connect_service.status_read import StatusReader

    def explode(*args, **kwargs):
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(connection_api, "active_connection", explode)
    monkeypatch.setattr(StatusReader, "active_connection", explode)  # the direct read, on PostgreSQL
    response = client.get("/api/meta/status")
    assert response.status_code == 500
    assert response.json["error_code"] == "internal_error"
    assert "hunter2" not in response.get_data(as_text=True)


PATHOLOGICAL_JSON = {
    "deeply nested arrays": "[" * 10_000 + "]" * 10_000,
    "deeply nested objects": '{"a":' * 10_000 + "1" + "}" * 10_000,
    "nested deeper than 32": '{"page_id": "1", "x": ' + "[" * 40 + "]" * 40 + "}",
    "a number that overflows": '{"page_id": 1e999999}',
    "NaN": '{"page_id": NaN}',
    "Infinity": '{"page_id": -Infinity}',
    "an integer of 5000 digits": '{"page_id": 1' + "0" * 5000 + "}",
    "a lone surrogate": '{"page_id": "\\ud800"}',
    "a lone surrogate as a key": '{"\\udfff": "1"}',
    "NUL in a key": '{"a\\u0000": "1"}',
    "a key twice": '{"page_id": "1", "page_id": "2"}',
    "an array": '["123"]',
    "a string": '"page_id"',
    "a number": "3",
    "null": "null",
    "invalid UTF-8": b'{"page_id": "\xff\xfe"}',
}


@pytest.mark.parametrize("path", ["/api/meta/select-page", "/api/meta/schedule", "/api/meta/disconnect"])
@pytest.mark.parametrize("name", list(PATHOLOGICAL_JSON))
def test_pathological_json_is_a_bad_request_never_a_500(client, path, name):
    response = client.post(path, data=PATHOLOGICAL_JSON[name], content_type="application/json", headers=same_origin())
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["error_code"] == "bad_request" and response.json["action"] == "fix_input"


def test_ordinary_json_still_reads(client):
    response = client.post(
        "/api/meta/select-page",
        data='{"page_id": "123", "note": [[1.5, "é"]]}',
        content_type="application/json",
        headers=same_origin(),
    )
    assert response.status_code == 422 and response.json["fields"] == {"note": ["Kolom ini tidak dikenal."]}


@pytest.fixture
def demo_client(settings, redis_client, engine):
    from connect_service import create_app
    from social_connect_demo import login

    app = create_app({"SETTINGS": settings.with_overrides(app_env="demo"), "REDIS": redis_client, "TESTING": True})
    login.register(app)
    return app.test_client()


@pytest.mark.parametrize(
    "raw_next",
    [
        "/%09/evil.test",
        "/%0A/evil.test",
        "/%0D/evil.test",
        "%09//evil.test",
        "/%09%0A/evil.test",
        "//evil.test",
        "/\\evil.test",
        "/%5Cevil.test",
        "\\\\evil.test",
        "/%5C%5Cevil.test",
        "https://evil.test/",
        "javascript:alert(1)",
        "/%00/evil.test",
        "%20//evil.test",
        "evil.test",
        "",
    ],
)
def test_demo_login_next_must_be_a_same_site_path(demo_client, raw_next):
    response = demo_client.get(f"/demo/login?next={raw_next}")
    if response.status_code == 400:  # a NUL is refused before any redirect is made
        assert "Location" not in response.headers
        return
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_demo_login_keeps_a_same_site_path(demo_client):
    response = demo_client.get("/demo/login?next=%2F%3Fmeta_status%3Dselect_page")
    assert response.headers["Location"] == "/?meta_status=select_page"
