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


# --- faults on the content v2 endpoints ------------------------------------------


def _reel_started(meta, page) -> str:
    return meta.post(f"/{PAGE_1}/video_reels", page, upload_phase="start").get_json()["video_id"]


def _upload(meta, page, video_id):
    headers = {"Authorization": f"OAuth {page}", "file_url": "https://cdn.example.com/v.mp4"}
    return meta.client.post(f"/video-upload/v25.0/{video_id}", headers=headers)


def test_fault_names_of_the_new_endpoints_are_accepted(meta):
    for name in (
        "media_child",
        "media_carousel",
        "media_reels",
        "media_stories",
        "ig_comment",
        "ig_comments",
        "videos",
        "videos_list",
        "video_reels",
        "video_reels_start",
        "video_reels_finish",
        "video_reels_list",
        "video_upload",
        "video_stories",
        "video_stories_start",
        "video_stories_finish",
        "photo_stories",
        "stories",
        "fb_comment",
        "fb_comments",
        "video",
        "photo",
    ):
        assert meta.client.post("/_sandbox/faults", json={"endpoint": name, "status": 500}).status_code == 201
    assert len(meta.admin("faults", method="get")["faults"]) == 22


def test_fault_on_a_child_container_only(meta):
    _, page = meta.connect()
    meta.admin("faults", {"endpoint": "media_child", "status": 500})
    resp = meta.post(f"/{IG_1}/media", page, image_url=IMAGE, is_carousel_item="true")
    assert resp.status_code == 500 and meta.world.containers == {}
    # a plain image container is another endpoint; the next child works
    assert meta.post(f"/{IG_1}/media", page, image_url=IMAGE).status_code == 200
    assert meta.post(f"/{IG_1}/media", page, image_url=IMAGE, is_carousel_item="true").status_code == 200


def test_a_media_fault_hits_every_kind_of_container(meta):
    _, page = meta.connect()
    meta.admin("faults", {"endpoint": "media", "error": {"code": 4, "error_subcode": 2207051}, "times": 2})
    reel = meta.post(f"/{IG_1}/media", page, media_type="REELS", video_url="https://cdn.example.com/v.mp4")
    child = meta.post(f"/{IG_1}/media", page, image_url=IMAGE, is_carousel_item="true")
    assert [error_of(r)["error_subcode"] for r in (reel, child)] == [2207051, 2207051]
    calls = meta.admin("state", method="get")["calls"]
    assert (calls["media_reels"], calls["media_child"]) == (1, 1)


def test_after_processing_on_a_carousel_publish(make_meta):
    meta = make_meta("one_page", SANDBOX_VIDEO_DELAY=0)
    _, page = meta.connect()
    kids = [meta.post(f"/{IG_1}/media", page, image_url=IMAGE, is_carousel_item="true").get_json()["id"] for _ in "ab"]
    carousel = meta.post(f"/{IG_1}/media", page, media_type="CAROUSEL", children=",".join(kids)).get_json()["id"]
    meta.admin("faults", {"endpoint": "media_publish", "status": 500, "after_processing": True})
    assert meta.post(f"/{IG_1}/media_publish", page, creation_id=carousel).status_code == 500
    # it was published all the same: the container says so, and a new publish is refused
    status = meta.get(f"/{carousel}", page, fields="status_code").get_json()["status_code"]
    assert status == "PUBLISHED"
    assert len(meta.client.get("/_sandbox/published.json").get_json()["instagram"]) == 1


def test_after_processing_on_a_reel_finish_and_latency_on_the_upload(meta):
    _, page = meta.connect()
    video_id = _reel_started(meta, page)
    meta.admin("faults", {"endpoint": "video_upload", "latency_ms": 150})
    start = time.perf_counter()
    assert _upload(meta, page, video_id).status_code == 200
    assert time.perf_counter() - start >= 0.15
    meta.admin("faults", {"endpoint": "video_reels_finish", "status": 503, "after_processing": True})
    finish = meta.post(
        f"/{PAGE_1}/video_reels", page, upload_phase="finish", video_id=video_id, video_state="PUBLISHED"
    )
    assert finish.status_code == 503
    # published all the same; the reel list shows it to a checker
    reels = meta.get(f"/{PAGE_1}/video_reels", page).get_json()["data"]
    assert [r["id"] for r in reels] == [video_id]
    assert meta.get(f"/{video_id}", page, fields="status").get_json()["status"]["video_status"] == "ready"


def test_a_video_reels_fault_hits_both_phases(meta):
    _, page = meta.connect()
    meta.admin("faults", {"endpoint": "video_reels", "status": 500, "times": 2})
    assert meta.post(f"/{PAGE_1}/video_reels", page, upload_phase="start").status_code == 500
    assert meta.post(f"/{PAGE_1}/video_reels", page, upload_phase="finish", video_id="1").status_code == 500
    assert meta.post(f"/{PAGE_1}/video_reels", page, upload_phase="start").status_code == 200


def test_after_processing_on_a_comment_leaves_it_findable(meta):
    _, page = meta.connect()
    container = meta.post(f"/{IG_1}/media", page, image_url=IMAGE).get_json()["id"]
    media_id = meta.post(f"/{IG_1}/media_publish", page, creation_id=container).get_json()["id"]
    meta.admin("faults", {"endpoint": "ig_comment", "status": 500, "after_processing": True})
    assert meta.post(f"/{media_id}/comments", page, message="#promo").status_code == 500
    listed = meta.get(f"/{media_id}/comments", page, fields="text,username").get_json()["data"]
    assert [(c["text"], c["username"]) for c in listed] == [("#promo", "toko_sari")]
    post_id = meta.post(f"/{PAGE_1}/feed", page, message="x").get_json()["id"]
    meta.admin("faults", {"endpoint": "fb_comments", "error": {"code": 2}, "status": 500})
    assert meta.get(f"/{post_id}/comments", page).status_code == 500
    assert meta.get(f"/{post_id}/comments", page).status_code == 200


def test_throttled_scenario_covers_the_new_publishing_calls(make_meta):
    meta = make_meta("throttled")
    _, page = meta.connect()
    assert error_of(meta.post(f"/{PAGE_1}/video_reels", page, upload_phase="start"))["code"] == 32
    assert meta.post(f"/{PAGE_1}/video_reels", page, upload_phase="start").status_code == 200
    reel = meta.post(f"/{IG_1}/media", page, media_type="REELS", video_url="https://cdn.example.com/v.mp4")
    assert error_of(reel)["code"] == 80002
