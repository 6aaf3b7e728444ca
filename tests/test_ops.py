"""Liveness and readiness."""

from __future__ import annotations

import redis


def test_healthz(anon_client):
    assert anon_client.get("/healthz").json == {"status": "ok"}


def test_readyz_when_everything_answers(anon_client):
    response = anon_client.get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_when_redis_is_down(settings):
    from connect_service import create_app

    dead = redis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.5)
    app = create_app({"SETTINGS": settings, "REDIS": dead})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"] == {"database": "ok", "redis": "unavailable"}


def test_metrics_count_connects_errors_and_graph_calls(client):
    import requests_mock

    from tests.meta_mock import MetaMock
    from tests.test_connect_flow import callback, start

    with requests_mock.Mocker() as m:
        meta = MetaMock(m)
        callback(client, start(client), meta.code)
        callback(client, "replayed-state", meta.code)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'social_connect_connects_total{result="connected"}' in text
    assert 'social_connect_connects_total{result="invalid_state"}' in text
    assert 'social_connect_errors_total{error_code="invalid_state"}' in text
    assert 'social_connect_graph_call_seconds_count{endpoint="/me/accounts",outcome="ok"}' in text
