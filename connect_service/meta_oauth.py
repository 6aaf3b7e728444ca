"""Meta OAuth with Authlib: the dialog URL, the code exchange, and state kept in Redis.

Authlib would keep state in the Flask session and cannot bind it to a user
(DESIGN §11), so the state is generated here, stored in Redis under the user's
key for ten minutes, and consumed atomically with GETDEL.
"""

from __future__ import annotations

import hashlib
import re
import secrets

import requests
from authlib.integrations.flask_client import OAuth
from flask import Flask, current_app
from redis import Redis

from shared.graph import GraphTransportError, error_from_response
from shared.redis_conn import key
from shared.settings import Settings

STATE_TTL_SECONDS = 600
CLIENT_NAME = "meta"


def _raise_meta_token_errors(response: requests.Response) -> requests.Response:
    """Turn Meta's token-endpoint error body into a GraphError before Authlib parses it."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code >= 400 or (isinstance(payload, dict) and "error" in payload):
        raise error_from_response(response, payload)
    return response


def _meta_compliance_fix(session) -> None:
    session.register_compliance_hook("access_token_response", _raise_meta_token_errors)
    session.register_compliance_hook("refresh_token_response", _raise_meta_token_errors)


def init_oauth(app: Flask, settings: Settings) -> OAuth:
    """One OAuth registry per app (a module-level one would keep the first app's URLs)."""
    oauth = OAuth(app)
    oauth.register(
        CLIENT_NAME,
        client_id=settings.meta_app_id,
        client_secret=settings.meta_app_secret,
        authorize_url=f"{settings.meta_dialog_url}/{settings.meta_graph_version}/dialog/oauth",
        access_token_url=f"{settings.graph_base}/oauth/access_token",
        client_kwargs={
            "token_endpoint_auth_method": "client_secret_post",
            "default_timeout": (settings.graph_connect_timeout, settings.graph_read_timeout),
            "scope": ",".join(settings.meta_scopes),
        },
        compliance_fix=_meta_compliance_fix,
    )
    app.extensions["social_connect_oauth"] = oauth
    return oauth


def meta_client():
    return current_app.extensions["social_connect_oauth"].create_client(CLIENT_NAME)


def authorization_url(redirect_uri: str, state: str, *, rerequest: bool = False) -> str:
    """Meta's dialog URL; ``rerequest`` asks again for permissions the user declined before."""
    extra = {"auth_type": "rerequest"} if rerequest else {}
    return meta_client().create_authorization_url(redirect_uri, state=state, **extra)["url"]


def _token_call(timeout: tuple[float, float], **params) -> dict:
    try:
        return meta_client().fetch_access_token(timeout=timeout, **params)
    except requests.Timeout as exc:
        raise GraphTransportError(
            "token endpoint timed out", sent=not isinstance(exc, requests.ConnectTimeout)
        ) from None
    except requests.ConnectionError:
        raise GraphTransportError("token endpoint unreachable", sent=True) from None


def exchange_code(code: str, redirect_uri: str, timeout: tuple[float, float]) -> dict:
    """Code → short-lived user token. Codes are single use: never retried."""
    return _token_call(timeout, redirect_uri=redirect_uri, code=code)


def exchange_long_lived(short_token: str, timeout: tuple[float, float]) -> dict:
    """Short-lived → long-lived (~60 days) user token."""
    return _token_call(timeout, grant_type="fb_exchange_token", fb_exchange_token=short_token)


STATE_PATTERN = re.compile(r"[A-Za-z0-9_-]{32,128}")


def state_key(user_id: str, state: str) -> str:
    """The Redis key of a state: the user id is hashed, so no user id (say one holding
    ":") can spell another user's key, and the state itself holds no ":"."""
    return key("oauth_state", hashlib.sha256(user_id.encode()).hexdigest(), state)


class StateStore:
    """OAuth ``state`` values: random, per user, ten minutes, single use."""

    def __init__(self, redis: Redis):
        self.redis = redis

    def create(self, user_id: str) -> str:
        state = secrets.token_urlsafe(32)  # 256 bits
        self.redis.set(state_key(user_id, state), b"1", ex=STATE_TTL_SECONDS)
        return state

    def consume(self, user_id: str, state: str | None) -> bool:
        """True once for a live state of this user; a replay, a malformed state or another
        user's state is False (a malformed one without asking Redis)."""
        if not state or not STATE_PATTERN.fullmatch(state):
            return False
        return self.redis.getdel(state_key(user_id, state)) is not None
