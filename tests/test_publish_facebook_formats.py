"""The Facebook Page's content-v2 formats (DESIGN §13.2): albums, videos, Reels, photo and
video stories, and the first comment — each step recorded so a retry resumes where it
stopped, and nothing published twice. Graph is mocked (tests/facebook_mock.py), and a
few run end to end through the Meta sandbox in this process.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests_mock

from meta_sandbox import serve_in_thread
from publish_worker.context import install_context, worker_services
from publish_worker.failures import request_lifetime
from publish_worker.jobs import publish_post
from shared.db import utcnow
from shared.models import PostTarget
from shared.tokens import store_tokens
from tests.conftest import APP_SECRET
from tests.facebook_mock import PAGE_ID, PAGE_TOKEN, PASS, UPLOAD_URL, VIDEO_URL, FacebookMock, Video, hours_ago
from tests.factories import cipher, make_connection, make_post
from tests.publish_mock import graph_error
from tests.test_meta_errors_sandbox import APP_ID, Sandbox
from tests.test_meta_errors_sandbox import APP_SECRET as APP_SECRET_SB
from tests.test_meta_errors_sandbox import IG as SB_IG
from tests.test_meta_errors_sandbox import PAGE as SB_PAGE
from tests.worker_fixtures import (
    FAST,
    queued_jobs,
    reload,
    run_next_continuation,
    scheduled_jobs,
    set_target,
    skip_the_wait,
)

CAPTION = "Batik biru baru #batik"
COMMENT = "#promo ongkir gratis"
IMAGES = [f"https://cdn.example.com/{n}.jpg" for n in range(1, 4)]
VIDEO = "https://cdn.example.com/clip.mp4"
TIMEOUT = {"exc": requests.exceptions.ReadTimeout}
SERVER_ERROR = graph_error(2, status=500, message="An unexpected error has occurred.", is_transient=True)
THROTTLED = graph_error(32, message="Page request limit reached")


@pytest.fixture
def ctx(settings, redis_client, engine):
    ctx = worker_services(
        settings.with_overrides(**FAST, meta_graph_video_url=VIDEO_URL, meta_upload_url=UPLOAD_URL), redis_client
    )
    install_context(ctx)
    yield ctx
    install_context(None)
    ctx.close()


@pytest.fixture
def fb():
    with requests_mock.Mocker() as m:
        yield FacebookMock(m)


@pytest.fixture
def conn(db_session):
    return make_connection(db_session)


def fb_post(db_session, conn, kind: str, *, first_comment: str | None = None, **fields):
    """A Facebook-only post of one format: ``album``, ``video``, ``reel``, ``photo_story``, ``video_story``."""
    post_format, media = {
        "album": ("post", [{"url": url, "type": "image"} for url in IMAGES]),
        "video": ("post", [{"url": VIDEO, "type": "video"}]),
        "reel": ("reel", [{"url": VIDEO, "type": "video"}]),
        "photo_story": ("story", [{"url": IMAGES[0], "type": "image"}]),
        "video_story": ("story", [{"url": VIDEO, "type": "video"}]),
    }[kind]
    caption = "" if post_format == "story" else fields.pop("caption", CAPTION)
    facebook = fields.pop("facebook", {})
    if first_comment:
        facebook = {"comment_status": "pending", **facebook}
    return make_post(
        db_session,
        conn,
        targets=["facebook"],
        caption=caption,
        media_url=media[0]["url"],
        media=media,
        format=post_format,
        first_comment=first_comment,
        facebook=facebook,
        **fields,
    )


def target(db_session, post_id: str) -> PostTarget:
    row = reload(db_session, post_id).target("facebook")
    assert row is not None
    return row


def due_now(ctx, post_id: str) -> None:
    """Skip the wait: the continuation's time has come (and a lost request's lifetime is over)."""
    skip_the_wait(ctx, post_id)


def run_again(ctx, post_id: str) -> str:
    due_now(ctx, post_id)
    return run_next_continuation(ctx.redis)


def run_to_the_end(ctx, post_id: str, max_runs: int = 8) -> str:
    result = publish_post(post_id)
    for _ in range(max_runs):
        if result != "continuing":
            return result
        result = run_again(ctx, post_id)
    raise AssertionError(f"still continuing after {max_runs} runs")


def form(request) -> dict:
    return {k: v[0] for k, v in parse_qs(request.text or "").items()}


def proof(token: str = PAGE_TOKEN) -> str:
    return hmac.new(APP_SECRET.encode(), token.encode(), hashlib.sha256).hexdigest()


def taken_over(db_session, conn, kind: str, **fields):
    """A post a worker was publishing when it died: still ``publishing``, its lease expired."""
    return fb_post(
        db_session,
        conn,
        kind,
        status="publishing",
        lease_owner="lease-dead",
        lease_expires_at=utcnow() - timedelta(seconds=1),
        **fields,
    )


# ---------- what each format publishes ----------


def test_an_album_uploads_each_image_unpublished_then_one_post_holds_them(ctx, fb, conn, db_session):
    post = fb_post(db_session, conn, "album")
    assert publish_post(post.id) == "published"
    uploads = fb.calls("photos")
    assert [form(r)["url"] for r in uploads] == IMAGES
    assert all(form(r)["published"] == "false" and "caption" not in form(r) for r in uploads)
    [feed] = fb.calls("feed")
    sent = form(feed)
    photo_ids = [json.loads(sent[f"attached_media[{i}]"])["media_fbid"] for i in range(3)]
    assert sent["message"] == CAPTION and photo_ids == list(fb.photos)
    row = target(db_session, post.id)
    [album] = fb.posts
    assert (row.status, row.remote_id) == ("published", album.id) and album.photos == photo_ids
    assert [c["photo_id"] for c in row.children] == photo_ids and [c["url"] for c in row.children] == IMAGES
    assert reload(db_session, post.id).status == "published"


def test_a_single_video_goes_to_the_video_host_with_its_description(ctx, fb, conn, db_session):
    post = fb_post(db_session, conn, "video")
    assert publish_post(post.id) == "published"
    [upload] = fb.calls("videos")
    assert upload.url.startswith(f"{VIDEO_URL}/v25.0/{PAGE_ID}/videos")
    assert form(upload) == {"file_url": VIDEO, "description": CAPTION, "appsecret_proof": proof()}
    assert upload.headers["Authorization"] == f"Bearer {PAGE_TOKEN}" and "access_token" not in upload.url
    [video] = fb.videos.values()
    assert target(db_session, post.id).remote_id == video.id
    assert fb.calls("photos") == [] and fb.calls("feed") == []


def test_a_reel_starts_uploads_by_url_and_finishes_published(ctx, fb, conn, db_session):
    post = fb_post(db_session, conn, "reel")
    assert publish_post(post.id) == "published"
    [start, finish] = fb.calls("video_reels")
    [video] = fb.videos.values()
    assert form(start) == {"upload_phase": "start", "appsecret_proof": proof()}
    [upload] = fb.calls("upload")
    assert urlsplit(upload.url).path == f"/video-upload/v25.0/{video.id}"
    # The upload host takes the token as "OAuth", the file by URL in a header, and no body.
    assert upload.headers["Authorization"] == f"OAuth {PAGE_TOKEN}" and upload.headers["file_url"] == VIDEO
    assert parse_qs(urlsplit(upload.url).query) == {"appsecret_proof": [proof()]}
    assert upload.body is None and upload.headers["Content-Length"] == "0" and "Content-Type" not in upload.headers
    assert form(finish) == {
        "upload_phase": "finish",
        "video_id": video.id,
        "video_state": "PUBLISHED",
        "description": CAPTION,
        "appsecret_proof": proof(),
    }
    row = target(db_session, post.id)
    assert (row.status, row.remote_id) == ("published", video.id)
    assert row.steps == {"video_id": video.id, "uploaded": True}
    assert fb.post_of(video.id).kind == "reel"


def test_a_photo_story_is_an_unpublished_photo_made_a_story(ctx, fb, conn, db_session):
    post = fb_post(db_session, conn, "photo_story")
    assert publish_post(post.id) == "published"
    [photo] = fb.calls("photos")
    assert form(photo)["published"] == "false" and form(photo)["url"] == IMAGES[0]
    [photo_id] = fb.photos
    [story_call] = fb.calls("photo_stories")
    assert form(story_call)["photo_id"] == photo_id
    [story] = fb.posts
    row = target(db_session, post.id)
    assert (row.remote_id, row.steps) == (story.id, {"photo_id": photo_id}) and story.kind == "photo_story"


def test_a_video_story_uses_the_three_phases_without_a_video_state(ctx, fb, conn, db_session):
    post = fb_post(db_session, conn, "video_story")
    assert publish_post(post.id) == "published"
    [start, finish] = fb.calls("video_stories")
    [video] = fb.videos.values()
    assert form(start)["upload_phase"] == "start"
    assert form(finish) == {"upload_phase": "finish", "video_id": video.id, "appsecret_proof": proof()}
    assert len(fb.calls("upload")) == 1 and fb.calls("video_reels") == []
    assert target(db_session, post.id).remote_id == video.post_id == fb.post_of(video.id).id


def test_the_graph_client_sends_tokens_to_no_other_host(ctx, fb, conn, db_session):
    from shared.graph import GraphClient

    graph = GraphClient(ctx.settings)
    with pytest.raises(ValueError, match="configured hosts"):
        graph.post("https://rupload.facebook.com.evil.test/video-upload/v25.0/1", token=PAGE_TOKEN)
    with pytest.raises(ValueError, match="configured hosts"):
        graph.upload("https://evil.test/video-upload/v25.0/1", token=PAGE_TOKEN, headers={"file_url": VIDEO})
    assert fb.m.call_count == 0


# ---------- each step resumes after a failure ----------


def test_an_album_resumes_after_a_failed_upload_without_uploading_the_first_again(ctx, fb, conn, db_session):
    fb.queue("photos", PASS, SERVER_ERROR)
    post = fb_post(db_session, conn, "album")
    assert publish_post(post.id) == "continuing"
    row = target(db_session, post.id)
    assert row.status == "pending" and row.sent_at is None and row.error_code == "meta_unavailable"
    [first] = fb.photos
    assert row.children == [{"url": IMAGES[0], "photo_id": first}, {"url": IMAGES[1]}, {"url": IMAGES[2]}]
    assert run_again(ctx, post.id) == "published"
    assert [form(r)["url"] for r in fb.calls("photos")] == [IMAGES[0], IMAGES[1], IMAGES[1], IMAGES[2]]
    [feed] = fb.calls("feed")
    assert json.loads(form(feed)["attached_media[0]"])["media_fbid"] == first
    assert len(fb.posts) == 1


@pytest.mark.parametrize("kind, edge", [("reel", "video_reels"), ("video_story", "video_stories")])
@pytest.mark.parametrize("phase", ["start", "upload", "finish"])
def test_a_video_session_resumes_at_the_phase_that_failed(ctx, fb, conn, db_session, kind, edge, phase):
    if phase == "upload":
        fb.queue("upload", {"status_code": 503, "json": {"debug_info": {"retriable": True, "type": "Busy"}}})
    elif phase == "start":
        fb.queue(edge, SERVER_ERROR)
    else:
        fb.queue(edge, PASS, THROTTLED)
    post = fb_post(db_session, conn, kind)
    assert publish_post(post.id) == "continuing"
    row = target(db_session, post.id)
    assert row.status == "pending" and row.sent_at is None and row.tries == 1
    assert run_again(ctx, post.id) == "published"
    starts = fb.calls(edge, upload_phase="start")
    finishes = fb.calls(edge, upload_phase="finish")
    assert len(starts) == (2 if phase == "start" else 1)
    assert len(fb.calls("upload")) == (2 if phase == "upload" else 1)
    assert len(finishes) == (2 if phase == "finish" else 1)
    [video] = [v for v in fb.videos.values() if v.phase == "published"]
    assert {form(f)["video_id"] for f in finishes} == {video.id}
    assert len(fb.posts) == 1


def test_a_finish_meta_says_lacks_the_file_hands_it_over_again(ctx, fb, conn, db_session):
    post = fb_post(db_session, conn, "reel")
    fb.queue("upload", {"status_code": 200, "json": {"success": True}})  # Meta answered, but kept nothing
    assert publish_post(post.id) == "continuing"
    row = target(db_session, post.id)
    assert row.steps == {"video_id": row.steps["video_id"]} and row.sent_at is None
    assert run_again(ctx, post.id) == "published"
    assert len(fb.calls("upload")) == 2 and len(fb.calls("video_reels", upload_phase="start")) == 1


def test_an_upload_session_meta_forgot_is_started_again(ctx, fb, conn, db_session):
    fb.queue("upload", {"status_code": 404, "json": {"debug_info": {"retriable": False, "type": "NotFoundError"}}})
    post = fb_post(db_session, conn, "reel")
    assert publish_post(post.id) == "continuing"
    assert target(db_session, post.id).steps is None
    assert run_again(ctx, post.id) == "published"
    assert len(fb.calls("video_reels", upload_phase="start")) == 2 and len(fb.posts) == 1


def test_a_file_the_upload_host_cannot_fetch_fails_the_reel_as_media_invalid(ctx, fb, conn, db_session):
    refused = {"debug_info": {"retriable": False, "type": "ProcessingError", "message": "could not be fetched"}}
    fb.queue("upload", {"status_code": 400, "json": refused})
    post = fb_post(db_session, conn, "reel")
    assert publish_post(post.id) == "failed"
    row = target(db_session, post.id)
    assert (row.status, row.error_code) == ("failed", "media_invalid")
    assert fb.calls("video_reels", upload_phase="finish") == []


@pytest.mark.parametrize("kind, edge", [("reel", "video_reels"), ("video_story", "video_stories")])
@pytest.mark.parametrize("phase", ["start", "finish"])
def test_a_video_upload_problem_is_retried_at_start_and_fails_the_file_at_finish(
    ctx, fb, conn, db_session, kind, edge, phase
):
    problem = graph_error(6000, message="There was a problem uploading your video file. Please try again.")
    fb.queue(edge, *((problem,) if phase == "start" else (PASS, problem)))
    post = fb_post(db_session, conn, kind)
    if phase == "start":
        # Meta's advice: retry several times (no file is involved yet).
        assert run_to_the_end(ctx, post.id) == "published"
        assert len(fb.calls(edge, upload_phase="start")) == 2 and len(fb.posts) == 1
        assert target(db_session, post.id).tries == 1
    else:
        # At finish the file itself failed: the seller must fix it.
        assert publish_post(post.id) == "failed"
        row = target(db_session, post.id)
        assert (row.status, row.error_code) == ("failed", "media_invalid") and fb.posts == []


def test_a_photo_story_resumes_without_uploading_its_photo_again(ctx, fb, conn, db_session):
    fb.queue("photo_stories", THROTTLED)
    post = fb_post(db_session, conn, "photo_story")
    assert publish_post(post.id) == "continuing"
    assert run_again(ctx, post.id) == "published"
    assert len(fb.calls("photos")) == 1 and len(fb.calls("photo_stories")) == 2


def test_a_crash_after_a_step_resumes_from_what_was_recorded(ctx, fb, conn, db_session):
    # The worker died after the upload was recorded: the next run only finishes.
    fb.videos["6500"] = video = Video("6500", "reel", "uploaded")
    post = taken_over(db_session, conn, "reel", facebook={"steps": {"video_id": "6500", "uploaded": True}})
    assert publish_post(post.id) == "published"
    assert fb.calls("video_reels", upload_phase="start") == [] and fb.calls("upload") == []
    assert video.phase == "published" and target(db_session, post.id).remote_id == "6500"


# ---------- an ambiguous sent step: checked, never published twice ----------


@pytest.mark.parametrize("went_through", [True, False])
def test_an_ambiguous_album_post_is_looked_for_by_its_photos(ctx, fb, conn, db_session, went_through):
    fb.queue("feed", {**TIMEOUT, "carried_out": went_through})
    post = fb_post(db_session, conn, "album")
    assert publish_post(post.id) == "continuing"
    assert target(db_session, post.id).sent_at is not None
    assert run_again(ctx, post.id) == "published"
    [check] = fb.calls("published_posts")
    assert "attachments" in parse_qs(urlsplit(check.url).query)["fields"][0]
    assert len(fb.calls("feed")) == (1 if went_through else 2)
    assert len(fb.calls("photos")) == 3  # the photos are not uploaded again
    [album] = fb.posts
    assert target(db_session, post.id).remote_id == album.id


def test_an_ambiguous_album_without_a_caption_is_still_recognised(ctx, fb, conn, db_session):
    fb.queue("feed", {**TIMEOUT, "carried_out": True})
    post = fb_post(db_session, conn, "album", caption="")
    assert run_to_the_end(ctx, post.id) == "published"
    assert len(fb.calls("feed")) == 1 and target(db_session, post.id).remote_id == fb.posts[0].id


@pytest.mark.parametrize("went_through", [True, False])
def test_an_ambiguous_video_is_looked_for_among_the_pages_videos(ctx, fb, conn, db_session, went_through):
    fb.queue("videos", {**SERVER_ERROR, "carried_out": went_through})
    post = fb_post(db_session, conn, "video")
    assert run_to_the_end(ctx, post.id) == "published"
    [check] = fb.calls("video_list")
    query = parse_qs(urlsplit(check.url).query)
    assert query["fields"] == ["id,description,created_time"] and "since" in query
    assert fb.calls("published_posts") == []
    assert len(fb.calls("videos")) == (1 if went_through else 2)
    [video_post] = fb.posts
    # Found or sent again, the video is recorded by its video id, as a video sent at once is.
    assert target(db_session, post.id).remote_id == video_post.video_id


def test_an_ambiguous_video_is_not_matched_to_an_earlier_video_with_the_same_caption(ctx, fb, conn, db_session):
    # Two product videos with the seller's template caption, for the same slot. A is published
    # and recorded by its video id; B's upload times out before Meta did anything.
    a = fb_post(db_session, conn, "video")
    assert publish_post(a.id) == "published"
    fb.queue("videos", TIMEOUT)
    b = fb_post(db_session, conn, "video", first_comment=COMMENT)
    assert run_to_the_end(ctx, b.id) == "published"
    row_a, row_b = target(db_session, a.id), target(db_session, b.id)
    # A's video is listed by the id A recorded: it is A's, so B was sent again and is its own post.
    assert len(fb.calls("videos")) == 3 and len(fb.posts) == 2
    assert fb.post_of(row_b.remote_id) is not fb.post_of(row_a.remote_id)
    assert fb.post_of(row_b.remote_id).comments[0]["id"] == row_b.comment_id
    assert fb.post_of(row_a.remote_id).comments == []


def test_a_reel_with_the_same_caption_is_not_taken_for_a_lost_photo(ctx, fb, conn, db_session):
    # The reel is recorded by its video id; the Page's posts list it by its post id.
    reel = fb_post(db_session, conn, "reel")
    assert publish_post(reel.id) == "published"
    fb.queue("photos", TIMEOUT)  # the photo never reached Meta
    photo = make_post(db_session, conn, targets=["facebook"], caption=CAPTION, media_url=IMAGES[0])
    # The reel's post is the only match, but it may be the reel's: nothing is recorded or sent on a guess.
    assert run_to_the_end(ctx, photo.id) == "unconfirmed"
    row = target(db_session, photo.id)
    assert (row.status, row.remote_id) == ("unconfirmed", None)
    assert len(fb.calls("photos")) == 1 and len(fb.calls("published_posts")) == 1


@pytest.mark.parametrize("kind, edge", [("reel", "video_reels"), ("video_story", "video_stories")])
@pytest.mark.parametrize("went_through", [True, False])
def test_an_ambiguous_finish_reads_the_video_before_finishing_again(
    ctx, fb, conn, db_session, kind, edge, went_through
):
    fb.queue(edge, PASS, {**TIMEOUT, "carried_out": went_through})
    post = fb_post(db_session, conn, kind)
    assert publish_post(post.id) == "continuing"
    assert run_again(ctx, post.id) == "published"
    [video] = fb.videos.values()
    [check] = fb.calls("node")
    assert urlsplit(check.url).path.endswith(f"/{video.id}")
    assert len(fb.calls(edge, upload_phase="finish")) == (1 if went_through else 2)
    assert len(fb.posts) == 1
    assert target(db_session, post.id).remote_id == (video.id if kind == "reel" else video.post_id)


def test_a_resent_finish_answered_already_published_is_live(ctx, fb, conn, db_session):
    # Meta's status lags: the check reads "not started", so the finish is sent again, and Meta says it is live.
    fb.queue("video_reels", PASS, {**TIMEOUT, "carried_out": True})
    lagging = {"id": "x", "status": {"video_status": "processing", "publishing_phase": {"status": "not_started"}}}
    fb.queue("node", {"json": lagging})
    post = fb_post(db_session, conn, "reel")
    assert run_to_the_end(ctx, post.id) == "published"
    [video] = fb.videos.values()
    assert len(fb.calls("video_reels", upload_phase="finish")) == 2 and len(fb.posts) == 1
    row = target(db_session, post.id)
    assert (row.status, row.remote_id, row.error_code) == ("published", video.id, None)


@pytest.mark.parametrize("went_through", [True, False])
def test_an_ambiguous_photo_story_reads_the_photos_story(ctx, fb, conn, db_session, went_through):
    fb.queue("photo_stories", {**TIMEOUT, "carried_out": went_through})
    post = fb_post(db_session, conn, "photo_story")
    assert run_to_the_end(ctx, post.id) == "published"
    assert len(fb.calls("node")) == 1
    assert len(fb.calls("photo_stories")) == (1 if went_through else 2)
    [story] = fb.posts
    assert target(db_session, post.id).remote_id == story.id


@pytest.mark.parametrize(
    "kind, send, check",
    [
        ("album", "feed", "published_posts"),
        ("video", "videos", "video_list"),
        ("reel", "video_reels", "node"),
        ("photo_story", "photo_stories", "node"),
    ],
)
def test_when_the_check_cannot_tell_the_target_is_unconfirmed_and_not_sent_again(
    ctx, fb, conn, db_session, kind, send, check
):
    if kind == "reel":
        fb.queue(send, PASS)  # the start
    fb.queue(send, TIMEOUT)
    fb.queue(check, SERVER_ERROR)
    post = fb_post(db_session, conn, kind)
    assert run_to_the_end(ctx, post.id) == "unconfirmed"
    row = target(db_session, post.id)
    assert (row.status, row.error_code) == ("unconfirmed", "meta_unavailable")
    sends = fb.calls(send, upload_phase="finish") if kind == "reel" else fb.calls(send)
    assert len(sends) == 1
    assert "belum bisa dipastikan" in reload(db_session, post.id).error_message


def lifetime(ctx) -> timedelta:
    return request_lifetime(ctx.settings)


def comes_early(ctx, post_id: str) -> str:
    """The post's continuation runs before its time (its own job, or one due for another target)."""
    set_target(ctx, post_id, "facebook", not_before=utcnow())
    return run_next_continuation(ctx.redis)


