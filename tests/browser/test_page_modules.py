"""The page's script as native ES modules under the page's CSP.

The page loads ``static/js/main.js`` with ``<script type="module">`` (no build step); the
modules must load under ``script-src 'self'`` without a console error or a CSP violation.
"""

from __future__ import annotations

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
