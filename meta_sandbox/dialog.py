"""The OAuth dialog (consent page) and ``/oauth/access_token``."""

from __future__ import annotations

import re
import time
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, current_app, redirect, render_template, request

from .auth import params, same
from .calls import get_world, run_graph
from .errors import GraphError, token_error
from .routing import graph_route
from .state import CODE_TTL_SECONDS, LONG_LIVED_SECONDS, SHORT_LIVED_SECONDS, World

bp = Blueprint("dialog", __name__)

SCOPE_LABELS = {
    "public_profile": "Your name and profile picture",
    "pages_show_list": "Show a list of the Pages you manage",
    "pages_read_engagement": "Read content posted on your Pages",
    "pages_manage_posts": "Create, edit and delete your Page posts",
    "instagram_basic": "Access profile and posts of the Instagram accounts linked to your Pages",
    "instagram_content_publish": "Create posts on the Instagram accounts linked to your Pages",
    "business_management": "Manage your business portfolio",
}


def split_scopes(value: str | None) -> list[str]:
    """Meta accepts comma- or space-separated scopes."""
    seen: list[str] = []
    for scope in re.split(r"[,\s]+", value or ""):
        if scope and scope not in seen:
            seen.append(scope)
    return seen


def with_query(url: str, pairs: list[tuple[str, str]], fragment: str = "") -> str:
    """Append ``pairs`` to ``url`` (``&`` when it already has a query)."""
    base = url.split("#", 1)[0]
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}{urlencode(pairs)}{fragment}"


def _dialog_problem(client_id: str | None, redirect_uri: str | None) -> str | None:
    if not client_id or not same(client_id, current_app.config["SANDBOX_APP_ID"]):
        return f"Invalid App ID: the app asking to connect is not known to the sandbox (client_id={client_id!r})."
    parts = urlsplit(redirect_uri or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "URL blocked: the redirect_uri is missing or not an absolute http(s) URL."
    return None


def _error_page(message: str):
    return render_template("dialog_error.html", message=message), 400


@graph_route(bp, "/dialog/oauth", methods=["GET"])
def consent():
    """The consent page: a checkbox per permission and per Page."""
    args = request.args
    problem = _dialog_problem(args.get("client_id"), args.get("redirect_uri"))
    if problem:
        return _error_page(problem)
    if args.get("response_type", "code") != "code":
        return _error_page("The sandbox only supports response_type=code.")
    scopes = split_scopes(args.get("scope"))
    world = get_world()
    with world.lock:
        declined = world.scenario.declined_scopes
        pages = list(world.pages.values())
        user_name = world.user_name
    return render_template(
        "consent.html",
        app_name=current_app.config["SANDBOX_APP_NAME"],
        user_name=user_name,
        client_id=args["client_id"],
        redirect_uri=args["redirect_uri"],
        state=args.get("state", ""),
        scope=",".join(scopes),
        permissions=[{"scope": s, "label": SCOPE_LABELS.get(s, s), "checked": s not in declined} for s in scopes],
        pages=pages,
    )


@graph_route(bp, "/dialog/oauth", methods=["POST"])
def consent_answer():
    """Continue → ``?code=…&state=…``; Cancel → Meta's ``access_denied`` redirect."""
    form = request.form
    client_id, redirect_uri = form.get("client_id"), form.get("redirect_uri")
    problem = _dialog_problem(client_id, redirect_uri)
    if problem:
        return _error_page(problem)
    state = form.get("state")
    state_pair = [("state", state)] if state is not None else []
    if form.get("action", "continue") == "cancel":
        return redirect(
            with_query(
                redirect_uri,
                [
                    ("error", "access_denied"),
                    ("error_code", "200"),
                    ("error_description", "Permissions error"),
                    ("error_reason", "user_denied"),
                    *state_pair,
                ],
                "#_=_",
            ),
            302,
        )
    requested = split_scopes(form.get("scope"))
    ticked = [s for s in form.getlist("permissions") if s in requested]
    world = get_world()
    with world.lock:
        grant = world.apply_consent(requested, ticked, form.getlist("pages"))
        code = world.new_code(redirect_uri, grant)
    return redirect(with_query(redirect_uri, [("code", code.value), *state_pair]), 302)


# --- token endpoint -------------------------------------------------------------


@graph_route(bp, "/oauth/access_token", methods=["GET", "POST"])
def access_token():
    world = get_world()
    return run_graph("access_token", lambda: _access_token(world))


def _access_token(world: World) -> dict:
    cfg = current_app.config
    p = params()
    if not same(str(p.get("client_id") or ""), cfg["SANDBOX_APP_ID"]):
        raise GraphError("Error validating application. Invalid application ID.", 101)
    secret = p.get("client_secret")
    if not secret:
        raise GraphError("Missing client_secret parameter.", 1)
    if not same(str(secret), cfg["SANDBOX_APP_SECRET"]):
        raise GraphError("Error validating client secret.", 1)
    grant_type = p.get("grant_type") or "authorization_code"
    if grant_type == "authorization_code":
        return _exchange_code(world, p)
    if grant_type == "fb_exchange_token":
        return _exchange_long_lived(world, p)
    if grant_type == "client_credentials":
        return {"access_token": f"{cfg['SANDBOX_APP_ID']}|{cfg['SANDBOX_APP_SECRET']}", "token_type": "bearer"}
    raise GraphError(f"Unsupported grant_type: {grant_type}", 100)


def _exchange_code(world: World, p: dict) -> dict:
    if not p.get("redirect_uri"):
        raise GraphError("Missing redirect_uri parameter.", 100)
    if not p.get("code"):
        raise GraphError("Missing authorization code", 100)
    code = world.codes.get(str(p["code"]))
    if code is None or not code.valid:
        raise GraphError("Invalid verification code format.", 100)
    if code.used:
        raise GraphError("This authorization code has been used.", 100, subcode=36009)
    if time.time() - code.created_at > CODE_TTL_SECONDS:
        raise GraphError("This authorization code has expired.", 100, subcode=36007)
    if str(p["redirect_uri"]) != code.redirect_uri:
        raise GraphError(
            "Error validating verification code. Please make sure your "
            "redirect_uri is identical to the one you used in the OAuth "
            "dialog request",
            100,
            subcode=36008,
        )
    code.used = True
    tok = world.new_user_token(code.user_id, long_lived=False)
    return {"access_token": tok.value, "token_type": "bearer", "expires_in": SHORT_LIVED_SECONDS}


def _exchange_long_lived(world: World, p: dict) -> dict:
    raw = p.get("fb_exchange_token")
    if not raw:
        raise GraphError("Missing fb_exchange_token parameter.", 100)
    tok = world.tokens.get(str(raw))
    if tok is None:
        raise token_error(467)
    problem = world.token_problem(tok)
    if problem:
        raise token_error(problem, tok.expires_at, current_app.config["SANDBOX_APP_ID"])
    if tok.kind != "user":
        raise GraphError("(#100) fb_exchange_token must be a user access token", 100)
    long_tok = world.new_user_token(tok.user_id, long_lived=True)
    return {"access_token": long_tok.value, "token_type": "bearer", "expires_in": LONG_LIVED_SECONDS}