@pytest.mark.parametrize(
    "kind, send, before",
    [
        ("album", "feed", ()),
        ("video", "videos", ()),
        ("reel", "video_reels", (PASS,)),
        ("photo_story", "photo_stories", ()),
        ("video_story", "video_stories", (PASS,)),
    ],
)
def test_a_lost_answer_is_looked_for_only_once_meta_cannot_still_be_at_it(
    ctx, fb, conn, db_session, kind, send, before
):
    # A slow Meta: the read timeout gives up on the answer while Meta is still making the post.
    fb.queue(send, *before, {**TIMEOUT, "carried_out_later": True})
    post = fb_post(db_session, conn, kind)
    assert publish_post(post.id) == "continuing"
    row = target(db_session, post.id)
    assert row.not_before >= row.sent_at + lifetime(ctx)
    calls = fb.m.call_count
    # Looking now would find nothing and send it again: the same run's continuation waits too.
    assert run_next_continuation(ctx.redis) == "continuing"
    assert comes_early(ctx, post.id) == "continuing"
    assert fb.m.call_count == calls and fb.posts == []
    fb.meta_finishes()
    assert run_again(ctx, post.id) == "published"
    sends = fb.calls(send, upload_phase="finish") if before else fb.calls(send)
    [made] = fb.posts
    assert len(sends) == 1
    assert target(db_session, post.id).remote_id in (made.id, made.video_id)


