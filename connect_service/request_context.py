"""Per-request id, carried into log lines, audit events and the ``X-Request-ID`` header."""

from __future__ import annotations

import random
import re
import uuid

from flask import Flask, Response, g, request

from shared.audit import RequestInfo
from shared.errors import AppError
from shared.log import reset_log_context, set_log_context

VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def new_request_id() -> str:
    """A version-4 UUID as hex, drawn without a system call: ``uuid4`` reads ``os.urandom``, and in
    a busy threaded worker every call that lets go of the GIL waits to get it back. A request id
    correlates log lines; it is no secret (callers may send their own)."""
    return uuid.UUID(int=random.getrandbits(128), version=4).hex


def init_request_context(app: Flask) -> None:
    @app.before_request
    def refuse_nul_in_url() -> None:
        # PostgreSQL cannot store NUL: refuse it at the door rather than fail deep inside.
        if "\x00" in request.path or b"%00" in request.query_string or "\x00" in request.query_string.decode("latin-1"):
            raise AppError("bad_request", detail="NUL in the URL")

    @app.before_request
    def assign_request_id() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if VALID_REQUEST_ID.match(incoming) else new_request_id()
        g.log_token = set_log_context(request_id=g.request_id)

    @app.after_request
    def expose_request_id(response: Response) -> Response:
        if "request_id" in g:
            response.headers["X-Request-ID"] = g.request_id
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.teardown_request
    def clear_log_context(_exc: BaseException | None) -> None:
        token = g.pop("log_token", None)
        if token is not None:
            try:
                reset_log_context(token)
            except ValueError:  # created in another context; nothing to undo here
                pass


def request_info() -> RequestInfo:
    return RequestInfo(request_id=g.get("request_id"), ip=request.remote_addr)
