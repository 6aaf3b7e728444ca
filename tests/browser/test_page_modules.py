"""The page's script as native ES modules under the page's CSP, and the server's field messages as given.

The page loads ``static/js/main.js`` with ``<script type="module">`` (no build step); the
modules must load under ``script-src 'self'`` without a console error or a CSP violation.
Field-level validation messages are the server's (localised there): the page keeps no copy.
"""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import ConsoleMessage, Page, expect

from tests.browser.test_social_connect_page import connect_one_page, open_social_connect

MODULE_DIR = Path(__file__).resolve().parents[2] / "connect_service" / "static" / "js"
SCHEDULE_PATH = "/api/meta/schedule"

# Runs before the page's own scripts (Playwright injects it, outside the page's CSP).
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def watch_console(page: Page, refusals_expected: bool = False) -> list[str]:
    """Console errors and warnings, uncaught exceptions; Chromium's line for an API call's 4xx when expected."""
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        refusal = message.text.startswith("Failed to load resource") and "/api/meta/" in message.location["url"]
        if message.type in ("error", "warning") and not (refusals_expected and refusal):
            problems.append(f"{message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    return problems


def is_schedule_post(url: str, method: str) -> bool:
    return url.endswith(SCHEDULE_PATH) and method == "POST"


def test_the_page_runs_as_es_modules_under_its_csp(live, page):
    problems = watch_console(page)
    scripts: dict[str, tuple[int, str]] = {}
    page.on(
        "response",
        lambda r: (
            scripts.__setitem__(r.url.rsplit("/", 1)[-1], (r.status, r.headers.get("content-type", "")))
            if "/static/js/" in r.url
            else None
        ),
    )
    with page.expect_response(lambda r: r.url == f"{live.url}/" and r.status == 200) as document:
        open_social_connect(page, live)

    csp = document.value.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe" not in csp
    entry = page.locator("script[src]")
    expect(entry).to_have_count(1)
    expect(entry).to_have_attribute("type", "module")
    expect(entry).to_have_attribute("src", "/static/js/main.js")

    # Every module of the page was fetched, as JavaScript, and the page came alive.
    expect(page.locator("#status-badge")).to_have_text("Not connected")
    on_disk = {path.name for path in MODULE_DIR.glob("*.js")}
    assert len(on_disk) > 5 and set(scripts) == on_disk, sorted(scripts)
    for name, (status, content_type) in scripts.items():
        assert status == 200 and content_type.startswith("text/javascript"), (name, status, content_type)

    # The sections work together: the disconnect dialog opens from the status card.
    connect_one_page(page, live)
    page.click("#disconnect-button")
    expect(page.locator("#disconnect-confirm")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#disconnect-button")).to_be_focused()

    assert page.evaluate("window.__cspViolations") == []
    assert problems == []


def test_a_server_validation_error_is_shown_next_to_its_field_as_the_server_wrote_it(live, page):
    problems = watch_console(page, refusals_expected=True)
    open_social_connect(page, live)
    connect_one_page(page, live)

    # Instagram only, with a link: the real server refuses the link (a Facebook-only thing).
    page.fill("#caption", "Promo minggu ini")
    page.fill("#media-0-url", "https://cdn.example.com/produk.jpg")
    page.fill("#link", "https://toko.example.com/promo")
    page.uncheck("#target-facebook")
    with page.expect_response(lambda r: is_schedule_post(r.url, r.request.method)) as refused:
        page.click("#schedule-submit")
    body = refused.value.json()
    assert refused.value.status == 422 and body["error_code"] == "validation_error"
    assert refused.value.request.headers["accept-language"] == "id"  # the page's language
    expect(page.locator("#link-error")).to_have_text(" ".join(body["fields"]["link"]))
    expect(page.locator("#link")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#link")).to_be_focused()
    expect(page.locator("#posts [data-job-id]")).to_have_count(0)
    assert problems == []


def test_field_messages_are_shown_as_given_even_ones_the_page_once_translated(live, browser):
    # A browser in English still gets the page's Indonesian labels, and asks the server for Indonesian.
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US", timezone_id="Asia/Jakarta")
    context.set_default_timeout(10_000)
    page = context.new_page()
    problems = watch_console(page, refusals_expected=True)
    try:
        open_social_connect(page, live)
        connect_one_page(page, live)
        fields = {
            "caption": ["Must be at most 2200 characters."],
            "targets.0": ["Must be one of: facebook, instagram."],
            "publish_at": ["Must not be more than 5 minutes in the past.", "Second message."],
            "_schema": ["A post needs a caption, a media_url or a link."],
        }
        sent: list[dict[str, str]] = []

        def refuse(route) -> None:
            if route.request.method != "POST":
                route.continue_()
                return
            sent.append(route.request.headers)
            route.fulfill(
                status=422,
                content_type="application/json",
                body=json.dumps(
                    {"error_code": "validation_error", "message": "-", "action": "fix_input", "fields": fields}
                ),
            )

        page.route(f"**{SCHEDULE_PATH}", refuse)
        page.fill("#caption", "Promo")
        page.click("#schedule-submit")

        expect(page.locator("#caption-error")).to_have_text("Must be at most 2200 characters.")
        expect(page.locator("#targets-error")).to_have_text("Must be one of: facebook, instagram.")
        expect(page.locator("#publish-at-error")).to_have_text(
            "Must not be more than 5 minutes in the past. Second message."
        )
        expect(page.locator("#schedule-error")).to_have_text("A post needs a caption, a media_url or a link.")
        expect(page.locator("#caption")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#caption")).to_be_focused()
        assert [headers["accept-language"] for headers in sent] == ["id"]
        assert problems == []
    finally:
        context.close()