def test_a_lost_comment_answer_is_looked_for_only_once_meta_cannot_still_be_at_it(ctx, fb, conn, db_session):
    fb.queue("comment", {**TIMEOUT, "carried_out_later": True})
    post = fb_post(db_session, conn, "album", first_comment=COMMENT)
    assert publish_post(post.id) == "continuing"
    row = target(db_session, post.id)
    assert row.status == "published" and row.not_before >= row.comment_sent_at + lifetime(ctx)
    assert run_next_continuation(ctx.redis) == "continuing"
    assert comes_early(ctx, post.id) == "continuing"
    assert fb.calls("comments") == [] and len(fb.calls("comment")) == 1
    fb.meta_finishes()
    assert run_again(ctx, post.id) == "published"
    [comment] = fb.posts[0].comments
    assert len(fb.calls("comment")) == 1 and target(db_session, post.id).comment_id == comment["id"]


def test_a_takeover_right_after_a_finish_waits_before_looking(ctx, fb, conn, db_session):
    sent = utcnow() - timedelta(seconds=1)
    post = taken_over(
        db_session, conn, "reel", facebook={"steps": {"video_id": "6501", "uploaded": True}, "sent_at": sent}
    )
    assert publish_post(post.id) == "continuing"
    assert fb.m.call_count == 0
    settings = ctx.settings
    assert target(db_session, post.id).not_before >= sent + timedelta(
        seconds=settings.graph_connect_timeout + settings.graph_read_timeout
    )


