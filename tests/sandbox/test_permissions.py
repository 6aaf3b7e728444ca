"""``/me/permissions``: reading, revoking the grant, dropping one scope."""

from .conftest import APP_TOKEN, PAGE_1, SCOPES, USER_ID, error_of


def test_permissions_lists_granted(meta):
    token = meta.user_token()
    data = meta.get("/v25.0/me/permissions", token).get_json()["data"]
    assert {d["permission"] for d in data if d["status"] == "granted"} >= set(SCOPES)
    same = meta.get(f"/v25.0/{USER_ID}/permissions", token).get_json()["data"]
    assert same == data


def test_permission_declined_scenario(make_meta):
    meta = make_meta("permission_declined")
    # the consent page pre-unticks it; a user who leaves it so submits without it
    token = meta.user_token(permissions=[s for s in SCOPES if s != "instagram_content_publish"])
    data = meta.get("/me/permissions", token).get_json()["data"]
    assert {"permission": "instagram_content_publish", "status": "declined"} in data
    page_token = meta.page_token(token)
    resp = meta.post("/17841400000000001/media", page_token, image_url="https://cdn.example.com/a.jpg")
    assert error_of(resp)["code"] == 10


def test_delete_permissions_revokes_every_token(meta):
    user, page = meta.connect()
    short = meta.user_token(long_lived=False)
    resp = meta.delete("/v25.0/me/permissions", user)
    assert resp.status_code == 200 and resp.get_json() == {"success": True}
    for token in (user, page, short):
        err = error_of(meta.get("/v25.0/me", token))
        assert (err["code"], err["error_subcode"]) == (190, 460)
    debug = meta.get("/debug_token", input_token=page, access_token=APP_TOKEN).get_json()["data"]
    assert debug["is_valid"] is False and debug["error"]["subcode"] == 460
    state = meta.admin("state", method="get")
    assert len(state["revocations"]) == 1 and state["revocations"][0]["user_id"] == USER_ID
    assert state["tokens"]["user"]["valid"] == 0 and state["tokens"]["page"]["valid"] == 0


def test_reconnect_after_revoke_works(meta):
    user, _ = meta.connect()
    meta.delete(f"/v25.0/{USER_ID}/permissions", user)
    user2, page2 = meta.connect()
    assert meta.get("/me", user2).status_code == 200
    assert meta.post(f"/{PAGE_1}/feed", page2, message="back").status_code == 200


def test_app_token_can_revoke_by_user_id(meta):
    user = meta.user_token()
    resp = meta.client.delete(f"/v25.0/{USER_ID}/permissions", query_string={"access_token": APP_TOKEN})
    assert resp.get_json() == {"success": True}
    assert error_of(meta.get("/me", user))["error_subcode"] == 460


def test_delete_one_permission(meta):
    user, page = meta.connect()
    meta.delete("/v25.0/me/permissions/instagram_content_publish", user)
    data = meta.get("/me/permissions", user).get_json()["data"]
    assert {"permission": "instagram_content_publish", "status": "declined"} in data
    resp = meta.post("/17841400000000001/media", page, image_url="https://cdn.example.com/a.jpg")
    assert error_of(resp)["code"] == 10
