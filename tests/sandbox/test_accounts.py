"""``/me``, ``/me/accounts`` (fields, paging), ``/{page-id}`` and scenarios."""

import pytest
import requests

from meta_sandbox.errors import GraphError
from meta_sandbox.fields import parse_fields

from .conftest import APP_ID, APP_SECRET, IG_1, PAGE_1, REDIRECT, SCOPES, USER_ID, error_of, proof, query_of

ACCOUNT_FIELDS = "id,name,access_token,tasks,instagram_business_account{id,username}"


def test_field_parser():
    assert parse_fields("id, name,instagram_business_account{id,username},tasks") == {
        "id": None,
        "name": None,
        "instagram_business_account": {"id": None, "username": None},
        "tasks": None,
    }
    assert parse_fields("a{b{c,d},e},f.limit(5)") == {"a": {"b": {"c": None, "d": None}, "e": None}, "f": None}
    assert parse_fields("") is None
    for bad in ("a{b", "a}", "{a}", "a,b$"):
        with pytest.raises(GraphError):
            parse_fields(bad)


def test_me_and_user_id(meta):
    token = meta.user_token()
    assert meta.get("/v25.0/me", token, fields="id,name").get_json() == {"id": USER_ID, "name": "Sari Sandbox"}
    assert meta.get(f"/v25.0/{USER_ID}", token).get_json()["id"] == USER_ID
    err = error_of(meta.get("/v25.0/me", token, fields="id,shoe_size"))
    assert err["code"] == 100 and "shoe_size" in err["message"]


def test_accounts_one_page(meta):
    token = meta.user_token()
    body = meta.get("/v25.0/me/accounts", token, fields=ACCOUNT_FIELDS).get_json()
    assert "next" not in body.get("paging", {})
    (page,) = body["data"]
    assert page["id"] == PAGE_1 and page["name"] == "Toko Sari"
    assert page["instagram_business_account"] == {"id": IG_1, "username": "toko_sari"}
    assert "MANAGE" in page["tasks"]
    page_token = page["access_token"]
    assert page_token.startswith("EAA") and page_token != token
    assert meta.world.tokens[page_token].kind == "page"
    # the same page token again for the same user token; also via /{user-id}/accounts
    again = meta.get(f"/v25.0/{USER_ID}/accounts", token, fields=ACCOUNT_FIELDS).get_json()
    assert again["data"][0]["access_token"] == page_token


def test_page_without_instagram_has_no_key(make_meta):
    meta = make_meta("page_without_instagram")
    token = meta.user_token()
    (page,) = meta.get("/me/accounts", token, fields=ACCOUNT_FIELDS).get_json()["data"]
    assert "instagram_business_account" not in page
    page_node = meta.get(f"/{PAGE_1}", token, fields="id,instagram_business_account").get_json()
    assert page_node == {"id": PAGE_1}


def test_not_admin_tasks(make_meta):
    meta = make_meta("not_admin")
    token = meta.user_token()
    (page,) = meta.get("/me/accounts", token, fields=ACCOUNT_FIELDS).get_json()["data"]
    assert set(page["tasks"]) == {"ANALYZE", "ADVERTISE"}
    resp = meta.post(f"/{PAGE_1}/feed", page["access_token"], message="hi")
    assert error_of(resp)["code"] == 200


def test_page_node(make_meta):
    meta = make_meta("several_pages")
    token = meta.user_token()
    body = meta.get(f"/v25.0/{PAGE_1}", token, fields=ACCOUNT_FIELDS).get_json()
    assert body["id"] == PAGE_1 and body["access_token"].startswith("EAA")
    err = error_of(meta.get("/v25.0/999999", token))
    assert (err["code"], err["error_subcode"]) == (100, 33)
    assert "Object with ID '999999' does not exist" in err["message"]


def test_many_pages_paging_follows_next_to_the_end(live):
    base = live.url
    requests.post(f"{base}/_sandbox/reset", json={"scenario": "many_pages"}, timeout=5)
    consent = requests.post(
        f"{base}/v25.0/dialog/oauth",
        data={
            "client_id": APP_ID,
            "redirect_uri": REDIRECT,
            "state": "s",
            "scope": ",".join(SCOPES),
            "permissions": SCOPES,
            "pages": [f"1100000000{i:05d}" for i in range(1, 61)],
            "action": "continue",
        },
        allow_redirects=False,
        timeout=5,
    )
    code = query_of(consent.headers["Location"])["code"]
    token = requests.post(
        f"{base}/v25.0/oauth/access_token",
        data={"client_id": APP_ID, "client_secret": APP_SECRET, "redirect_uri": REDIRECT, "code": code},
        timeout=5,
    ).json()["access_token"]
    resp = requests.get(
        f"{base}/v25.0/me/accounts",
        params={"fields": ACCOUNT_FIELDS, "appsecret_proof": proof(token)},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    sizes, ids = [], []
    while True:
        body = resp.json()
        assert resp.status_code == 200, body
        sizes.append(len(body["data"]))
        ids += [p["id"] for p in body["data"]]
        nxt = body["paging"].get("next")
        if not nxt:
            break
        assert nxt.startswith(f"{base}/v25.0/{USER_ID}/accounts?")
        q = query_of(nxt)
        assert q["access_token"] == token and q["limit"] == "25" and q["fields"] == ACCOUNT_FIELDS
        assert (
            requests.get(nxt, timeout=5).json()["error"]["message"].startswith("API calls from the server require")
        )  # Meta's next carries no proof
        resp = requests.get(nxt, params={"appsecret_proof": proof(token)}, timeout=5)
    assert sizes == [25, 25, 10]
    assert len(set(ids)) == 60
    without_ig = [p for p in ids if int(p[-5:]) % 10 == 0]
    assert len(without_ig) == 6