# ---------- the Facebook Reels limit: 30 per Page per 24 h ----------


def our_reels(db_session, conn, count: int, *, hours: float = 1, **facebook):
    for n in range(count):
        fb_post(
            db_session,
            conn,
            "reel",
            status="published",
            facebook={
                "status": "published",
                "published_at": hours_ago(hours - n / 100),
                "remote_id": f"r{n}",
                **facebook,
            },
        )


def test_thirty_reels_in_a_day_defer_the_next_until_the_oldest_ages_out(ctx, fb, conn, db_session):
    our_reels(db_session, conn, 30, hours=20)
    other_page = make_connection(db_session, "user-2", page_id="104000000000002")
    our_reels(db_session, other_page, 5)  # another Page's reels do not count
    our_reels(db_session, conn, 5, hours=30)  # nor do reels older than a day
    post = fb_post(db_session, conn, "reel")
    assert publish_post(post.id) == "continuing"
    assert fb.m.call_count == 0
    row = target(db_session, post.id)
    assert (row.status, row.error_code) == ("pending", "publishing_limit_reached")
    # The oldest of the 30 went out 20 h ago: a slot frees in about 4 h.
    assert timedelta(hours=3, minutes=58) <= row.not_before - utcnow() <= timedelta(hours=4, minutes=1)
    [job] = scheduled_jobs(ctx.redis)
    assert job.kwargs["lease"] == reload(db_session, post.id).lease_owner


