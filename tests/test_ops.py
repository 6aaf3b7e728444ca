"""Liveness and readiness."""

from __future__ import annotations

import redis
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from redis.backoff import NoBackoff
from redis.retry import Retry


def test_healthz(anon_client):
    assert anon_client.get("/healthz").json == {"status": "ok"}


def test_readyz_when_everything_answers(anon_client):
    response = anon_client.get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_when_redis_is_down(settings):
    from connect_service import create_app

    # No retries: redis-py's default backoff would spend seconds before each failure.
    dead = redis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), retries=0))
    app = create_app({"SETTINGS": settings, "REDIS": dead})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"] == {"database": "ok", "redis": "unavailable"}


def metric(client: FlaskClient, name: str, **labels: str) -> float:
    """One sample's value as ``/metrics`` shows it now (0 while the series does not exist yet)."""
    text = client.get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def test_metrics_count_connects_errors_and_graph_calls(client):
    """Each counter grows by what this connect and this replayed callback did (earlier tests made the series)."""
    import requests_mock

    from tests.meta_mock import MetaMock
    from tests.test_connect_flow import callback, start

    watched = {
        "connected": ("social_connect_connects_total", {"result": "connected"}),
        "invalid_state": ("social_connect_connects_total", {"result": "invalid_state"}),
        "error": ("social_connect_errors_total", {"error_code": "invalid_state"}),
        "graph": (
            "social_connect_graph_call_seconds_count",
            {"endpoint": "/me/accounts", "outcome": "ok"},
        ),
    }
    before = {key: metric(client, name, **labels) for key, (name, labels) in watched.items()}
    with requests_mock.Mocker() as m:
        meta = MetaMock(m)
        assert callback(client, start(client), meta.code).status_code == 200
        assert callback(client, "replayed-state", meta.code).status_code == 400
    after = {key: metric(client, name, **labels) for key, (name, labels) in watched.items()}
    assert {key: after[key] - before[key] for key in watched} == {
        "connected": 1,
        "invalid_state": 1,
        "error": 1,
        "graph": 1,
    }
