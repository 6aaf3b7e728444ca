"""Comments in the sandbox: the first comment on an IG media or a Page post, listing
them with their authors (so an exactly-once check can find ours), and the refusals."""

import pytest

from .conftest import IG_1, PAGE_1, SCOPES, error_of

IMAGE = "https://cdn.example.com/a.jpg"


@pytest.fixture
def meta_page(meta):
    _, page = meta.connect()
    return meta, page


def ig_media(meta, page) -> str:
    container = meta.post(f"/{IG_1}/media", page, image_url=IMAGE, caption="Promo").get_json()["id"]
    return meta.post(f"/{IG_1}/media_publish", page, creation_id=container).get_json()["id"]


def test_instagram_first_comment_and_listing(meta_page):
    meta, page = meta_page
    media_id = ig_media(meta, page)
    resp = meta.post(f"/v25.0/{media_id}/comments", page, message="#batik #promo")
    assert resp.status_code == 200
    comment_id = resp.get_json()["id"]
    meta.admin(f"comments/{media_id}", {"message": "Berapa harganya?", "from_name": "budi.santoso"})
    listed = meta.get(f"/v25.0/{media_id}/comments", page, fields="id,text,username,from,timestamp").get_json()
    assert [(c["text"], c["username"]) for c in listed["data"]] == [
        ("#batik #promo", "toko_sari"),
        ("Berapa harganya?", "budi.santoso"),
    ]
    ours = listed["data"][0]
    assert ours["id"] == comment_id and ours["from"] == {"id": IG_1, "username": "toko_sari"}
    assert ours["timestamp"].endswith("+0000")
    default = meta.get(f"/{media_id}/comments", page).get_json()["data"][0]
    assert set(default) == {"id", "text", "timestamp"}
    assert meta.get(f"/{media_id}", page, fields="comments_count").get_json()["comments_count"] == 2
    [item] = meta.client.get("/_sandbox/published.json").get_json()["instagram"]
    assert [(c["message"], c["ours"]) for c in item["comments"]] == [
        ("#batik #promo", True),
        ("Berapa harganya?", False),
    ]
    assert meta.admin("state", method="get")["comments"] == {"ours": 1, "others": 1}
    html = meta.client.get("/_sandbox/published").get_data(as_text=True)
    assert "#batik #promo" in html


def test_facebook_first_comment_on_a_post_a_photo_and_a_reel(meta_page):
    meta, page = meta_page
    post_id = meta.post(f"/{PAGE_1}/feed", page, message="Promo").get_json()["id"]
    resp = meta.post(f"/v25.0/{post_id}/comments", page, message="Link di bio")
    assert resp.status_code == 200
    comment_id = resp.get_json()["id"]
    assert comment_id.startswith(post_id.split("_")[1] + "_")
    listed = meta.get(f"/{post_id}/comments", page).get_json()["data"]
    assert [(c["id"], c["message"], c["from"]) for c in listed] == [
        (comment_id, "Link di bio", {"id": PAGE_1, "name": "Toko Sari"})
    ]
    photo = meta.post(f"/{PAGE_1}/photos", page, url=IMAGE).get_json()
    assert meta.post(f"/{photo['id']}/comments", page, message="via photo id").status_code == 200
    # a comment made through the photo id shows on its post
    assert [c["message"] for c in meta.get(f"/{photo['post_id']}/comments", page).get_json()["data"]] == [
        "via photo id"
    ]
    video_id = meta.post(f"/{PAGE_1}/videos", page, file_url="https://cdn.example.com/v.mp4").get_json()["id"]
    assert meta.post(f"/{video_id}/comments", page, message="via video id").status_code == 200
    fb = meta.client.get("/_sandbox/published.json").get_json()["facebook"]
    assert [[c["message"] for c in p["comments"]] for p in fb] == [["Link di bio"], ["via photo id"], ["via video id"]]


def test_comment_refusals(meta_page):
    meta, page = meta_page
    media_id = ig_media(meta, page)
    post_id = meta.post(f"/{PAGE_1}/feed", page, message="Promo").get_json()["id"]
    assert error_of(meta.post(f"/{media_id}/comments", page))["message"] == "(#100) The parameter message is required"
    assert error_of(meta.post(f"/{post_id}/comments", page))["message"] == "(#100) Missing message or attachment"
    err = error_of(meta.post("/17950000999999999/comments", page, message="x"))
    assert (err["code"], err["error_subcode"]) == (100, 33)
    # an unpublished photo is not a post one can comment on
    hidden = meta.post(f"/{PAGE_1}/photos", page, url=IMAGE, published="false").get_json()["id"]
    assert error_of(meta.post(f"/{hidden}/comments", page, message="x"))["code"] == 100
    # no proof, a user token on a Page post
    assert error_of(meta.post(f"/{media_id}/comments", page, signed=False, message="x"))["code"] == 100
    user = meta.user_token()
    assert error_of(meta.post(f"/{post_id}/comments", user, message="x"))["code"] == 200
    assert meta.world.comments == []


def test_no_comments_on_stories(make_meta):
    meta = make_meta("one_page", SANDBOX_VIDEO_DELAY=0)
    _, page = meta.connect()
    story = meta.post(f"/{IG_1}/media", page, media_type="STORIES", image_url=IMAGE).get_json()["id"]
    media_id = meta.post(f"/{IG_1}/media_publish", page, creation_id=story).get_json()["id"]
    assert error_of(meta.post(f"/{media_id}/comments", page, message="x"))["code"] == 100
    photo = meta.post(f"/{PAGE_1}/photos", page, url=IMAGE, published="false").get_json()["id"]
    fb_story = meta.post(f"/{PAGE_1}/photo_stories", page, photo_id=photo).get_json()["post_id"]
    assert error_of(meta.post(f"/{fb_story}/comments", page, message="x"))["code"] == 100


def test_comment_scopes_when_asked_for(meta):
    """Real Meta wants instagram_manage_comments / pages_manage_engagement; the flag plays that."""
    _, page = meta.connect()
    media_id = ig_media(meta, page)
    post_id = meta.post(f"/{PAGE_1}/feed", page, message="Promo").get_json()["id"]
    meta.admin("flags", {"comments_need_scopes": True})
    assert error_of(meta.post(f"/{media_id}/comments", page, message="x"))["message"].startswith(
        "(#10) Requires instagram_manage_comments"
    )
    assert error_of(meta.post(f"/{post_id}/comments", page, message="x"))["message"].startswith(
        "(#10) Requires pages_manage_engagement"
    )
    _, page = meta.connect(scopes=[*SCOPES, "instagram_manage_comments", "pages_manage_engagement"])
    assert meta.post(f"/{media_id}/comments", page, message="x").status_code == 200
    assert meta.post(f"/{post_id}/comments", page, message="x").status_code == 200


def test_visitor_comment_admin_validation(meta_page):
    meta, _ = meta_page
    assert meta.client.post("/_sandbox/comments/123", json={"message": "x"}).status_code == 404
    assert meta.client.post("/_sandbox/comments/123", json={}).status_code == 400
