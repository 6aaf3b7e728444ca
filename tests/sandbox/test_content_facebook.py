"""Facebook content v2 in the sandbox: multi-photo posts (attached_media), videos on the
graph-video paths, Reels and video stories in three phases through the upload host,
photo stories, and the 30-reels-a-day limit."""

import json

import pytest

from .conftest import PAGE_1, error_of, proof

IMAGE = "https://cdn.example.com/a.jpg"
VIDEO = "https://cdn.example.com/clip.mp4"
PAGE_2 = "110000000000002"


@pytest.fixture
def fb(make_meta):
    meta = make_meta("several_pages")
    user, page = meta.connect()
    return meta, user, page


def unpublished_photo(meta, page, url=IMAGE, page_id=PAGE_1) -> str:
    resp = meta.post(f"/v25.0/{page_id}/photos", page, url=url, published="false")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert "post_id" not in body
    return body["id"]


def upload(meta, token, video_id, file_url=VIDEO, **headers):
    sent = {"Authorization": f"OAuth {token}", "file_url": file_url, **headers}
    return meta.client.post(f"/video-upload/v25.0/{video_id}", headers=sent)


def published(meta):
    return meta.client.get("/_sandbox/published.json").get_json()["facebook"]


def test_several_photos_in_one_post(fb):
    meta, _, page = fb
    photos = [unpublished_photo(meta, page, f"https://cdn.example.com/{n}.jpg") for n in range(3)]
    # unpublished photos are not posts
    assert published(meta) == [] and meta.get(f"/{PAGE_1}/published_posts", page).get_json()["data"] == []
    attached = json.dumps([{"media_fbid": p} for p in photos])
    resp = meta.post(f"/v25.0/{PAGE_1}/feed", page, message="Tiga warna", attached_media=attached)
    assert resp.status_code == 200
    post_id = resp.get_json()["id"]
    assert post_id.startswith(f"{PAGE_1}_")
    [post] = published(meta)
    assert post["kind"] == "album" and post["message"] == "Tiga warna" and post["post_id"] == post_id
    assert [p["photo_id"] for p in post["photos"]] == photos
    assert post["photos"][2]["url"] == "https://cdn.example.com/2.jpg"
    own = meta.get(f"/{PAGE_1}/published_posts", page, fields="id,message,attachments").get_json()["data"]
    assert own[0]["id"] == post_id
    assert len(own[0]["attachments"]["data"][0]["subattachments"]["data"]) == 3
    # a photo is used once
    again = json.dumps([{"media_fbid": photos[0]}])
    err = error_of(meta.post(f"/{PAGE_1}/feed", page, message="lagi", attached_media=again))
    assert err["code"] == 100 and "attached_media[0]" in err["message"]


def test_attached_media_as_indexed_fields(fb):
    meta, _, page = fb
    photos = [unpublished_photo(meta, page) for _ in range(2)]
    fields = {f"attached_media[{i}]": json.dumps({"media_fbid": p}) for i, p in enumerate(photos)}
    assert meta.post(f"/{PAGE_1}/feed", page, message="x", **fields).status_code == 200
    assert [p["photo_id"] for p in published(meta)[0]["photos"]] == photos


def test_attached_media_refuses_what_is_not_an_unpublished_photo_of_this_page(fb):
    meta, user, page = fb
    live_photo = meta.post(f"/{PAGE_1}/photos", page, url=IMAGE).get_json()["id"]
    other = unpublished_photo(meta, meta.page_token(user, PAGE_2), page_id=PAGE_2)
    mine = unpublished_photo(meta, page)
    for bad in (live_photo, other, "12200000999999"):
        attached = json.dumps([{"media_fbid": mine}, {"media_fbid": bad}])
        err = error_of(meta.post(f"/{PAGE_1}/feed", page, attached_media=attached))
        assert err["code"] == 100 and f"attached_media[1] has an invalid media_fbid {bad}" in err["message"]
    for raw in ("not json", json.dumps([{"id": mine}]), json.dumps({"media_fbid": mine})):
        assert error_of(meta.post(f"/{PAGE_1}/feed", page, attached_media=raw))["code"] == 100
    assert [p["kind"] for p in published(meta)] == ["photo"]


