"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from connect_service.extensions import db, services
from shared.metrics import render

log = logging.getLogger(__name__)

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    """The process is alive."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """The database and Redis answer; 503 otherwise."""
    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready
        db.session.rollback()
        log.warning("readiness: database unreachable (%s)", type(exc).__name__)
        checks["database"] = "unavailable"
    try:
        services().redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        log.warning("readiness: redis unreachable (%s)", type(exc).__name__)
        checks["redis"] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "not_ready", checks=checks), 200 if ready else 503


@bp.get("/metrics")
def metrics():
    """Prometheus exposition of the web processes (all gunicorn workers together)."""
    body, content_type = render()
    return Response(body, content_type=content_type)
