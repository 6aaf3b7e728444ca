"""Meta's platform callbacks: deauthorize and data deletion (DESIGN §4, §13.1).

Meta POSTs a form field ``signed_request`` = ``base64url(sig).base64url(payload)``,
signed with HMAC-SHA256 of the payload under the app secret. A callback counts only
while fresh (``issued_at`` at most an hour old, at most five minutes ahead), acts once
(a receipt per SHA-256 of the exact string, kept in the database), and never touches a
connection made after it was issued.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Blueprint, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from connect_service.connect_flow import wants_json
from connect_service.connections import retire
from connect_service.extensions import db, services
from connect_service.meta_erasure import (
    connected_after,
    connections_of,
    erase_audit_details,
    erase_connection,
    erase_posts,
    erase_webhook_events,
    meta_user_hash,
)
from connect_service.page_selection import SelectionStore
from connect_service.request_context import request_info
from connect_service.responses import answer, responds
from connect_service.schemas import DeauthorizeOut, DeletionOut, DeletionStatusOut
from shared.audit import record_event
from shared.db import utcnow
from shared.errors import AppError
from shared.models import DISCONNECTED, DataDeletionRequest, MetaCallbackReceipt, SocialConnection

bp = Blueprint("meta_callbacks", __name__, url_prefix="/api/meta")

MAX_AGE_SECONDS = 3600
MAX_AHEAD_SECONDS = 300
DEAUTHORIZE = "deauthorize"
DATA_DELETION = "data_deletion"


def _b64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def parse_signed_request(value: str | None, app_secret: str, *, now: float | None = None) -> dict:
    """The verified, fresh payload; anything malformed, badly signed or stale is ``bad_request``."""
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
    if (
        not payload.get("user_id")
        or not isinstance(payload["user_id"], (str, int))
        or isinstance(payload["user_id"], bool)
    ):
        raise AppError("bad_request", detail="signed_request has no user_id")
    issued_at = payload.get("issued_at")
    if isinstance(issued_at, bool) or not isinstance(issued_at, (int, float)) or not math.isfinite(issued_at):
        raise AppError("bad_request", detail="signed_request has no issued_at")
    now = time.time() if now is None else now
    if now - issued_at > MAX_AGE_SECONDS or issued_at - now > MAX_AHEAD_SECONDS:
        raise AppError("bad_request", detail="signed_request is not fresh")
    return payload


@dataclass
class Callback:
    """One verified delivery: who it is about, when Meta issued it, and its receipt key."""

    meta_user_id: str
    issued_at: datetime
    request_hash: str

    @property
    def issued_epoch(self) -> int:
        return int(self.issued_at.timestamp())


def _callback() -> Callback:
    raw = request.form.get("signed_request") or ""
    payload = parse_signed_request(raw, services().settings.meta_app_secret)
    return Callback(
        meta_user_id=str(payload["user_id"]),
        issued_at=datetime.fromtimestamp(int(payload["issued_at"]), tz=UTC),
        # The signed payload, not the whole string: base64 decoding forgives stray characters
        # in the signature, so the same request can be re-spelled, but not its signed part.
        request_hash=hashlib.sha256(raw.split(".")[1].encode()).hexdigest(),
    )


def _receipt(kind: str, callback: Callback, result: dict) -> tuple[MetaCallbackReceipt, bool]:
    """The receipt of this delivery, added to the open transaction, and whether it is the first.

    The primary key (kind, hash) serialises two identical deliveries: the second insert
    waits for the first transaction and then fails, so only one of them acts; the repeat
    gets the earlier receipt (with its result) back.
    """
    receipt = MetaCallbackReceipt(
        kind=kind, request_hash=callback.request_hash, issued_at=callback.issued_at, result=result
    )
    db.session.add(receipt)
    try:
        db.session.flush()
        return receipt, True
    except IntegrityError:
        db.session.rollback()
        earlier = db.session.get(MetaCallbackReceipt, (kind, callback.request_hash))
        if earlier is None:  # pragma: no cover - the row that collided cannot vanish
            raise
        return earlier, False


def _erase_selections(callback: Callback, user_ids) -> int:
    svc = services()
    return SelectionStore.of(svc).clear_for_meta_user(
        callback.meta_user_id, user_ids, saved_not_after=callback.issued_epoch
    )


@bp.post("/deauthorize")
@responds(DeauthorizeOut)
def deauthorize():
    """The person removed the app on Facebook: their connections end, as a disconnect would.

    A connection made after the callback was issued is a newer grant and stays.
    """
    callback = _callback()
    receipt, first = _receipt(DEAUTHORIZE, callback, {})
    if not first:
        return answer(DeauthorizeOut, {"success": True})
    info = request_info()
    conns = db.session.scalars(
        select(SocialConnection)
        .where(SocialConnection.meta_user_id == callback.meta_user_id, SocialConnection.status != DISCONNECTED)
        .order_by(SocialConnection.id)
        .with_for_update()
    ).all()
    ended = [conn for conn in conns if not connected_after(conn, callback.issued_at)]
    for conn in ended:
        retire(db.session, conn, reason="deauthorized", info=info, event="deauthorized")
    # The pending selection holds a user token of the grant that was just removed.
    selections = _erase_selections(callback, {conn.user_id_resellio for conn in ended})
    receipt.result = {
        "connections_disconnected": len(ended),
        "connections_kept": len(conns) - len(ended),
        "selections_erased": selections,
    }
    db.session.commit()
    return answer(DeauthorizeOut, {"success": True})


def _deletion_answer(code: str):
    url = url_for("meta_callbacks.deletion_status", code=code, _external=True)
    return answer(DeletionOut, {"url": url, "confirmation_code": code})


@bp.post("/data-deletion")
@responds(DeletionOut)
def data_deletion():
    """Erase the person's tokens and Meta data, then say where to check (once per request)."""
    callback = _callback()
    code = secrets.token_hex(10)
    receipt, first = _receipt(DATA_DELETION, callback, {"confirmation_code": code})
    if not first:
        return _deletion_answer(receipt.result["confirmation_code"])
    info = request_info()
    hashed = meta_user_hash(services().settings.meta_app_secret, callback.meta_user_id)
    erased = []
    for conn in connections_of(db.session, callback.meta_user_id, hashed):
        if connected_after(conn, callback.issued_at):
            continue  # connected again after asking: a new grant, not part of this request
        if conn.status != DISCONNECTED:
            retire(db.session, conn, reason="data_deletion", info=info)
        erase_connection(conn, hashed)
        erased.append(conn)
    ids = [conn.id for conn in erased]
    db.session.flush()
    erase_posts(db.session, ids)
    erase_audit_details(db.session, ids)
    erase_webhook_events(db.session, ids)
    selections = _erase_selections(callback, {conn.user_id_resellio for conn in erased})
    db.session.add(
        DataDeletionRequest(
            confirmation_code=code, status="completed", connections_erased=len(ids), completed_at=utcnow()
        )
    )
    receipt.result = {"confirmation_code": code, "connections_erased": len(ids), "selections_erased": selections}
    record_event(
        db.session,
        "data_deletion_requested",
        detail={"confirmation_code": code, "connections_erased": len(ids)},
        request_id=info.request_id,
        ip=info.ip,
    )
    db.session.commit()
    return _deletion_answer(code)


STATUS_LABELS = {"completed": "Selesai", "pending": "Sedang diproses"}


def _shown_time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%d-%m-%Y %H:%M UTC") if value else None


@bp.get("/data-deletion/<code>")
@responds(DeletionStatusOut)
def deletion_status(code: str):
    """What happened to a data deletion request: a plain page for a browser, JSON otherwise."""
    found = db.session.get(DataDeletionRequest, code) if len(code) <= 40 else None
    if wants_json():
        if found is None:
            raise AppError("not_found")
        response = answer(DeletionStatusOut, found)
        response.vary.add("Accept")
        return response
    page = render_template(
        "data_deletion_status.html",
        found=found,
        status_label=STATUS_LABELS.get(found.status, found.status) if found else None,
        requested_at=_shown_time(found.requested_at) if found else None,
        completed_at=_shown_time(found.completed_at) if found else None,
    )
    return (
        page,
        200 if found else 404,
        {
            "Content-Type": "text/html; charset=utf-8",
            "Content-Security-Policy": (
                "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Vary": "Accept",
        },
    )