def test_a_video_on_the_graph_video_paths(fb):
    meta, _, page = fb
    resp = meta.post(f"/v25.0/{PAGE_1}/videos", page, file_url=VIDEO, description="Video produk")
    assert resp.status_code == 200
    video_id = resp.get_json()["id"]
    [post] = published(meta)
    assert (post["kind"], post["video_id"], post["message"], post["url"]) == ("video", video_id, "Video produk", VIDEO)
    body = meta.get(f"/{video_id}", page, fields="description,status").get_json()
    assert body["status"]["video_status"] == "ready" and body["description"] == "Video produk"
    assert error_of(meta.post(f"/{PAGE_1}/videos", page, description="x"))["code"] == 100
    assert error_of(meta.post(f"/{PAGE_1}/videos", page, file_url="http://192.168.1.2/v.mp4"))["code"] == 389
    assert (
        error_of(meta.post(f"/{PAGE_1}/videos", page, file_url="https://cdn.example.com/bad_file.mp4"))["code"] == 6000
    )


def test_the_pages_videos_are_listed_by_video_id_with_their_description(fb):
    meta, user, page = fb
    first = meta.post(f"/{PAGE_1}/videos", page, file_url=VIDEO, description="Video produk").get_json()["id"]
    second = meta.post(f"/{PAGE_1}/videos", page, file_url=VIDEO, description="Video kedua").get_json()["id"]
    assert reel(meta, page, "Reel promo").status_code == 200
    [reel_id] = [item["video_id"] for item in published(meta) if item["kind"] == "reel"]
    meta.post(f"/{PAGE_1}/video_stories", page, upload_phase="start")  # a story is not among the videos
    other = meta.post(f"/{PAGE_2}/videos", meta.page_token(user, PAGE_2), file_url=VIDEO).get_json()["id"]
    listed = meta.get(f"/{PAGE_1}/videos", page, fields="id,description,created_time").get_json()["data"]
    assert [(v["id"], v.get("description")) for v in listed] == [
        (reel_id, "Reel promo"),
        (second, "Video kedua"),
        (first, "Video produk"),
    ]
    assert other not in {v["id"] for v in listed} and listed[0]["created_time"].endswith("+0000")
    # the post's id is not the video's: a check after a lost /videos answer compares video ids
    assert next(item["post_id"] for item in published(meta) if item["video_id"] == first) != first
    assert meta.get(f"/{PAGE_1}/videos", page, since="2999-01-01T00:00:00Z").get_json()["data"] == []
    paged = meta.get(f"/{PAGE_1}/videos", page, limit=2).get_json()
    assert len(paged["data"]) == 2 and "next" in paged["paging"]
    assert error_of(meta.get(f"/{PAGE_1}/videos", page, since="yesterday"))["code"] == 100
    assert meta.admin("state", method="get")["calls"]["videos_list"] == 4


def test_reel_in_three_phases(fb):
    meta, _, page = fb
    start = meta.post(f"/v25.0/{PAGE_1}/video_reels", page, upload_phase="start")
    assert start.status_code == 200
    body = start.get_json()
    video_id = body["video_id"]
    assert body["upload_url"] == f"http://localhost/video-upload/v25.0/{video_id}"
    uploaded = upload(meta, page, video_id)
    assert (uploaded.status_code, uploaded.get_json()) == (200, {"success": True})
    finish = meta.post(
        f"/v25.0/{PAGE_1}/video_reels",
        page,
        upload_phase="finish",
        video_id=video_id,
        video_state="PUBLISHED",
        description="Reel promo",
    )
    assert (finish.status_code, finish.get_json()) == (200, {"success": True})
    [post] = published(meta)
    assert (post["kind"], post["video_id"], post["message"]) == ("reel", video_id, "Reel promo")
    reels = meta.get(f"/{PAGE_1}/video_reels", page).get_json()["data"]
    assert [(r["id"], r["description"]) for r in reels] == [(video_id, "Reel promo")]
    calls = meta.admin("state", method="get")["calls"]
    assert (calls["video_reels_start"], calls["video_upload"], calls["video_reels_finish"]) == (1, 1, 1)


