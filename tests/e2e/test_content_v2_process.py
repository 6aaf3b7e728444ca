"""Content v2 through the whole system: the API (with the real media pre-check against the
sandbox's sample media), a real ``python -m publish_worker`` process, and the Meta sandbox.

Each carousel, album, reel and story is published exactly once with its first comment,
also when Meta's answer to a child container, a ``media_publish`` or a comment is lost
to a read timeout after Meta carried the request out.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from social_connect_demo import DemoStack
from tests.e2e.driver import Seller
from tests.e2e.process_fixtures import WorkerProcess, fault, published, wait_until_final

COMMENT = "Order lewat DM ya #batik"


def sample(system: DemoStack, name: str) -> str:
    assert system.sandbox is not None
    return f"{system.sandbox.url}/_sandbox/media/{name}"


def images(system: DemoStack, *names: str) -> list[dict[str, Any]]:
    return [{"url": sample(system, name), "type": "image", "alt_text": f"Foto {name}"} for name in names]


def video(system: DemoStack) -> dict[str, Any]:
    return {"url": sample(system, "clip.mp4"), "type": "video"}


def schedule_body(seller: Seller, body: dict[str, Any], seconds_ahead: float = 2) -> str:
    publish_at = (datetime.now(UTC) + timedelta(seconds=seconds_ahead)).isoformat()
    response = seller.api("POST", "/api/meta/schedule", json={"publish_at": publish_at, **body})
    assert response.status_code == 200, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def by_caption(items: list[dict[str, Any]], caption: str, key: str) -> list[dict[str, Any]]:
    return [item for item in items if (item.get(key) or "") == caption]


def our_comments(item: dict[str, Any]) -> list[str]:
    return [c["message"] for c in item.get("comments") or [] if c.get("ours")]


def test_a_carousel_an_album_a_reel_and_a_story_are_each_published_once_with_their_comment(
    fresh: tuple[DemoStack, Engine], workers: WorkerProcess
) -> None:
    system, _ = fresh
    seller = Seller(system)
    assert seller.consent().json()["connected"] is True
    workers.start()
    carousel = schedule_body(
        seller,
        {
            "caption": "Carousel batik",
            "media": [*images(system, "square.jpg", "portrait.jpg", "landscape.jpg"), video(system)],
            "targets": ["instagram"],
            "first_comment": COMMENT,
        },
    )
    album = schedule_body(
        seller,
        {
            "caption": "Album batik",
            "media": images(system, "square.jpg", "portrait.jpg", "landscape.jpg"),
            "first_comment": COMMENT,
        },
    )
    reel = schedule_body(
        seller,
        {
            "format": "reel",
            "caption": "Reel batik",
            "media": [video(system)],
            "cover_url": sample(system, "portrait.jpg"),
            "first_comment": COMMENT,
        },
    )
    story = schedule_body(seller, {"format": "story", "media": [{"url": sample(system, "story.jpg"), "type": "image"}]})
    posts = wait_until_final(seller, [carousel, album, reel, story], timeout=90)
    assert {job: p["status"] for job, p in posts.items()} == dict.fromkeys([carousel, album, reel, story], "published")

    sent = published(system)
    [ig_carousel] = by_caption(sent["instagram"], "Carousel batik", "caption")
    assert ig_carousel["media_type"] == "CAROUSEL_ALBUM" and len(ig_carousel["children"]) == 4
    [ig_album] = by_caption(sent["instagram"], "Album batik", "caption")
    assert ig_album["media_type"] == "CAROUSEL_ALBUM" and len(ig_album["children"]) == 3
    [fb_album] = by_caption(sent["facebook"], "Album batik", "message")
    assert fb_album["kind"] == "album" and len(fb_album["photos"]) == 3
    [ig_reel] = by_caption(sent["instagram"], "Reel batik", "caption")
    assert ig_reel["media_product_type"] == "REELS" and ig_reel["cover_url"] == sample(system, "portrait.jpg")
    fb_reels = [item for item in sent["facebook"] if item["kind"] == "reel"]
    assert len(fb_reels) == 1
    assert [item["kind"] for item in sent["facebook"]].count("photo_story") == 1
    assert [item.get("media_product_type") for item in sent["instagram"]].count("STORY") == 1
    assert len(sent["facebook"]) == 3 and len(sent["instagram"]) == 4

    for item in (ig_carousel, ig_album, fb_album, ig_reel, fb_reels[0]):
        assert our_comments(item) == [COMMENT]
    body = posts[carousel]
    assert body["format"] == "post" and len(body["media"]) == 4
    assert body["targets"]["instagram"]["media_id"] == ig_carousel["media_id"]
    assert body["targets"]["instagram"]["comment"]["status"] == "published"
    assert body["targets"]["facebook"]["status"] == "skipped"
    assert posts[story]["targets"]["instagram"]["comment"] is None


def test_mixed_media_for_facebook_is_refused_naming_the_target_and_nothing_is_stored(
    fresh: tuple[DemoStack, Engine],
) -> None:
    system, _ = fresh
    seller = Seller(system)
    seller.consent()
    publish_at = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    response = seller.api(
        "POST",
        "/api/meta/schedule",
        json={"publish_at": publish_at, "caption": "Campur", "media": [*images(system, "square.jpg"), video(system)]},
        headers={"Accept-Language": "en"},
    )
    assert response.status_code == 422
    assert response.json()["error_code"] == "validation_error"
    assert any("Facebook" in message for message in response.json()["fields"]["media"])
    assert seller.api("GET", "/api/meta/schedule").json()["items"] == []


def test_media_the_pre_check_rejects_is_refused_before_anything_is_stored(
    fresh: tuple[DemoStack, Engine],
) -> None:
    system, _ = fresh
    seller = Seller(system)
    seller.consent()
    publish_at = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    response = seller.api(
        "POST",
        "/api/meta/schedule",
        json={
            "publish_at": publish_at,
            "caption": "Terlalu tinggi",
            "media": [{"url": sample(system, "story.jpg"), "type": "image"}],
            "targets": ["instagram"],
        },
        headers={"Accept-Language": "en"},
    )
    assert response.status_code == 422, response.text
    fields = response.json()["fields"]
    assert any("Instagram" in message and "aspect ratio" in message for message in fields["media.0.url"])
    missing = seller.api(
        "POST",
        "/api/meta/schedule",
        json={
            "publish_at": publish_at,
            "caption": "Hilang",
            "media": [{"url": sample(system, "nope.jpg"), "type": "image"}],
        },
    )
    assert missing.status_code == 422 and missing.json()["error_code"] == "media_unreachable"
    assert "media.0.url" in missing.json()["fields"]
    assert seller.api("GET", "/api/meta/schedule").json()["items"] == []


def test_lost_answers_on_a_child_container_media_publish_and_comments_publish_everything_once(
    fresh: tuple[DemoStack, Engine], workers: WorkerProcess
) -> None:
    system, _ = fresh
    seller = Seller(system)
    seller.consent()
    # Meta carries each request out, then its answer takes longer than the worker waits.
    workers.env["GRAPH_READ_TIMEOUT_SECONDS"] = "1"
    for endpoint in ("media_child", "media_publish", "ig_comment", "fb_comment"):
        fault(system, endpoint=endpoint, latency_ms=2500, after_processing=True, times=1)
    workers.start()
    job_id = schedule_body(
        seller,
        {
            "caption": "Tetap sekali",
            "media": images(system, "square.jpg", "portrait.jpg", "landscape.jpg"),
            "first_comment": COMMENT,
        },
    )
    post = wait_until_final(seller, [job_id], timeout=120)[job_id]
    assert post["status"] == "published", post
    sent = published(system)
    [ig] = by_caption(sent["instagram"], "Tetap sekali", "caption")
    [fb] = by_caption(sent["facebook"], "Tetap sekali", "message")
    assert len(ig["children"]) == 3 and len(fb["photos"]) == 3
    assert our_comments(ig) == [COMMENT] and our_comments(fb) == [COMMENT]
    for target, remote_key, item in (("instagram", "media_id", ig), ("facebook", "post_id", fb)):
        shown = post["targets"][target]
        assert shown["status"] == "published" and shown[remote_key] == item[remote_key]
        assert shown["comment"]["status"] == "published"
        assert shown["comment"]["comment_id"] == next(c["comment_id"] for c in item["comments"] if c["ours"])
