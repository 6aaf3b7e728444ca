"""Who is calling: the access token (header, query, form or JSON body), the
app token ``"{app_id}|{app_secret}"``, and the ``appsecret_proof`` check."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from flask import current_app, request

from .errors import GraphError, bad_proof, missing_proof, no_token, token_error
from .state import Token, World


def params() -> dict:
    """Query string, form body and JSON body merged (later wins)."""
    merged = dict(request.args.items())
    if request.form:
        merged.update(request.form.items())
    if request.is_json:
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            merged.update({k: v for k, v in body.items() if v is not None})
    return merged


def extract_token() -> str | None:
    """``Authorization: Bearer|OAuth <t>``, else ``access_token`` anywhere."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    token = params().get("access_token")
    return str(token) if token else None


def proof_for(token: str, secret: str) -> str:
    """Hex HMAC-SHA256 of the token keyed by the app secret."""
    return hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two strings."""
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))


@dataclass
class Caller:
    kind: str  # "app" | "user" | "page"
    raw: str
    token: Token | None = None

    @property
    def user_id(self) -> str | None:
        return self.token.user_id if self.token else None

    @property
    def page_id(self) -> str | None:
        return self.token.page_id if self.token else None


def is_app_token(raw: str) -> bool:
    cfg = current_app.config
    return same(raw, f"{cfg['SANDBOX_APP_ID']}|{cfg['SANDBOX_APP_SECRET']}")


def authenticate(world: World, *, me: bool = False) -> Caller:
    """Check the caller's token; user and page tokens need a valid appsecret_proof.

    Order: token present → known → appsecret_proof → still valid.
    """
    raw = extract_token()
    if not raw:
        raise no_token(me)
    if is_app_token(raw):
        return Caller("app", raw)
    if "|" in raw:
        raise GraphError("Invalid OAuth access token signature.", 190)
    tok = world.tokens.get(raw)
    if tok is None:
        raise token_error(467)
    proof = params().get("appsecret_proof")
    if not proof:
        raise missing_proof()
    if not same(str(proof), proof_for(raw, current_app.config["SANDBOX_APP_SECRET"])):
        raise bad_proof()
    problem = world.token_problem(tok)
    if problem:
        raise token_error(problem, tok.expires_at, current_app.config["SANDBOX_APP_ID"])
    return Caller(tok.kind, raw, tok)
