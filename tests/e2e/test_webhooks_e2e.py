"""Outcome events through the whole demo: the service records them, its worker signs and sends
them, and the demo's receiver (``/_demo/webhooks``) verifies and lists them (DESIGN §13.3)."""

from __future__ import annotations

import time

import requests

from tests.e2e.driver import Seller


def received(stack, connection_id: str) -> list[dict]:
    events = requests.get(f"{stack.url}/_demo/webhooks", timeout=5).json()["events"]
    return [e for e in reversed(events) if (e.get("data") or {}).get("connection_id") == connection_id]


def test_connect_and_disconnect_arrive_signed_at_the_receiver(live):
    seller = Seller(live, user="webhook-seller")
    body = seller.consent().json()
    assert body["connected"] is True
    assert seller.api("POST", "/api/meta/disconnect").status_code == 200
    deadline = time.monotonic() + 20
    while len(events := received(live, body["connection_id"])) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [e["type"] for e in events] == ["connection.connected", "connection.disconnected"]
    assert events[0]["data"]["status"] == "connected" and events[1]["data"]["status"] == "disconnected"
    assert all(e["data"]["user_id_resellio"] == "webhook-seller" for e in events)
