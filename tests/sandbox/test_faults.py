"""Admin faults, latency, usage headers, and the throttled and flaky scenarios."""

import json
import time

import pytest

from .conftest import IG_1, PAGE_1, error_of

IMAGE = "https://cdn.example.com/promo.jpg"


def test_fault_status_and_times(meta):
    _, page = meta.connect()
    meta.admin(
        "faults",
        {
            "endpoint": "feed_post",
            "status": 503,
            "times": 2,
            "error": {"code": 2, "message": "Service temporarily unavailable"},
        },
    )
    for _ in range(2):
        resp = meta.post(f"/{PAGE_1}/feed", page, message="x")
        assert resp.status_code == 503
        err = error_of(resp)
        assert err["code"] == 2 and err["message"] == "Service temporarily unavailable"
        assert "X-App-Usage" in resp.headers
    assert meta.world.posts == []
    assert meta.post(f"/{PAGE_1}/feed", page, message="x").status_code == 200
    assert meta.admin("faults", method="get")["faults"] == []


def test_fault_after_processing_creates_the_post(meta):
    _, page = meta.connect()
    meta.admin("faults", {"endpoint": "photos", "status": 500, "after_processing": True})
    resp = meta.post(f"/{PAGE_1}/photos", page, url=IMAGE, caption="ambiguous")
    assert resp.status_code == 500
    assert error_of(resp)["is_transient"] is True
    published = meta.client.get("/_sandbox/published.json").get_json()["facebook"]
    assert [p["message"] for p in published] == ["ambiguous"]
    feed = meta.get(f"/{PAGE_1}/feed", page).get_json()["data"]
    assert feed[0]["message"] == "ambiguous"


def test_fault_error_without_status_and_wildcard(meta):
    meta.admin("faults", {"endpoint": "*", "error": {"code": 4, "message": "(#4) Application request limit reached"}})
    err = error_of(meta.exchange(meta.code()))
    assert err["code"] == 4
    meta.admin("faults", {"endpoint": "access_token", "status": 500, "times": 3})
    meta.client.delete("/_sandbox/faults")
    assert meta.exchange(meta.code()).status_code == 200


def test_fault_validation(meta):
    assert meta.client.post("/_sandbox/faults", json={"endpoint": "nope", "status": 500}).status_code == 400
    assert meta.client.post("/_sandbox/faults", json={"endpoint": "photos"}).status_code == 400


def test_latency_fault_and_global_latency(meta):
    _, page = meta.connect()
    meta.admin("faults", {"endpoint": "feed_get", "latency_ms": 150})
    start = time.perf_counter()
    assert meta.get(f"/{PAGE_1}/feed", page).status_code == 200
    assert time.perf_counter() - start >= 0.15
    start = time.perf_counter()
    meta.get(f"/{PAGE_1}/feed", page)
    assert time.perf_counter() - start < 0.1
    meta.admin("latency", {"ms": 100})
    start = time.perf_counter()
    meta.get(f"/{PAGE_1}/feed", page)
    assert time.perf_counter() - start >= 0.1
    meta.admin("latency", {"ms": 0})


def test_usage_headers_settable(meta):
    _, page = meta.connect()
    meta.admin(
        "usage",
        {
            "app": 95,
            "business": {"call_count": 97, "total_cputime": 10, "total_time": 12},
            "estimated_time_to_regain_access": 3,
        },
    )
    resp = meta.post(f"/{PAGE_1}/feed", page, message="x")
    assert json.loads(resp.headers["X-App-Usage"]) == {"call_count": 95, "total_cputime": 95, "total_time": 95}
    assert json.loads(resp.headers["X-Business-Use-Case-Usage"]) == {
        PAGE_1: [
            {
                "type": "pages",
                "call_count": 97,
                "total_cputime": 10,
                "total_time": 12,
                "estimated_time_to_regain_access": 3,
            }
        ]
    }


