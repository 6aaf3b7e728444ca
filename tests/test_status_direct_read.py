"""``GET /api/meta/status`` through its direct read (PostgreSQL): the same answer as the ORM's, in
every state and as the state changes, the same refusals, and a pool that stays within its cap."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import psycopg
import pytest
import requests
import requests_mock
from sqlalchemy import event, update

from connect_service.extensions import STATUS_READER_KEY
from connect_service.status_read import POOL_SIZE, StatusReader
from shared.db import utcnow
from shared.models import SocialConnection
from tests.conftest import POSTGRES_ADMIN_URL, session_jwt
from tests.factories import make_connection

STATUS = "/api/meta/status"


@pytest.fixture
def reader(app) -> StatusReader:
    reader = app.extensions[STATUS_READER_KEY]
    if reader is None:
        pytest.skip("the direct read is PostgreSQL's; this run uses SQLite")
    return reader


def through_the_orm(app, client, **kwargs):
    """The same request answered without the direct read (as on SQLite)."""
    reader = app.extensions[STATUS_READER_KEY]
    app.extensions[STATUS_READER_KEY] = None
    try:
        return client.get(STATUS, **kwargs)
    finally:
        app.extensions[STATUS_READER_KEY] = reader


def same_answer(first, second) -> None:
    assert first.status_code == second.status_code
    assert first.get_data() == second.get_data()
    assert {k: v for k, v in first.headers.items() if k != "X-Request-ID"} == {
        k: v for k, v in second.headers.items() if k != "X-Request-ID"
    }


def change(db_session, conn, **values) -> None:
    db_session.execute(update(SocialConnection).where(SocialConnection.id == conn.id).values(**values))
    db_session.commit()


STATES = {
    "connected": {},
    "connected without Instagram": {"instagram_business_account_id": None, "instagram_username": None},
    "connected, expiring soon": {"expires_at_in": timedelta(days=3)},
    "connected, data access expiring soon": {"data_access_in": timedelta(days=13)},
    "connected, far from expiry": {"expires_at_in": timedelta(days=50), "data_access_in": timedelta(days=80)},
    "connected, no scopes stored": {"scopes_granted": None},
    "needs_reauth with its code": {"status": "needs_reauth", "last_error_code": "meta_action_required"},
    "needs_reauth without a code": {"status": "needs_reauth"},
    "needs_reauth, not checked for a day": {"status": "needs_reauth", "checked_ago": timedelta(days=1)},
    "disconnected": {"status": "disconnected"},
}


@pytest.mark.parametrize("state", list(STATES))
def test_each_state_answers_byte_for_byte_as_the_orm_does(app, client, db_session, reader, state):
    values = dict(STATES[state])
    conn = make_connection(db_session, status=values.pop("status", "connected"))
    now = utcnow()
    if "expires_at_in" in values:
        values["expires_at"] = now + values.pop("expires_at_in")
    if "data_access_in" in values:
        values["data_access_expires_at"] = now + values.pop("data_access_in")
    if "checked_ago" in values:
        values["token_last_checked_at"] = now - values.pop("checked_ago")
    if values:
        change(db_session, conn, **values)

    direct = client.get(STATUS)
    remembered = client.get(STATUS)  # the second time from the answers already written
    expected = through_the_orm(app, client)

    assert direct.status_code == 200
    same_answer(direct, expected)
    same_answer(remembered, expected)


def test_not_connected_and_cors_headers_as_the_orm_gives_them(app, client, reader):
    origin = {"Origin": "https://dashboard.resellio.test"}
    direct = client.get(STATUS, headers=origin)
    assert direct.json == {"status": "not_connected"}
    assert direct.headers["Access-Control-Allow-Origin"] == origin["Origin"]
    same_answer(client.get(STATUS, headers=origin), through_the_orm(app, client, headers=origin))


def test_a_change_between_two_requests_gives_the_new_answer(client, db_session, reader):
    conn = make_connection(db_session)
    assert client.get(STATUS).json["page_name"] == "Toko Uji"

    change(db_session, conn, page_name="Toko Baru")
    assert client.get(STATUS).json["page_name"] == "Toko Baru"

    change(db_session, conn, status="needs_reauth", last_error_code="token_expired")
    body = client.get(STATUS).json
    assert (body["status"], body["error_code"]) == ("needs_reauth", "token_expired")

    change(db_session, conn, status="disconnected")
    assert client.get(STATUS).json == {"status": "not_connected"}


def test_crossing_into_the_last_fourteen_days_shows_expiring_soon(client, db_session, reader):
    conn = make_connection(db_session)
    change(db_session, conn, expires_at=utcnow() + timedelta(days=15))
    assert client.get(STATUS).json["expiring_soon"] is False
    change(db_session, conn, expires_at=utcnow() + timedelta(days=14) - timedelta(seconds=5))
    assert client.get(STATUS).json["expiring_soon"] is True


def test_each_seller_sees_only_their_own_connection(app, db_session, reader):
    make_connection(db_session, user_id="user-1", page_id="111")
    make_connection(db_session, user_id="user-2", page_id="222")
    for user, page_id in (("user-1", "111"), ("user-2", "222"), ("user-1", "111")):
        client = app.test_client()
        client.set_cookie("resellio_session", session_jwt(user))
        assert client.get(STATUS).json["facebook_page_id"] == page_id
    client = app.test_client()
    client.set_cookie("resellio_session", session_jwt("user-3"))
    assert client.get(STATUS).json == {"status": "not_connected"}


def test_a_session_that_expires_between_two_requests_is_refused(app, db_session, reader):
    make_connection(db_session)
    client = app.test_client()
    client.set_cookie("resellio_session", session_jwt("user-1", expires_in=2))
    assert client.get(STATUS).status_code == 200  # verified, and remembered

    time.sleep(2.2)
    response = client.get(STATUS)
    assert response.status_code == 401
    assert response.json["error_code"] == "not_authenticated"


def test_a_session_signed_with_another_secret_is_refused_even_after_a_good_one(app, db_session, reader):
    make_connection(db_session)
    good, forged = session_jwt("user-1"), session_jwt("user-1", secret="another-secret-with-enough-entropy-1234")
    assert app.test_client().get(STATUS, headers={"Authorization": "Bearer " + good}).status_code == 200
    response = app.test_client().get(STATUS, headers={"Authorization": "Bearer " + forged})
    assert response.status_code == 401 and response.json["error_code"] == "not_authenticated"


def test_the_scheduler_token_is_still_refused_here(app, reader):
    from tests.conftest import SCHEDULER_TOKEN

    response = app.test_client().get(STATUS, headers={"Authorization": "Bearer " + SCHEDULER_TOKEN})
    assert response.status_code == 403 and response.json["error_code"] == "forbidden"


def test_the_pool_never_opens_more_than_its_cap_under_many_threads(app, db_session, reader):
    make_connection(db_session)
    opened = []
    event.listen(reader.engine, "connect", lambda *_: opened.append(1))
    answers = []
    start = threading.Barrier(24)

    def seller() -> None:
        client = app.test_client()
        client.set_cookie("resellio_session", session_jwt("user-1"))
        start.wait()
        for _ in range(15):
            answers.append(client.get(STATUS).status_code)

    threads = [threading.Thread(target=seller) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert answers == [200] * (24 * 15)
    assert 1 <= len(opened) <= POOL_SIZE
    assert reader.engine.pool.checkedout() == 0


def test_connections_the_server_dropped_are_replaced_without_an_error(client, db_session, reader):
    make_connection(db_session)
    pooled = [reader.engine.raw_connection() for _ in range(POOL_SIZE)]  # the pool, full
    backends = [connection.driver_connection.info.backend_pid for connection in pooled]
    for connection in pooled:
        connection.close()
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        for pid in backends:  # as a server restart would
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    response = client.get(STATUS)
    assert response.status_code == 200
    assert response.json["status"] == "connected"


def test_the_reader_closes_its_connections_with_the_app_engine(app, client, db_session, reader):
    from connect_service.extensions import db

    make_connection(db_session)
    assert client.get(STATUS).status_code == 200
    assert reader.engine.pool.checkedin() >= 1
    with app.app_context():
        db.engine.dispose()
    assert reader.engine.pool.checkedin() == 0


@pytest.fixture
def flask_calls(app):
    """How many calls reached Flask behind the status fast path."""
    fast_path = app.wsgi_app
    calls = []
    behind = fast_path.wrapped

    def counting(environ, start_response):
        calls.append(environ["PATH_INFO"])
        return behind(environ, start_response)

    fast_path.wrapped = counting
    return calls


ORIGINS = {
    "no Origin": {},
    "the dashboard": {"Origin": "https://dashboard.resellio.test"},
    "another site": {"Origin": "https://evil.example"},
}


@pytest.mark.parametrize("origin", list(ORIGINS))
def test_a_repeated_call_skips_flask_with_the_same_bytes_and_headers(
    app, client, db_session, reader, flask_calls, origin
):
    make_connection(db_session)
    headers = ORIGINS[origin]
    first = client.get(STATUS, headers=headers)
    again = client.get(STATUS, headers=headers)
    assert flask_calls == [STATUS]  # the second one never reached Flask
    same_answer(first, again)
    same_answer(again, through_the_orm(app, client, headers=headers))
    assert again.headers["Cache-Control"] == "no-store"
    if origin == "the dashboard":
        assert again.headers["Access-Control-Allow-Origin"] == headers["Origin"]
        assert again.headers["Access-Control-Allow-Credentials"] == "true"
    else:
        assert "Access-Control-Allow-Origin" not in again.headers


def test_the_fast_path_gives_each_call_its_request_id(client, db_session, reader, flask_calls):
    make_connection(db_session)
    client.get(STATUS)
    generated = {client.get(STATUS).headers["X-Request-ID"] for _ in range(3)}
    assert len(generated) == 3 and all(len(request_id) == 32 for request_id in generated)
    assert client.get(STATUS, headers={"X-Request-ID": "req-abc-12345"}).headers["X-Request-ID"] == "req-abc-12345"
    assert client.get(STATUS, headers={"X-Request-ID": "bad id!"}).headers["X-Request-ID"] != "bad id!"
    assert flask_calls == [STATUS]


def test_what_the_fast_path_does_not_know_goes_to_flask(app, client, db_session, reader, flask_calls):
    conn = make_connection(db_session)
    client.get(STATUS)
    assert client.get(STATUS + "?x=1").status_code == 200  # a query string
    assert client.get(STATUS, headers={"Origin": "https://dashboard.resellio.test"}).status_code == 200  # new Origin
    bearer = app.test_client().get(STATUS, headers={"Authorization": "Bearer " + session_jwt("user-1")})
    assert bearer.status_code == 200
    assert app.test_client().get(STATUS).status_code == 401  # no session
    forged = app.test_client()
    forged.set_cookie("resellio_session", session_jwt("user-1", secret="another-secret-with-enough-entropy-1234"))
    assert forged.get(STATUS).status_code == 401
    change(db_session, conn, page_name="Toko Baru")  # an answer not written yet
    assert client.get(STATUS).json["page_name"] == "Toko Baru"
    assert len(flask_calls) == 7


def test_a_token_due_for_its_recheck_is_never_answered_from_memory(client, db_session, reader, flask_calls):
    conn = make_connection(db_session)
    client.get(STATUS)
    client.get(STATUS)
    change(db_session, conn, token_last_checked_at=utcnow() - timedelta(minutes=11))
    with requests_mock.Mocker() as meta:  # Meta does not answer: the stored state, through the view
        meta.get(requests_mock.ANY, exc=requests.ConnectionError)
        assert client.get(STATUS).json["status"] == "connected"
        assert meta.call_count >= 1
    assert flask_calls == [STATUS, STATUS]
