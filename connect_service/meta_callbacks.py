"""Meta's platform callbacks: deauthorize and data deletion (DESIGN §4).

Meta POSTs a form field ``signed_request`` = ``base64url(sig).base64url(payload)``,
signed with HMAC-SHA256 of the payload under the app secret.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets

from flask import Blueprint, jsonify, request, url_for
from sqlalchemy import select

from connect_service.connections import retire
from connect_service.extensions import db, services
from connect_service.request_context import request_info
from shared.audit import record_event
from shared.db import iso_z, utcnow
from shared.errors import AppError
from shared.models import DISCONNECTED, DataDeletionRequest, SocialConnection
from shared.tokens import wipe_tokens

bp = Blueprint("meta_callbacks", __name__, url_prefix="/api/meta")


def _b64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def parse_signed_request(value: str | None, app_secret: str) -> dict:
    """The verified payload; anything malformed or badly signed is ``bad_request``."""
    if not value or value.count(".") != 1:
        raise AppError("bad_request", detail="signed_request missing or malformed")
    encoded_sig, encoded_payload = value.split(".")
    try:
        signature = _b64url(encoded_sig)
        payload = json.loads(_b64url(encoded_payload))
    except (binascii.Error, ValueError):
        raise AppError("bad_request", detail="signed_request malformed") from None
    if not isinstance(payload, dict) or str(payload.get("algorithm", "")).upper() != "HMAC-SHA256":
        raise AppError("bad_request", detail="signed_request algorithm must be HMAC-SHA256")
    expected = hmac.new(app_secret.encode(), encoded_payload.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise AppError("bad_request", detail="signed_request signature does not verify")
    if not payload.get("user_id"):
        raise AppError("bad_request", detail="signed_request has no user_id")
    return payload


def _meta_user() -> str:
    return str(parse_signed_request(request.form.get("signed_request"), services().settings.meta_app_secret)
               ["user_id"])


@bp.post("/deauthorize")
def deauthorize():
    """The person removed the app on Facebook: their connections end, as a disconnect would."""
    meta_user_id = _meta_user()
    info = request_info()
    conns = db.session.scalars(select(SocialConnection).where(SocialConnection.meta_user_id == meta_user_id,
                                                              SocialConnection.status != DISCONNECTED)
                               .with_for_update()).all()
    for conn in conns:
        retire(db.session, conn, reason="deauthorized", info=info, event="deauthorized")
    db.session.commit()
    return jsonify(success=True)


@bp.post("/data-deletion")
def data_deletion():
    """Erase the person's tokens and Meta data from every connection, then say where to check."""
    meta_user_id = _meta_user()
    info = request_info()
    conns = db.session.scalars(select(SocialConnection).where(SocialConnection.meta_user_id == meta_user_id)
                               .with_for_update()).all()
    for conn in conns:
        if conn.status != DISCONNECTED:
            retire(db.session, conn, reason="data_deletion", info=info)
        wipe_tokens(conn)
        conn.meta_user_id = None
        conn.page_name = None
        conn.instagram_username = None
        conn.scopes_granted = []
    code = secrets.token_hex(10)
    db.session.add(DataDeletionRequest(confirmation_code=code, status="completed", connections_erased=len(conns),
                                       completed_at=utcnow()))
    record_event(db.session, "data_deletion_requested", detail={"confirmation_code": code,
                                                                "connections_erased": len(conns)},
                 request_id=info.request_id, ip=info.ip)
    db.session.commit()
    return jsonify(url=url_for("meta_callbacks.deletion_status", code=code, _external=True),
                   confirmation_code=code)


@bp.get("/data-deletion/<code>")
def deletion_status(code: str):
    """What happened to a data deletion request (the page Meta links the person to)."""
    found = db.session.get(DataDeletionRequest, code) if len(code) <= 40 else None
    if found is None:
        raise AppError("not_found")
    return jsonify(confirmation_code=found.confirmation_code, status=found.status,
                   requested_at=iso_z(found.requested_at), completed_at=iso_z(found.completed_at))
