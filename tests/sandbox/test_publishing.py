"""Page photos and feed, IG containers, media_publish and the publishing limit."""

import json
import time

import pytest

from .conftest import IG_1, PAGE_1, error_of

IMAGE = "https://cdn.example.com/promo.jpg"


@pytest.fixture
def tokens(make_meta):
    meta = make_meta("several_pages")
    user, page = meta.connect()
    return meta, user, page


def test_photo_post(tokens):
    meta, _, page = tokens
    resp = meta.post(f"/v25.0/{PAGE_1}/photos", page, url=IMAGE, caption="Promo minggu ini")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["id"].isdigit() and body["post_id"].startswith(f"{PAGE_1}_")
    usage = json.loads(resp.headers["X-Business-Use-Case-Usage"])
    assert usage[PAGE_1][0]["type"] == "pages"
    assert {"call_count", "total_cputime", "total_time", "estimated_time_to_regain_access"} <= set(usage[PAGE_1][0])
    fb = meta.client.get("/_sandbox/published.json").get_json()["facebook"]
    assert fb == [
        {
            "page_id": PAGE_1,
            "post_id": body["post_id"],
            "photo_id": body["id"],
            "message": "Promo minggu ini",
            "url": IMAGE,
            "link": None,
            "created_time": fb[0]["created_time"],
            "kind": "photo",
            "photos": [],
            "video_id": None,
            "comments": [],
        }
    ]


def test_photo_needs_that_pages_token(tokens):
    meta, user, _ = tokens
    other = meta.page_token(user, "110000000000002")
    for token in (user, other):
        resp = meta.post(f"/{PAGE_1}/photos", token, url=IMAGE)
        assert resp.status_code == 400
        assert error_of(resp)["code"] == 200
    assert meta.world.posts == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://cdn.example.com/a.jpg",
        "http://localhost/a.jpg",
        "https://127.0.0.1/a.jpg",
        "http://10.1.2.3/a.jpg",
        "https://192.168.1.5/a.jpg",
        "not a url",
    ],
)
def test_photo_with_unfetchable_url(tokens, url):
    meta, _, page = tokens
    err = error_of(meta.post(f"/{PAGE_1}/photos", page, url=url))
    assert err["code"] == 324
    assert meta.world.posts == []


def test_photo_without_url(tokens):
    meta, _, page = tokens
    err = error_of(meta.post(f"/{PAGE_1}/photos", page, caption="no image"))
    assert (err["code"], err["message"]) == (324, "(#324) Requires upload file")


def test_feed_post_and_recent_posts(tokens):
    meta, user, page = tokens
    first = meta.post(f"/{PAGE_1}/feed", page, message="teks saja", link="https://resellio.example.com/p/1").get_json()
    assert first["id"].startswith(f"{PAGE_1}_")
    photo = meta.post(f"/{PAGE_1}/photos", page, url=IMAGE, caption="foto").get_json()
    body = meta.get(
        f"/v25.0/{PAGE_1}/feed", page, fields="id,message,created_time", since=int(time.time()) - 60
    ).get_json()
    assert [p["id"] for p in body["data"]] == [photo["post_id"], first["id"]]
    assert body["data"][1]["message"] == "teks saja"
    assert body["data"][0]["created_time"].endswith("+0000")
    # a user token granted the Page can read it too; a future `since` finds nothing
    assert len(meta.get(f"/{PAGE_1}/feed", user).get_json()["data"]) == 2
    assert meta.get(f"/{PAGE_1}/feed", page, since=int(time.time()) + 60).get_json()["data"] == []
    paged = meta.get(f"/{PAGE_1}/feed", page, limit=1).get_json()
    assert len(paged["data"]) == 1 and "access_token=" in paged["paging"]["next"]


def test_feed_post_needs_content(tokens):
    meta, _, page = tokens
    assert error_of(meta.post(f"/{PAGE_1}/feed", page))["code"] == 100


