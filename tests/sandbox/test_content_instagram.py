"""Instagram content v2 in the sandbox: carousel items and carousels, REELS, STORIES,
video containers that take time, alt_text, and the publishing limit."""

import json
import time

import pytest

from .conftest import IG_1, SCOPES, error_of

IMAGE = "https://cdn.example.com/a.jpg"
VIDEO = "https://cdn.example.com/clip.mp4"


@pytest.fixture
def ig(make_meta):
    """A sandbox whose video containers are ready after 0.2 s."""
    meta = make_meta("several_pages", SANDBOX_VIDEO_DELAY=0.2)
    _, page = meta.connect()
    return meta, page


def create(meta, page, **data):
    return meta.post(f"/v25.0/{IG_1}/media", page, **data)


def container(meta, page, **data) -> str:
    resp = create(meta, page, **data)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["id"]


def status(meta, page, container_id):
    return meta.get(f"/{container_id}", page, fields="status_code,status").get_json()


def wait_finished(meta, page, container_id, timeout=2.0):
    deadline = time.monotonic() + timeout
    while status(meta, page, container_id)["status_code"] == "IN_PROGRESS":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return status(meta, page, container_id)


def test_carousel_of_images_and_a_video_is_published_as_one_post(ig):
    meta, page = ig
    first = container(meta, page, image_url=IMAGE, is_carousel_item="true", alt_text="Kemeja batik biru")
    second = container(meta, page, image_url="https://cdn.example.com/b.jpg", is_carousel_item="true")
    video = container(meta, page, video_url=VIDEO, media_type="VIDEO", is_carousel_item="true")
    assert meta.admin("state", method="get")["calls"]["media_child"] == 3
    # a video child is not ready at once; the carousel cannot take it yet
    assert status(meta, page, video)["status_code"] == "IN_PROGRESS"
    err = error_of(create(meta, page, media_type="CAROUSEL", children=f"{first},{second},{video}"))
    assert (err["code"], err["error_subcode"]) == (9007, 2207027)
    assert wait_finished(meta, page, video)["status_code"] == "FINISHED"
    carousel = container(meta, page, media_type="CAROUSEL", children=f"{first},{second},{video}", caption="Koleksi")
    assert status(meta, page, carousel)["status_code"] == "FINISHED"
    # a child is not published on its own
    err = error_of(meta.post(f"/{IG_1}/media_publish", page, creation_id=first))
    assert err["code"] == 100 and "carousel item" in err["message"]
    published = meta.post(f"/{IG_1}/media_publish", page, creation_id=carousel)
    assert published.status_code == 200
    media_id = published.get_json()["id"]
    body = meta.get(f"/{media_id}", page, fields="media_type,caption,children{media_type,media_url}").get_json()
    assert body["media_type"] == "CAROUSEL_ALBUM" and body["caption"] == "Koleksi"
    assert [c["media_type"] for c in body["children"]["data"]] == ["IMAGE", "IMAGE", "VIDEO"]
    assert body["children"]["data"][2]["media_url"] == VIDEO
    [item] = meta.client.get("/_sandbox/published.json").get_json()["instagram"]
    assert item["media_type"] == "CAROUSEL_ALBUM" and item["container_id"] == carousel
    assert [c["container_id"] for c in item["children"]] == [first, second, video]
    assert item["children"][0]["alt_text"] == "Kemeja batik biru"
    # the whole carousel is one use of the daily limit, and the children are PUBLISHED
    usage = meta.get(f"/{IG_1}/content_publishing_limit", page).get_json()["data"][0]
    assert usage["quota_usage"] == 1
    assert status(meta, page, first)["status_code"] == "PUBLISHED"
    assert [m["id"] for m in meta.get(f"/{IG_1}/media", page).get_json()["data"]] == [media_id]


def test_children_as_a_json_array_are_accepted(ig):
    meta, page = ig
    kids = [container(meta, page, image_url=IMAGE, is_carousel_item="true") for _ in range(2)]
    carousel = container(meta, page, media_type="CAROUSEL", children=json.dumps(kids))
    assert meta.post(f"/{IG_1}/media_publish", page, creation_id=carousel).status_code == 200


@pytest.mark.parametrize("count", [1, 11])
def test_carousel_needs_two_to_ten_children(ig, count):
    meta, page = ig
    kids = [container(meta, page, image_url=IMAGE, is_carousel_item="true") for _ in range(count)]
    err = error_of(create(meta, page, media_type="CAROUSEL", children=",".join(kids)))
    assert (err["code"], err["error_subcode"]) == (100, 2207028)
    assert "between 2 and 10" in err["message"]


def test_carousel_without_children(ig):
    meta, page = ig
    err = error_of(create(meta, page, media_type="CAROUSEL"))
    assert err["message"] == "(#100) The parameter children is required"


