"""The demo's receiver of outcome events (``/_demo/webhooks``): it verifies the Standard Webhooks
signature as Resellio must, lists what arrived once per ``webhook-id``, and exists only in the demo."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from standardwebhooks import Webhook

from connect_service import create_app
from publish_worker.webhooks import signed_headers
from shared.settings import load_settings
from social_connect_demo import webhook_receiver
from social_connect_demo.stack import DEMO_WEBHOOK_SECRET
from tests.conftest import make_test_env

BODY = json.dumps({"type": "post.failed", "timestamp": "2026-12-01T08:00:00Z", "data": {"job_id": "job_1"}})


@pytest.fixture
def demo_app(database_url, redis_url, redis_client, engine):
    env = make_test_env(database_url, redis_url, APP_ENV="demo", RESELLIO_WEBHOOK_SECRET=DEMO_WEBHOOK_SECRET)
    app = create_app({"SETTINGS": load_settings(env), "REDIS": redis_client, "TESTING": True})
    webhook_receiver.register(app)
    yield app
    with app.app_context():
        from connect_service.extensions import db

        db.session.remove()
        db.engine.dispose()


def test_signed_events_are_listed_once_and_forged_ones_refused(demo_app: Flask):
    http = demo_app.test_client()
    now = datetime.now(UTC)
    headers = signed_headers(DEMO_WEBHOOK_SECRET, "msg_first", BODY, now)
    assert http.post(webhook_receiver.PATH, data=BODY, headers=headers).status_code == 204
    # A retry of the same event, signed anew: accepted, listed once.
    again = signed_headers(DEMO_WEBHOOK_SECRET, "msg_first", BODY, now + timedelta(seconds=30))
    assert http.post(webhook_receiver.PATH, data=BODY, headers=again).status_code == 204

    other = Webhook("whsec_" + "b3RoZXItc2VjcmV0LW9mLWF0LWxlYXN0LTMyLWJ5dGVzIQ==")
    forged = {**headers, "webhook-signature": other.sign("msg_first", now, BODY)}
    tampered = BODY.replace("post.failed", "post.published")
    stale = signed_headers(DEMO_WEBHOOK_SECRET, "msg_old", BODY, now - timedelta(minutes=10))
    for body, hdrs in ((BODY, forged), (tampered, headers), (BODY, stale), (BODY, {})):
        assert http.post(webhook_receiver.PATH, data=body, headers=hdrs).status_code == 400

    listing = http.get(webhook_receiver.PATH).get_json()
    assert isinstance(listing, dict)
    assert listing["rejected"] == 4
    [event] = listing["events"]
    assert event["webhook_id"] == "msg_first" and event["type"] == "post.failed"
    assert event["data"] == {"job_id": "job_1"}


def test_the_receiver_is_only_for_the_demo(app: Flask):
    with pytest.raises(RuntimeError, match="APP_ENV=demo"):
        webhook_receiver.register(app)
    assert app.test_client().get(webhook_receiver.PATH).status_code == 404
