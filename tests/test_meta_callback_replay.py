"""Meta's callbacks cannot be replayed, and data deletion is complete (DESIGN §13.1 "Meta callbacks")."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from connect_service import meta_callbacks
from connect_service.page_selection import PageChoice, PendingSelection, SelectionStore
from shared.audit import record_event
from shared.crypto import EnvKeyRing, TokenCipher
from shared.db import utcnow
from shared.models import (
    AuditEvent,
    DataDeletionRequest,
    MetaCallbackReceipt,
    ScheduledPost,
    SocialConnection,
)
from shared.settings import parse_key_ring
from tests.conftest import APP_SECRET, KEY_A, KEY_B
from tests.factories import IG_ID, PAGE_ID, USER_TOKEN, cipher, make_connection, make_post
from tests.test_meta_callbacks import META_USER, good, signed

OTHER_META_USER = "10150000000000002"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
CALLBACKS = ("/api/meta/deauthorize", "/api/meta/data-deletion")


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def issued(seconds_from_now: int | None, *, now: int | None = None) -> str:
    payload: dict[str, str | int] = {"algorithm": "HMAC-SHA256", "user_id": META_USER}
    if seconds_from_now is not None:
        payload["issued_at"] = (now or int(time.time())) + seconds_from_now
    return signed(payload)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(lambda: signed({"algorithm": "HMAC-SHA256", "issued_at": 0, "user_id": META_USER}), id="1970"),
        pytest.param(lambda: issued(-2 * 3600), id="two-hours-old"),
        pytest.param(lambda: issued(-3600 - 60), id="just-over-an-hour-old"),
        pytest.param(lambda: issued(10 * 60), id="ten-minutes-ahead"),
        pytest.param(lambda: issued(None), id="without-issued_at"),
        pytest.param(
            lambda: signed({"algorithm": "HMAC-SHA256", "issued_at": "now", "user_id": META_USER}),
            id="issued_at-not-a-number",
        ),
    ],
)
def test_stale_future_or_undated_signed_requests_are_refused_and_change_nothing(anon_client, db_session, value):
    conn = make_connection(db_session)
    events_before = count(db_session, AuditEvent)
    for path in CALLBACKS:
        response = anon_client.post(path, data={"signed_request": value()})
        assert response.status_code == 400 and response.json["error_code"] == "bad_request"
    db_session.expire_all()
    row = db_session.get(SocialConnection, conn.id)
    assert row.status == "connected" and row.page_access_token_enc and row.meta_user_id == META_USER
    assert count(db_session, DataDeletionRequest) == 0 and count(db_session, MetaCallbackReceipt) == 0
    assert count(db_session, AuditEvent) == events_before


@pytest.mark.parametrize(
    "outside, inside", [(-61 * 60, -50 * 60), (6 * 60, 4 * 60)], ids=["an-hour-back", "five-minutes-ahead"]
)
def test_the_window_is_one_hour_back_and_five_minutes_ahead(anon_client, db_session, outside, inside):
    conn = make_connection(db_session)
    conn.connected_at = utcnow() - timedelta(hours=2)
    db_session.commit()
    assert anon_client.post(CALLBACKS[0], data={"signed_request": good(issued_in=outside)}).status_code == 400
    db_session.expire_all()
    assert db_session.get(SocialConnection, conn.id).status == "connected"
    assert anon_client.post(CALLBACKS[0], data={"signed_request": good(issued_in=inside)}).status_code == 200
    db_session.expire_all()
    assert db_session.get(SocialConnection, conn.id).status == "disconnected"


def test_a_replayed_deauthorize_does_not_disconnect_the_seller_again(anon_client, db_session, redis_client):
    first = make_connection(db_session)
    store = SelectionStore(redis_client, cipher(), APP_SECRET)
    store.save("user-1", _selection(META_USER))
    # Issued a minute ahead of our clock (inside the allowed skew): only the receipt protects
    # the seller's next connection, which is then not newer than the request.
    captured = good(issued_in=60)
    assert anon_client.post(CALLBACKS[0], data={"signed_request": captured}).status_code == 200
    db_session.expire_all()
    assert db_session.get(SocialConnection, first.id).status == "disconnected"
    assert store.load("user-1") is None  # it held a user token of the grant just removed

    again = make_connection(db_session)  # the seller reconnects
    redis_client.flushdb()  # receipts live in the database, not in Redis
    replay = anon_client.post(CALLBACKS[0], data={"signed_request": captured})
    assert replay.status_code == 200 and replay.json == {"success": True}
    db_session.expire_all()
    survivor = db_session.get(SocialConnection, again.id)
    assert survivor.status == "connected" and survivor.page_access_token_enc is not None
    assert db_session.scalars(select(AuditEvent.event).where(AuditEvent.event == "deauthorized")).all() == [
        "deauthorized"
    ]


def test_a_deauthorize_issued_before_a_reconnect_leaves_the_newer_connection(anon_client, db_session, redis_client):
    old = make_connection(db_session, "user-2")
    old.connected_at = utcnow() - timedelta(minutes=30)
    newer = make_connection(db_session, "user-1")  # connected just now
    db_session.commit()
    store = SelectionStore(redis_client, cipher(), APP_SECRET)
    store.save(
        "user-2",
        PendingSelection(
            meta_user_id=META_USER,
            pages=[PageChoice(id=PAGE_ID, name="Toko Uji")],
            scopes_granted=[],
            user_token=USER_TOKEN,
        ),
    )
    response = anon_client.post(CALLBACKS[0], data={"signed_request": good(issued_in=-10 * 60)})
    assert response.status_code == 200
    db_session.expire_all()
    assert db_session.get(SocialConnection, old.id).status == "disconnected"
    kept = db_session.get(SocialConnection, newer.id)
    assert kept.status == "connected" and kept.page_access_token_enc is not None
    # A page selection saved after the request was issued is newer too, and stays.
    assert store.load("user-2") is not None


def test_a_repeated_data_deletion_answers_the_first_confirmation_code(anon_client, db_session):
    make_connection(db_session)
    request = good()
    first = anon_client.post(CALLBACKS[1], data={"signed_request": request})
    second = anon_client.post(CALLBACKS[1], data={"signed_request": request})
    assert first.status_code == second.status_code == 200
    assert second.json == first.json
    assert count(db_session, DataDeletionRequest) == 1
    events = db_session.scalars(select(AuditEvent.event).where(AuditEvent.event == "data_deletion_requested"))
    assert len(events.all()) == 1
    receipt = db_session.scalars(select(MetaCallbackReceipt)).one()
    assert receipt.kind == "data_deletion" and receipt.result["confirmation_code"] == first.json["confirmation_code"]
    assert request not in json.dumps(receipt.result) and len(receipt.request_hash) == 64


@pytest.mark.parametrize("respell", [lambda sig: sig + "=", lambda sig: sig + "~~"])
def test_a_replay_with_the_signature_spelled_differently_is_still_a_replay(anon_client, db_session, respell):
    make_connection(db_session)
    request = good()
    sig, payload = request.split(".")
    first = anon_client.post(CALLBACKS[1], data={"signed_request": request})
    again = anon_client.post(CALLBACKS[1], data={"signed_request": f"{respell(sig)}.{payload}"})
    assert again.status_code == 200 and again.json == first.json
    assert count(db_session, DataDeletionRequest) == 1


def test_two_identical_deliveries_at_the_same_moment_act_once(app, db_session, monkeypatch):
    make_connection(db_session)
    slow_erase = meta_callbacks.erase_posts

    def erase_posts_slowly(*args, **kwargs):
        time.sleep(0.5)  # the first delivery holds its receipt while the second arrives
        return slow_erase(*args, **kwargs)

    monkeypatch.setattr(meta_callbacks, "erase_posts", erase_posts_slowly)
    request = good()
    start = threading.Barrier(2)
    answers = []

    def deliver():
        client = app.test_client()
        start.wait()
        answers.append(client.post(CALLBACKS[1], data={"signed_request": request}))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json["confirmation_code"] == answers[1].json["confirmation_code"]
    assert count(db_session, DataDeletionRequest) == 1


def _connected_story(db_session, conn):
    """What a connection and its published post leave in audit details."""
    record_event(
        db_session,
        "connected",
        user_id=conn.user_id_resellio,
        connection_id=conn.id,
        detail={
            "facebook_page_id": conn.facebook_page_id,
            "instagram_business_account_id": conn.instagram_business_account_id,
        },
    )
    post = make_post(
        db_session,
        conn,
        status="published",
        media_url="https://cdn.example.com/1.jpg",
        media=[
            {"url": "https://cdn.example.com/1.jpg", "type": "image"},
            {"url": "https://cdn.example.com/2.jpg", "type": "image"},
        ],
        first_comment="#batik",
        facebook={
            "status": "published",
            "remote_id": f"{conn.facebook_page_id}_555000111",
            "steps": {"photos": [{"id": "555000901"}, {"id": "555000902"}]},
            "comment_status": "published",
            "comment_id": f"{conn.facebook_page_id}_555000111_7001",
        },
        instagram={
            "status": "published",
            "container_id": "17900000000000111",
            "remote_id": "17950000000000222",
            "children": [{"container_id": "17900000000000301"}, {"container_id": "17900000000000302"}],
            "comment_status": "published",
            "comment_id": "17860000000000444",
        },
    )
    record_event(
        db_session,
        "post_published",
        user_id=conn.user_id_resellio,
        connection_id=conn.id,
        detail={
            "job_id": post.id,
            "outcome": "published",
            "targets": {"facebook": "published", "instagram": "published"},
            "facebook_post_id": post.target("facebook").remote_id,
            "instagram_media_id": post.target("instagram").remote_id,
        },
    )
    db_session.commit()
    return post


def meta_ids(post: ScheduledPost) -> list:
    """Every id Meta gave for the post's targets: remote ids, containers, children, steps, comments."""
    found: list = []
    for row in post.target_rows:
        found += [row.remote_id, row.container_id, row.comment_id]
        found += [child["container_id"] for child in row.children or []]
        found += [photo["id"] for photo in (row.steps or {}).get("photos", [])]
    return [value for value in found if value]


