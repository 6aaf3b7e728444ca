"""The media pre-check when a post is scheduled (DESIGN §13.2 "Pre-check", MEDIA_PRECHECK=enforce).

The media is served by a small HTTP server on 127.0.0.1 (the sandbox's sample files), allowed
through ``MEDIA_PRECHECK_ALLOW_HOSTS=127.0.0.1`` as the demo allows its sandbox; nothing else is
ever contacted (name lookups beyond loopback fail the test).
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select

from publish_worker.jobs import publish_request
from shared.errors import AppError
from shared.media_check import IG_ASPECT_RATIO
from shared.media_fetch import Fetched, MediaUnreachable
from shared.models import AuditEvent, ScheduledPost
from shared.scheduling import PostCaller, schedule_post
from shared.services import build_services
from shared.settings import load_settings
from tests.conftest import make_test_env, same_origin
from tests.factories import make_connection
from tests.test_schedule_api import later, post_count, schedule
from tests.test_worker_duties import request_payload

SAMPLES = Path(__file__).resolve().parent.parent / "meta_sandbox" / "static"
UNREACHABLE = "The server answered HTTP 404."


class MediaServer:
    """Serves ``/media/<sample>`` (404 for anything else) and remembers the paths asked for."""

    def __init__(self) -> None:
        self.requested: list[str] = []
        self.ranges: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                outer.requested.append(self.path)
                outer.ranges.append(self.headers.get("Range"))
                name = self.path.removeprefix("/media/")
                sample = SAMPLES / name
                if not self.path.startswith("/media/") or "/" in name or not sample.is_file():
                    self.send_error(404)
                    return
                data = sample.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4" if name.endswith(".mp4") else "image/jpeg")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/media/{name}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def media_server():
    server = MediaServer()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"the test tried to resolve {host!r}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@pytest.fixture
def settings(database_url, redis_url):
    return load_settings(
        make_test_env(database_url, redis_url, MEDIA_PRECHECK="enforce", MEDIA_PRECHECK_ALLOW_HOSTS="127.0.0.1")
    )


@pytest.fixture
def conn(db_session):
    return make_connection(db_session)


def v2(**fields) -> dict:
    return {"publish_at": later(), "caption": "Promo batik", **fields}


def nothing_stored_or_queued(db_session, redis_client) -> bool:
    return (
        post_count(db_session) == 0
        and redis_client.zcard("rq:scheduled:meta-publish") == 0
        and redis_client.llen("rq:queue:meta-publish") == 0
    )


def test_media_that_passes_is_fetched_once_each_then_stored(client, conn, db_session, media_server):
    media = [
        {"url": media_server.url("square.jpg"), "type": "image"},
        {"url": media_server.url("clip.mp4"), "type": "video"},
    ]
    response = schedule(client, v2(media=media, targets=["instagram"]))
    assert response.status_code == 200, response.json
    assert sorted(media_server.requested) == ["/media/clip.mp4", "/media/square.jpg"]
    assert set(media_server.ranges) == {"bytes=0-262143"}  # the first 256 KB only
    assert db_session.get(ScheduledPost, response.json["job_id"]).media == media


def test_an_unfetchable_item_answers_media_unreachable_naming_it_and_nothing_is_kept(
    client, conn, db_session, redis_client, media_server
):
    media = [
        {"url": media_server.url("square.jpg"), "type": "image"},
        {"url": media_server.url("gone.jpg"), "type": "image"},
    ]
    response = schedule(client, v2(media=media), **{"Accept-Language": "en"})
    assert response.status_code == 422 and response.json["error_code"] == "media_unreachable"
    assert response.json["fields"] == {"media.1.url": [UNREACHABLE]}
    assert nothing_stored_or_queued(db_session, redis_client)
    indonesian = schedule(client, v2(media=media)).json["fields"]
    assert indonesian == {"media.1.url": ["Server menjawab HTTP 404."]}


def test_an_image_instagram_would_refuse_is_named_with_the_target(client, conn, db_session, redis_client, media_server):
    tall = media_server.url("story.jpg")  # 9:16: too tall for an Instagram feed post
    response = schedule(client, v2(media_url=tall), **{"Accept-Language": "en"})
    assert response.status_code == 422 and response.json["error_code"] == "validation_error"
    assert response.json["fields"] == {"media_url": [IG_ASPECT_RATIO]}  # the field the body used
    assert nothing_stored_or_queued(db_session, redis_client)
    # Facebook has no such rule, and a story is not held to the feed's ratio.
    assert schedule(client, v2(media_url=tall, targets=["facebook"])).status_code == 200
    assert schedule(client, v2(caption="", format="story", media=[{"url": tall, "type": "image"}])).status_code == 200


def test_a_reel_cover_is_checked_as_an_image_and_named_cover_url(client, conn, db_session, redis_client, media_server):
    reel = v2(format="reel", media=[{"url": media_server.url("clip.mp4"), "type": "video"}])
    missing = schedule(client, {**reel, "cover_url": media_server.url("none.jpg")}, **{"Accept-Language": "en"})
    assert missing.status_code == 422 and missing.json["fields"] == {"cover_url": [UNREACHABLE]}
    not_an_image = schedule(client, {**reel, "cover_url": media_server.url("clip.mp4")}, **{"Accept-Language": "en"})
    assert not_an_image.status_code == 422 and set(not_an_image.json["fields"]) == {"cover_url"}
    assert nothing_stored_or_queued(db_session, redis_client)
    tall_cover = schedule(client, {**reel, "cover_url": media_server.url("story.jpg")})
    assert tall_cover.status_code == 200  # a cover is not a feed image


def test_a_video_given_as_an_image_is_refused(client, conn, media_server):
    response = schedule(client, v2(media_url=media_server.url("clip.mp4")), **{"Accept-Language": "en"})
    assert response.status_code == 422
    assert response.json["fields"] == {
        "media_url": ["Must be an image file that can be read (JPEG, PNG, GIF, WebP, BMP or TIFF)."]
    }


def test_hosts_off_the_allow_list_are_accepted_unchecked_and_never_contacted(client, conn, db_session, media_server):
    # The allow list is set (demo, test): other hosts are not fetched at all (and not resolved: see loopback_only).
    response = schedule(client, v2(media_url="https://cdn.example.com/promo.jpg"))
    assert response.status_code == 200 and media_server.requested == []


def test_the_allow_list_lets_http_and_loopback_through_only_for_its_hosts(client, conn, media_server):
    assert schedule(client, v2(media_url=media_server.url("square.jpg"))).status_code == 200
    for url in ("http://localhost/a.jpg", "https://10.0.0.7/a.jpg", "http://cdn.example.com/a.jpg"):
        response = schedule(client, v2(media_url=url))
        assert response.status_code == 422 and response.json["error_code"] == "validation_error", url


def test_without_the_allow_list_a_loopback_media_url_is_refused_before_any_fetch(
    db_session, conn, settings, redis_client, media_server
):
    services = build_services(
        settings.with_overrides(media_precheck_allow_hosts=()), redis=redis_client, engine=db_session.get_bind()
    )
    with pytest.raises(AppError) as refused:
        schedule_post(
            db_session,
            services,
            caller=PostCaller(user_id="user-1"),
            payload=v2(media_url=media_server.url("square.jpg")),
        )
    assert refused.value.error_code == "validation_error"
    assert refused.value.fields == {"media_url": ["Must be an absolute https URL."]}
    assert media_server.requested == []


def test_with_the_pre_check_off_nothing_is_fetched(db_session, conn, settings, redis_client, media_server):
    services = build_services(
        settings.with_overrides(media_precheck="off"), redis=redis_client, engine=db_session.get_bind()
    )
    outcome = schedule_post(
        db_session, services, caller=PostCaller(user_id="user-1"), payload=v2(media_url=media_server.url("gone.jpg"))
    )
    assert outcome.created and media_server.requested == []


def test_in_production_form_every_url_goes_to_the_fetcher_by_its_field(db_session, conn, settings, redis_client):
    """No allow list (as in production): the injected fetcher stands in for the internet."""
    services = build_services(
        settings.with_overrides(media_precheck_allow_hosts=()), redis=redis_client, engine=db_session.get_bind()
    )
    asked: list[str] = []

    def fetcher(url: str) -> Fetched:
        asked.append(url)
        if "missing" in url:
            raise MediaUnreachable("dns")
        return Fetched(url, 206, None, None, (SAMPLES / "square.jpg").read_bytes())

    payload = v2(
        format="reel",
        media=[{"url": "https://cdn.example.com/missing.mp4", "type": "video"}],
        cover_url="https://cdn.example.com/cover.png",
    )
    with pytest.raises(AppError) as refused:
        schedule_post(db_session, services, caller=PostCaller(user_id="user-1"), payload=payload, fetcher=fetcher)
    assert refused.value.error_code == "media_unreachable"
    assert refused.value.fields == {"media.0.url": ["The host name could not be found."]}
    assert sorted(asked) == ["https://cdn.example.com/cover.png", "https://cdn.example.com/missing.mp4"]

    asked.clear()
    payload = v2(
        media=[
            {"url": "https://cdn.example.com/a.jpg", "type": "image"},
            {"url": "https://cdn.example.com/b.jpg", "type": "image"},
        ]
    )
    outcome = schedule_post(db_session, services, caller=PostCaller(user_id="user-1"), payload=payload, fetcher=fetcher)
    assert outcome.created and sorted(asked) == ["https://cdn.example.com/a.jpg", "https://cdn.example.com/b.jpg"]


def test_publish_request_takes_a_content_v2_body_and_the_same_pre_check(
    worker_ctx,
    conn,
    db_session,
    media_server,
):
    clip = media_server.url("clip.mp4")
    payload = request_payload(
        media_url=None,
        format="reel",
        media=[{"url": clip, "type": "video"}],
        cover_url=media_server.url("portrait.jpg"),
        first_comment="#batik",
    )
    result = publish_request(payload)
    assert result["ok"] is True, result
    post = db_session.get(ScheduledPost, result["job_id"])
    assert (post.format, post.media, post.first_comment) == ("reel", [{"url": clip, "type": "video"}], "#batik")
    assert post.cover_url == media_server.url("portrait.jpg")
    assert {row.target: row.comment_status for row in post.target_rows} == {
        "facebook": "pending",
        "instagram": "pending",
    }

    refused = publish_request({**payload, "idempotency_key": "order-2", "cover_url": media_server.url("gone.jpg")})
    assert refused == {
        "ok": False,
        "error_code": "media_unreachable",
        "fields": {"cover_url": ["Server menjawab HTTP 404."]},
    }
    db_session.expire_all()
    assert post_count(db_session) == 1
    failed = db_session.scalars(select(AuditEvent).where(AuditEvent.event == "post_failed")).one()
    assert failed.error_code == "media_unreachable"


def raw_media_server(answer: bytes) -> socket.socket:
    """A loopback server that answers every request with these exact bytes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with client:
                client.recv(65536)
                client.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return listener


