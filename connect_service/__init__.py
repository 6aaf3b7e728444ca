"""The connect service: Meta OAuth, connection status and the Social Connect page."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from shared import webhooks
from shared.db import engine_options
from shared.log import configure_logging, register_secret
from shared.services import build_services
from shared.settings import Settings, load_settings


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app; settings are read and validated here, not at import time.

    ``test_config`` may hold ``SETTINGS`` (a ready :class:`Settings`), ``ENV``
    (a mapping used instead of ``os.environ``), ``REDIS`` (a client) and any Flask config.
    """
    test_config = dict(test_config or {})
    settings: Settings = test_config.pop("SETTINGS", None) or load_settings(test_config.pop("ENV", None))
    redis_client = test_config.pop("REDIS", None)

    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(settings.database_url),
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.config.update(test_config)
    if isinstance(app.json, DefaultJSONProvider):  # keep the documented key order
        app.json.sort_keys = False

    configure_logging()
    for secret in (
        settings.meta_app_secret,
        settings.session_secret,
        settings.scheduler_api_token,
        settings.webhook_secret,
    ):
        register_secret(secret)

    from connect_service import meta_oauth
    from connect_service.api_errors import register_error_handlers
    from connect_service.extensions import SERVICES_KEY, STATUS_READER_KEY, cors, db
    from connect_service.request_context import init_request_context
    from connect_service.status_read import StatusReader

    db.init_app(app)
    with app.app_context():
        from shared.db import install_sqlite_pragmas

        install_sqlite_pragmas(db.engine)
        # The handlers use Flask-SQLAlchemy's ``db.session``; the services share its engine.
        services = app.extensions[SERVICES_KEY] = build_services(settings, redis=redis_client, engine=db.engine)
        # Outcome events (DESIGN §13.3) from this app's sessions, when RESELLIO_WEBHOOK_URL is set.
        webhooks.bind(services)
        app.extensions[STATUS_READER_KEY] = StatusReader.beside(db.engine)
    # Exact matches only: flask-cors reads an origin holding "[" (an IPv6 host) as a regex.
    origins = [re.compile(re.escape(origin) + r"\Z", re.IGNORECASE) for origin in settings.cors_origins]
    cors.init_app(app, resources={r"/api/*": {"origins": origins}}, supports_credentials=True)
    meta_oauth.init_oauth(app, settings)
    init_request_context(app)
    register_error_handlers(app)

    from connect_service import connect_flow, connection_api, meta_callbacks, openapi, ops, schedule_api

    app.register_blueprint(ops.bp)
    app.register_blueprint(connect_flow.bp)
    app.register_blueprint(connection_api.bp)
    app.register_blueprint(schedule_api.bp)
    app.register_blueprint(meta_callbacks.bp)
    app.register_blueprint(openapi.bp)
    from connect_service import web

    app.register_blueprint(web.bp)
    from connect_service import status_fast_path

    status_fast_path.install(app)
    return app
