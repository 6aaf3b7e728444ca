"""``GET /demo/login``: signs a demo seller in. Registered only when ``APP_ENV=demo``."""
from __future__ import annotations

import time

import jwt
from flask import Blueprint, redirect, request

from connect_service.extensions import services

bp = Blueprint("demo_login", __name__)

DEMO_USER = "demo-seller"
SESSION_HOURS = 12


def demo_session(user_id: str = DEMO_USER) -> str:
    settings = services().settings
    claims = {"sub": user_id, "exp": int(time.time()) + SESSION_HOURS * 3600, "name": "Demo Seller"}
    return jwt.encode(claims, settings.session_secret, algorithm="HS256")


def _local_path(value: str | None) -> str:
    """Only a path on this service ("/…", never "//host" or a URL): no open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


@bp.get("/demo/login")
def login():
    """Set the session cookie as Resellio would (HttpOnly, SameSite=Lax) and go to the page."""
    user_id = request.args.get("user", DEMO_USER)
    if not user_id.replace("-", "").isalnum() or len(user_id) > 64:
        user_id = DEMO_USER
    response = redirect(_local_path(request.args.get("next")), code=302)
    response.set_cookie(services().settings.session_cookie, demo_session(user_id), httponly=True,
                        samesite="Lax", secure=request.is_secure, max_age=SESSION_HOURS * 3600, path="/")
    return response