def _selection(meta_user_id: str) -> PendingSelection:
    return PendingSelection(
        meta_user_id=meta_user_id,
        scopes_granted=["pages_show_list"],
        user_token=USER_TOKEN,
        pages=[
            PageChoice(id=PAGE_ID, name="Toko Uji", instagram_business_account_id=IG_ID, instagram_username="tokouji"),
            PageChoice(id="104000000000002", name="Toko Dua"),
        ],
    )


def test_data_deletion_erases_meta_data_everywhere_and_rows_can_still_be_found(anon_client, db_session, redis_client):
    now = int(time.time())  # requests issued at distinct seconds, none before the connection
    mine = make_connection(db_session, "user-1")
    post = _connected_story(db_session, mine)
    remote_ids = meta_ids(post)
    assert len(remote_ids) == 9  # post, comment, container, two children, two photo uploads, media, comment
    queued = make_post(db_session, mine, publish_in=3600)
    other = make_connection(db_session, "user-2", meta_user_id=OTHER_META_USER, page_id="104000000000777")
    other_post = _connected_story(db_session, other)
    other_ids = meta_ids(other_post)
    store = SelectionStore(redis_client, cipher(), APP_SECRET)
    store.save("user-1", _selection(META_USER))
    store.save("user-3", _selection(META_USER))  # started connecting, never chose a Page
    store.save("user-4", _selection(OTHER_META_USER))

    response = anon_client.post(CALLBACKS[1], data={"signed_request": issued(1, now=now)})
    assert response.status_code == 200
    db_session.expire_all()

    erased = db_session.get(SocialConnection, mine.id)
    assert erased.status == "disconnected"
    assert erased.page_access_token_enc is None and erased.user_access_token_enc is None
    assert (
        erased.meta_user_id,
        erased.facebook_page_id,
        erased.page_name,
        erased.instagram_business_account_id,
        erased.instagram_username,
    ) == (None, None, None, None, None)
    assert erased.meta_user_hash and META_USER not in erased.meta_user_hash
    erased_post = db_session.get(ScheduledPost, post.id)
    for row in erased_post.target_rows:
        assert (row.remote_id, row.container_id, row.children, row.steps, row.comment_id) == (None,) * 5
        assert row.status == "published" and row.comment_status == "published"  # what happened stays
    assert erased_post.first_comment == "#batik" and len(erased_post.media) == 2  # the seller's own content
    assert db_session.get(ScheduledPost, queued.id).status == "cancelled"
    details = json.dumps(
        [e.detail for e in db_session.scalars(select(AuditEvent).where(AuditEvent.connection_id == mine.id))]
    )
    for value in (META_USER, PAGE_ID, IG_ID, "Toko Uji", "tokouji", *remote_ids):
        assert value not in details
    assert post.id in details  # our own ids stay

    # Redis: no selection holds that Meta user any more; another person's stays.
    assert store.load("user-1") is None and store.load("user-3") is None
    assert store.load("user-4").meta_user_id == OTHER_META_USER
    for name in redis_client.scan_iter():
        assert META_USER.encode() not in name and META_USER.encode() not in (redis_client.dump(name) or b"")

    # Another Meta user's data is untouched.
    untouched = db_session.get(SocialConnection, other.id)
    assert untouched.status == "connected" and untouched.facebook_page_id == "104000000000777"
    assert meta_ids(db_session.get(ScheduledPost, other_post.id)) == other_ids

    # A later request for the same person still finds the erased row.
    later = anon_client.post(CALLBACKS[1], data={"signed_request": issued(2, now=now)})
    assert later.status_code == 200 and later.json["confirmation_code"] != response.json["confirmation_code"]
    assert db_session.get(DataDeletionRequest, later.json["confirmation_code"]).connections_erased == 1
    assert anon_client.post(CALLBACKS[0], data={"signed_request": issued(3, now=now)}).status_code == 200