def test_throttled_scenario(make_meta):
    meta = make_meta("throttled")
    _, page = meta.connect()
    resp = meta.post(f"/{PAGE_1}/photos", page, url=IMAGE)
    assert error_of(resp)["code"] == 32
    buc = json.loads(resp.headers["X-Business-Use-Case-Usage"])[PAGE_1][0]
    assert buc["call_count"] == 100 and buc["estimated_time_to_regain_access"] in (0, 1)
    assert meta.post(f"/{PAGE_1}/photos", page, url=IMAGE).status_code == 200
    assert error_of(meta.post(f"/{PAGE_1}/feed", page, message="x"))["code"] == 32
    assert meta.post(f"/{PAGE_1}/feed", page, message="x").status_code == 200
    assert error_of(meta.post(f"/{IG_1}/media", page, image_url=IMAGE))["code"] == 80002
    container = meta.post(f"/{IG_1}/media", page, image_url=IMAGE).get_json()["id"]
    assert error_of(meta.post(f"/{IG_1}/media_publish", page, creation_id=container))["code"] == 80002
    assert meta.post(f"/{IG_1}/media_publish", page, creation_id=container).status_code == 200
    assert len(meta.world.posts) == 2 and len(meta.world.media) == 1


def test_flaky_scenario(make_meta):
    meta = make_meta("flaky")
    meta.admin("flags", {"flaky_slow_ms": 20})
    _, page = meta.connect()
    statuses = [meta.post(f"/{PAGE_1}/feed", page, message=str(i)).status_code for i in range(6)]
    assert statuses == [200, 200, 500, 200, 200, 500]
    resp = meta.post(f"/{PAGE_1}/feed", page, message="x")
    resp = meta.post(f"/{PAGE_1}/feed", page, message="y")
    resp = meta.post(f"/{PAGE_1}/feed", page, message="z")
    err = error_of(resp)
    assert err == {
        "message": "An unexpected error has occurred. Please retry your request later.",
        "type": "OAuthException",
        "code": 2,
        "is_transient": True,
        "fbtrace_id": err["fbtrace_id"],
    }
    assert len(meta.world.posts) == 6


def test_reset_clears_everything(meta):
    user, page = meta.connect()
    meta.post(f"/{PAGE_1}/feed", page, message="x")
    meta.admin("faults", {"endpoint": "photos", "status": 500})
    body = meta.admin("reset", {"scenario": "several_pages"})
    assert body == {"reset": True, "scenario": "several_pages"}
    state = meta.admin("state", method="get")
    assert state["scenario"] == "several_pages" and state["faults"] == []
    assert state["posts"] == {"facebook": 0, "instagram": 0} and state["calls"] == {}
    assert state["tokens"]["user"] == {"valid": 0, "invalid": 0}
    assert error_of(meta.get("/me", user))["code"] == 190
    assert meta.client.post("/_sandbox/scenario", json={"name": "nope"}).status_code == 400
    names = [s["name"] for s in meta.admin("scenarios", method="get")["scenarios"]]
    assert {
        "one_page",
        "several_pages",
        "page_without_instagram",
        "not_admin",
        "permission_declined",
        "token_expired",
        "throttled",
        "flaky",
        "many_pages",
    } <= set(names)


def test_state_counts_calls_and_hides_tokens(meta):
    user, page = meta.connect()
    meta.post(f"/{IG_1}/media", page, image_url=IMAGE)
    state = meta.client.get("/_sandbox/state")
    assert user not in state.get_data(as_text=True) and page not in state.get_data(as_text=True)
    body = state.get_json()
    assert body["calls"]["media"] == 1 and body["calls"]["access_token"] == 2
    assert body["containers"][0]["status_code"] == "FINISHED"


@pytest.mark.parametrize("path", ["/", "/_sandbox/published"])
def test_html_pages(meta, path):
    resp = meta.client.get(path)
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    assert "Meta sandbox" in resp.get_data(as_text=True)


def test_fault_with_a_code_and_subcode_for_a_number_of_calls(meta):
    _, page = meta.connect()
    container = meta.post(f"/{IG_1}/media", page, image_url=IMAGE).get_json()["id"]
    meta.admin(
        "faults",
        {"endpoint": "media_publish", "times": 2, "error": {"code": 4, "error_subcode": 2207051, "message": "spam"}},
    )
    for _ in range(2):
        err = error_of(meta.post(f"/{IG_1}/media_publish", page, creation_id=container))
        assert (err["code"], err["error_subcode"]) == (4, 2207051)
    assert meta.post(f"/{IG_1}/media_publish", page, creation_id=container).status_code == 200
    assert meta.admin("state", method="get")["calls"]["media_publish"] == 3
