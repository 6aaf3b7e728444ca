"""``/debug_token`` and expiring tokens."""

import time

from .conftest import APP_ID, APP_TOKEN, IG_1, PAGE_1, USER_ID, error_of


def debug(meta, token, caller=APP_TOKEN):
    return meta.get("/v25.0/debug_token", input_token=token, access_token=caller).get_json()["data"]


def test_user_token(meta):
    user = meta.user_token()
    data = debug(meta, user)
    assert data["is_valid"] is True and data["type"] == "USER"
    assert data["app_id"] == APP_ID and data["application"] == "Sandbox App"
    assert data["user_id"] == USER_ID
    assert data["expires_at"] > time.time() + 50 * 86400
    assert data["data_access_expires_at"] > time.time()
    assert "instagram_content_publish" in data["scopes"]
    granular = {g["scope"]: g.get("target_ids") for g in data["granular_scopes"]}
    assert granular["pages_manage_posts"] == [PAGE_1]
    assert granular["instagram_content_publish"] == [IG_1]


def test_page_token_with_a_user_token_caller(meta):
    user, page = meta.connect()
    data = meta.get("/debug_token", user, input_token=page).get_json()["data"]
    assert data["type"] == "PAGE" and data["profile_id"] == PAGE_1 and data["expires_at"] == 0


def test_unknown_token(meta):
    data = debug(meta, "EAAgarbage")
    assert data["is_valid"] is False
    assert data["error"]["code"] == 190


def test_admin_expire_token(meta):
    user, page = meta.connect()
    assert meta.admin("tokens/expire", {"token": page})["expired"] == 1
    data = debug(meta, page)
    assert data["is_valid"] is False and data["error"]["subcode"] == 463
    err = error_of(meta.post(f"/{PAGE_1}/feed", page, message="x"))
    assert (err["code"], err["error_subcode"]) == (190, 463)
    assert debug(meta, user)["is_valid"] is True
    # a reconnect mints a fresh, working page token
    _, fresh = meta.connect()
    assert meta.post(f"/{PAGE_1}/feed", fresh, message="x").status_code == 200


def test_admin_expire_by_user_and_all(meta):
    user, page = meta.connect()
    assert meta.admin("tokens/expire", {"user_id": USER_ID})["expired"] == 3  # short, long, page
    assert error_of(meta.get("/me", user))["error_subcode"] == 463
    meta.connect()
    assert meta.admin("tokens/expire", {"all": True})["expired"] == 3


def test_token_expired_scenario(make_meta):
    meta = make_meta("token_expired")
    user = meta.user_token()
    body = meta.get("/me/accounts", user, fields="id,access_token").get_json()
    page = body["data"][0]["access_token"]
    assert debug(meta, user)["is_valid"] is True
    assert debug(meta, page)["is_valid"] is True  # the connect flow's own check passes
    data = debug(meta, page)
    assert data["is_valid"] is False and data["error"]["subcode"] == 463
    for path, params in [
        (f"/{PAGE_1}/photos", {"url": "https://cdn.example.com/a.jpg"}),
        (f"/{PAGE_1}/feed", {"message": "hi"}),
        (f"/{IG_1}/media", {"image_url": "https://cdn.example.com/a.jpg"}),
        (f"/{IG_1}/media_publish", {"creation_id": "1"}),
    ]:
        err = error_of(meta.post(path, page, **params))
        assert (err["code"], err["error_subcode"]) == (190, 463), path
    meta.admin("flags", {"page_tokens_expire_after_check": False})
    assert debug(meta, page)["is_valid"] is True


def test_page_tokens_expired_toggle(meta):
    _, page = meta.connect()
    meta.admin("tokens/expire", {"page_tokens_expired": True})
    assert error_of(meta.post(f"/{PAGE_1}/feed", page, message="x"))["code"] == 190


def test_granular_scopes_list_only_the_pages_ticked_on_the_consent_page(make_meta):
    meta = make_meta("several_pages")
    pages = list(meta.world.pages.values())
    ticked = pages[1]
    user = meta.user_token(pages=[ticked.id])
    for token in (user, meta.page_token(user, ticked.id)):
        granular = {g["scope"]: g.get("target_ids") for g in debug(meta, token)["granular_scopes"]}
        assert granular["pages_manage_posts"] == [ticked.id]
        assert granular["instagram_content_publish"] == [ticked.ig_id]
