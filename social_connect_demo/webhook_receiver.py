"""``/_demo/webhooks``: Resellio's end of the outcome events, for the demo (DESIGN §13.3).

``POST`` checks the Standard Webhooks signature with the ``standardwebhooks`` package and the
demo's ``RESELLIO_WEBHOOK_SECRET``, exactly as Resellio's receiver does (the README shows the
Next.js version), keeps the event once per ``webhook-id`` and answers 204; a bad signature
answers 400. ``GET`` lists what arrived, newest first. Registered by the demo stack, only when
``APP_ENV=demo``; kept in memory, so a restart forgets them.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from flask import Blueprint, Flask, jsonify, request
from standardwebhooks import Webhook, WebhookVerificationError
from werkzeug.wrappers import Response

from connect_service.extensions import services
from shared.db import iso_z, utcnow

bp = Blueprint("demo_webhooks", __name__)

PATH = "/_demo/webhooks"
KEEP = 200
_KEY = "demo_webhook_receiver"


class Received:
    """The events this demo received (the newest ``KEEP``), once each."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: deque[dict[str, Any]] = deque(maxlen=KEEP)
        self.rejected = 0

    def add(self, webhook_id: str, payload: dict[str, Any]) -> bool:
        with self.lock:
            if any(event["webhook_id"] == webhook_id for event in self.events):
                return False  # a retry of one already handled: the receiver dedupes by webhook-id
            self.events.appendleft(
                {
                    "webhook_id": webhook_id,
                    "type": payload.get("type"),
                    "timestamp": payload.get("timestamp"),
                    "received_at": iso_z(utcnow()),
                    "data": payload.get("data"),
                }
            )
            return True


def register(app: Flask) -> None:
    """Add the receiver to a connect service app; refused unless ``APP_ENV=demo``."""
    with app.app_context():
        app_env = services().settings.app_env
    if app_env != "demo":
        raise RuntimeError(f"{PATH} is registered only when APP_ENV=demo")
    app.extensions[_KEY] = Received()
    app.register_blueprint(bp)


def _received() -> Received:
    from flask import current_app

    received = current_app.extensions[_KEY]
    assert isinstance(received, Received)
    return received


@bp.post(PATH)
def receive() -> Response | tuple[Response, int]:
    secret = services().settings.webhook_secret
    if not secret:
        return jsonify({"error": "RESELLIO_WEBHOOK_SECRET is not set"}), 503
    try:
        payload = Webhook(secret).verify(request.get_data(), dict(request.headers))
    except (WebhookVerificationError, ValueError):
        with _received().lock:
            _received().rejected += 1
        return jsonify({"error": "invalid signature"}), 400
    _received().add(request.headers["webhook-id"], payload if isinstance(payload, dict) else {})
    return Response(status=204)


@bp.get(PATH)
def listing() -> Response:
    received = _received()
    with received.lock:
        body = {"events": list(received.events), "rejected": received.rejected}
    return jsonify(body)
