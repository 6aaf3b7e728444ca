"""Fixtures for the Meta sandbox tests: an app per test and a helper that
walks the OAuth dance and signs Graph calls."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs, urlsplit

import pytest

from meta_sandbox import create_app, serve_in_thread

APP_ID = "sandbox-app-id"
APP_SECRET = "sandbox-app-secret"
APP_TOKEN = f"{APP_ID}|{APP_SECRET}"
REDIRECT = "https://connect.example.test/api/meta/callback"
SCOPES = [
    "pages_show_list",
    "pages_read_engagement",
    "pages_manage_posts",
    "instagram_basic",
    "instagram_content_publish",
    "business_management",
]
PAGE_1 = "110000000000001"
IG_1 = "17841400000000001"
USER_ID = "100090000000001"


def proof(token: str) -> str:
    return hmac.new(APP_SECRET.encode(), token.encode(), hashlib.sha256).hexdigest()


def query_of(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


class Meta:
    """Drives one sandbox app through its Flask test client."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()

    @property
    def world(self):
        return self.app.extensions["meta_sandbox"]

    # admin
    def admin(self, path: str, body: dict | None = None, method: str = "post"):
        resp = getattr(self.client, method)(f"/_sandbox/{path}", json=body)
        assert resp.status_code < 300, resp.get_data(as_text=True)
        return resp.get_json()

    # OAuth
    def consent(
        self, *, permissions=None, pages=None, action="continue", state="st4te", redirect_uri=REDIRECT, scopes=SCOPES
    ):
        if pages is None:
            pages = list(self.world.pages)
        data = {
            "client_id": APP_ID,
            "redirect_uri": redirect_uri,
            "scope": ",".join(scopes),
            "permissions": list(scopes if permissions is None else permissions),
            "pages": pages,
            "action": action,
        }
        if state is not None:
            data["state"] = state
        return self.client.post("/v25.0/dialog/oauth", data=data)

    def code(self, **kwargs) -> str:
        resp = self.consent(**kwargs)
        assert resp.status_code == 302, resp.get_data(as_text=True)
        return query_of(resp.headers["Location"])["code"]

    def exchange(self, code: str, redirect_uri: str = REDIRECT, secret: str = APP_SECRET):
        return self.client.post(
            "/v25.0/oauth/access_token",
            data={"client_id": APP_ID, "client_secret": secret, "redirect_uri": redirect_uri, "code": code},
        )

    def long_lived(self, token: str):
        return self.client.get(
            "/v25.0/oauth/access_token",
            query_string={
                "grant_type": "fb_exchange_token",
                "client_id": APP_ID,
                "client_secret": APP_SECRET,
                "fb_exchange_token": token,
            },
        )

    def user_token(self, long_lived: bool = True, **consent) -> str:
        resp = self.exchange(self.code(**consent))
        assert resp.status_code == 200, resp.get_json()
        token = resp.get_json()["access_token"]
        if long_lived:
            token = self.long_lived(token).get_json()["access_token"]
        return token

    def page_token(self, user_token: str, page_id: str = PAGE_1) -> str:
        resp = self.get(f"/v25.0/{page_id}", user_token, fields="access_token")
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()["access_token"]

    def connect(self, page_id: str = PAGE_1, **consent) -> tuple[str, str]:
        """(long-lived user token, page token)."""
        user = self.user_token(**consent)
        return user, self.page_token(user, page_id)

    # Graph
    def get(self, path: str, token: str | None = None, *, signed: bool = True, **params):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if token and signed:
            params.setdefault("appsecret_proof", proof(token))
        return self.client.get(path, query_string=params, headers=headers)

    def post(self, path: str, token: str | None = None, *, signed: bool = True, **data):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if token and signed:
            data.setdefault("appsecret_proof", proof(token))
        return self.client.post(path, data=data, headers=headers)

    def delete(self, path: str, token: str, **params):
        params.setdefault("appsecret_proof", proof(token))
        return self.client.delete(path, query_string=params, headers={"Authorization": f"Bearer {token}"})


def error_of(resp) -> dict:
    body = resp.get_json()
    assert "error" in body, body
    return body["error"]


@pytest.fixture
def make_meta(monkeypatch):
    monkeypatch.delenv("APP_ENV", raising=False)

    def factory(scenario: str = "one_page", **config) -> Meta:
        return Meta(create_app({"APP_ENV": "test", "SANDBOX_SCENARIO": scenario, **config}))

    return factory


@pytest.fixture
def meta(make_meta) -> Meta:
    return make_meta()


@pytest.fixture(scope="module")
def live():
    server = serve_in_thread("127.0.0.1", 0, {"APP_ENV": "test", "SANDBOX_SCENARIO": "one_page"})
    yield server
    server.stop()
