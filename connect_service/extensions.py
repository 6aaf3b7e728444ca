"""Extensions created unbound and bound to the app in ``create_app``, and the app's services."""

from __future__ import annotations

from flask import current_app
from flask_cors import CORS
from flask_sqlalchemy import SQLAlchemy

from connect_service.status_read import StatusReader
from shared.db import Base
from shared.graph import GraphClient
from shared.services import Services

db = SQLAlchemy(model_class=Base)
cors = CORS()

SERVICES_KEY = "social_connect"
STATUS_READER_KEY = "social_connect_status_reader"


def services() -> Services:
    """The app's :class:`Services` (the same kind the worker runs on)."""
    svc = current_app.extensions[SERVICES_KEY]
    assert isinstance(svc, Services)
    return svc


def graph_client(*, timeout: tuple[float, float] | None = None, budget_seconds: float | None = None) -> GraphClient:
    """A Graph client for this request, optionally bounded by an overall time budget."""
    return services().graph(timeout=timeout, budget_seconds=budget_seconds)


def status_reader() -> StatusReader | None:
    """The app's direct read for ``GET /api/meta/status``, or None (then the ORM answers)."""
    reader: StatusReader | None = current_app.extensions.get(STATUS_READER_KEY)
    return reader
