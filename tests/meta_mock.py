"""A requests-mock stand-in for the Graph API endpoints of the connect flow."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

from shared.settings import DEFAULT_SCOPES
from tests.conftest import APP_SECRET, GRAPH_URL

BASE = f"{GRAPH_URL}/v25.0"
META_USER_ID = "10150000000000001"
ADMIN_TASKS = ["ANALYZE", "ADVERTISE", "MODERATE", "CREATE_CONTENT", "MANAGE"]


def make_token(kind: str) -> str:
    return f"EAA{kind}{secrets.token_hex(20)}"


@dataclass
class FakePage:
    id: str
    name: str
    ig_id: str | None = None
    ig_username: str | None = None
    tasks: list[str] = field(default_factory=lambda: list(ADMIN_TASKS))
    token: str = field(default_factory=lambda: make_token("page"))

    def as_graph(self) -> dict:
        body: dict[str, object] = {"id": self.id, "name": self.name, "access_token": self.token, "tasks": self.tasks}
        if self.ig_id:
            body["instagram_business_account"] = {"id": self.ig_id, "username": self.ig_username}
        return body


def page(n: int, *, ig: bool = True, admin: bool = True) -> FakePage:
    return FakePage(
        id=f"10{n:013d}",
        name=f"Toko {n}",
        ig_id=f"1784{n:013d}" if ig else None,
        ig_username=f"toko{n}" if ig else None,
        tasks=list(ADMIN_TASKS) if admin else ["ANALYZE", "ADVERTISE"],
    )


class MetaMock:
    """Registers the Graph endpoints on a requests-mock ``Mocker``; every secret it hands out is kept."""

    def __init__(self, mocker, pages: list[FakePage] | None = None, page_size: int = 25):
        self.m = mocker
        self.pages = pages if pages is not None else [page(1)]
        self.page_size = page_size
        self.code = "AQD" + secrets.token_urlsafe(48)
        self.short_token = make_token("short")
        self.long_token = make_token("long")
        self.permissions = {scope: "granted" for scope in DEFAULT_SCOPES}
        self.token_valid = True
        self.debug_error: dict | None = None  # debug_token's data.error when the token is invalid
        self.debug_scopes = list(DEFAULT_SCOPES)
        self.granular_scopes: list[dict] | None = None  # debug_token's granular_scopes, when set
        self.revoked = False
        self._install()

    # -- secrets a leak check looks for --
    @property
    def secrets(self) -> list[str]:
        return [self.code, self.short_token, self.long_token, APP_SECRET] + [p.token for p in self.pages]

    def _install(self) -> None:
        m = self.m
        m.post(f"{BASE}/oauth/access_token", json=self._token_endpoint)
        m.get(f"{BASE}/me", json={"id": META_USER_ID, "name": "Sari Reseller"})
        m.get(
            f"{BASE}/me/permissions",
            json=lambda r, c: {"data": [{"permission": k, "status": v} for k, v in self.permissions.items()]},
        )
        m.get(f"{BASE}/me/accounts", json=self._accounts)
        m.get(f"{BASE}/debug_token", json=self._debug_token)
        m.get(re.compile(rf"^{re.escape(BASE)}/(\d+)(\?.*)?$"), json=self._page_lookup)
        m.delete(re.compile(rf"^{re.escape(BASE)}/(\d+)/permissions(\?.*)?$"), json=self._revoke)

    def _token_endpoint(self, request, context):
        body = parse_qs(request.text or "")
        if body.get("client_secret") != [APP_SECRET]:
            context.status_code = 400
            return {"error": {"message": "Error validating client secret.", "type": "OAuthException", "code": 1}}
        if body.get("grant_type") == ["fb_exchange_token"]:
            assert body.get("fb_exchange_token") == [self.short_token]
            return {"access_token": self.long_token, "token_type": "bearer", "expires_in": 5183944}
        if body.get("code") != [self.code]:
            context.status_code = 400
            return {
                "error": {
                    "message": "This authorization code has been used.",
                    "type": "OAuthException",
                    "code": 100,
                    "error_subcode": 36009,
                }
            }
        return {"access_token": self.short_token, "token_type": "bearer", "expires_in": 5400}

    def _accounts(self, request, context):
        query = parse_qs(urlsplit(request.url).query)
        offset = int(query.get("after", ["0"])[0])
        chunk = self.pages[offset : offset + self.page_size]
        body = {
            "data": [p.as_graph() for p in chunk],
            "paging": {"cursors": {"before": str(offset), "after": str(offset + len(chunk))}},
        }
        if offset + len(chunk) < len(self.pages):
            # Like Meta: an absolute URL that carries the access token.
            body["paging"]["next"] = f"{BASE}/me/accounts?" + urlencode(
                {
                    "access_token": self.long_token,
                    "fields": query.get("fields", [""])[0],
                    "limit": self.page_size,
                    "after": offset + len(chunk),
                }
            )
        return body

    def _debug_token(self, request, context):
        query = parse_qs(urlsplit(request.url).query)
        token = query["input_token"][0]
        page = next((p for p in self.pages if p.token == token), None)
        now = int(time.time())
        return {
            "data": {
                "app_id": "1234567890",
                "type": "PAGE" if page else "USER",
                "is_valid": self.token_valid,
                "expires_at": 0,
                "data_access_expires_at": now + 90 * 86400,
                "scopes": self.debug_scopes,
                "user_id": META_USER_ID,
                **({"profile_id": page.id} if page else {}),
                **({"granular_scopes": self.granular_scopes} if self.granular_scopes is not None else {}),
                **({"error": self.debug_error} if self.debug_error is not None else {}),
            }
        }

    def _page_lookup(self, request, context):
        page_id = urlsplit(request.url).path.rsplit("/", 1)[-1]
        page = next((p for p in self.pages if p.id == page_id), None)
        if page is None:
            context.status_code = 400
            return {
                "error": {
                    "message": "Unsupported get request.",
                    "type": "GraphMethodException",
                    "code": 100,
                    "error_subcode": 33,
                }
            }
        return page.as_graph()

    def _revoke(self, request, context):
        self.revoked = True
        return {"success": True}

    # -- checks --
    def calls(self, method: str, path: str) -> list:
        return [
            r
            for r in self.m.request_history
            if r.method == method and urlsplit(r.url).path == urlsplit(BASE).path + path
        ]


def proof_of(request) -> str | None:
    query = parse_qs(urlsplit(request.url).query)
    body = parse_qs(request.text or "") if isinstance(request.text, str) else {}
    values = query.get("appsecret_proof") or body.get("appsecret_proof")
    return values[0] if values else None


def assert_every_token_call_has_proof(history) -> int:
    """Every call made with a user or page token carries the right appsecret_proof."""
    checked = 0
    for request in history:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            continue
        token = auth[len("Bearer ") :]
        if "|" in token:  # the app token (debug_token) needs no proof
            continue
        expected = hmac.new(APP_SECRET.encode(), token.encode(), hashlib.sha256).hexdigest()
        assert proof_of(request) == expected, f"{request.method} {urlsplit(request.url).path} lacks a valid proof"
        assert "access_token=" not in request.url, "token must not travel in the URL"
        checked += 1
    return checked
