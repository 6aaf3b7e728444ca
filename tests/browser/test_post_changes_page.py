"""Changing and retrying posts on the page (DESIGN §13.3), in a real browser against the whole system:
"Ubah" on a queued post, "Coba lagi" on a failed target, "Konfirmasi & coba lagi" on an unconfirmed one."""

from __future__ import annotations

import json

import requests
from playwright.sync_api import Page, Route, expect

from tests.browser.test_social_connect_page import (
    SET_PUBLISH_AT_IN_3S,
    connect_one_page,
    open_social_connect,
    sandbox_state,
    schedule_in_3s,
)


def published(stack) -> dict:
    response = requests.get(f"{stack.sandbox.url}/_sandbox/published.json", timeout=5)
    response.raise_for_status()
    return response.json()


def test_a_queued_post_is_edited_in_the_form_and_publishes_the_new_content_once(live, page):
    open_social_connect(page, live)
    connect_one_page(page, live)
    page.fill("#caption", "Harga lama")
    page.fill("#media-0-url", "https://cdn.example.com/produk.jpg")
    page.click("#schedule-submit")  # a quarter of an hour ahead
    row = page.locator("#posts [data-job-id]").first
    expect(row.locator(".post-status")).to_have_text("Terjadwal")
    patches: list = []
    page.on("request", lambda r: patches.append(r) if r.method == "PATCH" else None)

    row.get_by_role("button", name="Ubah postingan Harga lama", exact=True).click()
    expect(page.locator("#schedule-title")).to_have_text("Ubah postingan")
    expect(page.locator("#schedule-editing")).to_contain_text("Harga lama")
    expect(page.locator("#caption")).to_have_value("Harga lama")
    expect(page.locator("#media-0-url")).to_have_value("https://cdn.example.com/produk.jpg")
    expect(page.locator("#target-instagram")).to_be_checked()
    page.fill("#caption", "Harga baru #promo")
    assert page.evaluate(SET_PUBLISH_AT_IN_3S)
    page.click("#schedule-submit")

    expect(page.locator("#notice")).to_have_text("Perubahan disimpan.")
    expect(page.locator("#schedule-title")).to_have_text("Jadwalkan postingan")
    expect(page.locator("#schedule-cancel-edit")).to_be_hidden()
    rows = page.locator("#posts [data-job-id]")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".post-caption")).to_have_text("Harga baru #promo")
    expect(rows.first.locator(".post-status")).to_have_text("Terbit", timeout=20_000)
    [patch] = patches
    sent = patch.post_data_json
    assert sent["caption"] == "Harga baru #promo" and sent["link"] is None and "publish_at" in sent
    result = published(live)
    assert [p["message"] for p in result["facebook"]] == ["Harga baru #promo"]
    assert [m["caption"] for m in result["instagram"]] == ["Harga baru #promo"]


def test_cancelling_an_edit_leaves_the_post_as_it_was(live, page):
    open_social_connect(page, live)
    connect_one_page(page, live)
    page.fill("#caption", "Tetap begini")
    page.uncheck("#target-instagram")
    page.click("#schedule-submit")
    row = page.locator("#posts [data-job-id]").first
    row.get_by_role("button", name="Ubah postingan Tetap begini", exact=True).click()
    expect(page.locator("#target-instagram")).not_to_be_checked()
    page.fill("#caption", "Tidak jadi")
    page.click("#schedule-cancel-edit")
    expect(page.locator("#schedule-title")).to_have_text("Jadwalkan postingan")
    expect(page.locator("#caption")).to_have_value("")
    expect(row.get_by_role("button", name="Ubah postingan Tetap begini", exact=True)).to_be_focused()
    expect(row.locator(".post-caption")).to_have_text("Tetap begini")


