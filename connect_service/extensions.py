"""Extensions created unbound and bound to the app in ``create_app``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app
from flask_cors import CORS
from flask_sqlalchemy import SQLAlchemy
from redis import Redis

from shared.crypto import TokenCipher
from shared.db import Base
from shared.graph import GraphClient
from shared.settings import Settings

db = SQLAlchemy(model_class=Base)
cors = CORS()


@dataclass
class Services:
    """What the request handlers need besides the database session."""

    settings: Settings
    redis: Redis
    cipher: TokenCipher
    graph_observer: Callable[[str, float, str], None] | None = None


def services() -> Services:
    return current_app.extensions["social_connect"]


def graph_client(*, timeout: tuple[float, float] | None = None, budget_seconds: float | None = None):
    """A Graph client for this request, optionally bounded by an overall time budget."""
    svc = services()
    deadline = time.monotonic() + budget_seconds if budget_seconds else None
    return GraphClient(svc.settings, timeout=timeout, deadline=deadline, observer=svc.graph_observer)
