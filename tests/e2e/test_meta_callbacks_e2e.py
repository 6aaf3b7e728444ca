"""Meta's callbacks end to end: the sandbox signs as Meta does, the connect service acts once."""

from __future__ import annotations

import requests

from tests.e2e.driver import Seller

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_a_captured_deauthorize_replayed_after_the_seller_reconnects_does_nothing(live):
    seller = Seller(live)
    assert seller.consent().status_code == 200
    removed = requests.post(
        f"{live.sandbox.url}/_sandbox/deauthorize",
        json={"callback_url": f"{live.url}/api/meta/deauthorize"},
        timeout=10,
    ).json()
    assert removed["callback"] == {"status": 200}
    assert seller.status() == {"status": "not_connected"}

    assert seller.consent().status_code == 200  # the seller connects again
    replay = requests.post(
        f"{live.url}/api/meta/deauthorize", data={"signed_request": removed["signed_request"]}, timeout=10
    )
    assert replay.status_code == 200
    assert seller.status()["status"] == "connected"


def test_data_deletion_twice_gives_one_code_and_a_page_for_the_person(live):
    seller = Seller(live)
    assert seller.consent().status_code == 200
    signed = requests.post(f"{live.sandbox.url}/_sandbox/signed-request", json={}, timeout=10).json()
    first = requests.post(f"{live.url}/api/meta/data-deletion", data=signed, timeout=10)
    again = requests.post(f"{live.url}/api/meta/data-deletion", data=signed, timeout=10)
    assert first.status_code == again.status_code == 200 and again.json() == first.json()
    assert seller.status() == {"status": "not_connected"}

    page = requests.get(first.json()["url"], headers={"Accept": BROWSER_ACCEPT}, timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert first.json()["confirmation_code"] in page.text and "<script" not in page.text
    as_json = requests.get(first.json()["url"], headers={"Accept": "application/json"}, timeout=10)
    assert as_json.json()["status"] == "completed"
