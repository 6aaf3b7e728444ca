"""Meta's error table (DESIGN §13.1) and the visitor-post check (§8 step 5), through the Meta sandbox.

The real publish job runs in this process against a sandbox on a free local port,
with a connection holding tokens the sandbox issued. Faults make the sandbox answer
each error of the table; the calls Meta received are counted by the sandbox itself.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from sqlalchemy import update

from meta_sandbox import serve_in_thread
from publish_worker.context import install_context, worker_services
from publish_worker.jobs import publish_post
from shared.db import utcnow
from shared.graph import appsecret_proof
from shared.models import SocialConnection
from shared.settings import DEFAULT_SCOPES
from shared.tokens import store_tokens
from tests.conftest import same_origin, session_jwt
from tests.factories import cipher, make_connection, make_post
from tests.worker_fixtures import FAST, queued_jobs, reload, run_next_continuation, scheduled_jobs, skip_the_wait

APP_ID = "sandbox-errors-app"
APP_SECRET = "sandbox-errors-secret-0123456789"
PAGE = "110000000000001"
IG = "17841400000000001"
REDIRECT = "https://connect.resellio.test/api/meta/callback"
CAPTION = "Promo batik biru #diskon"
IMAGE = "https://cdn.example.com/batik.jpg"


@pytest.fixture(scope="module")
def sandbox():
    server = serve_in_thread(
        "127.0.0.1",
        0,
        {"SANDBOX_APP_ID": APP_ID, "SANDBOX_APP_SECRET": APP_SECRET, "SANDBOX_SCENARIO": "one_page", "APP_ENV": "test"},
    )
    yield server
    server.stop()


class Sandbox:
    def __init__(self, url: str):
        self.url = url

    def admin(self, path: str, body: dict | None = None) -> dict:
        response = requests.post(f"{self.url}/_sandbox/{path}", json=body or {}, timeout=5)
        assert response.status_code < 300, response.text
        return response.json()

    def fault(
        self, endpoint: str, code: int, subcode: int | None = None, *, status: int = 400, times: int = 1, **extra
    ) -> None:
        error = {"code": code, "message": f"sandbox error {code}/{subcode}", **extra}
        if subcode is not None:
            error["error_subcode"] = subcode
        self.admin("faults", {"endpoint": endpoint, "status": status, "error": error, "times": times})

    def state(self) -> dict:
        return requests.get(f"{self.url}/_sandbox/state", timeout=5).json()

    def calls(self, endpoint: str) -> int:
        return self.state()["calls"].get(endpoint, 0)

    def published(self) -> dict:
        return requests.get(f"{self.url}/_sandbox/published.json", timeout=5).json()

    def tokens(self) -> tuple[str, str]:
        """A seller's consent, as Meta's dialog would take it: (long-lived user token, page token)."""
        answer = requests.post(
            f"{self.url}/v25.0/dialog/oauth",
            allow_redirects=False,
            timeout=5,
            data={
                "client_id": APP_ID,
                "redirect_uri": REDIRECT,
                "state": "s" * 32,
                "scope": ",".join(DEFAULT_SCOPES),
                "permissions": list(DEFAULT_SCOPES),
                "pages": [PAGE],
                "action": "continue",
            },
        )
        assert answer.status_code == 302, answer.text
        code = answer.headers["Location"].split("code=", 1)[1].split("&", 1)[0]
        short = requests.post(
            f"{self.url}/v25.0/oauth/access_token",
            timeout=5,
            data={"client_id": APP_ID, "client_secret": APP_SECRET, "redirect_uri": REDIRECT, "code": code},
        ).json()
        user = requests.get(
            f"{self.url}/v25.0/oauth/access_token",
            timeout=5,
            params={
                "grant_type": "fb_exchange_token",
                "client_id": APP_ID,
                "client_secret": APP_SECRET,
                "fb_exchange_token": short["access_token"],
            },
        ).json()["access_token"]
        page = requests.get(
            f"{self.url}/v25.0/{PAGE}",
            timeout=5,
            headers={"Authorization": f"Bearer {user}"},
            params={"fields": "access_token", "appsecret_proof": appsecret_proof(user, APP_SECRET)},
        )
        return user, page.json()["access_token"]


@pytest.fixture
def meta(sandbox) -> Sandbox:
    meta = Sandbox(sandbox.url)
    meta.admin("reset", {"scenario": "one_page"})
    return meta


@pytest.fixture
def sandbox_settings(settings, sandbox):
    return settings.with_overrides(meta_graph_url=sandbox.url, meta_app_id=APP_ID, meta_app_secret=APP_SECRET, **FAST)


@pytest.fixture
def ctx(sandbox_settings, redis_client, engine):
    ctx = worker_services(sandbox_settings, redis_client)
    install_context(ctx)
    yield ctx
    install_context(None)
    ctx.close()


@pytest.fixture
def conn(db_session, meta):
    conn = make_connection(db_session, page_id=PAGE, ig_id=IG)
    user, page = meta.tokens()
    store_tokens(conn, cipher(), page_token=page, user_token=user)
    db_session.commit()
    return conn


def due_now(ctx, post_id: str) -> None:
    """Skip the wait: the continuation's time has come (and a lost request's lifetime is over)."""
    skip_the_wait(ctx, post_id)


def run_to_the_end(ctx, post_id: str, max_runs: int = 10) -> str:
    result = publish_post(post_id)
    for _ in range(max_runs):
        if result != "continuing":
            return result
        due_now(ctx, post_id)
        result = run_next_continuation(ctx.redis)
    raise AssertionError(f"still continuing after {max_runs} runs")


# ---------- item 2: a visitor's post is not ours ----------


def test_a_visitor_post_with_the_same_caption_is_not_taken_for_ours(ctx, meta, conn, db_session):
    # Meta fails the photo with a 5xx once the request has reached it: ambiguous, so the Page is checked.
    meta.fault("photos", 2, status=500, is_transient=True)
    visitor = meta.admin(f"pages/{PAGE}/visitor-posts", {"message": CAPTION, "from_name": "Budi"})
    post = make_post(db_session, conn, targets=["facebook"], caption=CAPTION, media_url=IMAGE)
    assert run_to_the_end(ctx, post.id) == "published"
    post = reload(db_session, post.id)
    [ours] = meta.published()["facebook"]
    assert ours["message"] == CAPTION
    assert post.target("facebook").remote_id == ours["post_id"] != visitor["id"]
    assert meta.calls("photos") == 2  # the failed send and the one that published it
    assert meta.calls("published_posts") == 1 and meta.calls("feed_get") == 0


def test_an_ambiguous_send_that_went_through_is_found_among_the_pages_own_posts(ctx, meta, conn, db_session):
    meta.admin(f"pages/{PAGE}/visitor-posts", {"message": CAPTION})
    meta.admin("faults", {"endpoint": "photos", "status": 500, "after_processing": True})
    post = make_post(db_session, conn, targets=["facebook"], caption=CAPTION, media_url=IMAGE)
    assert run_to_the_end(ctx, post.id) == "published"
    [ours] = meta.published()["facebook"]
    assert reload(db_session, post.id).target("facebook").remote_id == ours["post_id"]
    assert meta.calls("photos") == 1  # found, not sent again


# ---------- item 4: Meta's error table ----------


@pytest.mark.parametrize(
    "endpoint, code, subcode",
    [
        ("photos", 4, 2207051),  # spam protection: today retried as throttling
        ("photos", 368, None),
        ("media", 9, 2207050),  # the IG account is restricted, whatever code carries it
    ],
)
def test_account_restricted_is_never_retried(ctx, meta, conn, db_session, endpoint, code, subcode):
    meta.fault(endpoint, code, subcode, times=5)
    target = "facebook" if endpoint == "photos" else "instagram"
    post = make_post(db_session, conn, targets=[target])
    assert run_to_the_end(ctx, post.id) == "failed"
    post = reload(db_session, post.id)
    assert post.target(target).error_code == "account_restricted" == post.error_code
    assert post.target(target).tries == 1
    assert meta.calls(endpoint) == 1
    assert scheduled_jobs(ctx.redis) == [] and queued_jobs(ctx.redis) == []
    assert db_session.get(SocialConnection, conn.id).status == "connected"


@pytest.mark.parametrize(
    "endpoint, code, subcode",
    [
        ("media", -1, 2207001),
        ("media", -2, 2207003),
        ("media_publish", -1, 2207001),
        ("photos", 1, None),
        ("photos", 2, None),
    ],
)
def test_meta_side_errors_are_retried_then_published_once(ctx, meta, conn, db_session, endpoint, code, subcode):
    meta.fault(endpoint, code, subcode, times=2)
    target = "facebook" if endpoint == "photos" else "instagram"
    post = make_post(db_session, conn, targets=[target])
    assert run_to_the_end(ctx, post.id) == "published"
    post = reload(db_session, post.id)
    assert post.target(target).tries == 2
    assert meta.calls(endpoint) == 3
    published = meta.published()
    assert len(published[target]) == 1


def test_341_waits_at_least_ten_minutes(ctx, meta, conn, db_session):
    meta.fault("photos", 341)
    post = make_post(db_session, conn, targets=["facebook"])
    before = utcnow()
    assert publish_post(post.id) == "continuing"
    held = reload(db_session, post.id)
    fb = held.target("facebook")
    assert fb.error_code == "rate_limited" and fb.not_before - before >= timedelta(minutes=10)
    assert meta.calls("photos") == 1
    due_now(ctx, post.id)
    assert run_next_continuation(ctx.redis) == "published"
    assert meta.calls("photos") == 2 and len(meta.published()["facebook"]) == 1


@pytest.mark.parametrize(
    "endpoint, code, subcode",
    [
        ("media", -2, 2207020),  # expired, at creation
        ("media", -1, 2207032),  # unusable, at creation
        ("media", -1, 2207053),  # an unknown upload error, at creation
        ("media_publish", -2, 2207020),
        ("media_publish", 24, 2207006),
    ],
)
def test_an_expired_or_unusable_container_is_made_again(ctx, meta, conn, db_session, endpoint, code, subcode):
    meta.fault(endpoint, code, subcode)
    post = make_post(db_session, conn, targets=["instagram"])
    assert run_to_the_end(ctx, post.id) == "published"
    assert meta.calls("media") == 2
    assert meta.calls("media_publish") == (2 if endpoint == "media_publish" else 1)
    assert len(meta.published()["instagram"]) == 1


def test_a_temporary_publishing_error_is_tried_three_times_then_on_a_new_container(ctx, meta, conn, db_session):
    meta.fault("media_publish", 24, 2207008, times=3)
    post = make_post(db_session, conn, targets=["instagram"])
    assert run_to_the_end(ctx, post.id) == "published"
    assert meta.calls("media") == 2 and meta.calls("media_publish") == 4
    [media] = meta.published()["instagram"]
    assert reload(db_session, post.id).target("instagram").remote_id == media["media_id"]


def test_a_container_expired_on_its_status_is_made_again(ctx, meta, conn, db_session):
    meta.admin("container-outcomes", {"status_code": "EXPIRED"})
    post = make_post(db_session, conn, targets=["instagram"])
    assert run_to_the_end(ctx, post.id) == "published"
    assert meta.calls("media") == 2 and meta.calls("media_publish") == 1


def test_a_container_in_error_keeps_metas_status_text(ctx, meta, conn, db_session):
    text = "Error: The image's aspect ratio is not supported (2207009)."
    meta.admin("container-outcomes", {"status_code": "ERROR", "status": text})
    post = make_post(db_session, conn)
    assert run_to_the_end(ctx, post.id) == "partially_published"
    post = reload(db_session, post.id)
    ig = post.target("instagram")
    assert (ig.status, ig.error_code) == ("failed", "media_invalid")
    assert text in post.error_message and post.error_message.startswith("Instagram: ")
    assert meta.calls("media") == 1 and meta.calls("media_publish") == 0
    assert len(meta.published()["facebook"]) == 1


@pytest.mark.parametrize(
    "endpoint, code, subcode",
    [
        ("photos", 190, 459),
        ("photos", 190, 464),
        ("photos", 200, 1404078),  # Page Publishing Authorization
        ("media", 368, 4854002),  # identity confirmation: the subcode decides, not the code
    ],
)
def test_meta_action_required_stops_the_connection_and_scheduling(
    ctx, meta, conn, db_session, redis_client, sandbox_settings, endpoint, code, subcode
):
    meta.fault(endpoint, code, subcode, times=5)
    if endpoint == "photos":
        # Instagram works beside Facebook and its first call meets the same account-wide block.
        meta.fault("publishing_limit", code, subcode, times=5)
    post = make_post(db_session, conn, targets=["facebook", "instagram"] if endpoint == "photos" else ["instagram"])
    assert run_to_the_end(ctx, post.id) == "failed"
    post = reload(db_session, post.id)
    assert post.error_code == "meta_action_required"
    assert post.target("instagram").error_code == "meta_action_required"
    assert post.target("facebook").error_code == ("meta_action_required" if endpoint == "photos" else None)
    assert meta.calls(endpoint) == 1 and meta.published() == {"facebook": [], "instagram": []}
    if endpoint == "photos":
        assert meta.calls("media") == 0  # no container is made on this connection
    db_session.expire_all()
    connection = db_session.get(SocialConnection, conn.id)
    assert (connection.status, connection.last_error_code) == ("needs_reauth", "meta_action_required")

    from connect_service import create_app

    app = create_app({"SETTINGS": sandbox_settings, "REDIS": redis_client, "TESTING": True})
    client = app.test_client()
    client.set_cookie("resellio_session", session_jwt(conn.user_id_resellio))
    response = client.post(
        "/api/meta/schedule",
        headers=same_origin(),
        json={"publish_at": (utcnow() + timedelta(minutes=5)).isoformat(), "caption": "Lagi", "media_url": IMAGE},
    )
    assert response.status_code == 403
    assert response.get_json()["error_code"] == "meta_action_required"
    assert response.get_json()["action"] == "fix_on_meta"
    # The token itself is valid: a status re-check must not make the connection look fine.
    with ctx.session() as session:
        session.execute(
            update(SocialConnection)
            .where(SocialConnection.id == conn.id)
            .values(token_last_checked_at=utcnow() - timedelta(days=2))
        )
        session.commit()
    status = client.get("/api/meta/status").get_json()
    assert status["status"] == "needs_reauth" and status["error_code"] == "meta_action_required"
    from publish_worker.duties import check_tokens

    check_tokens(ctx)
    status = client.get("/api/meta/status").get_json()
    assert status["status"] == "needs_reauth" and status["error_code"] == "meta_action_required"
    with app.app_context():
        from connect_service.extensions import db

        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize("used, outcome", [(50, "continuing"), (49, "published")])
def test_without_a_quota_total_fifty_a_day_is_assumed(ctx, meta, conn, db_session, used, outcome):
    meta.admin("quota", {"used": used, "total": 100, "report_total": False})
    post = make_post(db_session, conn, targets=["instagram"])
    assert publish_post(post.id) == outcome
    post = reload(db_session, post.id)
    if outcome == "continuing":
        ig = post.target("instagram")
        assert ig.error_code == "publishing_limit_reached" and ig.status == "pending"
        assert meta.calls("media") == 0
    else:
        assert meta.calls("media") == 1 and meta.calls("media_publish") == 1


def test_2207042_is_deferred(ctx, meta, conn, db_session):
    meta.fault("media_publish", 9, 2207042)
    post = make_post(db_session, conn, targets=["instagram"])
    before = utcnow()
    assert publish_post(post.id) == "continuing"
    held = reload(db_session, post.id)
    ig = held.target("instagram")
    assert ig.error_code == "publishing_limit_reached"
    assert ig.not_before - before >= timedelta(minutes=59)
    assert meta.calls("media_publish") == 1
