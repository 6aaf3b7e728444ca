"""Field messages of a validation_error come from the server in the caller's language (DESIGN §5).

Indonesian unless ``Accept-Language`` prefers English, like the top-level ``message``; the page
shows them as they come. ``publish_request`` (RQ, no caller language) records Indonesian.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from publish_worker.jobs import publish_request
from shared.models import AuditEvent
from tests.conftest import same_origin
from tests.factories import make_connection
from tests.test_schedule_api import body, schedule
from tests.test_worker_duties import request_payload
from tests.worker_fixtures import worker_ctx  # noqa: F401

TOO_LONG = ("Caption maksimal 2.200 karakter.", "Must be at most 2200 characters.")
NO_ZONE = (
    "Harus menyertakan zona waktu (Z atau selisih seperti +07:00).",
    "Must include a time zone (Z or an offset such as +07:00).",
)
NOT_HTTPS = ("Harus URL lengkap yang diawali https://.", "Must be an absolute https URL.")
UNKNOWN = ("Kolom ini tidak dikenal.", "Unknown field.")


@pytest.fixture
def conn(db_session):
    return make_connection(db_session)


@pytest.mark.parametrize(
    "payload, field, messages",
    [
        (body(caption="x" * 2201), "caption", TOO_LONG),
        (body(publish_at="2026-12-01T10:00:00"), "publish_at", NO_ZONE),
        (body(media_url="http://cdn.example.com/a.jpg"), "media_url", NOT_HTTPS),
        (body(color="red"), "color", UNKNOWN),
        (body(targets=["facebook", "tiktok"]), "targets.1", ("Harus salah satu dari: facebook, instagram.", None)),
        (body(link="https://shop.example.com/" + "p" * 2048), "link", ("Maksimal 2.048 karakter.", None)),
    ],
)
def test_field_messages_are_indonesian_by_default_and_english_on_request(client, conn, payload, field, messages):
    indonesian, english = messages
    default = schedule(client, payload)
    assert default.status_code == 422 and default.json["fields"][field] == [indonesian]
    assert default.json["message"] == "Ada data yang belum benar. Periksa kembali isian Anda."
    for language in ("en", "en-US,en;q=0.9", "id;q=0.5, en;q=0.8", "en_US"):
        answer = schedule(client, payload, **{"Accept-Language": language})
        assert answer.json["message"] == "Some fields are not valid. Please check your input."
        assert answer.json["fields"][field] != [indonesian]
        if english:
            assert answer.json["fields"][field] == [english]
    assert schedule(client, payload, **{"Accept-Language": "id-ID, en;q=0.5"}).json["fields"][field] == [indonesian]


def test_every_message_of_several_problems_is_translated(client, conn):
    payload = body(caption=" ".join(f"#tag{n}" for n in range(31)) + " " + "x" * 2200, media_url="ftp://x/a.jpg")
    fields = schedule(client, payload).json["fields"]
    assert fields == {
        "caption": ["Caption maksimal 2.200 karakter.", "Caption maksimal berisi 30 hashtag."],
        "media_url": ["Harus URL lengkap yang diawali https://."],
    }


def test_messages_the_handlers_raise_themselves_are_translated_too(client, conn):
    cursor = client.get("/api/meta/schedule?cursor=nonsense").json["fields"]
    assert cursor == {"cursor": ["Cursor tidak valid."]}
    key = schedule(client, body(), **{"Idempotency-Key": " "}).json["fields"]
    assert key == {"Idempotency-Key": ["Harus 1 sampai 255 karakter yang dapat dicetak."]}
    english = schedule(client, body(), **{"Idempotency-Key": " ", "Accept-Language": "en"}).json["fields"]
    assert english == {"Idempotency-Key": ["Must be 1 to 255 printable characters."]}


def test_select_page_fields_follow_the_language(client):
    bad = {"page_id": "12a", "extra": 1}
    default = client.post("/api/meta/select-page", json=bad, headers=same_origin()).json["fields"]
    assert default == {"page_id": ["Harus berupa id Page."], "extra": ["Kolom ini tidak dikenal."]}
    english = client.post("/api/meta/select-page", json=bad, headers={**same_origin(), "Accept-Language": "en"}).json[
        "fields"
    ]
    assert english == {"page_id": ["Must be a Page id."], "extra": ["Unknown field."]}


def test_publish_request_records_indonesian_field_messages(worker_ctx, conn, db_session):  # noqa: F811
    missing_key = publish_request(request_payload(idempotency_key=None))
    assert missing_key["fields"] == {
        "idempotency_key": ["Harus berupa teks tidak kosong, maksimal 255 karakter yang dapat dicetak."]
    }
    not_https = publish_request(request_payload(media_url="http://x.example.com/a.jpg"))
    assert not_https["ok"] is False and not_https["fields"] == {
        "media_url": ["Harus URL lengkap yang diawali https://."]
    }
    deep: list = []
    for _ in range(40):
        deep = [deep]
    too_deep = publish_request(request_payload(caption=deep))
    assert too_deep["fields"] == {"_schema": ["JSON tidak dapat diterima (bersarang lebih dari 32 tingkat)."]}
    db_session.expire_all()
    events = db_session.scalars(select(AuditEvent).where(AuditEvent.event == "post_failed").order_by(AuditEvent.id))
    recorded = [event.detail["fields"] for event in events]
    assert recorded == [missing_key["fields"], not_https["fields"], too_deep["fields"]]


def _refusals_of_the_formats_table() -> set[str]:
    """Every message shared.targets refuses a combination with, found by trying them all."""
    from shared.models import POST_FORMATS
    from shared.targets import IMAGE, TARGETS, VIDEO, MediaItem, Refused, check_format

    image, video = MediaItem("https://cdn.example.com/a.jpg", IMAGE), MediaItem("https://cdn.example.com/v.mp4", VIDEO)
    shapes = [[], [image], [video], [image, image], [image, video], [video, video], [image] * 11]
    found = set()
    for post_format in POST_FORMATS:
        for media in shapes:
            try:
                check_format(post_format, media)
            except Refused as refused:
                found.add(refused.message)
                continue
            for target in TARGETS:
                try:
                    target.kind(post_format, media)
                except Refused as refused:
                    found.add(refused.message)
    return found


def test_every_content_v2_message_has_an_indonesian_translation():
    from shared import post_schema
    from shared.errors import field_message

    own = {
        post_schema.BOTH_MEDIA_FORMS,
        post_schema.ALT_TEXT_ON_VIDEO,
        post_schema.BLANK_COMMENT,
        post_schema.STORY_CAPTION,
        post_schema.STORY_COMMENT,
        post_schema.LINK_ONLY_POST,
        post_schema.COVER_ONLY_REEL,
        *post_schema.CAPTION_LIMITS,
        *post_schema.COMMENT_LIMITS,
    }
    refusals = _refusals_of_the_formats_table()
    assert len(refusals) >= 4  # the table's refusals were reached
    for message in own | refusals:
        assert field_message(message, "id") != message, message
        assert field_message(message, "en") == message


def test_content_v2_field_messages_follow_the_language_too(client, conn):
    payload = body(media_url=None, media=[{"url": "https://cdn.example.com/v.mp4", "type": "video", "alt_text": "x"}])
    assert schedule(client, payload).json["fields"] == {
        "media.0.alt_text": ["Teks alternatif (alt text) hanya untuk gambar."]
    }
    english = schedule(client, payload, **{"Accept-Language": "en"}).json["fields"]
    assert english == {"media.0.alt_text": ["Alt text is only for images."]}
