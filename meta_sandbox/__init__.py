"""Meta sandbox: a local stand-in for Meta's Graph API and OAuth dialog.

``create_app(config)`` builds the Flask app; ``serve_in_thread(host, port,
config)`` runs it in-process; ``python -m meta_sandbox`` runs it standalone.
It refuses to run unless ``APP_ENV`` is ``demo`` or ``test`` (unset counts as production).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask, Response
from flask.json.provider import DefaultJSONProvider
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

if TYPE_CHECKING:
    from .server import SandboxServer

DEFAULTS = {
    "SANDBOX_APP_ID": "sandbox-app-id",
    "SANDBOX_APP_SECRET": "sandbox-app-secret",
    "SANDBOX_APP_NAME": "Sandbox App",
    "SANDBOX_SCENARIO": "one_page",
    "SANDBOX_CONTAINER_DELAY": 0.0,
    "SANDBOX_VIDEO_DELAY": 2.0,
    "SANDBOX_LATENCY_MS": 0,
    "SANDBOX_QUOTA_TOTAL": 100,
    "SANDBOX_DEFAULT_VERSION": "v25.0",
    "SANDBOX_PUBLIC_URL": None,
    "SANDBOX_UPLOAD_URL": None,
}
_TYPES = {
    "SANDBOX_CONTAINER_DELAY": float,
    "SANDBOX_VIDEO_DELAY": float,
    "SANDBOX_LATENCY_MS": int,
    "SANDBOX_QUOTA_TOTAL": int,
}


class _InOrderJSON(DefaultJSONProvider):
    """Bodies keep the key order they were built in, as Meta's do."""

    sort_keys = False


class SandboxRefused(RuntimeError):
    """Raised when the sandbox is asked to run outside demo and test."""


ALLOWED_ENVS = ("demo", "test")


def require_demo_or_test(config: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`SandboxRefused` unless ``APP_ENV`` is ``demo`` or ``test``.

    ``APP_ENV`` is read from ``config`` and from the environment; every value
    given must be allowed, and none at all counts as production (the default).
    """
    given = [
        str(v).strip().lower()
        for v in ((config or {}).get("APP_ENV"), os.environ.get("APP_ENV"))
        if v is not None and str(v).strip()
    ]
    env = next((v for v in given if v not in ALLOWED_ENVS), None) if given else "production (APP_ENV unset)"
    if env is not None:
        raise SandboxRefused(
            f"The Meta sandbox runs only with APP_ENV=demo or APP_ENV=test, not {env}: "
            "it fakes Meta and accepts any consent."
        )


def config_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``SANDBOX_*`` settings found in the environment, typed."""
    environ = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for key in DEFAULTS:
        if environ.get(key) not in (None, ""):
            out[key] = _TYPES.get(key, str)(environ[key])
    return out


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the sandbox app with ``DEFAULTS`` overridden by ``config``."""
    require_demo_or_test(config)
    from . import admin, content, dialog, graph, media, publishing, routing
    from .errors import GraphError, unknown_error
    from .scenarios import SCENARIOS
    from .state import World

    app = Flask(__name__, static_folder=None)
    app.json = _InOrderJSON(app)
    app.config.update(DEFAULTS)
    app.config.update(config or {})
    for key, cast in _TYPES.items():
        app.config[key] = cast(app.config[key])
    if app.config["SANDBOX_SCENARIO"] not in SCENARIOS:
        raise ValueError(
            f"unknown SANDBOX_SCENARIO {app.config['SANDBOX_SCENARIO']!r}; known: {', '.join(sorted(SCENARIOS))}"
        )
    app.extensions["meta_sandbox"] = World(app.config)
    routing.install(app)
    for bp in (graph.bp, publishing.bp, content.bp, dialog.bp, admin.bp, media.bp):
        app.register_blueprint(bp)

    def is_graph_path() -> bool:
        from flask import request

        return not request.path.startswith("/_sandbox")

    def graph_error(exc: GraphError) -> Response:
        resp = exc.response()
        resp.headers["X-App-Usage"] = json.dumps(app.extensions["meta_sandbox"].usage_app, separators=(",", ":"))
        return resp

    @app.errorhandler(404)
    @app.errorhandler(405)
    def _not_routed(exc: HTTPException) -> ResponseReturnValue:
        from flask import jsonify, request

        if not is_graph_path():
            return jsonify({"error": exc.name}), exc.code or 500
        if exc.code == 405:
            return graph_error(
                GraphError(f"Unsupported {request.method.lower()} request.", 100, type="GraphMethodException")
            )
        return graph_error(GraphError(f"(#100) Unknown path components: {request.path}", 100))

    @app.errorhandler(GraphError)
    def _graph_error(exc: GraphError) -> Response:
        return graph_error(exc)

    @app.errorhandler(500)
    def _crash(exc: Exception) -> Response:
        original = getattr(exc, "original_exception", None) or exc
        app.logger.error("sandbox error: %r", original, exc_info=original)
        return graph_error(unknown_error())

    return app


def serve_in_thread(
    host: str = "127.0.0.1", port: int = 0, config: Mapping[str, Any] | None = None, *, quiet: bool = True
) -> SandboxServer:
    """Run the sandbox on a daemon thread; returns a handle with ``.url``,
    ``.port``, ``.app`` and ``.stop()``. ``port=0`` picks a free port;
    ``config=None`` reads the ``SANDBOX_*`` environment variables."""
    from .server import serve_in_thread as _serve

    return _serve(create_app(config_from_env() if config is None else config), host, port, quiet=quiet)


__all__ = ["create_app", "serve_in_thread", "config_from_env", "require_demo_or_test", "SandboxRefused", "DEFAULTS"]
