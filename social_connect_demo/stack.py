"""The whole system in one process: the Meta sandbox, the connect service and the worker.

Used by ``social-connect demo`` and by the end-to-end and browser tests, which
pass their own database and Redis. Nothing here runs in production.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import fakeredis
import redis
from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

import meta_sandbox
from connect_service import create_app
from connect_service.extensions import db
from meta_sandbox.server import SandboxServer
from publish_worker.runner import InProcessWorker
from shared.migrations import run_migrations
from shared.redis_conn import make_redis
from shared.settings import DEMO_APP_ID, DEMO_APP_SECRET, Settings, load_settings
from social_connect_demo import login, webhook_receiver

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

# Signs the demo's outcome events (whsec_ + base64 of 32 bytes); never for production.
# A few posts at a time: the demo's SQLite file takes one writer at a time anyway.
DEMO_WORKER_CONCURRENCY = 4
DEMO_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"resellio-demo-webhooks-not-prod!").decode()

_embedded_server: fakeredis.FakeServer | None = None
_embedded_lock = threading.Lock()


def embedded_redis() -> redis.Redis:
    """A client of this process's in-memory Redis (fakeredis), shared by the web app and worker threads."""
    global _embedded_server
    with _embedded_lock:
        if _embedded_server is None:
            _embedded_server = fakeredis.FakeServer()
        return fakeredis.FakeRedis(server=_embedded_server)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
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
    env_overrides: dict[str, str] = field(default_factory=dict)
    settings_overrides: dict[str, Any] = field(default_factory=dict)
    with_worker: bool = True
    redis_client: redis.Redis | None = None
    sandbox_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._server: BaseWSGIServer | None = None
        self._server_thread: threading.Thread | None = None
        self.sandbox: SandboxServer | None = None
        self.app: Flask | None = None
        self.worker: InProcessWorker | None = None
        self.settings: Settings | None = None

    @property
    def _local_host(self) -> str:
        """This machine's address of the service (a wildcard bind is reached on 127.0.0.1)."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._server.server_port if self._server else self.port}"

    def _settings(self, sandbox_url: str, port: int) -> Settings:
        env = {
            "APP_ENV": "demo",
            "META_APP_ID": DEMO_APP_ID,
            "META_APP_SECRET": DEMO_APP_SECRET,
            "META_GRAPH_URL": sandbox_url,
            "META_GRAPH_VIDEO_URL": sandbox_url,
            "META_UPLOAD_URL": sandbox_url,
            "META_DIALOG_URL": sandbox_url,
            "META_REDIRECT_URI": f"http://{self.host}:{port}/api/meta/callback",
            "DASHBOARD_URL": "/",
            # Outcome events go to the demo's own receiver (/_demo/webhooks), which checks them.
            "RESELLIO_WEBHOOK_URL": f"http://{self._local_host}:{port}{webhook_receiver.PATH}",
            "RESELLIO_WEBHOOK_SECRET": DEMO_WEBHOOK_SECRET,
        }
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        env.update(self.env_overrides)
        return load_settings(env, **self.settings_overrides)

    def start(self) -> DemoStack:
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
            Path(self.settings.database_url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        run_migrations(self.settings.database_url)
        client = self.redis_client
        if client is None:
            client = make_redis(self.settings) if self.settings.redis_url else embedded_redis()
        self.app = create_app({"SETTINGS": self.settings, "REDIS": client})
        login.register(self.app)
        webhook_receiver.register(self.app)
        self._server.app = self.app
        self._server_thread = threading.Thread(target=self._server.serve_forever, name="connect-service", daemon=True)
        self._server_thread.start()
        if self.with_worker:
            self.worker = InProcessWorker(self.settings, client, concurrency=DEMO_WORKER_CONCURRENCY).start()
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
                db.engine.dispose()
        if self.sandbox is not None:
            self.sandbox.stop()

    def __enter__(self) -> DemoStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _placeholder_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]
