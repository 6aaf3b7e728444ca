"""``/oauth/access_token``: codes, client secrets and long-lived tokens."""

import re

from .conftest import APP_ID, APP_SECRET, APP_TOKEN, REDIRECT, error_of

TOKEN_SHAPE = re.compile(r"EAA[A-Za-z0-9]{40,}")


def test_code_exchange_gives_a_short_lived_user_token(meta):
    resp = meta.exchange(meta.code())
    assert resp.status_code == 200
    body = resp.get_json()
    assert TOKEN_SHAPE.fullmatch(body["access_token"])
    assert body["token_type"] == "bearer"
    assert 3600 <= body["expires_in"] <= 7200
    assert "X-App-Usage" in resp.headers


def test_get_form_and_secret_in_query(meta):
    code = meta.code()
    resp = meta.client.post(
        f"/oauth/access_token?client_secret={APP_SECRET}",
        data={"client_id": APP_ID, "redirect_uri": REDIRECT, "code": code},
    )
    assert resp.status_code == 200
    code = meta.code()
    resp = meta.client.get(
        "/v25.0/oauth/access_token",
        query_string={"client_id": APP_ID, "client_secret": APP_SECRET, "redirect_uri": REDIRECT, "code": code},
    )
    assert resp.status_code == 200


def test_code_is_single_use(meta):
    code = meta.code()
    assert meta.exchange(code).status_code == 200
    resp = meta.exchange(code)
    assert resp.status_code == 400
    err = error_of(resp)
    assert (err["code"], err["error_subcode"], err["type"]) == (100, 36009, "OAuthException")
    assert err["message"] == "This authorization code has been used."
    assert err["fbtrace_id"]


def test_code_is_bound_to_the_redirect_uri(meta):
    code = meta.code()
    err = error_of(meta.exchange(code, redirect_uri=REDIRECT + "/other"))
    assert (err["code"], err["error_subcode"]) == (100, 36008)
    assert "redirect_uri" in err["message"]
    assert meta.exchange(code).status_code == 200  # a mismatch does not burn the code


def test_code_expires_after_ten_minutes(meta):
    code = meta.code()
    meta.world.codes[code].created_at -= 601
    err = error_of(meta.exchange(code))
    assert (err["code"], err["error_subcode"]) == (100, 36007)


def test_wrong_client_secret(meta):
    resp = meta.exchange(meta.code(), secret="nope")
    assert resp.status_code == 400
    err = error_of(resp)
    assert (err["code"], err["type"], err["message"]) == (1, "OAuthException", "Error validating client secret.")


def test_fb_exchange_token_gives_a_60_day_token(meta):
    short = meta.exchange(meta.code()).get_json()["access_token"]
    resp = meta.long_lived(short)
    body = resp.get_json()
    assert resp.status_code == 200
    assert TOKEN_SHAPE.fullmatch(body["access_token"]) and body["access_token"] != short
    assert body == {"access_token": body["access_token"], "token_type": "bearer", "expires_in": 5183944}


def test_fb_exchange_of_an_unknown_token(meta):
    err = error_of(meta.long_lived("EAAnotatoken"))
    assert err["code"] == 190


def test_page_tokens_from_long_lived_never_expire(meta):
    _, page_token = meta.connect()
    data = meta.get("/debug_token", input_token=page_token, access_token=APP_TOKEN).get_json()["data"]
    assert data["expires_at"] == 0 and data["is_valid"] is True


def test_page_tokens_from_short_lived_expire(meta):
    user = meta.user_token(long_lived=False)
    page_token = meta.page_token(user)
    data = meta.get("/debug_token", input_token=page_token, access_token=APP_TOKEN).get_json()["data"]
    assert data["expires_at"] > 0


def test_client_credentials_gives_the_app_token(meta):
    resp = meta.client.get(
        "/oauth/access_token",
        query_string={"client_id": APP_ID, "client_secret": APP_SECRET, "grant_type": "client_credentials"},
    )
    assert resp.get_json()["access_token"] == APP_TOKEN


def test_authlib_client_secret_post_round_trip(live):
    """The connect service's Authlib client (client_secret_post) works against the sandbox."""
    import requests
    from authlib.integrations.base_client.errors import OAuthError
    from authlib.integrations.requests_client import OAuth2Session

    from .conftest import query_of

    requests.post(f"{live.url}/_sandbox/reset", json={"scenario": "one_page"}, timeout=5)
    session = OAuth2Session(
        APP_ID,
        APP_SECRET,
        scope="pages_show_list",
        redirect_uri=REDIRECT,
        token_endpoint_auth_method="client_secret_post",
    )
    url, _ = session.create_authorization_url(f"{live.url}/v25.0/dialog/oauth", state="st")
    assert requests.get(url, timeout=5).status_code == 200
    consent = requests.post(
        f"{live.url}/v25.0/dialog/oauth",
        data={
            "client_id": APP_ID,
            "redirect_uri": REDIRECT,
            "state": "st",
            "scope": "pages_show_list",
            "permissions": ["pages_show_list"],
            "pages": ["110000000000001"],
            "action": "continue",
        },
        allow_redirects=False,
        timeout=5,
    )
    code = query_of(consent.headers["Location"])["code"]
    token_url = f"{live.url}/v25.0/oauth/access_token"
    token = session.fetch_token(token_url, code=code, redirect_uri=REDIRECT)
    assert TOKEN_SHAPE.fullmatch(token["access_token"]) and token["token_type"] == "bearer"
    try:
        session.fetch_token(token_url, code=code, redirect_uri=REDIRECT)
    except OAuthError as exc:
        assert exc.error["error_subcode"] == 36009
    else:
        raise AssertionError("a used code was accepted")
