"""The OAuth connect flow: ``/connect``, ``/callback``, ``/pages``, ``/select-page``."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, jsonify, redirect, request, url_for
from sqlalchemy.exc import IntegrityError

from connect_service import meta_oauth
from connect_service.auth import authenticate, current_caller, require_user
from connect_service.connections import (
    MetaGrant,
    connect_page,
    needs_rerequest,
    page_choice,
    read_grant,
    read_page,
    usable_pages,
)
from connect_service.extensions import db, graph_client, services
from connect_service.page_selection import PendingSelection, SelectionStore
from connect_service.parsing import json_body, query_args
from connect_service.request_context import request_info
from connect_service.responses import answer, dump, responds
from connect_service.schemas import (
    CallbackQuery,
    ConnectedOut,
    ConnectOut,
    ConnectQuery,
    PagesOut,
    SelectionOut,
    SelectPageBody,
)
from shared.audit import record_event
from shared.errors import AppError
from shared.graph import GraphError, GraphTransportError
from shared.metrics import CONNECTS

log = logging.getLogger(__name__)

bp = Blueprint("connect_flow", __name__, url_prefix="/api/meta")


def redirect_uri() -> str:
    return services().settings.meta_redirect_uri or url_for("connect_flow.callback", _external=True)


def token_timeout() -> tuple[float, float]:
    settings = services().settings
    return (settings.graph_connect_timeout, settings.graph_read_timeout)


@bp.get("/connect")
@responds(ConnectOut)
@require_user
def connect():
    """Start OAuth: a fresh single-use state bound to this user, and Meta's dialog URL."""
    args = query_args(ConnectQuery())
    user_id = current_caller().user_id
    state = meta_oauth.StateStore(services().redis).create(user_id)
    oauth_url = meta_oauth.authorization_url(redirect_uri(), state, rerequest=needs_rerequest(db.session, user_id))
    info = request_info()
    record_event(db.session, "connect_started", user_id=user_id, request_id=info.request_id, ip=info.ip)
    db.session.commit()
    if args["redirect"]:
        return redirect(oauth_url, code=302)
    return answer(ConnectOut, {"oauth_url": oauth_url, "state": state})


def wants_json() -> bool:
    """JSON when ``application/json`` ranks at least as high as ``text/html``."""
    accept = request.accept_mimetypes
    if not accept:
        return True
    return accept["application/json"] >= accept["text/html"]


def dashboard_redirect(**params):
    parts = urlsplit(services().settings.dashboard_url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(k, v) for k, v in params.items() if v]
    return redirect(urlunsplit(parts._replace(query=urlencode(query))), code=302)


@bp.get("/callback")
@responds(ConnectedOut, SelectionOut)
def callback():
    """Meta's redirect back: JSON for API callers, a 302 to the dashboard for browsers."""
    user_id = None
    try:
        user_id = authenticate().user_id
        if user_id is None:
            raise AppError("forbidden")
        body = _complete_callback(user_id)
    except (AppError, GraphError, GraphTransportError) as exc:
        error_code = exc.error_code
        db.session.rollback()
        if user_id is not None:
            info = request_info()
            record_event(
                db.session,
                "connect_failed",
                user_id=user_id,
                error_code=error_code,
                detail=_failure_detail(exc),
                request_id=info.request_id,
                ip=info.ip,
            )
            db.session.commit()
        CONNECTS.labels(result=error_code).inc()
        if wants_json():
            raise
        return dashboard_redirect(meta_status="error", error_code=error_code)
    meta_status = "connected" if body["connected"] else "select_page"
    CONNECTS.labels(result=meta_status).inc()
    if wants_json():
        return jsonify(body)
    return dashboard_redirect(meta_status=meta_status)


def _failure_detail(exc: Exception) -> dict | None:
    if isinstance(exc, GraphError):
        return {"graph_code": exc.code, "graph_subcode": exc.subcode, "fbtrace_id": exc.fbtrace_id}
    if isinstance(exc, GraphTransportError):
        return {"transport": str(exc)}
    return None


def _complete_callback(user_id: str) -> dict:
    args = query_args(CallbackQuery())
    svc = services()
    if not meta_oauth.StateStore(svc.redis).consume(user_id, args["state"]):
        raise AppError("invalid_state")
    if args["error"]:
        raise AppError("permissions_missing")
    if not args["code"]:
        raise AppError("validation_error", fields={"code": ["Missing data for required field."]})
    # One budget for every Meta call of the callback, well inside gunicorn's timeout.
    graph = graph_client(budget_seconds=svc.settings.callback_budget_seconds)
    short = meta_oauth.exchange_code(args["code"], redirect_uri(), graph.current_timeout())
    long_lived = meta_oauth.exchange_long_lived(short["access_token"], graph.current_timeout())
    grant = read_grant(graph, long_lived["access_token"])
    pages = usable_pages(graph, grant)
    if not pages:
        raise AppError("not_admin_page")
    if len(pages) == 1:
        conn = _save_connection(graph, user_id, grant, pages[0], event="connected")
        SelectionStore.of(svc).clear(user_id)
        return dump(ConnectedOut, conn)
    choices = [page_choice(page) for page in pages]
    selection = PendingSelection(
        meta_user_id=grant.meta_user_id,
        pages=choices,
        scopes_granted=grant.scopes_granted,
        user_token=grant.user_token,
    )
    SelectionStore.of(svc).save(user_id, selection)
    return dump(SelectionOut, selection)


def _save_connection(graph, user_id: str, grant: MetaGrant, page: dict, *, event: str):
    """Store the connection; a concurrent connect of the same user is retried once."""
    svc = services()
    for attempt in (1, 2):
        try:
            conn = connect_page(
                db.session(),
                graph,
                svc.cipher,
                user_id=user_id,
                grant=grant,
                page=page,
                event=event,
                info=request_info(),
            )
            db.session.commit()
            return conn
        except IntegrityError:
            db.session.rollback()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@bp.get("/pages")
@responds(PagesOut)
@require_user
def pages():
    """The pending selection of a multi-page connect."""
    svc = services()
    selection = SelectionStore.of(svc).load(current_caller().user_id)
    if selection is None:
        raise AppError("selection_expired")
    return answer(PagesOut, selection)


@bp.post("/select-page")
@responds(ConnectedOut)
@require_user
def select_page():
    """Finish a multi-page connect with the chosen Page."""
    body = json_body(SelectPageBody())
    user_id = current_caller().user_id
    svc = services()
    store = SelectionStore.of(svc)
    selection = store.load(user_id)
    if selection is None:
        raise AppError("selection_expired")
    choice = selection.find(body["page_id"])
    if choice is None:
        raise AppError("page_not_found")
    if not choice.has_instagram:
        raise AppError("instagram_not_connected_to_page")
    grant = MetaGrant(
        meta_user_id=selection.meta_user_id, user_token=selection.user_token, scopes_granted=selection.scopes_granted
    )
    graph = graph_client(budget_seconds=svc.settings.callback_budget_seconds)
    try:
        page = read_page(graph, choice, grant)
        conn = _save_connection(graph, user_id, grant, page, event="page_selected")
    except (AppError, GraphError, GraphTransportError) as exc:
        # Recorded like a failed callback, so the next connect knows (auth_type=rerequest).
        db.session.rollback()
        info = request_info()
        record_event(
            db.session,
            "connect_failed",
            user_id=user_id,
            error_code=exc.error_code,
            detail=_failure_detail(exc),
            request_id=info.request_id,
            ip=info.ip,
        )
        db.session.commit()
        raise
    store.clear(user_id)
    return answer(ConnectedOut, conn)