def test_a_media_server_with_a_garbled_length_is_a_clear_answer_not_a_500(client, conn, db_session, redis_client):
    # "Content-Length: ²" used to pass str.isdigit() and crash int(): a 500 for the seller's media host.
    listener = raw_media_server(
        b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: \xb2\r\n"
        b"Connection: close\r\n\r\n\xff\xd8\xff\xe0"
    )
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/a.jpg"
        response = schedule(client, v2(media_url=url, targets=["facebook"]), **{"Accept-Language": "en"})
    finally:
        listener.close()
    assert response.status_code == 422, response.json
    assert response.json["error_code"] in ("validation_error", "media_unreachable")
    assert "media_url" in response.json["fields"]
    assert nothing_stored_or_queued(db_session, redis_client)


def test_a_port_out_of_range_is_refused_by_name(client, conn, db_session, redis_client):
    for url in ("https://cdn.example.com:99999/a.jpg", "https://cdn.example.com:0/a.jpg"):
        response = schedule(client, v2(media_url=url), **{"Accept-Language": "en"})
        assert response.status_code == 422
        assert response.json["fields"]["media_url"] == ["Must have a port from 1 to 65535, or none."]
    assert nothing_stored_or_queued(db_session, redis_client)


def test_a_media_item_that_is_not_an_object_is_named_by_its_index(client, conn):
    response = schedule(client, v2(media=["https://cdn.example.com/a.jpg"]), **{"Accept-Language": "en"})
    assert response.status_code == 422
    assert "media.0" in response.json["fields"] and "media.0._schema" not in response.json["fields"]