def test_reel_phases_out_of_order(fb):
    meta, _, page = fb
    video_id = meta.post(f"/{PAGE_1}/video_reels", page, upload_phase="start").get_json()["video_id"]
    # finish before the upload
    resp = meta.post(f"/{PAGE_1}/video_reels", page, upload_phase="finish", video_id=video_id, video_state="PUBLISHED")
    err = error_of(resp)
    assert (err["code"], err["error_subcode"], err["error_user_title"]) == (6000, 1363130, "Video Upload Is Missing")
    # finish of an id that never started
    err = error_of(meta.post(f"/{PAGE_1}/video_reels", page, upload_phase="finish", video_id="999"))
    assert err["code"] == 100 and "Invalid video_id" in err["message"]
    # upload to a session that does not exist
    missing = upload(meta, page, "12250000999999")
    assert missing.status_code == 404 and missing.get_json()["debug_info"]["type"] == "NotFoundError"
    upload(meta, page, video_id)
    assert (
        error_of(meta.post(f"/{PAGE_1}/video_reels", page, upload_phase="finish", video_id=video_id))["message"]
        == "(#100) The parameter video_state is required"
    )
    ok = meta.post(f"/{PAGE_1}/video_reels", page, upload_phase="finish", video_id=video_id, video_state="PUBLISHED")
    assert ok.status_code == 200
    # finish twice, then an upload after the finish
    again = meta.post(f"/{PAGE_1}/video_reels", page, upload_phase="finish", video_id=video_id, video_state="PUBLISHED")
    assert error_of(again)["error_user_title"] == "Video already published"
    late = upload(meta, page, video_id)
    assert late.status_code == 400 and "already finished" in late.get_json()["debug_info"]["message"]
    assert len(published(meta)) == 1
    # no phase, an unknown phase
    assert error_of(meta.post(f"/{PAGE_1}/video_reels", page))["message"] == (
        "(#100) The parameter upload_phase is required"
    )
    assert error_of(meta.post(f"/{PAGE_1}/video_reels", page, upload_phase="transfer"))["code"] == 100


def test_upload_host_checks_the_token_and_the_file_url(fb):
    meta, user, page = fb
    video_id = meta.post(f"/{PAGE_1}/video_reels", page, upload_phase="start").get_json()["video_id"]
    no_token = meta.client.post(f"/video-upload/v25.0/{video_id}", headers={"file_url": VIDEO})
    assert no_token.status_code == 401 and "debug_info" in no_token.get_json()
    assert upload(meta, "EAAnotatoken", video_id).status_code == 401
    other = meta.page_token(user, PAGE_2)
    assert upload(meta, other, video_id).status_code == 403
    assert upload(meta, user, video_id).status_code == 403
    wrong_proof = meta.client.post(
        f"/video-upload/v25.0/{video_id}?appsecret_proof={'0' * 64}",
        headers={"Authorization": f"OAuth {page}", "file_url": VIDEO},
    )
    assert wrong_proof.status_code == 401
    right_proof = meta.client.post(
        f"/video-upload/v25.0/{video_id}?appsecret_proof={proof(page)}",
        headers={"Authorization": f"OAuth {page}", "file_url": VIDEO},
    )
    assert right_proof.status_code == 200
    no_file = meta.client.post(f"/video-upload/v25.0/{video_id}", headers={"Authorization": f"OAuth {page}"})
    assert no_file.get_json()["debug_info"]["type"] == "ParameterValidationError"
    assert upload(meta, page, video_id, file_url="http://127.0.0.1:9/x.mp4").status_code == 400


def test_a_bad_file_reel_fails_at_finish(fb):
    meta, _, page = fb
    video_id = meta.post(f"/{PAGE_1}/video_reels", page, upload_phase="start").get_json()["video_id"]
    upload(meta, page, video_id, file_url="https://cdn.example.com/bad_file.mp4")
    resp = meta.post(f"/{PAGE_1}/video_reels", page, upload_phase="finish", video_id=video_id, video_state="PUBLISHED")
    assert error_of(resp)["code"] == 6000 and published(meta) == []


def reel(meta, page, description="r"):
    video_id = meta.post(f"/{PAGE_1}/video_reels", page, upload_phase="start").get_json()["video_id"]
    upload(meta, page, video_id)
    return meta.post(
        f"/{PAGE_1}/video_reels",
        page,
        upload_phase="finish",
        video_id=video_id,
        video_state="PUBLISHED",
        description=description,
    )