def test_twenty_nine_reels_leave_room_for_one_more(ctx, fb, conn, db_session):
    our_reels(db_session, conn, 29)
    post = fb_post(db_session, conn, "reel")
    assert publish_post(post.id) == "published"


def test_a_reel_deferred_past_the_limit_gives_up(ctx, fb, conn, db_session):
    our_reels(db_session, conn, 30)
    post = fb_post(db_session, conn, "reel", publish_in=-27 * 3600)
    assert publish_post(post.id) == "failed"
    row = target(db_session, post.id)
    assert (row.status, row.error_code) == ("failed", "publishing_limit_reached")
    assert "30 Reels" in row.error_message and "Facebook" in reload(db_session, post.id).error_message
    assert fb.m.call_count == 0


def test_metas_own_reels_limit_defers_the_finish_and_keeps_the_upload(ctx, fb, conn, db_session):
    fb.reels_used = 30  # published outside this app
    post = fb_post(db_session, conn, "reel")
    before = utcnow()
    assert publish_post(post.id) == "continuing"
    row = target(db_session, post.id)
    assert (row.error_code, row.sent_at, row.steps["uploaded"]) == ("publishing_limit_reached", None, True)
    assert timedelta(minutes=59) <= row.not_before - before <= timedelta(minutes=61)
    fb.reels_used = 0
    assert run_again(ctx, post.id) == "published"
    assert len(fb.calls("video_reels", upload_phase="start")) == 1 and len(fb.calls("upload")) == 1


