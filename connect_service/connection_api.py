"""The seller's connection: ``GET /status`` and ``POST /disconnect``."""

from __future__ import annotations

from collections.abc import Hashable

from flask import Blueprint, Response, current_app

from connect_service.auth import current_caller, require_user
from connect_service.connections import active_connection, retire, revoke_grant
from connect_service.extensions import db, graph_client, services, status_reader
from connect_service.page_selection import SelectionStore
from connect_service.parsing import json_body
from connect_service.request_context import request_info
from connect_service.responses import answer, responds
from connect_service.schemas import NOT_CONNECTED, DisconnectOut, EmptyBody, StatusOut
from connect_service.status_read import NOT_CONNECTED_KEY, ConnectionState, StatusReader, answer_key
from shared.models import CONNECTED, DISCONNECTED
from shared.token_check import is_fresh, recheck_connection

bp = Blueprint("connection", __name__, url_prefix="/api/meta")


@bp.get("/status")
@responds(StatusOut)
@require_user
def status():
    """The stored state; a token not checked for ten minutes is re-checked first."""
    svc = services()
    user_id = current_caller().user_id
    reader = status_reader()
    if reader is not None:
        state = reader.active_connection(user_id)
        key = answer_key(state, svc.settings.token_check_max_age_seconds)
        if key is not None:
            return _remembered_answer(reader, key, state, svc.settings.token_check_max_age_seconds)
        # A connected token due for its re-check: the ORM path below, which may update the row.
    conn = active_connection(db.session, user_id)
    if conn is not None and conn.status == CONNECTED and not is_fresh(conn, svc.settings.token_check_max_age_seconds):
        _recheck(conn)
    if conn is None or conn.status == DISCONNECTED:
        return answer(StatusOut, NOT_CONNECTED)
    return answer(StatusOut, conn)


def _remembered_answer(reader: StatusReader, key: Hashable, state: ConnectionState | None, max_age: int) -> Response:
    """``answer(StatusOut, state)``, written once per distinct ``key`` (all it depends on)."""
    remembered = reader.answers.get(key)
    if remembered is not None:
        body, content_type = remembered
        return current_app.response_class(body, content_type=content_type)
    response = answer(StatusOut, NOT_CONNECTED if key == NOT_CONNECTED_KEY else state)
    if answer_key(state, max_age) == key:  # not crossing the 14 days (or the check's age) just now
        reader.answers.put(key, (response.get_data(), response.content_type))
    return response


def _recheck(conn) -> None:
    svc = services()
    timeout = svc.settings.status_check_timeout
    graph = graph_client(timeout=(min(timeout, svc.settings.graph_connect_timeout), timeout))
    recheck_connection(db.session(), svc, conn, graph=graph, info=request_info())


@bp.post("/disconnect")
@responds(DisconnectOut)
@require_user
def disconnect():
    """Revoke the grant (best effort), wipe the tokens, keep the row. Idempotent."""
    json_body(EmptyBody(), allow_empty=True)
    svc = services()
    user_id = current_caller().user_id
    conn = active_connection(db.session, user_id, for_update=True)
    if conn is not None:
        revoke_grant(db.session, graph_client(timeout=(svc.settings.graph_connect_timeout, 5.0)), svc.cipher, conn)
        retire(db.session, conn, reason="user_disconnected", info=request_info())
        db.session.commit()
    SelectionStore.of(svc).clear(user_id)
    return answer(DisconnectOut, {"disconnected": True, "status": "not_connected"})
