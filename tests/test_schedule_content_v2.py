"""POST /api/meta/schedule with content v2 (DESIGN §13.2): formats, several media, alt text, the
first comment, a reel's cover; what each combination is refused with; and earlier bodies unchanged."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from rq.job import Job
from sqlalchemy import select

from shared.models import ScheduledPost
from shared.post_schema import ScheduleBody
from shared.scheduling import request_hash, validate_body
from tests.factories import make_connection
from tests.test_schedule_api import later, post_count, schedule

IMG = "https://cdn.example.com/1.jpg"
IMG2 = "https://cdn.example.com/2.jpg"
VID = "https://cdn.example.com/clip.mp4"
COVER = "https://cdn.example.com/cover.jpg"


def image(url: str = IMG, **extra) -> dict:
    return {"url": url, "type": "image", **extra}


def video(url: str = VID, **extra) -> dict:
    return {"url": url, "type": "video", **extra}


def v2(**fields) -> dict:
    """A content-v2 body (no media_url unless given)."""
    return {"publish_at": later(), "caption": "Promo batik", **fields}


@pytest.fixture
def conn(db_session):
    return make_connection(db_session)


def stored(db_session, response) -> ScheduledPost:
    assert response.status_code == 200, response.json
    db_session.expire_all()
    return db_session.get(ScheduledPost, response.json["job_id"])


def test_a_carousel_with_alt_text_and_a_first_comment_is_stored_as_given(client, conn, db_session):
    media = [image(alt_text="Kemeja batik biru"), image(IMG2), video()]
    post = stored(db_session, schedule(client, v2(media=media, targets=["instagram"], first_comment="#batik #promo")))
    assert post.format == "post"
    assert post.media == [image(alt_text="Kemeja batik biru"), image(IMG2), video()]
    assert post.media_url == IMG  # the first item, for earlier readers of the column
    assert post.first_comment == "#batik #promo" and post.cover_url is None
    instagram, facebook = post.target("instagram"), post.target("facebook")
    assert (instagram.status, instagram.comment_status) == ("pending", "pending")
    assert (facebook.status, facebook.comment_status) == ("skipped", None)


def test_without_a_first_comment_no_target_waits_for_one(client, conn, db_session):
    post = stored(db_session, schedule(client, v2(media=[image(), image(IMG2)])))
    assert [row.comment_status for row in post.target_rows] == [None, None]
    assert post.first_comment is None


def test_media_url_is_stored_as_a_one_image_media_list(client, conn, db_session):
    post = stored(db_session, schedule(client, v2(media_url=IMG)))
    assert post.media == [{"url": IMG, "type": "image"}] and post.media_url == IMG and post.format == "post"


def test_a_reel_with_its_cover_and_a_story_are_stored_with_their_format(client, conn, db_session):
    reel = stored(db_session, schedule(client, v2(format="reel", media=[video()], cover_url=COVER)))
    assert (reel.format, reel.cover_url, reel.media) == ("reel", COVER, [video()])
    story = stored(db_session, schedule(client, v2(format="story", caption="", media_url=IMG)))
    assert (story.format, story.media, story.caption) == ("story", [image()], "")


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"targets": ["facebook"], "link": "https://shop.example.com"}, id="post-no-media-facebook-feed"),
        pytest.param({"media": [image()]}, id="post-one-image"),
        pytest.param({"media": [image(f"https://cdn.example.com/{n}.jpg") for n in range(10)]}, id="post-ten-images"),
        pytest.param({"media": [image(), video()], "targets": ["instagram"]}, id="post-mixed-instagram-carousel"),
        pytest.param({"media": [video(), video()], "targets": ["instagram"]}, id="post-videos-instagram-carousel"),
        pytest.param({"media": [video()], "cover_url": COVER}, id="post-one-video-with-instagram-cover"),
        pytest.param({"format": "reel", "media": [video()], "first_comment": "#reel"}, id="reel-one-video"),
        pytest.param({"format": "story", "caption": "", "media": [image()]}, id="story-image"),
        pytest.param({"format": "story", "caption": "", "media": [video()]}, id="story-video"),
    ],
)
def test_every_combination_of_the_formats_table_is_accepted(client, conn, db_session, fields):
    stored(db_session, schedule(client, v2(**fields)))


TOO_MANY_TAGS = " ".join(f"#t{n}" for n in range(31))


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"media_url": IMG, "media": [image()]}, "media_url", "Give either media_url or media, not both."),
        ({"media": [image(), video(alt_text="Video")]}, "media.1.alt_text", "Alt text is only for images."),
        ({"format": "story", "media": [image()]}, "caption", "A story has no caption."),
        (
            {"format": "story", "caption": "", "media": [image()], "first_comment": "#a"},
            "first_comment",
            "A story has no first comment.",
        ),
        (
            {"format": "story", "caption": "", "media": [image(), image(IMG2)]},
            "media",
            "A story needs exactly one image or video.",
        ),
        ({"format": "reel", "media": [image()]}, "media", "A reel needs exactly one video."),
        ({"format": "reel", "media_url": IMG}, "media_url", "A reel needs exactly one video."),
        ({"format": "reel", "media": [video(), video()]}, "media", "A reel needs exactly one video."),
        ({"format": "reel"}, "media", "A reel needs exactly one video."),
        (
            {"media": [image(), video()]},
            "media",
            "Facebook: Several media in one post must all be images.",
        ),
        ({"format": "post", "targets": ["instagram"]}, "media_url", "Required when instagram is a target."),
        (
            {"format": "reel", "media": [video()], "link": "https://shop.example.com", "targets": ["facebook"]},
            "link",
            "A link can only go with format post.",
        ),
        (
            {"media": [image()], "cover_url": COVER},
            "cover_url",
            "A cover is only used where Instagram makes a reel (a reel, or one video posted to Instagram).",
        ),
        (
            {"format": "reel", "media": [video()], "cover_url": COVER, "targets": ["facebook"]},
            "cover_url",
            "A cover is only used where Instagram makes a reel (a reel, or one video posted to Instagram).",
        ),
        (
            {"media": [image()], "first_comment": "x" * 2201},
            "first_comment",
            "The comment must be at most 2200 characters.",
        ),
        (
            {"media": [image()], "first_comment": TOO_MANY_TAGS},
            "first_comment",
            "The comment must have at most 30 hashtags.",
        ),
        (
            {"media": [image()], "first_comment": " ".join(f"@u{n}" for n in range(21))},
            "first_comment",
            "The comment must have at most 20 @mentions.",
        ),
        (
            {"media": [image()], "first_comment": "  "},
            "first_comment",
            "Must not be blank (leave first_comment out for no comment).",
        ),
        ({"media": []}, "media", "Length must be between 1 and 10."),
        ({"media": [image()] * 11}, "media", "Length must be between 1 and 10."),
        ({"media": [image("http://cdn.example.com/a.jpg")]}, "media.0.url", "Must be an absolute https URL."),
        (
            {"media": [image(), image("https://10.0.0.7/a.jpg")]},
            "media.1.url",
            "Must be reachable from the internet (Meta fetches it).",
        ),
        (
            {"media": [image("https://cdn.example.com/" + "a" * 2048)]},
            "media.0.url",
            "Longer than maximum length 2048.",
        ),
        ({"media": [{"url": IMG, "type": "gif"}]}, "media.0.type", "Must be one of: image, video."),
        ({"media": [{"url": IMG}]}, "media.0.type", "Missing data for required field."),
        ({"media": [image(extra=1)]}, "media.0.extra", "Unknown field."),
        ({"media": [image(alt_text="a" * 1001)]}, "media.0.alt_text", "Longer than maximum length 1000."),
        ({"format": "carousel", "media": [image()]}, "format", "Must be one of: post, reel, story."),
        (
            {"format": "reel", "media": [video()], "cover_url": "http://cdn.example.com/c.jpg"},
            "cover_url",
            "Must be an absolute https URL.",
        ),
    ],
)
def test_each_refused_combination_names_its_field_and_nothing_is_stored(
    client, conn, db_session, redis_client, fields, field, message
):
    response = schedule(client, v2(**fields), **{"Accept-Language": "en"})
    assert response.status_code == 422, response.json
    assert response.json["error_code"] == "validation_error"
    assert response.json["fields"] == {field: [message]}
    indonesian = schedule(client, v2(**fields)).json["fields"][field]
    assert indonesian != [message] and len(indonesian) == 1  # translated (shared/errors.py)
    assert post_count(db_session) == 0
    assert redis_client.zcard("rq:scheduled:meta-publish") == 0 and redis_client.llen("rq:queue:meta-publish") == 0


def _hash_before_content_v2(body: dict) -> str:
    """The idempotency hash as posts stored before content v2 carry it (their replay depends on it)."""
    canonical = {
        "connection_id": body.get("connection_id"),
        "publish_at": body["publish_at"].astimezone(UTC).isoformat(),
        "caption": body.get("caption") or "",
        "media_url": body.get("media_url"),
        "link": body.get("link"),
        "targets": sorted(body.get("targets") or []),
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize(
    "payload",
    [
        {"publish_at": "2030-01-01T10:00:00+07:00", "caption": "Promo", "media_url": IMG},
        {"publish_at": "2030-01-01T03:00:00Z", "media_url": IMG, "targets": ["instagram"], "connection_id": "conn_1"},
        {
            "publish_at": "2030-01-01T03:00:00Z",
            "caption": "Teks",
            "link": "https://shop.example.com",
            "targets": ["facebook"],
        },
    ],
)
def test_an_earlier_body_hashes_exactly_as_before(payload):
    body = validate_body(payload, now=datetime(2029, 12, 31, tzinfo=UTC))
    assert request_hash(body) == _hash_before_content_v2(body)


def test_a_post_stored_before_the_upgrade_still_replays_its_key(client, conn, db_session, redis_client):
    payload = {"publish_at": later(), "caption": "Promo", "media_url": IMG}
    first = schedule(client, payload, **{"Idempotency-Key": "order-7"}).json["job_id"]
    post = db_session.get(ScheduledPost, first)
    post.request_hash = _hash_before_content_v2(ScheduleBody().load(payload))  # as the old code stored it
    db_session.commit()
    again = schedule(client, payload, **{"Idempotency-Key": "order-7"})
    assert again.status_code == 200 and again.json["job_id"] == first
    assert post_count(db_session) == 1


def test_one_image_as_media_or_as_media_url_is_the_same_request(client, conn, db_session):
    publish_at = later()
    first = schedule(client, v2(publish_at=publish_at, media_url=IMG), **{"Idempotency-Key": "k1"}).json["job_id"]
    same = schedule(client, v2(publish_at=publish_at, media=[image()]), **{"Idempotency-Key": "k1"})
    assert same.status_code == 200 and same.json["job_id"] == first


@pytest.mark.parametrize(
    "changed",
    [
        {"media": [image(alt_text="Biru")]},
        {"media": [image(), image(IMG2)]},
        {"media_url": IMG, "first_comment": "#promo"},
        {"format": "story", "caption": "", "media_url": IMG},
        {"media": [video()], "cover_url": COVER},
    ],
)
def test_a_new_field_with_the_same_key_is_another_request(client, conn, db_session, changed):
    publish_at = later()
    schedule(client, v2(publish_at=publish_at, media_url=IMG), **{"Idempotency-Key": "k2"})
    payload = v2(publish_at=publish_at, **changed)
    if payload.get("format") == "story":
        payload["caption"] = ""
    response = schedule(client, payload, **{"Idempotency-Key": "k2"})
    assert response.status_code == 409 and response.json["error_code"] == "idempotency_conflict"
    assert post_count(db_session) == 1


def test_a_content_v2_post_is_enqueued_like_any_other(client, conn, db_session, redis_client):
    job_id = stored(db_session, schedule(client, v2(format="reel", media=[video()]))).id
    assert Job.exists(f"pub-{job_id}-1", connection=redis_client)
    assert redis_client.zcard("rq:scheduled:meta-publish") == 1  # the key the refusals above find empty
    assert db_session.scalars(select(ScheduledPost.format)).all() == ["reel"]
