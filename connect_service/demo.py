"""The whole system in one process: the Meta sandbox, the connect service and the worker.

Used by ``social-connect demo`` and by the end-to-end and browser tests, which
pass their own database and Redis. Nothing here runs in production.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from werkzeug.serving import WSGIRequestHandler, make_server

from shared.settings import DEMO_APP_ID, DEMO_APP_SECRET, Settings, load_settings

log = logging.getLogger(__name__)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code="-", size="-"):
        pass


@dataclass
class DemoStack:
    """Starts and stops the demo's parts; ``url`` is the Social Connect page."""

    host: str = "127.0.0.1"
    port: int = 8000
    sandbox_port: int = 8001
    scenario: str = "one_page"
    database_url: str | None = None
    redis_url: str | None = None
    env_overrides: dict = field(default_factory=dict)
    settings_overrides: dict = field(default_factory=dict)
    with_worker: bool = True
    redis_client: object | None = None
    sandbox_config: dict = field(default_factory=dict)

    def __post_init__(self):
        self._server = None
        self._server_thread = None
        self.sandbox = None
        self.app = None
        self.worker = None
        self.settings: Settings | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._server.server_port if self._server else self.port}"

    def _settings(self, sandbox_url: str, port: int) -> Settings:
        env = {
            "APP_ENV": "demo",
            "META_APP_ID": DEMO_APP_ID,
            "META_APP_SECRET": DEMO_APP_SECRET,
            "META_GRAPH_URL": sandbox_url,
            "META_DIALOG_URL": sandbox_url,
            "META_REDIRECT_URI": f"http://{self.host}:{port}/api/meta/callback",
            "DASHBOARD_URL": "/",
        }
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        env.update(self.env_overrides)
        return load_settings(env, **self.settings_overrides)

    def start(self) -> DemoStack:
        import meta_sandbox
        from connect_service import create_app
        from connect_service.cli import run_migrations
        from shared.redis_conn import make_redis

        self.sandbox = meta_sandbox.serve_in_thread(
            self.host,
            self.sandbox_port,
            {
                "APP_ENV": "demo",
                "SANDBOX_APP_ID": DEMO_APP_ID,
                "SANDBOX_APP_SECRET": DEMO_APP_SECRET,
                "SANDBOX_SCENARIO": self.scenario,
                **self.sandbox_config,
            },
        )
        # Bind first, so the redirect URI carries the real port when port=0.
        self._server = make_server(self.host, self.port, _placeholder_app, threaded=True, request_handler=_QuietHandler)
        self.settings = self._settings(self.sandbox.url, self._server.server_port)
        if self.settings.database_url.startswith("sqlite:///"):
            from pathlib import Path

            Path(self.settings.database_url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        run_migrations(self.settings.database_url)
        redis = self.redis_client if self.redis_client is not None else make_redis(self.settings)
        self.app = create_app({"SETTINGS": self.settings, "REDIS": redis})
        self._server.app = self.app
        self._server_thread = threading.Thread(target=self._server.serve_forever, name="connect-service", daemon=True)
        self._server_thread.start()
        if self.with_worker:
            from publish_worker.runner import InProcessWorker

            self.worker = InProcessWorker(self.settings, redis).start()
        return self

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._server_thread is not None:
            self._server_thread.join(timeout=5)
        if self.app is not None:
            with self.app.app_context():
                from connect_service.extensions import db

                db.engine.dispose()
        if self.sandbox is not None:
            self.sandbox.stop()

    def __enter__(self) -> DemoStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _placeholder_app(environ, start_response):
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]
