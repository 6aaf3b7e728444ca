"""``GET /``: the Social Connect page (DESIGN §10), plain HTML + JS, no build step.

The page only talks to the public ``/api/meta/*`` endpoints with the seller's
session cookie. It carries the error catalogue (messages and actions, no secrets)
so that it can explain an ``?error_code=`` it finds after Meta's redirect back.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, redirect, render_template, request

from connect_service.auth import decode_session
from connect_service.extensions import services
from shared.errors import CATALOGUE, AppError

bp = Blueprint("web", __name__)

DEMO_LOGIN_PATH = "/demo/login"


def _has_session() -> bool:
    settings = services().settings
    cookie = request.cookies.get(settings.session_cookie)
    if not cookie:
        return False
    try:
        decode_session(cookie, settings.session_secret)
    except AppError:
        return False
    return True


def error_catalogue() -> dict[str, dict]:
    """What the page needs to explain an error code: messages and the action."""
    return {
        code: {"message_id": spec.message_id, "message_en": spec.message_en, "action": spec.action}
        for code, spec in CATALOGUE.items()
    }


@bp.get("/")
def social_connect():
    """The Social Connect page; in the demo a visitor without a session signs in first."""
    is_demo = services().settings.app_env == "demo"
    if is_demo and not _has_session():
        # Keep ?meta_status=… for after the sign-in.
        target = request.full_path.rstrip("?")
        return redirect(DEMO_LOGIN_PATH + ("?" + urlencode({"next": target}) if target != "/" else ""), code=302)
    response = render_template(
        "social_connect.html",
        catalogue=error_catalogue(),
        is_demo=is_demo,
        demo_login_url=DEMO_LOGIN_PATH if is_demo else None,
    )
    return (
        response,
        200,
        {
            "Content-Security-Policy": (
                "default-src 'self'; script-src 'self'; style-src 'self'; "
                "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                "base-uri 'none'; form-action 'self'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )
