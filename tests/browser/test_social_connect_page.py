"""The Social Connect page in a real browser, against the whole system (DESIGN §9, §10).

Each test is a seller at ``stack.url + "/"`` (the demo login signs them in) going
through Meta's consent page in the sandbox and back, asserting what they see.
"""

from __future__ import annotations

import re

import requests
from playwright.sync_api import Page, expect

from shared.errors import CATALOGUE
from tests.e2e.stack_fixtures import reset_sandbox

SCREENSHOT_DIR = "/tmp"
IG_PAGE_REASON = "Page Facebook belum terhubung ke Instagram Business."
BUSINESS_SUITE_URL = "https://business.facebook.com/latest/settings/instagram_account"
FACEBOOK_URL = "https://www.facebook.com/"


# ---------- helpers ----------


def sandbox_state(stack) -> dict:
    response = requests.get(f"{stack.sandbox.url}/_sandbox/state", timeout=5)
    response.raise_for_status()
    return response.json()


def sandbox_page(stack, name: str | None = None) -> dict:
    pages = sandbox_state(stack)["pages"]
    return next(p for p in pages if name is None or p["name"] == name)


def open_social_connect(page: Page, stack) -> None:
    """Enter as a person would: the page sends a visitor without a session to the demo login."""
    page.goto(f"{stack.url}/")
    expect(page).to_have_url(f"{stack.url}/")
    expect(page.locator("#status-card")).to_have_attribute("aria-busy", "false")


def go_to_consent(page: Page, stack) -> None:
    page.click("#connect-button")
    page.wait_for_url(f"{stack.sandbox.url}/**")
    expect(page.locator("#continue")).to_be_visible()


def back_on_page(page: Page, stack) -> None:
    page.wait_for_url(f"{stack.url}/**")
    expect(page.locator("#status-card")).to_have_attribute("aria-busy", "false")


def connect_one_page(page: Page, stack) -> None:
    go_to_consent(page, stack)
    page.click("#continue")
    back_on_page(page, stack)
    expect(page.locator("#status-badge")).to_have_text("Connected")


def expect_no_horizontal_overflow(page: Page, width: int) -> None:
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"horizontal overflow: scrollWidth {scroll_width} > {width}"


# ---------- the connect flow ----------