# ---------- the first comment ----------


@pytest.mark.parametrize("kind", ["album", "video", "reel"])
def test_the_first_comment_is_posted_once_on_the_published_object(ctx, fb, conn, db_session, kind):
    post = fb_post(db_session, conn, kind, first_comment=COMMENT)
    assert publish_post(post.id) == "published"
    row = target(db_session, post.id)
    [comment] = fb.calls("comment")
    assert urlsplit(comment.url).path == f"/v25.0/{row.remote_id}/comments"
    assert form(comment)["message"] == COMMENT
    assert (row.comment_status, row.comment_id) == ("published", fb.post_of(row.remote_id).comments[0]["id"])
    assert queued_jobs(ctx.redis) == [] and scheduled_jobs(ctx.redis) == []


@pytest.mark.parametrize("went_through", [True, False])
def test_an_ambiguous_comment_is_looked_for_among_the_pages_comments(ctx, fb, conn, db_session, went_through):
    fb.queue("comment", {**TIMEOUT, "carried_out": went_through})
    post = fb_post(db_session, conn, "album", first_comment=COMMENT)
    assert publish_post(post.id) == "continuing"
    row = target(db_session, post.id)
    assert (row.status, row.comment_status) == ("published", "pending") and row.comment_sent_at is not None
    fb.visitor_comment(row.remote_id, COMMENT)  # a visitor wrote the same words: not ours
    assert run_again(ctx, post.id) == "published"
    [listing] = fb.calls("comments")
    assert "from" in parse_qs(urlsplit(listing.url).query)["fields"][0]
    assert len(fb.calls("comment")) == (1 if went_through else 2)
    comments = fb.post_of(row.remote_id).comments
    ours = [c for c in comments if c["from"]["id"] == PAGE_ID]
    assert len(ours) == 1
    assert target(db_session, post.id).comment_id == ours[0]["id"]


