"""The scheduling form's content (DESIGN §13.2) and each target's result, in a real browser.

The seller connects through the Meta sandbox as in test_social_connect_page.py. The
schedule calls are answered here (Playwright routes): these tests pin what the page sends
(the §13.2 body, exactly) and what it shows for the API's answers (a 422's ``fields`` per
media row, a post's per-target results with its first comment), whatever the server
behind it does today.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page, Route, expect

from shared.errors import CATALOGUE
from tests.browser.test_page_modules import SCHEDULE_PATH, watch_console
from tests.browser.test_social_connect_page import (
    SCREENSHOT_DIR,
    UUID,
    connect_one_page,
    expect_no_horizontal_overflow,
    open_social_connect,
)

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HTTPS_MESSAGE = "Harus URL lengkap yang diawali https://."
CDN = "https://cdn.example.com/katalog"
CDN_HTTP = "http://cdn.example.com/katalog"


class ScheduleCalls:
    """Answers ``POST /api/meta/schedule`` with the given responses in turn and keeps what was sent."""

    def __init__(self, *answers: tuple[int, dict[str, Any]]):
        self.answers = list(answers)
        self.bodies: list[dict[str, Any]] = []
        self.keys: list[str | None] = []

    def __call__(self, route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        body = route.request.post_data_json
        assert isinstance(body, dict), body
        self.bodies.append(body)
        self.keys.append(route.request.headers.get("idempotency-key"))
        status, body = self.answers.pop(0)
        route.fulfill(status=status, content_type="application/json", body=json.dumps(body))


QUEUED = (200, {"queued": True, "job_id": "job_0123456789abcdef"})


def refused(fields: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
    return 422, {"error_code": "validation_error", "message": "-", "action": "fix_input", "fields": fields}


def connected(page: Page, live, schedule: Callable[[Route], None] | None = None) -> list[str]:
    """The seller on the page, connected; the console and CSP watched; POST /schedule answered by ``schedule``."""
    problems = watch_console(page, refusals_expected=True)
    if schedule is not None:
        page.route(f"**{SCHEDULE_PATH}", schedule)
    open_social_connect(page, live)
    connect_one_page(page, live)
    return problems


def no_console_or_csp_problems(page: Page, problems: list[str]) -> None:
    assert page.evaluate("window.__cspViolations") == []
    assert problems == []


def media_row(page: Page, index: int):
    return page.locator("#media-list > .media-row").nth(index)


def fill_media(page: Page, index: int, url: str, kind: str = "image", alt: str | None = None) -> None:
    """Fill media row ``index`` (added with "Tambah media" when it does not exist yet)."""
    if page.locator("#media-list > .media-row").count() <= index:
        page.click("#media-add")
    page.fill(f"#media-{index}-url", url)
    page.select_option(f"#media-{index}-type", kind)
    if alt is not None:
        page.fill(f"#media-{index}-alt", alt)


def tab_to(page: Page, selector: str, limit: int = 8) -> None:
    """Press Tab until ``selector`` has the focus (at most ``limit`` times)."""
    for _ in range(limit):
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    expect(page.locator(selector)).to_be_focused()


def sent_without_time(body: dict[str, Any]) -> dict[str, Any]:
    body = dict(body)
    assert ISO_Z.match(body.pop("publish_at"))
    return body


# ---------- the form ----------


def test_a_carousel_with_alt_text_and_a_first_comment_sends_the_content_v2_body(live, page):
    calls = ScheduleCalls(refused({"media.1.url": [HTTPS_MESSAGE]}), QUEUED)
    problems = connected(page, live, calls)
    expect(page.locator("#format-post")).to_be_checked()

    fill_media(page, 0, f"{CDN}/batik-depan.jpg", alt="Kemeja batik biru, tampak depan")
    fill_media(page, 1, f"{CDN_HTTP}/batik-belakang.jpg", alt="Tampak belakang")
    fill_media(page, 2, f"{CDN}/batik-detail.jpg")
    # Alt text typed for a row that then becomes a video is neither shown nor sent.
    page.click("#media-add")
    page.fill("#media-3-alt", "tidak terkirim")
    fill_media(page, 3, f"{CDN}/batik-dipakai.mp4", kind="video")
    expect(page.locator("#media-3-alt")).to_be_hidden()
    expect(page.locator("#media-count")).to_have_text("4/10")
    expect(page.locator("#cover-url")).to_be_hidden()  # a carousel has no reel cover
    page.fill("#caption", "Batik tulis, 4 warna. Ready stok!")
    page.fill("#first-comment", "#batik #promo @resellio")
    expect(page.locator("#first-comment-count")).to_have_text("23/2200")
    page.locator("#schedule-section").screenshot(path=f"{SCREENSHOT_DIR}/social_connect_schedule_carousel.png")

    page.click("#schedule-submit")

    # The server refuses the second item's URL: the message is on the second row, by its URL input.
    url_error = page.locator("#media-1-url-error")
    expect(url_error).to_have_text(HTTPS_MESSAGE)
    assert media_row(page, 1).locator("#media-1-url-error").count() == 1
    expect(page.locator("#media-1-url")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#media-1-url")).to_have_attribute("aria-describedby", re.compile(r"\bmedia-1-url-error\b"))
    expect(page.locator("#media-1-url")).to_be_focused()
    for other in ("#media-0-url-error", "#media-2-url-error", "#media-3-url-error", "#media-error"):
        expect(page.locator(other)).to_be_hidden()
    expect(page.locator("#schedule-error")).to_be_hidden()

    assert len(calls.bodies) == 1
    assert sent_without_time(calls.bodies[0]) == {
        "format": "post",
        "targets": ["facebook", "instagram"],
        "caption": "Batik tulis, 4 warna. Ready stok!",
        "first_comment": "#batik #promo @resellio",
        "media": [
            {"url": f"{CDN}/batik-depan.jpg", "type": "image", "alt_text": "Kemeja batik biru, tampak depan"},
            {"url": f"{CDN_HTTP}/batik-belakang.jpg", "type": "image", "alt_text": "Tampak belakang"},
            {"url": f"{CDN}/batik-detail.jpg", "type": "image"},
            {"url": f"{CDN}/batik-dipakai.mp4", "type": "video"},
        ],
    }

    page.fill("#media-1-url", f"{CDN}/batik-belakang.jpg")
    page.click("#schedule-submit")
    expect(page.locator("#notice")).to_have_text("Postingan dijadwalkan.")
    assert len(calls.bodies) == 2
    assert calls.bodies[1]["media"][1] == {
        "url": f"{CDN}/batik-belakang.jpg",
        "type": "image",
        "alt_text": "Tampak belakang",
    }
    assert "media_url" not in calls.bodies[1]
    assert all(key and UUID.match(key) for key in calls.keys) and calls.keys[0] != calls.keys[1]
    # Ready for the next post: one empty row, no error left.
    expect(page.locator("#media-list > .media-row")).to_have_count(1)
    expect(page.locator("#media-0-url")).to_have_value("")
    expect(page.locator("#media-0-url-error")).to_be_hidden()
    expect(page.locator("#first-comment")).to_have_value("")
    no_console_or_csp_problems(page, problems)


def test_a_server_message_for_a_row_follows_the_row_the_item_came_from(live, page):
    # A row left empty is not sent, so the server's media.1 is the third row on the page.
    fields = {
        "media.1.alt_text": ["Maksimal 1000 karakter."],
        "first_comment": ["X."],
        "media": ["Facebook: beberapa media dalam satu postingan harus foto semua."],
    }
    calls = ScheduleCalls(refused(fields))
    problems = connected(page, live, calls)
    fill_media(page, 0, f"{CDN}/a.jpg")
    page.click("#media-add")
    fill_media(page, 2, f"{CDN}/c.jpg", alt="Foto ketiga")
    page.click("#schedule-submit")

    expect(page.locator("#media-2-alt-error")).to_have_text("Maksimal 1000 karakter.")
    expect(page.locator("#media-1-alt-error")).to_be_hidden()
    expect(page.locator("#first-comment-error")).to_have_text("X.")
    # What is about the list as a whole is said under it, and points at its first row.
    expect(page.locator("#media-error")).to_have_text(fields["media"][0])
    expect(page.locator("#media-0-url")).to_have_attribute("aria-invalid", "true")
    assert [item["url"] for item in calls.bodies[0]["media"]] == [f"{CDN}/a.jpg", f"{CDN}/c.jpg"]
    # The first invalid control in the form's order takes the focus.
    expect(page.locator("#media-0-url")).to_be_focused()
    no_console_or_csp_problems(page, problems)


def test_a_story_hides_caption_and_first_comment_and_sends_neither(live, page):
    calls = ScheduleCalls(QUEUED)
    problems = connected(page, live, calls)
    page.fill("#caption", "Caption untuk feed")
    page.fill("#first-comment", "#promo")
    page.fill("#link", "https://toko.example.com/promo")

    page.check("#format-story")
    for hidden in ("#caption", "#first-comment", "#link", "#cover-url"):
        expect(page.locator(hidden)).to_be_hidden()
        expect(page.locator(hidden)).to_be_disabled()
    expect(page.locator("#story-note")).to_be_visible()
    expect(page.locator("#format-hint")).to_have_text("Satu foto atau video yang tampil 24 jam.")
    # One item only: the add button says why it stops.
    expect(page.locator("#media-add")).to_be_disabled()
    expect(page.locator("#media-limit")).to_have_text("Story memakai 1 foto atau video.")

    # Back to a post and again a story: what the seller typed is kept, only not sent with a story.
    page.check("#format-post")
    expect(page.locator("#caption")).to_be_visible()
    expect(page.locator("#caption")).to_have_value("Caption untuk feed")
    expect(page.locator("#first-comment")).to_be_enabled()
    expect(page.locator("#media-add")).to_be_enabled()
    # Rows added for a post are too many for a story: said before anything is sent.
    page.click("#media-add")
    page.check("#format-story")
    expect(page.locator("#media-count")).to_have_text("2/1")
    page.click("#schedule-submit")
    expect(page.locator("#media-error")).to_have_text("Story memakai 1 foto atau video. Hapus media lainnya.")
    page.click("[aria-label='Hapus media 2']")
    fill_media(page, 0, f"{CDN}/story.mp4", kind="video")
    page.click("#schedule-submit")

    expect(page.locator("#notice")).to_have_text("Postingan dijadwalkan.")
    assert sent_without_time(calls.bodies[0]) == {
        "format": "story",
        "targets": ["facebook", "instagram"],
        "media": [{"url": f"{CDN}/story.mp4", "type": "video"}],
    }
    no_console_or_csp_problems(page, problems)


def test_a_reel_is_one_video_with_a_cover(live, page):
    calls = ScheduleCalls(QUEUED)
    problems = connected(page, live, calls)
    expect(page.locator("#cover-url")).to_be_hidden()
    page.check("#format-reel")
    # The empty row becomes a video; a cover may be given.
    expect(page.locator("#media-0-type")).to_have_value("video")
    expect(page.locator("#media-0-alt")).to_be_hidden()
    expect(page.locator("#cover-url")).to_be_visible()
    expect(page.locator("#media-add")).to_be_disabled()
    page.fill("#media-0-url", f"{CDN}/reel.mp4")
    page.fill("#cover-url", f"{CDN}/sampul.jpg")
    page.fill("#caption", "Cara pakai batik")
    page.click("#schedule-submit")
    expect(page.locator("#notice")).to_have_text("Postingan dijadwalkan.")
    assert sent_without_time(calls.bodies[0]) == {
        "format": "reel",
        "targets": ["facebook", "instagram"],
        "caption": "Cara pakai batik",
        "media": [{"url": f"{CDN}/reel.mp4", "type": "video"}],
        "cover_url": f"{CDN}/sampul.jpg",
    }

    # A post of a single video is a reel on Instagram too: the cover stays; a photo post has none.
    page.check("#format-post")
    fill_media(page, 0, f"{CDN}/video.mp4", kind="video")
    expect(page.locator("#cover-url")).to_be_visible()
    page.select_option("#media-0-type", "image")
    expect(page.locator("#cover-url")).to_be_hidden()
    no_console_or_csp_problems(page, problems)


def test_media_rows_are_added_and_removed_with_the_keyboard_only(live, page):
    problems = connected(page, live)
    page.focus("#format-post")  # the form's first control; from here on only keys
    page.keyboard.press("Tab")
    expect(page.locator("#media-0-url")).to_be_focused()
    page.keyboard.type(f"{CDN}/satu.jpg")
    for _ in range(3):  # type, alt text, "Hapus"
        page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Hapus media 1")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#media-add")).to_be_focused()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), "the focused button shows no focus ring"

    page.keyboard.press("Enter")
    expect(page.locator("#media-list > .media-row")).to_have_count(2)
    expect(page.locator("#media-1-url")).to_be_focused()
    expect(page.locator("#media-live")).to_have_text("Media 2 ditambahkan.")
    expect(media_row(page, 1).locator("legend")).to_have_text("Media 2")
    page.keyboard.type(f"{CDN}/dua.mp4")
    page.keyboard.press("Tab")
    expect(page.locator("#media-1-type")).to_be_focused()
    page.keyboard.press("ArrowDown")  # Foto → Video: the alt text goes away
    expect(page.locator("#media-1-type")).to_have_value("video")
    expect(page.locator("#media-1-alt")).to_be_hidden()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Hapus media 2")).to_be_focused()

    # Removing the first row: the second takes its place, number and focus.
    page.focus("#media-0-url")
    for _ in range(3):
        page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Hapus media 1")).to_be_focused()
    page.keyboard.press("Space")
    expect(page.locator("#media-list > .media-row")).to_have_count(1)
    expect(page.locator("#media-0-url")).to_be_focused()
    expect(page.locator("#media-0-url")).to_have_value(f"{CDN}/dua.mp4")
    expect(page.locator("#media-0-type")).to_have_value("video")
    expect(page.locator("#media-live")).to_have_text("Media 1 dihapus.")

    # Up to ten: then "Tambah media" stops and says why.
    for count in range(2, 11):
        tab_to(page, "#media-add")
        page.keyboard.press("Enter")
        expect(page.locator(f"#media-{count - 1}-url")).to_be_focused()
    expect(page.locator("#media-list > .media-row")).to_have_count(10)
    expect(page.locator("#media-count")).to_have_text("10/10")
    expect(page.locator("#media-add")).to_be_disabled()
    expect(page.locator("#media-limit")).to_have_text("Maksimal 10 media.")

    # Removing the last row gives the focus to the row before it; the last one left, to "Tambah media".
    for count in range(10, 0, -1):
        tab_to(page, f"[aria-label='Hapus media {count}']")
        page.keyboard.press("Enter")
        expect(page.locator("#media-list > .media-row")).to_have_count(count - 1)
        expect(page.locator(f"#media-{count - 2}-url" if count > 1 else "#media-add")).to_be_focused()
    expect(page.locator("#media-add")).to_be_enabled()
    expect(page.locator("#media-count")).to_have_text("0/10")
    no_console_or_csp_problems(page, problems)


# ---------- the results ----------


def target(status: str, id_key: str, remote_id: str | None = None, **extra: Any) -> dict[str, Any]:
    """A target of the API body (DESIGN §13.2): status, its id, error, published_at, error_message, comment."""
    return {
        "status": status,
        id_key: remote_id,
        "error_code": None,
        "published_at": None,
        "error_message": None,
        "comment": None,
        **extra,
    }


def post_body(job_id: str, status: str, facebook: dict[str, Any], instagram: dict[str, Any], **extra: Any) -> dict:
    """A post as ``GET /api/meta/schedule`` lists it (DESIGN §4 and §13.2): four media and a first comment."""
    return {
        "job_id": job_id,
        "connection_id": "conn_abc123",
        "status": status,
        "publish_at": "2026-02-20T03:00:00Z",
        "caption": "Batik tulis, 4 warna",
        "media_url": f"{CDN}/1.jpg",
        "link": None,
        "format": "post",
        "media": [
            {"url": f"{CDN}/1.jpg", "type": "image", "alt_text": "Kemeja batik biru"},
            {"url": f"{CDN}/2.jpg", "type": "image", "alt_text": None},
            {"url": f"{CDN}/3.jpg", "type": "image", "alt_text": None},
            {"url": f"{CDN}/4.mp4", "type": "video", "alt_text": None},
        ],
        "first_comment": "#batik #promo",
        "cover_url": None,
        "targets": {"facebook": facebook, "instagram": instagram},
        "attempts": 1,
        "next_attempt_at": None,
        "error_code": None,
        "error_message": None,
        "created_at": "2026-02-19T10:00:00Z",
        "finished_at": "2026-02-20T03:00:09Z",
        **extra,
    }


PUBLISHED_WITH_COMMENTS = post_body(
    "job_carousel",
    "published",
    target(
        "published",
        "post_id",
        "104857600_998877",
        published_at="2026-02-20T03:00:04Z",
        comment={"status": "published", "comment_id": "998877_111", "error_code": None},
    ),
    target(
        "published",
        "media_id",
        "17900000000000001",
        published_at="2026-02-20T03:00:09Z",
        comment={"status": "failed", "comment_id": None, "error_code": "rate_limited"},
    ),
)
FACEBOOK_FAILED = post_body(
    "job_reel",
    "partially_published",
    target(
        "failed",
        "post_id",
        error_code="media_invalid",
        error_message="Facebook menolak video ini: durasi Reel harus 3–90 detik.",
    ),
    target("published", "media_id", "17900000000000002", published_at="2026-02-20T03:01:00Z"),
    format="reel",
    media=[{"url": f"{CDN}/reel.mp4", "type": "video", "alt_text": None}],
    media_url=f"{CDN}/reel.mp4",
    caption="Cara pakai batik",
    first_comment=None,
    cover_url=f"{CDN}/sampul.jpg",
    error_code="media_invalid",
    error_message="Facebook: Facebook menolak video ini: durasi Reel harus 3–90 detik.",
)
STORY_QUEUED = post_body(
    "job_story",
    "queued",
    target("pending", "post_id"),
    target("skipped", "media_id"),
    format="story",
    media=[{"url": f"{CDN}/story.jpg", "type": "image", "alt_text": None}],
    media_url=f"{CDN}/story.jpg",
    caption="",
    first_comment=None,
    attempts=0,
    finished_at=None,
)


def serve_posts(page: Page, items: list[dict[str, Any]]) -> None:
    """``GET /api/meta/schedule?…`` answers ``items`` (the list the page shows)."""

    def answer(route: Route) -> None:
        if route.request.method != "GET":
            route.continue_()
            return
        route.fulfill(
            status=200, content_type="application/json", body=json.dumps({"items": items, "next_cursor": None})
        )

    page.route(re.compile(r".*/api/meta/schedule\?.*"), answer)


def test_a_post_shows_each_targets_result_with_its_first_comment(live, page):
    serve_posts(page, [PUBLISHED_WITH_COMMENTS, FACEBOOK_FAILED, STORY_QUEUED])
    problems = connected(page, live)
    rows = page.locator("#posts [data-job-id]")
    expect(rows).to_have_count(3)

    carousel = page.locator("[data-job-id=job_carousel]")
    expect(carousel.locator(".post-format")).to_have_text("Postingan · 4 media")
    facebook = carousel.locator(".target-facebook")
    expect(facebook.locator(".target-status")).to_have_text("Terbit")
    expect(facebook.locator(".target-id dt")).to_have_text("ID postingan")
    expect(facebook.locator(".target-id dd")).to_have_text("104857600_998877")
    expect(facebook.locator(".target-published-at time")).to_have_attribute("datetime", "2026-02-20T03:00:04Z")
    expect(facebook.locator(".target-published-at time")).to_contain_text("10.00")  # 10:00 in Jakarta
    expect(facebook.locator(".target-comment dt")).to_have_text("Komentar pertama")
    expect(facebook.locator(".target-comment dd")).to_have_text("Terkirim")
    instagram = carousel.locator(".target-instagram")
    expect(instagram.locator(".target-status")).to_have_text("Terbit")
    expect(instagram.locator(".target-id dt")).to_have_text("ID media")
    expect(instagram.locator(".target-id dd")).to_have_text("17900000000000001")
    # A failed first comment does not un-publish its target; it says why.
    expect(instagram.locator(".target-comment dd")).to_have_text(f"Gagal – {CATALOGUE['rate_limited'].message_id}")
    expect(instagram.locator(".target-comment dd")).to_have_attribute("data-comment-status", "failed")
    expect(carousel.locator(".target-error")).to_have_count(0)
    expect(carousel.locator(".post-error")).to_have_count(0)

    reel = page.locator("[data-job-id=job_reel]")
    expect(reel.locator(".post-format")).to_have_text("Reel · 1 media")
    expect(reel.locator(".post-status")).to_have_text("Sebagian terbit")
    expect(reel.locator(".target-facebook .target-status")).to_have_text("Gagal")
    expect(reel.locator(".target-facebook .target-error")).to_have_text(
        "Facebook menolak video ini: durasi Reel harus 3–90 detik."
    )
    expect(reel.locator(".target-facebook .target-id")).to_have_count(0)
    expect(reel.locator(".target-instagram .target-id dd")).to_have_text("17900000000000002")
    expect(reel.locator(".target-comment")).to_have_count(0)  # no first comment on this post
    # Said once, by the target it is about, not again for the whole post.
    expect(reel.locator(".post-error")).to_have_count(0)

    story = page.locator("[data-job-id=job_story]")
    expect(story.locator(".post-format")).to_have_text("Story · 1 media")
    expect(story.locator(".target-facebook .target-status")).to_have_text("Menunggu")
    expect(story.locator(".target-instagram .target-status")).to_have_text("Tidak dipilih")
    expect(story.locator(".target-facts")).to_have_count(0)
    expect(story.locator(".post-cancel")).to_be_visible()
    page.locator("#posts-section").screenshot(path=f"{SCREENSHOT_DIR}/social_connect_post_results.png")
    no_console_or_csp_problems(page, problems)


def test_the_form_and_the_results_fit_a_390px_phone(live, context):
    page = context.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    long_id = "1" * 40
    wide = post_body(
        "job_wide",
        "partially_published",
        target(
            "published",
            "post_id",
            f"{long_id}_{long_id}",
            published_at="2026-02-20T03:00:04Z",
            comment={"status": "unconfirmed", "comment_id": None, "error_code": "meta_unavailable"},
        ),
        target("failed", "media_id", error_code="media_invalid", error_message="x" * 300),
    )
    serve_posts(page, [wide, PUBLISHED_WITH_COMMENTS])
    calls = ScheduleCalls(refused({"media.1.url": [HTTPS_MESSAGE], "media.2.alt_text": ["Maksimal 1000 karakter."]}))
    problems = connected(page, live, calls)
    expect_no_horizontal_overflow(page, 390)

    fill_media(page, 0, f"{CDN}/{'a' * 120}.jpg", alt="Kemeja batik biru dengan motif parang, tampak depan")
    fill_media(page, 1, "http://cdn.example.com/" + "b" * 120 + ".jpg")
    fill_media(page, 2, f"{CDN}/c.jpg", alt="y" * 200)
    page.fill("#first-comment", "#batik " * 40)
    page.click("#schedule-submit")
    expect(page.locator("#media-1-url-error")).to_have_text(HTTPS_MESSAGE)
    expect(page.locator("#media-2-alt-error")).to_be_visible()
    expect_no_horizontal_overflow(page, 390)

    # On a phone a row's fields stack: type under URL, alt text under type, each full width.
    url_box = page.locator("#media-0-url").bounding_box()
    type_box = page.locator("#media-0-type").bounding_box()
    alt_box = page.locator("#media-0-alt").bounding_box()
    assert url_box and type_box and alt_box
    assert url_box["y"] + url_box["height"] <= type_box["y"] and type_box["y"] + type_box["height"] <= alt_box["y"]
    assert abs(url_box["width"] - type_box["width"]) < 2 and abs(url_box["x"] - type_box["x"]) < 2
    # The row's controls keep a finger-sized height.
    for selector in ("#media-0-url", "#media-0-type", "#media-add", "[aria-label='Hapus media 1']"):
        box = page.locator(selector).bounding_box()
        assert box and box["height"] >= 36, selector
    page.screenshot(path=f"{SCREENSHOT_DIR}/social_connect_schedule_390.png", full_page=True)

    expect(page.locator("[data-job-id=job_wide] .target-comment dd")).to_have_text("Belum pasti")
    expect_no_horizontal_overflow(page, 390)
    no_console_or_csp_problems(page, problems)
