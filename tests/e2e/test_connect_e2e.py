"""The connect flow end to end over real HTTP: the connect service talking to the Meta sandbox."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import requests

from tests.e2e.driver import Seller
from tests.e2e.stack_fixtures import reset_sandbox


def sandbox_state(stack) -> dict:
    return requests.get(f"{stack.sandbox.url}/_sandbox/state", timeout=5).json()


def test_single_page_connect(live):
    seller = Seller(live)
    response = seller.consent()
    assert response.status_code == 200
    body = response.json()
    assert body["connected"] is True and body["status"] == "connected"
    page = sandbox_state(live)["pages"][0]
    assert body["facebook_page_id"] == page["id"]
    status = seller.status()
    assert status["status"] == "connected"
    assert status["page_name"] == page["name"]
    assert status["instagram_business_account_id"] == body["instagram_business_account_id"]


def test_several_pages_then_select(live):
    reset_sandbox(live, "several_pages")
    seller = Seller(live)
    body = seller.consent().json()
    assert body["requires_page_selection"] is True and body["connected"] is False
    assert len(body["pages"]) == 3
    without_ig = [p for p in body["pages"] if not p["has_instagram"]]
    with_ig = [p for p in body["pages"] if p["has_instagram"]]
    assert len(without_ig) == 1
    refused = seller.api("POST", "/api/meta/select-page", json={"page_id": without_ig[0]["id"]})
    assert refused.status_code == 422 and refused.json()["error_code"] == "instagram_not_connected_to_page"
    chosen = seller.api("POST", "/api/meta/select-page", json={"page_id": with_ig[1]["id"]})
    assert chosen.status_code == 200 and chosen.json()["facebook_page_id"] == with_ig[1]["id"]
    assert seller.status()["page_name"] == with_ig[1]["name"]


def test_only_the_pages_ticked_on_the_consent_page_are_offered(live):
    reset_sandbox(live, "several_pages")
    seller = Seller(live)
    _, html = seller.consent_page()
    first_page = sandbox_state(live)["pages"][0]["id"]
    body = seller.consent(pages=[first_page]).json()
    assert body["connected"] is True and body["facebook_page_id"] == first_page


def test_page_without_instagram(live):
    reset_sandbox(live, "page_without_instagram")
    response = Seller(live).consent()
    assert response.status_code == 422
    assert response.json()["error_code"] == "instagram_not_connected_to_page"
    assert response.json()["action"] == "link_instagram"


def test_not_admin(live):
    reset_sandbox(live, "not_admin")
    response = Seller(live).consent()
    assert response.status_code == 403 and response.json()["error_code"] == "not_admin_page"


def test_declined_permission(live):
    reset_sandbox(live, "permission_declined")
    seller = Seller(live)
    _, html = seller.consent_page()
    assert 'value="instagram_content_publish"' in html
    from shared.settings import DEFAULT_SCOPES

    ticked = [s for s in DEFAULT_SCOPES if s != "instagram_content_publish"]
    response = seller.consent(permissions=ticked)
    assert response.status_code == 403 and response.json()["error_code"] == "permissions_missing"
    assert seller.status() == {"status": "not_connected"}


def test_cancel_on_the_consent_page(live):
    seller = Seller(live)
    response = seller.consent(action="cancel")
    assert response.status_code == 403 and response.json()["error_code"] == "permissions_missing"
    assert seller.status() == {"status": "not_connected"}


BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def test_a_browser_coming_back_from_meta_lands_on_the_page(live):
    seller = Seller(live)
    callback_url = seller.answer_consent()
    assert callback_url.startswith(f"{live.url}/api/meta/callback?code=")
    response = seller.http.get(callback_url, headers=BROWSER, allow_redirects=False, timeout=30)
    assert response.status_code == 302 and response.headers["Location"] == "/?meta_status=connected"
    cancelled = seller.consent(action="cancel", headers=BROWSER)
    assert cancelled.headers["Location"] == "/?meta_status=error&error_code=permissions_missing"


def test_expired_token_is_shown_as_needing_reconnect(live):
    reset_sandbox(live, "token_expired")
    seller = Seller(live)
    assert seller.consent().json()["connected"] is True
    publish_at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    job = seller.api(
        "POST",
        "/api/meta/schedule",
        json={"publish_at": publish_at, "caption": "Promo", "media_url": "https://cdn.example.com/a.jpg"},
    ).json()
    post = wait_for_post(seller, job["job_id"])
    assert post["status"] == "failed" and post["error_code"] == "token_expired"
    status = seller.status()
    assert status["status"] == "needs_reauth" and status["error_code"] == "token_expired"
    refused = seller.api(
        "POST",
        "/api/meta/schedule",
        json={"publish_at": publish_at, "caption": "Again", "media_url": "https://cdn.example.com/a.jpg"},
    )
    assert refused.status_code == 409 and refused.json()["error_code"] == "token_expired"


def test_disconnect_revokes_in_the_sandbox(live):
    seller = Seller(live)
    seller.consent()
    assert sandbox_state(live)["revocations"] == []
    response = seller.api("POST", "/api/meta/disconnect")
    assert response.json() == {"disconnected": True, "status": "not_connected"}
    revocations = sandbox_state(live)["revocations"]
    assert len(revocations) == 1
    assert seller.status() == {"status": "not_connected"}


def test_a_scheduled_post_is_published_once_to_both(live):
    seller = Seller(live)
    seller.consent()
    publish_at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    job_id = seller.api(
        "POST",
        "/api/meta/schedule",
        json={"publish_at": publish_at, "caption": "Promo e2e", "media_url": "https://cdn.example.com/a.jpg"},
    ).json()["job_id"]
    post = wait_for_post(seller, job_id)
    assert post["status"] == "published"
    published = requests.get(f"{live.sandbox.url}/_sandbox/published.json", timeout=5).json()
    assert [p["message"] for p in published["facebook"]] == ["Promo e2e"]
    assert [p["caption"] for p in published["instagram"]] == ["Promo e2e"]
    assert post["targets"]["facebook"]["post_id"] == published["facebook"][0]["post_id"]
    assert post["targets"]["instagram"]["media_id"] == published["instagram"][0]["media_id"]


def wait_for_post(seller, job_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        post = seller.api("GET", f"/api/meta/schedule/{job_id}").json()
        if post["status"] not in ("queued", "publishing") or time.monotonic() > deadline:
            return post
        time.sleep(0.2)


def test_removing_the_app_on_facebook_disconnects(live):
    seller = Seller(live)
    seller.consent()
    answer = requests.post(
        f"{live.sandbox.url}/_sandbox/deauthorize",
        json={"callback_url": f"{live.url}/api/meta/deauthorize"},
        timeout=10,
    ).json()
    assert answer["callback"] == {"status": 200}
    assert seller.status() == {"status": "not_connected"}


def test_demo_sign_in_keeps_where_the_seller_was_going(live):
    http = requests.Session()
    first = http.get(f"{live.url}/?meta_status=select_page", allow_redirects=False, timeout=5)
    assert first.status_code == 302
    login = http.get(live.url + first.headers["Location"], allow_redirects=False, timeout=5)
    assert login.headers["Location"] == "/?meta_status=select_page"
    for hostile in ("//evil.example/x", "https://evil.example/", "evil"):
        answer = http.get(f"{live.url}/demo/login", params={"next": hostile}, allow_redirects=False, timeout=5)
        assert answer.headers["Location"] == "/"
