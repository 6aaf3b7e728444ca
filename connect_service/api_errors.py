"""Every error leaves the API in one shape: ``{"error_code", "message", "action"}``."""

from __future__ import annotations

import logging

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from connect_service.schemas import ErrorOut
from shared.errors import CATALOGUE, AppError, error_body
from shared.graph import GraphError, GraphTransportError
from shared.metrics import ERRORS

log = logging.getLogger(__name__)


def request_language() -> str:
    """Indonesian unless the caller prefers English: the best-ranked ``id*`` or ``en*`` tag wins.

    (werkzeug's ``best_match`` prefers any exact match, so ``id-ID, en;q=0.5`` would read English.)
    """
    for tag, quality in request.accept_languages:  # best first
        primary = tag.replace("_", "-").split("-")[0].lower()  # en_US: some clients use "_"
        if primary in ("id", "en") and quality > 0:  # q=0: "not this one"
            return primary
    return "id"


def error_response(error_code: str, status: int | None = None, fields: dict[str, list[str]] | None = None) -> Response:
    body = ErrorOut().dump(error_body(error_code, request_language(), fields))
    ERRORS.labels(error_code=error_code).inc()
    response = jsonify(body)
    response.status_code = status or CATALOGUE[error_code].http_status
    return response


def _http_error_code(status: int) -> str:
    if status == 401:
        return "not_authenticated"
    if status == 403:
        return "forbidden"
    if status == 404:
        return "not_found"
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "internal_error"
    return "bad_request"


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(AppError)
    def handle_app_error(exc: AppError) -> Response:
        return error_response(exc.error_code, exc.http_status, exc.fields)

    @app.errorhandler(GraphError)
    def handle_graph_error(exc: GraphError) -> Response:
        log.warning(
            "Meta answered an error: code=%s subcode=%s http=%s fbtrace_id=%s",
            exc.code,
            exc.subcode,
            exc.http_status,
            exc.fbtrace_id,
        )
        return error_response(exc.error_code)

    @app.errorhandler(GraphTransportError)
    def handle_graph_transport_error(exc: GraphTransportError) -> Response:
        log.warning("Meta did not answer: %s", exc)
        return error_response("meta_unavailable")

    @app.errorhandler(HTTPException)
    def handle_http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        response = error_response(_http_error_code(status), status if status < 500 else 500)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # RFC 9110: a 405 names what is allowed
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception) -> Response:
        from connect_service.extensions import db

        db.session.rollback()
        log.exception("unhandled error (request_id=%s)", getattr(g, "request_id", None))
        return error_response("internal_error", 500)
