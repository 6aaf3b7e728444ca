"""A seller driving the connect flow over plain HTTP (what a browser would send)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import requests

from shared.settings import DEFAULT_SCOPES

JSON = {"Accept": "application/json"}


class Seller:
    """A signed-in seller with their own cookie jar."""

    def __init__(self, stack, user: str = "demo-seller"):
        self.stack = stack
        self.http = requests.Session()
        response = self.http.get(f"{stack.url}/demo/login", params={"user": user}, allow_redirects=False, timeout=5)
        assert response.status_code == 302

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Origin": self.stack.url, **JSON, **kwargs.pop("headers", {})}
        return self.http.request(method, f"{self.stack.url}{path}", headers=headers, timeout=15, **kwargs)

    def consent_page(self) -> tuple[str, str]:
        """Start connecting: returns the dialog URL and the consent page's HTML."""
        oauth_url = self.api("GET", "/api/meta/connect").json()["oauth_url"]
        page = self.http.get(oauth_url, timeout=5)
        assert page.status_code == 200
        return oauth_url, page.text

    def consent(
        self,
        *,
        action: str = "continue",
        pages: list[str] | None = None,
        permissions: list[str] | None = None,
        headers: dict | None = None,
    ) -> requests.Response:
        """Answer Meta's consent page, then follow the redirect back to the callback."""
        callback_url = self.answer_consent(action=action, pages=pages, permissions=permissions)
        return self.http.get(callback_url, headers=headers or JSON, timeout=30, allow_redirects=False)

    def answer_consent(
        self, *, action: str = "continue", pages: list[str] | None = None, permissions: list[str] | None = None
    ) -> str:
        """Answer Meta's consent page; returns where Meta sends the browser back to."""
        oauth_url, html = self.consent_page()
        query = parse_qs(urlsplit(oauth_url).query)
        offered_pages = re.findall(r'name="pages" value="(\d+)"', html)
        form = {
            "client_id": query["client_id"][0],
            "redirect_uri": query["redirect_uri"][0],
            "state": query["state"][0],
            "scope": query["scope"][0],
            "action": action,
            "pages": offered_pages if pages is None else pages,
            "permissions": list(DEFAULT_SCOPES) if permissions is None else permissions,
        }
        answer = self.http.post(oauth_url.split("?")[0], data=form, allow_redirects=False, timeout=5)
        assert answer.status_code == 302, answer.text
        return answer.headers["Location"]

    def status(self) -> dict:
        return self.api("GET", "/api/meta/status").json()
