"""``GET /demo/login``: signs a demo seller in. Registered by the demo stack, only when ``APP_ENV=demo``."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import jwt
from flask import Blueprint, Flask, redirect, request
from werkzeug.wrappers import Response

from connect_service.extensions import services

bp = Blueprint("demo_login", __name__)

DEMO_USER = "demo-seller"
SESSION_HOURS = 12


def register(app: Flask) -> None:
    """Add ``/demo/login`` to a connect service app; refused unless it runs with ``APP_ENV=demo``.

    The page signs anyone in as any seller, so it must never reach a production app.
    """
    with app.app_context():
        app_env = services().settings.app_env
    if app_env != "demo":
        raise RuntimeError("/demo/login is registered only when APP_ENV=demo")
    app.register_blueprint(bp)


def demo_session(user_id: str = DEMO_USER) -> str:
    settings = services().settings
    claims = {"sub": user_id, "exp": int(time.time()) + SESSION_HOURS * 3600, "name": "Demo Seller"}
    return jwt.encode(claims, settings.session_secret, algorithm="HS256")


def _local_path(value: str | None) -> str:
    """Only a path on this service ("/…"); anything else falls back to "/" (no open redirect).

    Browsers drop tabs and newlines anywhere in a URL and read a backslash as "/",
    so "/%09/evil.test" or "/%5Cevil.test" would leave the site: control characters
    and backslashes are refused outright, and the rest must not name a scheme or host.
    """
    if not value or not value.startswith("/") or value[1:2] == "/":
        return "/"
    if "\\" in value or not value.isprintable() or value != value.strip():
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


@bp.get("/demo/login")
def login() -> Response:
    """Set the session cookie as Resellio would (HttpOnly, SameSite=Lax) and go to the page."""
    user_id = request.args.get("user", DEMO_USER)
    if not user_id.replace("-", "").isalnum() or len(user_id) > 64:
        user_id = DEMO_USER
    response = redirect(_local_path(request.args.get("next")), code=302)
    response.set_cookie(
        services().settings.session_cookie,
        demo_session(user_id),
        httponly=True,
        samesite="Lax",
        secure=request.is_secure,
        max_age=SESSION_HOURS * 3600,
        path="/",
    )
    return response