@pytest.mark.parametrize("went_through", [True, False])
def test_the_last_lost_comment_is_looked_for_before_giving_up(ctx, fb, conn, db_session, went_through):
    fb.queue("comment", {**TIMEOUT, "carried_out": went_through})
    last = ctx.settings.retry_max_tries
    post = fb_post(db_session, conn, "album", first_comment=COMMENT, facebook={"comment_tries": last - 1})
    assert publish_post(post.id) == "continuing"
    row = target(db_session, post.id)
    assert (row.comment_status, row.comment_tries) == ("pending", last)
    assert run_again(ctx, post.id) == "published"
    row = target(db_session, post.id)
    assert len(fb.calls("comments")) == 1 and len(fb.calls("comment")) == 1
    comments = fb.post_of(row.remote_id).comments
    if went_through:
        assert (row.comment_status, row.comment_id) == ("published", comments[0]["id"])
    else:
        assert (row.comment_status, comments) == ("failed", [])


def test_a_comment_whose_check_cannot_be_made_is_unconfirmed_and_the_post_stays_published(ctx, fb, conn, db_session):
    fb.queue("comment", TIMEOUT)
    fb.queue("comments", SERVER_ERROR)
    post = fb_post(db_session, conn, "reel", first_comment=COMMENT)
    assert run_to_the_end(ctx, post.id) == "published"
    row = target(db_session, post.id)
    assert (row.status, row.comment_status, row.comment_error_code) == ("published", "unconfirmed", "meta_unavailable")
    assert len(fb.calls("comment")) == 1


def test_a_refused_comment_never_unpublishes_its_target(ctx, fb, conn, db_session):
    fb.queue("comment", graph_error(200, message="(#200) Requires pages_manage_engagement permission"))
    post = fb_post(db_session, conn, "album", first_comment=COMMENT)
    assert publish_post(post.id) == "published"
    row = target(db_session, post.id)
    assert (row.status, row.comment_status, row.comment_error_code) == ("published", "failed", "permissions_missing")
    assert row.remote_id == fb.posts[0].id and len(fb.calls("comment")) == 1
    assert reload(db_session, post.id).status == "published"


def test_a_comment_failing_for_a_while_is_retried_after_the_post_is_live(ctx, fb, conn, db_session):
    fb.queue("comment", THROTTLED)
    post = fb_post(db_session, conn, "video", first_comment=COMMENT)
    assert publish_post(post.id) == "continuing"
    assert target(db_session, post.id).status == "published"
    assert run_again(ctx, post.id) == "published"
    assert len(fb.calls("videos")) == 1 and len(fb.calls("comment")) == 2
    assert target(db_session, post.id).comment_status == "published"


def test_the_first_comment_waits_for_a_dead_runs_request_before_looking(ctx, fb, conn, db_session):
    sent = utcnow() - timedelta(seconds=1)
    post = taken_over(
        db_session,
        conn,
        "album",
        first_comment=COMMENT,
        facebook={"status": "published", "remote_id": f"{PAGE_ID}_1", "comment_sent_at": sent},
    )
    assert publish_post(post.id) == "continuing"
    assert fb.m.call_count == 0
    assert target(db_session, post.id).not_before > utcnow()


# ---------- settings ----------


def test_metas_video_and_upload_hosts_are_settings_checked_at_start():
    from shared.settings import SettingsError, load_settings

    settings = load_settings({"APP_ENV": "test"})
    assert settings.meta_graph_video_url == "https://graph-video.facebook.com"
    assert settings.meta_upload_url == "https://rupload.facebook.com"
    assert settings.graph_video_base == "https://graph-video.facebook.com/v25.0"
    moved = load_settings({"APP_ENV": "test", "META_UPLOAD_URL": "http://127.0.0.1:8001/"})
    assert moved.meta_upload_url == "http://127.0.0.1:8001"
    for name in ("META_GRAPH_VIDEO_URL", "META_UPLOAD_URL", "META_GRAPH_URL"):
        for bad in ("graph-video.facebook.com", "ftp://x.test", "https://x.test/?a=1", "https://u@x.test"):
            with pytest.raises(SettingsError, match=name):
                load_settings({"APP_ENV": "test", name: bad})


# ---------- end to end through the Meta sandbox (in this process) ----------


@pytest.fixture(scope="module")
def sandbox():
    server = serve_in_thread(
        "127.0.0.1",
        0,
        {
            "SANDBOX_APP_ID": APP_ID,
            "SANDBOX_APP_SECRET": APP_SECRET_SB,
            "SANDBOX_SCENARIO": "one_page",
            "APP_ENV": "test",
        },
    )
    yield server
    server.stop()


@pytest.fixture
def meta(sandbox) -> Sandbox:
    meta = Sandbox(sandbox.url)
    meta.admin("reset", {"scenario": "one_page"})
    return meta


@pytest.fixture
def sb_ctx(settings, sandbox, redis_client, engine):
    url = sandbox.url  # Meta's three hosts are one sandbox
    ctx = worker_services(
        settings.with_overrides(
            meta_graph_url=url,
            meta_graph_video_url=url,
            meta_upload_url=url,
            meta_app_id=APP_ID,
            meta_app_secret=APP_SECRET_SB,
            **FAST,
        ),
        redis_client,
    )
    install_context(ctx)
    yield ctx
    install_context(None)
    ctx.close()


@pytest.fixture
def sb_conn(db_session, meta):
    conn = make_connection(db_session, page_id=SB_PAGE, ig_id=SB_IG)
    user, page = meta.tokens()
    store_tokens(conn, cipher(), page_token=page, user_token=user)
    db_session.commit()
    return conn