def test_carousel_refuses_children_that_are_not_this_accounts_finished_items(ig):
    meta, page = ig
    item = container(meta, page, image_url=IMAGE, is_carousel_item="true")
    plain = container(meta, page, image_url=IMAGE)
    # unknown id
    err = error_of(create(meta, page, media_type="CAROUSEL", children=f"{item},17900000999999999"))
    assert (err["code"], err["error_subcode"]) == (100, 2207006)
    # a container made without is_carousel_item
    err = error_of(create(meta, page, media_type="CAROUSEL", children=f"{item},{plain}"))
    assert err["code"] == 100 and "is_carousel_item" in err["message"]
    # another account's child
    user = meta.user_token()
    other_page = meta.page_token(user, "110000000000002")
    other = meta.post("/17841400000000002/media", other_page, image_url=IMAGE, is_carousel_item="true").get_json()
    err = error_of(create(meta, page, media_type="CAROUSEL", children=f"{item},{other['id']}"))
    assert err["error_subcode"] == 2207006
    # a child in ERROR
    broken = container(meta, page, image_url=IMAGE, is_carousel_item="true")
    meta.admin(f"containers/{broken}", {"status_code": "ERROR"})
    err = error_of(create(meta, page, media_type="CAROUSEL", children=f"{item},{broken}"))
    assert err["error_subcode"] == 2207032
    # the same child twice
    assert error_of(create(meta, page, media_type="CAROUSEL", children=f"{item},{item}"))["code"] == 100


def test_a_published_child_cannot_join_another_carousel(ig):
    meta, page = ig
    kids = [container(meta, page, image_url=IMAGE, is_carousel_item="true") for _ in range(2)]
    carousel = container(meta, page, media_type="CAROUSEL", children=",".join(kids))
    meta.post(f"/{IG_1}/media_publish", page, creation_id=carousel)
    fresh = container(meta, page, image_url=IMAGE, is_carousel_item="true")
    err = error_of(create(meta, page, media_type="CAROUSEL", children=f"{kids[0]},{fresh}"))
    assert err["error_user_title"] == "Media already published"


def test_reel_in_progress_then_finished_then_published(ig):
    meta, page = ig
    reel = container(
        meta, page, media_type="REELS", video_url=VIDEO, caption="Reel baru", share_to_feed="false", cover_url=IMAGE
    )
    assert status(meta, page, reel) == {
        "id": reel,
        "status_code": "IN_PROGRESS",
        "status": "In Progress: Media is still being processed.",
    }
    err = error_of(meta.post(f"/{IG_1}/media_publish", page, creation_id=reel))
    assert (err["code"], err["error_subcode"]) == (9007, 2207027)
    time.sleep(0.25)
    assert status(meta, page, reel)["status_code"] == "FINISHED"
    media_id = meta.post(f"/{IG_1}/media_publish", page, creation_id=reel).get_json()["id"]
    body = meta.get(f"/{media_id}", page, fields="media_type,media_product_type,media_url,thumbnail_url").get_json()
    assert body == {
        "id": media_id,
        "media_type": "VIDEO",
        "media_product_type": "REELS",
        "media_url": VIDEO,
        "thumbnail_url": IMAGE,
    }
    [item] = meta.client.get("/_sandbox/published.json").get_json()["instagram"]
    assert (item["share_to_feed"], item["cover_url"], item["caption"]) == (False, IMAGE, "Reel baru")


def test_reel_share_to_feed_defaults_to_true(ig):
    meta, page = ig
    meta.admin("delays", {"video_s": 0})
    reel = container(meta, page, media_type="REELS", video_url=VIDEO)
    meta.post(f"/{IG_1}/media_publish", page, creation_id=reel)
    assert meta.client.get("/_sandbox/published.json").get_json()["instagram"][0]["share_to_feed"] is True


def test_video_delay_defaults_to_a_couple_of_seconds(make_meta):
    meta = make_meta()
    _, page = meta.connect()
    reel = container(meta, page, media_type="REELS", video_url=VIDEO)
    image = container(meta, page, image_url=IMAGE)
    assert status(meta, page, reel)["status_code"] == "IN_PROGRESS"
    assert status(meta, page, image)["status_code"] == "FINISHED"
    assert meta.admin("state", method="get")["delays"] == {"image_s": 0.0, "video_s": 2.0}


