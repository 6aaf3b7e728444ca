"""``GET /api/meta/status`` answered again without going through Flask, when nothing but the
stored state could change the answer (DESIGN §13.4).

Flask's request machinery (request and app contexts, URL matching, the before/after/teardown
hooks, the response object) costs more than the rest of this answer together. So in front of
the app sits this WSGI layer, which answers a plain dashboard call only when the app itself
has already given that exact answer:

- the body, from the view's own answers (:class:`~connect_service.status_read.AnswerMemo`,
  keyed by the state read for this call): the view wrote it, through its schema;
- the headers, as the app sent them for a call from the same ``Origin`` (CORS depends on it
  alone for a GET), with this call's ``X-Request-ID`` and ``Content-Length``.

Anything else goes to Flask unchanged: another method or path, a query string, an
``Authorization`` header (bearer sessions and the scheduler), no session cookie or one that
does not verify (Flask answers 401), a connected token due for its re-check, an answer or an
origin not seen yet, any error.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.http import parse_cookie

from connect_service.auth import verified_sessions
from connect_service.extensions import SERVICES_KEY, STATUS_READER_KEY
from connect_service.request_context import VALID_REQUEST_ID, new_request_id
from connect_service.status_read import StatusReader, answer_key
from shared.services import Services

PATH = "/api/meta/status"
# A GET's CORS headers depend on the Origin alone, unless it asks about the private network.
_PRIVATE_NETWORK = "HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK"
_PER_CALL = {"content-length", "x-request-id"}

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class LearnedHeaders:
    """The headers of the app's 200 status answer, by Origin (bounded: callers choose Origins)."""

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._by_origin: OrderedDict[str | None, list[tuple[str, str]]] = OrderedDict()

    def get(self, origin: str | None) -> list[tuple[str, str]] | None:
        with self._lock:
            return self._by_origin.get(origin)

    def learn(self, origin: str | None, headers: list[tuple[str, str]]) -> None:
        with self._lock:
            self._by_origin[origin] = headers
            while len(self._by_origin) > self.capacity:
                self._by_origin.popitem(last=False)


class StatusFastPath:
    """WSGI middleware in front of the Flask app (``app.wsgi_app``)."""

    def __init__(self, app: Flask, wrapped: WSGIApp) -> None:
        self.app = app
        self.wrapped = wrapped
        self.headers = LearnedHeaders()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not self._eligible(environ):
            return self.wrapped(environ, start_response)
        origin = environ.get("HTTP_ORIGIN")
        answer = self._remembered(environ, origin)
        if answer is not None:
            body, headers = answer
            start_response("200 OK", headers)
            return [body]
        return self.wrapped(environ, self._learning(origin, start_response))

    @staticmethod
    def _eligible(environ: dict[str, Any]) -> bool:
        return (
            environ.get("PATH_INFO") == PATH
            and environ.get("REQUEST_METHOD") == "GET"
            and not environ.get("QUERY_STRING")
            and "HTTP_AUTHORIZATION" not in environ
            and _PRIVATE_NETWORK not in environ
        )

    def _remembered(self, environ: dict[str, Any], origin: str | None) -> tuple[bytes, list[tuple[str, str]]] | None:
        learned = self.headers.get(origin)
        reader: StatusReader | None = self.app.extensions.get(STATUS_READER_KEY)
        if learned is None or reader is None:
            return None
        settings = self._services().settings
        cookie = parse_cookie(environ.get("HTTP_COOKIE", "")).get(settings.session_cookie)
        if not cookie:
            return None
        try:
            user_id = verified_sessions.subject(cookie, settings.session_secret)
            key = answer_key(reader.active_connection(user_id), settings.token_check_max_age_seconds)
        except Exception:  # not_authenticated, or the database: Flask answers it (401, or the error's answer)
            return None
        remembered = reader.answers.get(key) if key is not None else None
        if remembered is None:
            return None
        body = remembered[0]
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if VALID_REQUEST_ID.match(incoming) else new_request_id()
        headers = [
            (name, str(len(body)) if lower == "content-length" else request_id if lower == "x-request-id" else value)
            for name, value, lower in ((name, value, name.lower()) for name, value in learned)
        ]
        return body, headers

    def _learning(self, origin: str | None, start_response: Callable[..., Any]) -> Callable[..., Any]:
        def learn_then_start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            names = {name.lower() for name, _ in headers}
            if status.startswith("200 ") and exc_info is None and _PER_CALL <= names:
                self.headers.learn(origin, list(headers))
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return learn_then_start

    def _services(self) -> Services:
        svc = self.app.extensions[SERVICES_KEY]
        assert isinstance(svc, Services)
        return svc


def install(app: Flask) -> None:
    app.wsgi_app = StatusFastPath(app, app.wsgi_app)  # type: ignore[method-assign]