def test_instagram_lifecycle(tokens):
    meta, _, page = tokens
    resp = meta.post(f"/v25.0/{IG_1}/media", page, image_url=IMAGE, caption="IG caption")
    assert resp.status_code == 200
    container = resp.get_json()["id"]
    assert json.loads(resp.headers["X-Business-Use-Case-Usage"])[IG_1]
    status = meta.get(f"/v25.0/{container}", page, fields="status_code,status").get_json()
    assert status["id"] == container and status["status_code"] == "FINISHED"
    media = meta.post(f"/v25.0/{IG_1}/media_publish", page, creation_id=container).get_json()
    assert media["id"].isdigit()
    status = meta.get(f"/{container}", page, fields="status_code").get_json()
    assert status["status_code"] == "PUBLISHED"
    again = error_of(meta.post(f"/{IG_1}/media_publish", page, creation_id=container))
    assert (again["code"], again["error_subcode"]) == (9007, 2207027)
    assert again["error_user_title"] == "Media already published"
    ig = meta.client.get("/_sandbox/published.json").get_json()["instagram"]
    assert ig == [
        {
            "ig_user_id": IG_1,
            "media_id": media["id"],
            "container_id": container,
            "caption": "IG caption",
            "image_url": IMAGE,
            "created_time": ig[0]["created_time"],
            "media_type": "IMAGE",
            "media_product_type": "FEED",
            "video_url": None,
            "alt_text": None,
            "share_to_feed": None,
            "cover_url": None,
            "children": [],
            "comments": [],
        }
    ]
    listed = meta.get(f"/{IG_1}/media", page, fields="id,caption").get_json()["data"]
    assert listed == [{"id": media["id"], "caption": "IG caption"}]
    html = meta.client.get("/_sandbox/published").get_data(as_text=True)
    assert "IG caption" in html and "@toko_sari" in html and media["id"] in html


@pytest.mark.parametrize(
    "url",
    ["http://cdn.example.com/a.jpg", "https://localhost/a.jpg", "https://10.0.0.8/a.jpg", "https://192.168.0.2/a.jpg"],
)
def test_instagram_bad_image_url(tokens, url):
    meta, _, page = tokens
    resp = meta.post(f"/{IG_1}/media", page, image_url=url)
    assert resp.status_code == 400
    err = error_of(resp)
    assert (err["code"], err["error_subcode"], err["type"]) == (9004, 2207052, "OAuthException")
    assert err["message"] == "Media download has failed. The media URI doesn't meet our requirements."


def test_container_in_progress_then_finished(make_meta):
    meta = make_meta("one_page", SANDBOX_CONTAINER_DELAY=0.3)
    _, page = meta.connect()
    container = meta.post(f"/{IG_1}/media", page, image_url=IMAGE).get_json()["id"]
    assert meta.get(f"/{container}", page, fields="status_code").get_json()["status_code"] == "IN_PROGRESS"
    err = error_of(meta.post(f"/{IG_1}/media_publish", page, creation_id=container))
    assert (err["code"], err["error_subcode"]) == (9007, 2207027)
    time.sleep(0.35)
    assert meta.get(f"/{container}", page, fields="status_code").get_json()["status_code"] == "FINISHED"
    assert meta.post(f"/{IG_1}/media_publish", page, creation_id=container).status_code == 200


def test_unknown_or_failed_container(tokens):
    meta, _, page = tokens
    err = error_of(meta.post(f"/{IG_1}/media_publish", page, creation_id="123"))
    assert (err["code"], err["error_subcode"]) == (24, 2207008)
    container = meta.post(f"/{IG_1}/media", page, image_url=IMAGE).get_json()["id"]
    meta.admin(f"containers/{container}", {"status_code": "ERROR"})
    err = error_of(meta.post(f"/{IG_1}/media_publish", page, creation_id=container))
    assert err["error_subcode"] == 2207032


def test_instagram_of_a_page_without_ig_or_not_granted(tokens):
    meta, user, page = tokens
    other_page = meta.page_token(user, "110000000000002")
    err = error_of(meta.post(f"/{IG_1}/media", other_page, image_url=IMAGE))
    assert (err["code"], err["error_subcode"]) == (100, 33)