def test_a_deletion_after_a_reconnect_finds_old_and_new_rows(anon_client, db_session):
    old = make_connection(db_session, "user-1")
    old.connected_at = utcnow() - timedelta(hours=1)
    db_session.commit()
    assert anon_client.post(CALLBACKS[1], data={"signed_request": good(issued_in=-60)}).status_code == 200
    again = make_connection(db_session, "user-1")
    again.connected_at = utcnow() - timedelta(minutes=5)
    db_session.commit()
    response = anon_client.post(CALLBACKS[1], data={"signed_request": good()})
    db_session.expire_all()
    assert db_session.get(DataDeletionRequest, response.json["confirmation_code"]).connections_erased == 2
    rows = [db_session.get(SocialConnection, c.id) for c in (old, again)]
    assert {r.meta_user_hash for r in rows} == {rows[0].meta_user_hash} and rows[1].meta_user_id is None


def test_the_status_url_answers_a_browser_with_a_page_and_an_api_with_json(anon_client, db_session):
    make_connection(db_session)
    code = anon_client.post(CALLBACKS[1], data={"signed_request": good()}).json["confirmation_code"]
    path = f"/api/meta/data-deletion/{code}"

    page = anon_client.get(path, headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert '<html lang="id">' in html and code in html and "Selesai" in html and "dihapus" in html
    assert "<script" not in html.lower()
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert "Accept" in page.headers["Vary"]

    for accept in ("application/json", "*/*", "application/json, text/html", None):
        answer = anon_client.get(path, headers={"Accept": accept} if accept else {})
        assert answer.status_code == 200 and answer.is_json, accept
        assert answer.json["confirmation_code"] == code and answer.json["status"] == "completed"

    missing = anon_client.get("/api/meta/data-deletion/0123456789abcdef0123", headers={"Accept": BROWSER_ACCEPT})
    assert missing.status_code == 404 and missing.mimetype == "text/html"
    assert "tidak ditemukan" in missing.get_data(as_text=True).lower()
    assert anon_client.get("/api/meta/data-deletion/0123456789abcdef0123").json["error_code"] == "not_found"


def test_a_first_time_sellers_selection_is_found_for_deletion_after_a_key_rotation(redis_client):
    # A connect that never got past choosing a Page: no connection row, only the Meta user's index.
    before = SelectionStore(redis_client, cipher(), APP_SECRET)
    before.save("user-new", _selection(META_USER))
    rotated = TokenCipher(EnvKeyRing(parse_key_ring(f"{KEY_B},{KEY_A}")))  # a new first key
    after = SelectionStore(redis_client, rotated, APP_SECRET)
    assert after.clear_for_meta_user(META_USER) == 1
    assert after.load("user-new") is None