def after_processing(meta: Sandbox, endpoint: str) -> None:
    """Meta does the work, then answers 500: an ambiguous failure that went through."""
    meta.admin("faults", {"endpoint": endpoint, "status": 500, "after_processing": True})


def published_once(meta: Sandbox, kind: str) -> dict:
    items = meta.published()["facebook"]
    assert [item["kind"] for item in items] == [kind], items
    return items[0]


def test_sandbox_an_album_with_a_comment_through_an_ambiguous_post(sb_ctx, meta, sb_conn, db_session):
    after_processing(meta, "feed_post")
    post = fb_post(db_session, sb_conn, "album", first_comment=COMMENT)
    assert run_to_the_end(sb_ctx, post.id) == "published"
    album = published_once(meta, "album")
    assert [photo["url"] for photo in album["photos"]] == IMAGES and album["message"] == CAPTION
    assert [(c["message"], c["ours"]) for c in album["comments"]] == [(COMMENT, True)]
    row = target(db_session, post.id)
    assert (row.remote_id, row.comment_id) == (album["post_id"], album["comments"][0]["comment_id"])
    assert meta.calls("feed_post") == 1 and meta.calls("published_posts") == 1


def test_sandbox_a_reel_with_a_comment_through_an_ambiguous_finish_and_comment(sb_ctx, meta, sb_conn, db_session):
    after_processing(meta, "video_reels_finish")
    after_processing(meta, "fb_comment")
    post = fb_post(db_session, sb_conn, "reel", first_comment=COMMENT)
    assert run_to_the_end(sb_ctx, post.id) == "published"
    reel = published_once(meta, "reel")
    assert reel["message"] == CAPTION and reel["url"] == VIDEO
    assert [(c["message"], c["ours"]) for c in reel["comments"]] == [(COMMENT, True)]
    row = target(db_session, post.id)
    assert (row.status, row.remote_id, row.comment_status) == ("published", reel["video_id"], "published")
    assert meta.calls("video_reels_finish") == 1 and meta.calls("fb_comment") == 1
    assert meta.state()["reels"][SB_PAGE]["used"] == 1


def test_sandbox_a_video_story_resumes_after_a_failed_upload(sb_ctx, meta, sb_conn, db_session):
    meta.fault("video_upload", 2, status=500, is_transient=True)
    post = fb_post(db_session, sb_conn, "video_story")
    assert run_to_the_end(sb_ctx, post.id) == "published"
    story = published_once(meta, "video_story")
    assert target(db_session, post.id).remote_id == story["post_id"]
    assert (meta.calls("video_stories_start"), meta.calls("video_upload"), meta.calls("video_stories_finish")) == (
        1,
        2,
        1,
    )


def test_sandbox_an_ambiguous_video_is_found_among_the_pages_videos(sb_ctx, meta, sb_conn, db_session):
    after_processing(meta, "videos")
    post = fb_post(db_session, sb_conn, "video", first_comment=COMMENT)
    assert run_to_the_end(sb_ctx, post.id) == "published"
    video = published_once(meta, "video")
    row = target(db_session, post.id)
    assert (row.remote_id, row.comment_status) == (video["video_id"], "published")
    assert [c["message"] for c in video["comments"]] == [COMMENT]
    assert meta.calls("videos") == 1 and meta.calls("videos_list") == 1 and meta.calls("published_posts") == 0


def test_sandbox_a_video_on_the_video_host_and_a_photo_story(sb_ctx, meta, sb_conn, db_session):
    video = fb_post(db_session, sb_conn, "video", first_comment=COMMENT)
    story = fb_post(db_session, sb_conn, "photo_story")
    assert run_to_the_end(sb_ctx, video.id) == "published"
    assert run_to_the_end(sb_ctx, story.id) == "published"
    items = {item["kind"]: item for item in meta.published()["facebook"]}
    assert sorted(items) == ["photo_story", "video"] and len(meta.published()["facebook"]) == 2
    assert target(db_session, video.id).remote_id == items["video"]["video_id"]
    assert [c["message"] for c in items["video"]["comments"]] == [COMMENT]
    assert target(db_session, story.id).remote_id == items["photo_story"]["post_id"]


def test_sandbox_an_upload_problem_at_start_is_retried(sb_ctx, meta, sb_conn, db_session):
    meta.fault("video_reels_start", 6000, times=2)
    post = fb_post(db_session, sb_conn, "reel")
    assert run_to_the_end(sb_ctx, post.id) == "published"
    published_once(meta, "reel")
    assert meta.calls("video_reels_start") == 3 and meta.calls("video_reels_finish") == 1


def test_sandbox_metas_reels_limit_defers_the_reel(sb_ctx, meta, sb_conn, db_session):
    meta.admin("reels-quota", {"page_id": SB_PAGE, "used": 30})
    post = fb_post(db_session, sb_conn, "reel")
    assert publish_post(post.id) == "continuing"
    row = target(db_session, post.id)
    assert (row.status, row.error_code, row.sent_at) == ("pending", "publishing_limit_reached", None)
    assert meta.published()["facebook"] == []
    meta.admin("reels-quota", {"page_id": SB_PAGE, "used": 0})
    assert run_again(sb_ctx, post.id) == "published"
    published_once(meta, "reel")
    assert meta.calls("video_reels_start") == 1 and meta.calls("video_upload") == 1
