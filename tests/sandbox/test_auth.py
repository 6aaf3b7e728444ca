"""Access tokens in every place Meta accepts them, and appsecret_proof."""

import json

from .conftest import APP_TOKEN, USER_ID, error_of, proof


def test_missing_appsecret_proof_is_refused(meta):
    token = meta.user_token()
    resp = meta.get("/v25.0/me", token, signed=False, fields="id,name")
    assert resp.status_code == 400
    err = error_of(resp)
    assert err["message"] == "API calls from the server require an appsecret_proof argument"
    assert (err["type"], err["code"]) == ("GraphMethodException", 100)
    assert err["fbtrace_id"]


def test_wrong_appsecret_proof_is_refused(meta):
    token = meta.user_token()
    resp = meta.get("/v25.0/me", token, appsecret_proof=proof(token + "x"))
    err = error_of(resp)
    assert err["message"] == "Invalid appsecret_proof provided in the API argument"
    assert err["code"] == 100


def test_page_token_needs_a_proof_too(meta):
    _, page_token = meta.connect()
    resp = meta.post("/v25.0/110000000000001/feed", page_token, signed=False, message="hi")
    assert error_of(resp)["message"].startswith("API calls from the server require")
    assert meta.world.posts == []


def test_right_proof_is_accepted_in_every_token_position(meta):
    token = meta.user_token()
    expected = {"id": USER_ID, "name": "Sari Sandbox"}
    p = proof(token)
    for headers, query, _form in [
        ({"Authorization": f"Bearer {token}"}, {"appsecret_proof": p}, None),
        ({"Authorization": f"OAuth {token}"}, {"appsecret_proof": p}, None),
        ({}, {"access_token": token, "appsecret_proof": p}, None),
    ]:
        resp = meta.client.get("/v25.0/me", query_string={"fields": "id,name", **query}, headers=headers)
        assert resp.get_json() == expected
    resp = meta.client.post(
        "/v25.0/110000000000001/feed",
        data={"access_token": meta.page_token(token), "message": "m", "appsecret_proof": proof(meta.page_token(token))},
    )
    assert resp.status_code == 200
    page_token = meta.page_token(token)
    resp = meta.client.post(
        "/v25.0/110000000000001/feed",
        json={"access_token": page_token, "message": "json body", "appsecret_proof": proof(page_token)},
    )
    assert resp.status_code == 200


def test_app_token_needs_no_proof(meta):
    token = meta.user_token()
    resp = meta.get("/v25.0/debug_token", input_token=token, access_token=APP_TOKEN)
    assert resp.status_code == 200 and resp.get_json()["data"]["is_valid"] is True


def test_unknown_token_is_190_467(meta):
    resp = meta.get("/v25.0/me", "EAAthisdoesnotexist0000000000000000000000000")
    assert resp.status_code == 400
    err = error_of(resp)
    assert (err["code"], err["error_subcode"], err["type"]) == (190, 467, "OAuthException")
    assert "invalid_token" in resp.headers["WWW-Authenticate"]


def test_no_token_at_all(meta):
    err = error_of(meta.client.get("/v25.0/me"))
    assert err["code"] == 2500
    err = error_of(meta.client.get("/v25.0/110000000000001"))
    assert err["code"] == 104


def test_usage_header_on_success_and_error(meta):
    ok = meta.get("/v25.0/debug_token", input_token="x", access_token=APP_TOKEN)
    bad = meta.client.get("/v25.0/me")
    for resp in (ok, bad):
        usage = json.loads(resp.headers["X-App-Usage"])
        assert set(usage) == {"call_count", "total_cputime", "total_time"}
        assert all(isinstance(v, int) for v in usage.values())


def test_version_prefix_is_optional(meta):
    token = meta.user_token()
    for path in ("/me", "/v25.0/me", "/v19.0/me", "/v3.2/me"):
        assert meta.get(path, token).status_code == 200, path
    assert meta.get("/v25/me", token).status_code == 400  # not a version: unknown path