def test_an_edit_fetches_the_media_again_only_when_the_verdict_can_change(client, conn, db_session, media_server):
    tall = media_server.url("story.jpg")  # fine for Facebook, too tall for an Instagram feed post
    job_id = schedule(client, v2(media_url=tall, targets=["facebook"])).json["job_id"]
    fetched = len(media_server.requested)

    def edit(patch: dict):
        return client.patch(
            f"/api/meta/schedule/{job_id}", json=patch, headers={**same_origin(), "Accept-Language": "en"}
        )

    assert edit({"caption": "Promo batik biru"}).status_code == 200
    assert len(media_server.requested) == fetched  # the caption does not change what Meta fetches
    to_instagram = edit({"targets": ["facebook", "instagram"]})
    assert to_instagram.status_code == 422 and to_instagram.json["fields"] == {"media_url": [IG_ASPECT_RATIO]}
    gone = edit({"media_url": media_server.url("gone.jpg")})
    assert gone.status_code == 422 and gone.json["error_code"] == "media_unreachable"
    db_session.expire_all()
    post = db_session.get(ScheduledPost, job_id)
    assert (post.targets, post.media_url, post.caption) == (["facebook"], tall, "Promo batik biru")
    assert edit({"media_url": media_server.url("square.jpg"), "targets": None}).status_code == 200