def test_at_most_thirty_reels_a_day(fb):
    meta, _, page = fb
    meta.admin("reels-quota", {"page_id": PAGE_1, "used": 29})
    assert reel(meta, page).status_code == 200
    assert meta.admin("state", method="get")["reels"][PAGE_1] == {"used": 30, "total": 30}
    err = error_of(reel(meta, page))
    assert err["code"] == 9 and "30" in err["message"]
    assert len(published(meta)) == 1


def test_a_draft_reel_is_not_published(fb):
    meta, _, page = fb
    video_id = meta.post(f"/{PAGE_1}/video_reels", page, upload_phase="start").get_json()["video_id"]
    upload(meta, page, video_id)
    resp = meta.post(f"/{PAGE_1}/video_reels", page, upload_phase="finish", video_id=video_id, video_state="DRAFT")
    assert resp.get_json() == {"success": True} and published(meta) == []


def test_video_story_in_three_phases(fb):
    meta, _, page = fb
    start = meta.post(f"/v25.0/{PAGE_1}/video_stories", page, upload_phase="start").get_json()
    err = error_of(meta.post(f"/{PAGE_1}/video_stories", page, upload_phase="finish", video_id=start["video_id"]))
    assert err["error_subcode"] == 1363130
    assert upload(meta, page, start["video_id"]).status_code == 200
    # a reel's finish does not take a story's session
    wrong = meta.post(
        f"/{PAGE_1}/video_reels", page, upload_phase="finish", video_id=start["video_id"], video_state="PUBLISHED"
    )
    assert error_of(wrong)["code"] == 100
    done = meta.post(f"/{PAGE_1}/video_stories", page, upload_phase="finish", video_id=start["video_id"])
    body = done.get_json()
    assert body["success"] is True and body["post_id"].startswith(f"{PAGE_1}_")
    [story] = published(meta)
    assert (story["kind"], story["video_id"]) == ("video_story", start["video_id"])
    listed = meta.get(f"/{PAGE_1}/stories", page).get_json()["data"]
    assert [(s["post_id"], s["media_type"]) for s in listed] == [(body["post_id"], "video")]
    # stories are not among the Page's posts
    assert meta.get(f"/{PAGE_1}/published_posts", page).get_json()["data"] == []


def test_photo_story(fb):
    meta, user, page = fb
    photo = unpublished_photo(meta, page)
    resp = meta.post(f"/v25.0/{PAGE_1}/photo_stories", page, photo_id=photo)
    body = resp.get_json()
    assert resp.status_code == 200 and body["success"] is True
    [story] = published(meta)
    assert (story["kind"], story["post_id"], story["url"]) == ("photo_story", body["post_id"], IMAGE)
    # the photo is used; a published photo or another Page's photo is refused
    assert error_of(meta.post(f"/{PAGE_1}/photo_stories", page, photo_id=photo))["code"] == 100
    live_photo = meta.post(f"/{PAGE_1}/photos", page, url=IMAGE).get_json()["id"]
    assert error_of(meta.post(f"/{PAGE_1}/photo_stories", page, photo_id=live_photo))["code"] == 100
    other = unpublished_photo(meta, meta.page_token(user, PAGE_2), page_id=PAGE_2)
    assert error_of(meta.post(f"/{PAGE_1}/photo_stories", page, photo_id=other))["code"] == 100
    assert error_of(meta.post(f"/{PAGE_1}/photo_stories", page))["message"] == (
        "(#100) The parameter photo_id is required"
    )
    assert meta.get(f"/{photo}", page, fields="published,page_story_id").get_json() == {
        "id": photo,
        "published": False,
        "page_story_id": body["post_id"],
    }


@pytest.mark.parametrize(
    "path, data",
    [
        ("videos", {"file_url": VIDEO}),
        ("video_reels", {"upload_phase": "start"}),
        ("video_stories", {"upload_phase": "start"}),
        ("photo_stories", {"photo_id": "1"}),
    ],
)
def test_new_page_edges_need_that_pages_token_and_its_proof(fb, path, data):
    meta, user, _ = fb
    assert error_of(meta.post(f"/{PAGE_1}/{path}", user, **data))["code"] == 200
    other = meta.page_token(user, PAGE_2)
    assert error_of(meta.post(f"/{PAGE_1}/{path}", other, **data))["code"] == 200
    page = meta.page_token(user)
    assert error_of(meta.post(f"/{PAGE_1}/{path}", page, signed=False, **data))["code"] == 100
    assert meta.world.videos == {}