def test_single_page_connect_shows_the_connection(live, page):
    open_social_connect(page, live)
    badge = page.locator("#status-badge")
    expect(badge).to_have_text("Not connected")
    expect(page.locator("#connect-button")).to_have_text("Connect Facebook & Instagram")
    expect(page.locator("#disconnect-button")).to_be_hidden()
    expect(page.locator("#schedule-submit")).to_be_disabled()

    connect_one_page(page, live)

    expected = sandbox_page(live)
    ig = expected["instagram_business_account"]
    expect(page.locator("#page-name")).to_have_text(expected["name"])
    expect(page.locator("#facebook-page-id")).to_have_text(expected["id"])
    expect(page.locator("#ig-user-id")).to_have_text(f"{ig['id']} (@{ig['username']})")
    expect(page.locator("#connected-at")).not_to_have_text("–")
    expect(page.locator("#connected-at")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    expect(page.locator("#notice")).to_have_text("Facebook & Instagram berhasil terhubung.")
    expect(page.locator("#connect-button")).to_have_text("Connect ulang")
    expect(page.locator("#disconnect-button")).to_be_visible()
    expect(page.locator("#schedule-submit")).to_be_enabled()
    expect(page.locator("#error-panel")).to_be_hidden()
    # The redirect's ?meta_status= was cleaned from the address bar.
    assert page.url == f"{live.url}/"
    page.screenshot(path=f"{SCREENSHOT_DIR}/social_connect_connected.png", full_page=True)


def test_several_pages_open_the_picker_and_the_page_without_instagram_is_not_selectable(live, page):
    reset_sandbox(live, "several_pages")
    open_social_connect(page, live)
    go_to_consent(page, live)
    page.click("#continue")
    back_on_page(page, live)

    picker = page.locator("#page-picker")
    expect(picker).to_be_visible()
    expect(picker.locator("[data-page-id]")).to_have_count(3)
    # Focus is inside the modal and stays there while tabbing.
    for _ in range(8):
        assert page.evaluate("!!document.activeElement.closest('#page-picker')")
        page.keyboard.press("Tab")

    kitchen = sandbox_page(live, "Sari Kitchen")
    fashion = sandbox_page(live, "Sari Fashion")
    no_ig = picker.locator(f"[data-page-id='{kitchen['id']}']")
    expect(no_ig.locator("input[type=radio]")).to_be_disabled()
    expect(no_ig).to_contain_text(IG_PAGE_REASON)
    expect(no_ig.locator("a")).to_have_attribute("href", BUSINESS_SUITE_URL)
    expect(picker.locator(f"#page-option-{fashion['id']}")).to_be_enabled()
    page.screenshot(path=f"{SCREENSHOT_DIR}/social_connect_page_picker.png")

    page.check(f"#page-option-{fashion['id']}")
    page.click("#page-picker-submit")

    expect(picker).to_be_hidden()
    expect(page.locator("#status-badge")).to_have_text("Connected")
    expect(page.locator("#page-name")).to_have_text("Sari Fashion")
    expect(page.locator("#facebook-page-id")).to_have_text(fashion["id"])
    expect(page.locator("#ig-user-id")).to_contain_text(fashion["instagram_business_account"]["id"])
    assert page.url == f"{live.url}/"


def test_picker_without_a_pending_selection_says_it_expired(live, page):
    open_social_connect(page, live)
    page.goto(f"{live.url}/?meta_status=select_page")
    picker = page.locator("#page-picker")
    expect(picker).to_be_visible()
    expect(picker.locator("#page-picker-error")).to_contain_text(CATALOGUE["selection_expired"].message_id)
    expect(picker.locator("#page-picker-error button")).to_have_text("Connect ulang")
    page.keyboard.press("Escape")
    expect(picker).to_be_hidden()


def test_declined_permission_shows_permissions_missing_with_reconnect(live, page):
    reset_sandbox(live, "permission_declined")
    open_social_connect(page, live)
    go_to_consent(page, live)
    expect(page.locator("#perm-instagram_content_publish")).not_to_be_checked()
    page.click("#continue")
    back_on_page(page, live)

    panel = page.locator("#error-panel")
    expect(panel).to_be_visible()
    expect(panel).to_have_attribute("role", "alert")
    expect(page.locator("#error-message")).to_have_text("Izin Meta belum lengkap untuk auto-posting.")
    reconnect = panel.get_by_role("button", name="Connect ulang")
    expect(reconnect).to_be_visible()
    expect(page.locator("#status-badge")).to_have_text("Not connected")
    assert page.url == f"{live.url}/"
    # The reconnect button starts over at Meta's consent page, asking again for what was declined.
    reconnect.click()
    page.wait_for_url(f"{live.sandbox.url}/**")
    assert "auth_type=rerequest" in page.url


def set_data_access_expiry(stack, days: float) -> None:
    """What time does to a connection: Meta's data access ends ``days`` from now."""
    from datetime import timedelta

    from sqlalchemy import update

    from connect_service.extensions import db
    from shared.db import utcnow
    from shared.models import SocialConnection

    with stack.app.app_context():
        db.session.execute(update(SocialConnection).values(data_access_expires_at=utcnow() + timedelta(days=days)))
        db.session.commit()


def test_a_fresh_connection_shows_no_expiry_banner(live, page):
    open_social_connect(page, live)
    connect_one_page(page, live)
    page.reload()
    expect(page.locator("#status-badge")).to_have_text("Connected")
    expect(page.locator("#expiry-banner")).to_be_hidden()


def test_an_expiring_connection_shows_a_reconnect_banner(live, page):
    open_social_connect(page, live)
    connect_one_page(page, live)
    set_data_access_expiry(live, days=5)
    page.reload()
    expect(page.locator("#status-badge")).to_have_text("Connected")
    banner = page.locator("#expiry-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("akan berakhir pada")
    expect(banner).to_contain_text("Connect ulang sekarang agar postingan terjadwal tetap terbit.")
    expect(page.locator("#expiry-date")).not_to_have_text("–")
    # The button starts the connect at Meta's consent page.
    banner.get_by_role("button", name="Connect ulang sekarang").click()
    page.wait_for_url(f"{live.sandbox.url}/**")
    expect(page.locator("#continue")).to_be_visible()


def test_cancel_on_the_consent_page_shows_permissions_missing(live, page):
    open_social_connect(page, live)
    go_to_consent(page, live)
    page.click("#cancel")
    back_on_page(page, live)
    expect(page.locator("#error-message")).to_have_text("Izin Meta belum lengkap untuk auto-posting.")
    expect(page.locator("#error-panel").get_by_role("button", name="Connect ulang")).to_be_visible()
    expect(page.locator("#status-badge")).to_have_text("Not connected")


def test_disconnect_asks_first_then_revokes(live, page):
    open_social_connect(page, live)
    connect_one_page(page, live)
    confirm = page.locator("#disconnect-confirm")

    # Escape closes the confirmation and gives focus back; nothing changes.
    page.click("#disconnect-button")
    expect(confirm).to_be_visible()
    expect(page.locator("#disconnect-confirm-no")).to_be_focused()
    page.keyboard.press("Escape")
    expect(confirm).to_be_hidden()
    expect(page.locator("#disconnect-button")).to_be_focused()
    page.click("#disconnect-button")
    page.click("#disconnect-confirm-no")
    expect(confirm).to_be_hidden()
    expect(page.locator("#status-badge")).to_have_text("Connected")
    assert sandbox_state(live)["revocations"] == []

    page.click("#disconnect-button")
    page.click("#disconnect-confirm-yes")
    expect(confirm).to_be_hidden()
    expect(page.locator("#status-badge")).to_have_text("Not connected")
    expect(page.locator("#notice")).to_contain_text("diputus")
    expect(page.locator("#disconnect-button")).to_be_hidden()
    expect(page.locator("#connect-button")).to_have_text("Connect Facebook & Instagram")
    revocations = sandbox_state(live)["revocations"]
    assert len(revocations) == 1 and revocations[0]["user_id"] == sandbox_state(live)["users"][0]["id"]


# ---------- scheduling ----------

SET_PUBLISH_AT_IN_3S = """() => {
  const d = new Date(Date.now() + 3000);
  const p = (n) => String(n).padStart(2, "0");
  const input = document.getElementById("publish-at");
  const day = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
  input.value = `${day}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  return input.value;
}"""


UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_scheduled_post_is_queued_then_published_on_both(live, page):
    open_social_connect(page, live)
    connect_one_page(page, live)
    api_calls: list = []
    page.on("request", lambda request: api_calls.append(request) if "/api/meta/schedule" in request.url else None)

    # A server-side validation error lands next to its input.
    page.fill("#caption", "Promo minggu ini #diskon")
    expect(page.locator("#caption-count")).to_have_text("24/2200")
    page.fill("#media-0-url", "http://cdn.example.com/produk.jpg")
    with page.expect_response(lambda r: r.url.endswith("/api/meta/schedule") and r.request.method == "POST") as refused:
        page.click("#schedule-submit")
    assert refused.value.status == 422
    expect(page.locator("#media-0-url-error")).to_have_text(" ".join(refused.value.json()["fields"]["media.0.url"]))
    expect(page.locator("#media-0-url")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#posts [data-job-id]")).to_have_count(0)

    page.fill("#media-0-url", "https://cdn.example.com/produk.jpg")
    assert page.evaluate(SET_PUBLISH_AT_IN_3S)
    page.dblclick("#schedule-submit")  # a double click must not post twice

    rows = page.locator("#posts [data-job-id]")
    expect(rows).to_have_count(1)
    row = rows.first
    expect(row.locator(".post-status")).to_have_text("Terjadwal")
    expect(row.locator(".post-caption")).to_have_text("Promo minggu ini #diskon")
    expect(row.locator(".post-cancel")).to_be_visible()
    expect(page.locator("#media-0-url-error")).to_be_hidden()

    expect(row.locator(".post-status")).to_have_text("Terbit", timeout=20_000)
    expect(row.locator(".target-facebook .target-status")).to_have_text("Terbit")
    expect(row.locator(".target-instagram .target-status")).to_have_text("Terbit")
    expect(row.locator(".target-instagram .target-id dd")).not_to_be_empty()
    expect(row.locator(".target-facebook .target-published-at time")).to_have_attribute("datetime", re.compile(r"Z$"))
    expect(row.locator(".post-format")).to_have_text("Postingan · 1 media")
    expect(row.locator(".post-cancel")).to_have_count(0)
    expect(rows).to_have_count(1)

    posts = [r for r in api_calls if r.method == "POST"]
    assert len(posts) == 2, "one refused, one accepted: the double click sent a single request"
    keys = [r.headers.get("idempotency-key") for r in posts]
    assert all(k and UUID.match(k) for k in keys) and keys[0] != keys[1]
    sent = posts[1].post_data_json
    assert "connection_id" not in sent and sent["targets"] == ["facebook", "instagram"]
    assert sent["format"] == "post"
    assert sent["media"] == [{"url": "https://cdn.example.com/produk.jpg", "type": "image"}]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", sent["publish_at"])

    # Nothing is queued or publishing any more, so the list stops polling.
    reads = sum(1 for r in api_calls if r.method == "GET")
    page.wait_for_timeout(6_000)
    assert sum(1 for r in api_calls if r.method == "GET") == reads, "still polling after every post finished"

    published = requests.get(f"{live.sandbox.url}/_sandbox/published.json", timeout=5).json()
    assert len(published["facebook"]) == 1 and len(published["instagram"]) == 1
    assert published["instagram"][0]["caption"] == "Promo minggu ini #diskon"


def sandbox_fault(stack, endpoint: str, code: int, subcode: int) -> None:
    requests.post(
        f"{stack.sandbox.url}/_sandbox/faults",
        timeout=5,
        json={
            "endpoint": endpoint,
            "status": 400,
            "times": 5,
            "error": {"code": code, "error_subcode": subcode, "message": "sandbox"},
        },
    ).raise_for_status()


def schedule_in_3s(page: Page, caption: str):
    page.fill("#caption", caption)
    page.fill("#media-0-url", "https://cdn.example.com/produk.jpg")
    assert page.evaluate(SET_PUBLISH_AT_IN_3S)
    page.click("#schedule-submit")
    return page.locator("#posts [data-job-id]").filter(has_text=caption)


def test_what_only_facebook_can_fix_is_shown_with_a_link_to_facebook(live, page):
    open_social_connect(page, live)
    connect_one_page(page, live)

    # Spam protection on the Page: Facebook fails for good, Instagram is published.
    sandbox_fault(live, "photos", 4, 2207051)
    row = schedule_in_3s(page, "Promo kilat")
    expect(row.locator(".post-status")).to_have_text("Sebagian terbit", timeout=20_000)
    expect(row.locator(".target-facebook .target-error")).to_contain_text(CATALOGUE["account_restricted"].message_id)
    link = row.get_by_role("link", name="Buka Facebook")
    expect(link).to_have_attribute("href", FACEBOOK_URL)
    expect(link).to_have_attribute("target", "_blank")
    expect(page.locator("#status-badge")).to_have_text("Connected")
    requests.delete(f"{live.sandbox.url}/_sandbox/faults", timeout=5).raise_for_status()

    # A checkpoint on the seller's account: the connection waits for the seller to act on Facebook.
    sandbox_fault(live, "photos", 190, 459)
    row = schedule_in_3s(page, "Promo besok")
    expect(row.locator(".post-status")).to_have_text("Gagal", timeout=20_000)
    expect(row.locator(".target-facebook .target-error")).to_contain_text(CATALOGUE["meta_action_required"].message_id)
    expect(row.get_by_role("link", name="Buka Facebook")).to_have_attribute("href", FACEBOOK_URL)
    page.reload()
    expect(page.locator("#status-card")).to_have_attribute("aria-busy", "false")
    expect(page.locator("#status-badge")).to_have_text("Perlu tindakan di Facebook")
    reauth = page.locator("#reauth-message")
    expect(reauth).to_contain_text(CATALOGUE["meta_action_required"].message_id)
    expect(reauth.get_by_role("link", name="Buka Facebook")).to_have_attribute("href", FACEBOOK_URL)
    expect(page.locator("#schedule-submit")).to_be_disabled()
    expect(page.locator("#schedule-disabled-hint")).to_contain_text("Selesaikan dulu di Facebook")
    page.screenshot(path=f"{SCREENSHOT_DIR}/social_connect_meta_action_required.png", full_page=True)
    published = requests.get(f"{live.sandbox.url}/_sandbox/published.json", timeout=5).json()
    assert [p["caption"] for p in published["instagram"]] == ["Promo kilat"] and published["facebook"] == []


def test_a_queued_post_can_be_cancelled(live, page):
    open_social_connect(page, live)
    connect_one_page(page, live)
    page.fill("#caption", "Nanti sore")
    page.uncheck("#target-instagram")
    page.click("#schedule-submit")  # the default time is a quarter of an hour ahead
    row = page.locator("#posts [data-job-id]").first
    expect(row.locator(".post-status")).to_have_text("Terjadwal")
    expect(row.locator(".target-instagram .target-status")).to_have_text("Tidak dipilih")
    row.locator(".post-cancel").click()
    expect(row.locator(".post-status")).to_have_text("Dibatalkan")
    expect(page.locator("#notice")).to_have_text("Postingan dibatalkan.")


# ---------- errors, keyboard, small screens ----------


def expected_control(action: str | None) -> tuple[str, str] | None:
    """What a person can do about an error, by the catalogue's action."""
    if action is None:
        return None
    return {
        "reconnect": ("button", "Connect ulang"),
        "connect": ("button", "Connect Facebook & Instagram"),
        "link_instagram": ("link", "Hubungkan Instagram di Meta Business Suite"),
        "switch_account": ("button", "Connect ulang"),
        "login": ("link", "Masuk ke Resellio"),  # the demo knows its login page
        "retry": ("button", "Coba lagi"),
        "choose_page": ("button", "Pilih Page"),
        "fix_on_meta": ("link", "Buka Facebook"),
    }.get(action)


def test_every_catalogue_error_renders_with_its_action(live, page):
    open_social_connect(page, live)
    for code, spec in [*CATALOGUE.items(), ("no_such_code", CATALOGUE["internal_error"])]:
        page.goto(f"{live.url}/?meta_status=error&error_code={code}")
        panel = page.locator("#error-panel")
        expect(panel).to_be_visible()
        expect(page.locator("#error-message")).to_have_text(spec.message_id)
        control = expected_control(spec.action)
        if control is not None:
            expect(panel.get_by_role(control[0], name=control[1])).to_be_visible()
        if spec.action in ("fix_input", "wait", "switch_account", "link_instagram", "fix_on_meta"):
            expect(panel.locator(".action-text")).to_be_visible()
        if spec.action == "link_instagram":
            expect(panel.get_by_role("link")).to_have_attribute("href", BUSINESS_SUITE_URL)
        if spec.action == "fix_on_meta":
            expect(panel.get_by_role("link")).to_have_attribute("href", FACEBOOK_URL)
            expect(panel.get_by_role("link")).to_have_attribute("rel", "noopener noreferrer")
        assert page.url == f"{live.url}/", code


def test_signed_out_visitor_is_asked_to_sign_in(live, page):
    # Outside the demo the page itself is served without a session; the API then answers 401.
    page.route(
        "**/api/meta/status",
        lambda route: route.fulfill(
            status=401,
            content_type="application/json",
            body='{"error_code": "not_authenticated", "message": "-", "action": "login"}',
        ),
    )
    open_social_connect(page, live)
    expect(page.locator("#login-message")).to_contain_text("Silakan masuk ke Resellio")
    expect(page.locator("#connect-button")).to_be_hidden()
    expect(page.locator("#schedule-section")).to_be_hidden()


def test_keyboard_only_connect(live, page):
    open_social_connect(page, live)
    expect(page.locator("#status-badge")).to_have_text("Not connected")
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "connect-button":
            break
    expect(page.locator("#connect-button")).to_be_focused()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), "the focused button shows no focus ring"
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live.sandbox.url}/**")
    expect(page.locator("#continue")).to_be_visible()
    for _ in range(20):
        if page.evaluate("document.activeElement.id") == "continue":
            break
        page.keyboard.press("Tab")
    expect(page.locator("#continue")).to_be_focused()
    page.keyboard.press("Enter")
    back_on_page(page, live)
    expect(page.locator("#status-badge")).to_have_text("Connected")


def test_narrow_screen_has_no_horizontal_scroll(live, context):
    page = context.new_page()
    page.set_viewport_size({"width": 360, "height": 740})
    open_social_connect(page, live)
    expect_no_horizontal_overflow(page, 360)

    reset_sandbox(live, "several_pages")
    go_to_consent(page, live)
    page.click("#continue")
    back_on_page(page, live)
    expect(page.locator("#page-picker")).to_be_visible()
    expect_no_horizontal_overflow(page, 360)
    page.screenshot(path=f"{SCREENSHOT_DIR}/social_connect_page_picker_360.png")
    page.locator("#page-picker input[type=radio]:not([disabled])").first.check()
    page.click("#page-picker-submit")
    expect(page.locator("#status-badge")).to_have_text("Connected")
    # The form with a long URL and an error of its own (no target chosen) still fits.
    page.fill("#media-0-url", "https://cdn.example.com/" + "produk-" * 30 + ".jpg")
    page.uncheck("#target-facebook")
    page.uncheck("#target-instagram")
    page.click("#schedule-submit")
    expect(page.locator("#targets-error")).to_have_text("Pilih minimal satu tujuan.")
    expect_no_horizontal_overflow(page, 360)
    page.screenshot(path=f"{SCREENSHOT_DIR}/social_connect_connected_360.png", full_page=True)


def test_status_that_fails_to_load_can_be_retried(live, page):
    failures = {"left": 1}

    def status_once_broken(route):
        if failures["left"]:
            failures["left"] -= 1
            route.fulfill(
                status=500,
                content_type="application/json",
                body='{"error_code": "internal_error", "message": "-", "action": "retry"}',
            )
        else:
            route.continue_()

    page.route("**/api/meta/status", status_once_broken)
    open_social_connect(page, live)
    expect(page.locator("#error-message")).to_have_text(CATALOGUE["internal_error"].message_id)
    page.locator("#error-panel").get_by_role("button", name="Coba lagi").click()
    expect(page.locator("#status-badge")).to_have_text("Not connected")
    expect(page.locator("#error-panel")).to_be_hidden()
    expect(page.locator("#connect-button")).to_be_visible()