def test_a_failed_target_is_retried_and_the_published_one_left_alone(live, page):
    open_social_connect(page, live)
    connect_one_page(page, live)
    # Facebook throttles every try: Facebook fails (rate_limited), Instagram is published.
    requests.post(
        f"{live.sandbox.url}/_sandbox/faults",
        timeout=5,
        json={"endpoint": "photos", "status": 400, "times": 5, "error": {"code": 4, "message": "sandbox"}},
    ).raise_for_status()
    row = schedule_in_3s(page, "Coba lagi nanti")
    expect(row.locator(".post-status")).to_have_text("Sebagian terbit", timeout=30_000)
    expect(row.locator(".target-facebook .target-status")).to_have_text("Gagal")
    expect(row.get_by_role("button", name="Ubah postingan Coba lagi nanti", exact=True)).to_have_count(0)

    row.get_by_role("button", name="Coba lagi postingan Coba lagi nanti", exact=True).click()

    expect(page.locator("#notice")).to_have_text("Postingan dijadwalkan untuk dicoba lagi.")
    expect(row.locator(".post-status")).to_have_text("Terbit", timeout=20_000)
    expect(row.locator(".target-facebook .target-status")).to_have_text("Terbit")
    expect(row.locator(".post-retry")).to_have_count(0)
    result = published(live)
    assert [p["message"] for p in result["facebook"]] == ["Coba lagi nanti"]
    assert len(result["instagram"]) == 1
    assert sandbox_state(live)["pages"]  # the sandbox is still the one connected


UNCONFIRMED_POST = {
    "job_id": "job_unconfirmed01",
    "connection_id": "conn_x",
    "status": "unconfirmed",
    "publish_at": "2026-12-01T03:00:00Z",
    "caption": "Belum pasti terbit",
    "media_url": "https://cdn.example.com/produk.jpg",
    "link": None,
    "format": "post",
    "media": [{"url": "https://cdn.example.com/produk.jpg", "type": "image", "alt_text": None}],
    "first_comment": None,
    "cover_url": None,
    "targets": {
        "facebook": {
            "status": "unconfirmed",
            "post_id": None,
            "error_code": "meta_unavailable",
            "error_message": "Belum bisa dipastikan apakah sudah terbit.",
            "published_at": None,
            "comment": None,
        },
        "instagram": {
            "status": "published",
            "media_id": "17950000000000001",
            "error_code": None,
            "error_message": None,
            "published_at": "2026-12-01T03:00:05Z",
            "comment": None,
        },
    },
    "attempts": 1,
    "next_attempt_at": None,
    "error_code": "meta_unavailable",
    "error_message": "Facebook: belum pasti.",
}


def test_an_unconfirmed_target_is_retried_only_after_the_seller_confirms(live, page: Page):
    """The list and the retry answered by the browser (an unconfirmed Facebook post is slow to make
    for real): what the page shows, asks and sends."""
    open_social_connect(page, live)
    connect_one_page(page, live)
    retries: list = []

    def listing(route: Route) -> None:
        route.fulfill(
            status=200,
            content_type="application/json",
            body=json.dumps({"items": [UNCONFIRMED_POST], "next_cursor": None}),
        )

    def retry(route: Route) -> None:
        retries.append(route.request.post_data_json)
        route.fulfill(
            status=200, content_type="application/json", body=json.dumps({**UNCONFIRMED_POST, "status": "queued"})
        )

    page.route("**/api/meta/schedule?*", listing)
    page.route("**/api/meta/schedule/job_unconfirmed01/retry", retry)
    page.click("#posts-refresh")
    row = page.locator('#posts [data-job-id="job_unconfirmed01"]')
    expect(row.locator(".post-status")).to_have_text("Belum pasti")
    expect(row.get_by_role("button", name="Coba lagi postingan Belum pasti terbit", exact=True)).to_have_count(0)

    row.get_by_role("button", name="Konfirmasi dan coba lagi postingan Belum pasti terbit", exact=True).click()
    dialog = page.locator("#retry-confirm")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#retry-confirm-targets")).to_have_text("Facebook")
    expect(dialog).to_contain_text("Periksa dulu Page Facebook dan akun Instagram Anda")
    expect(page.locator("#retry-confirm-no")).to_be_focused()
    page.click("#retry-confirm-no")
    expect(dialog).to_be_hidden()
    assert retries == []

    row.get_by_role("button", name="Konfirmasi dan coba lagi postingan Belum pasti terbit", exact=True).click()
    page.click("#retry-confirm-yes")
    expect(page.locator("#notice")).to_have_text("Postingan dijadwalkan untuk dicoba lagi.")
    assert retries == [{"confirm_unconfirmed": True}]