@pytest.mark.parametrize(
    "data, message",
    [
        ({"media_type": "REELS"}, "(#100) The parameter video_url is required"),
        ({"media_type": "REELS", "image_url": IMAGE}, "REELS takes a video_url"),
        ({"video_url": VIDEO}, "no longer supported"),
        ({"video_url": VIDEO, "media_type": "VIDEO"}, "no longer supported"),
        ({"image_url": IMAGE, "video_url": VIDEO, "media_type": "STORIES"}, "Only one of image_url and video_url"),
        ({"image_url": IMAGE, "share_to_feed": "true"}, "share_to_feed is only supported for media_type REELS"),
        ({"image_url": IMAGE, "cover_url": IMAGE}, "cover_url is only supported for media_type REELS"),
        ({"media_type": "REELS", "video_url": VIDEO, "alt_text": "x"}, "alt_text is only supported on image"),
        ({"image_url": IMAGE, "alt_text": "x" * 1001}, "at most 1000 characters"),
        ({"video_url": VIDEO, "is_carousel_item": "true"}, "needs media_type=VIDEO"),
        ({"media_type": "REELS", "video_url": VIDEO, "is_carousel_item": "true"}, "must be an IMAGE or a VIDEO"),
        ({"media_type": "STORIES", "image_url": IMAGE, "caption": "hai"}, "caption is not supported"),
        ({"media_type": "STORIES"}, "(#100) The parameter image_url or video_url is required"),
    ],
)
def test_wrong_combinations_are_refused_with_code_100(ig, data, message):
    meta, page = ig
    resp = create(meta, page, **data)
    assert resp.status_code == 400
    err = error_of(resp)
    assert err["code"] == 100 and message in err["message"], err
    assert meta.world.containers == {}


def test_unknown_media_type(ig):
    meta, page = ig
    err = error_of(create(meta, page, media_type="GIF", image_url=IMAGE))
    assert (err["code"], err["error_subcode"]) == (100, 2207023)


@pytest.mark.parametrize("field", ["video_url", "cover_url"])
def test_reel_urls_must_be_fetchable(ig, field):
    meta, page = ig
    data = {"media_type": "REELS", "video_url": VIDEO, field: "http://10.0.0.5/x.mp4"}
    err = error_of(create(meta, page, **data))
    assert (err["code"], err["error_subcode"]) == (9004, 2207052)


def test_bad_file_video_ends_in_error_with_a_status_text(ig):
    meta, page = ig
    reel = container(meta, page, media_type="REELS", video_url="https://cdn.example.com/bad_file.mp4")
    assert status(meta, page, reel)["status_code"] == "IN_PROGRESS"
    body = wait_finished(meta, page, reel)
    assert body["status_code"] == "ERROR"
    assert body["status"] == "Error: Media upload has failed with error code 2207026"
    err = error_of(meta.post(f"/{IG_1}/media_publish", page, creation_id=reel))
    assert (err["code"], err["error_subcode"]) == (-1, 2207032)
    assert meta.client.get("/_sandbox/published.json").get_json()["instagram"] == []


def test_image_and_video_stories(ig):
    meta, page = ig
    photo = container(meta, page, media_type="STORIES", image_url=IMAGE)
    clip = container(meta, page, media_type="STORIES", video_url=VIDEO)
    assert status(meta, page, photo)["status_code"] == "FINISHED"
    assert status(meta, page, clip)["status_code"] == "IN_PROGRESS"
    wait_finished(meta, page, clip)
    ids = [meta.post(f"/{IG_1}/media_publish", page, creation_id=c).get_json()["id"] for c in (photo, clip)]
    kinds = [meta.get(f"/{i}", page, fields="media_type,media_product_type").get_json() for i in ids]
    assert [(k["media_type"], k["media_product_type"]) for k in kinds] == [("IMAGE", "STORY"), ("VIDEO", "STORY")]
    published = meta.client.get("/_sandbox/published.json").get_json()["instagram"]
    assert [(p["media_product_type"], p["caption"]) for p in published] == [("STORY", ""), ("STORY", "")]


def test_alt_text_on_an_image_post(ig):
    meta, page = ig
    image = container(meta, page, image_url=IMAGE, alt_text="Sepatu kulit coklat", caption="Sepatu")
    media_id = meta.post(f"/{IG_1}/media_publish", page, creation_id=image).get_json()["id"]
    assert meta.get(f"/{media_id}", page, fields="alt_text").get_json()["alt_text"] == "Sepatu kulit coklat"


def test_containers_need_the_publish_permission(make_meta):
    meta = make_meta()
    _, page = meta.connect(permissions=[s for s in SCOPES if s != "instagram_content_publish"])
    err = error_of(create(meta, page, media_type="REELS", video_url=VIDEO))
    assert err["code"] == 10


def test_the_sandboxs_own_media_urls_are_fetchable(ig):
    meta, page = ig
    own = "http://localhost/_sandbox/media/square.jpg"  # the test client's host
    assert create(meta, page, image_url=own).status_code == 200
    err = error_of(create(meta, page, image_url="http://localhost/_sandbox/media/missing.jpg"))
    assert err["error_subcode"] == 2207052


def test_delays_are_set_through_the_admin_api(ig):
    meta, page = ig
    assert meta.admin("delays", {"image_s": 0.2, "video_s": 0}) == {"image_s": 0.2, "video_s": 0.0}
    image = container(meta, page, image_url=IMAGE)
    reel = container(meta, page, media_type="REELS", video_url=VIDEO)
    assert status(meta, page, image)["status_code"] == "IN_PROGRESS"
    assert status(meta, page, reel)["status_code"] == "FINISHED"
    assert meta.client.post("/_sandbox/delays", json={"video_s": -1}).status_code == 400
    assert meta.client.post("/_sandbox/delays", json={"image_s": "soon"}).status_code == 400