def test_publishing_limit(tokens):
    meta, _, page = tokens
    body = meta.get(f"/v25.0/{IG_1}/content_publishing_limit", page, fields="quota_usage,config").get_json()
    assert body == {"data": [{"quota_usage": 0, "config": {"quota_total": 100, "quota_duration": 86400}}]}
    meta.admin("quota", {"ig_user_id": IG_1, "used": 2, "total": 3})
    container = meta.post(f"/{IG_1}/media", page, image_url=IMAGE).get_json()["id"]
    assert meta.post(f"/{IG_1}/media_publish", page, creation_id=container).status_code == 200
    usage = meta.get(f"/{IG_1}/content_publishing_limit", page).get_json()["data"][0]
    assert usage["quota_usage"] == 3 and usage["config"]["quota_total"] == 3
    container = meta.post(f"/{IG_1}/media", page, image_url=IMAGE).get_json()["id"]
    err = error_of(meta.post(f"/{IG_1}/media_publish", page, creation_id=container))
    assert (err["code"], err["error_subcode"]) == (9, 2207042)
    assert err["message"] == (
        "The maximum number of posts that can be published within the 24 hour window has been reached"
    )


def test_published_posts_lists_only_the_pages_own_posts(tokens):
    meta, user, page = tokens
    mine = meta.post(f"/{PAGE_1}/feed", page, message="Promo").get_json()["id"]
    visitor = meta.admin(f"pages/{PAGE_1}/visitor-posts", {"message": "Promo", "from_name": "Budi"})
    feed = meta.get(f"/v25.0/{PAGE_1}/feed", page, fields="id,message,from").get_json()["data"]
    assert [p["id"] for p in feed] == [visitor["id"], mine]
    assert feed[0]["from"]["name"] == "Budi"
    own = meta.get(f"/v25.0/{PAGE_1}/published_posts", page, fields="id,message,created_time").get_json()["data"]
    assert [(p["id"], p["message"]) for p in own] == [(mine, "Promo")] and own[0]["created_time"]
    since = int(time.time()) + 60
    assert meta.get(f"/{PAGE_1}/published_posts", page, since=since).get_json()["data"] == []
    # What the app published does not include what visitors wrote.
    fb = meta.client.get("/_sandbox/published.json").get_json()["facebook"]
    assert [p["post_id"] for p in fb] == [mine]
    assert meta.admin("state", method="get")["calls"]["published_posts"] == 2


def test_published_posts_needs_the_pages_token_and_its_proof(tokens):
    meta, user, page = tokens
    assert error_of(meta.get(f"/{PAGE_1}/published_posts", user))["code"] == 210
    assert error_of(meta.get(f"/{PAGE_1}/published_posts", page, signed=False))["code"] == 100
    assert error_of(meta.get(f"/{PAGE_1}/published_posts", page, appsecret_proof="0" * 64))["code"] == 100
    other = meta.page_token(user, "110000000000002")
    assert meta.get(f"/{PAGE_1}/published_posts", other).status_code == 400


def test_visitor_post_admin_validation(tokens):
    meta, _, _ = tokens
    assert meta.client.post(f"/_sandbox/pages/{PAGE_1}/visitor-posts", json={}).status_code == 400
    assert meta.client.post("/_sandbox/pages/999/visitor-posts", json={"message": "x"}).status_code == 404


def test_container_outcomes_and_status_text(tokens):
    meta, _, page = tokens
    meta.admin(
        "container-outcomes", {"status_code": "ERROR", "status": "Error: Unsupported ratio (2207009).", "times": 1}
    )
    broken = meta.post(f"/{IG_1}/media", page, image_url=IMAGE).get_json()["id"]
    fine = meta.post(f"/{IG_1}/media", page, image_url=IMAGE).get_json()["id"]
    body = meta.get(f"/{broken}", page, fields="status_code,status").get_json()
    assert body["status_code"] == "ERROR" and body["status"] == "Error: Unsupported ratio (2207009)."
    assert meta.get(f"/{fine}", page, fields="status_code").get_json()["status_code"] == "FINISHED"
    meta.admin(f"containers/{fine}", {"status_code": "EXPIRED", "status": "Expired: too old."})
    assert meta.get(f"/{fine}", page, fields="status").get_json()["status"] == "Expired: too old."
    assert meta.client.post("/_sandbox/container-outcomes", json={"status_code": "FINISHED"}).status_code == 400


def test_publishing_limit_without_a_total(tokens):
    meta, _, page = tokens
    meta.admin("quota", {"ig_user_id": IG_1, "used": 3, "total": 100, "report_total": False})
    body = meta.get(f"/{IG_1}/content_publishing_limit", page, fields="quota_usage,config").get_json()
    assert body["data"] == [{"quota_usage": 3, "config": {"quota_duration": 86400}}]
