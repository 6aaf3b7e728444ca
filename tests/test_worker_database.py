"""The worker's database connections: handed out without a round trip, replaced when the server ended them."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import text

import shared.db
from publish_worker.jobs import publish_post
from tests.conftest import POSTGRES_ADMIN_URL
from tests.factories import make_connection, make_post
from tests.worker_fixtures import reload


@pytest.fixture(autouse=True)
def _postgresql_only(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("about PostgreSQL's connections")


def backend_pid(connection) -> int:
    return connection.connection.driver_connection.info.backend_pid


def last_seen(pid: int) -> tuple[str, object]:
    """What the server last saw on that connection: its last statement and when its state changed."""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        row = admin.execute("SELECT query, state_change FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    assert row is not None, "the connection is gone"
    return row[0], row[1]


def used_once(engine) -> int:
    """A statement on a pooled connection, then the connection back in the pool: its backend's pid."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 'the worker was here'"))
        return backend_pid(connection)


def test_a_pooled_connection_is_handed_out_without_a_round_trip(worker_ctx):
    engine = worker_ctx.engine
    pid = used_once(engine)
    before = last_seen(pid)

    for _ in range(3):
        with engine.connect() as connection:
            assert backend_pid(connection) == pid  # the same pooled connection, handed out again

    assert last_seen(pid) == before  # nothing reached the server: no ping


def test_a_connection_idle_for_long_is_pinged_before_use(worker_ctx, monkeypatch):
    """A NAT or firewall may drop an idle connection without a word: only a round trip tells."""
    engine = worker_ctx.engine
    pid = used_once(engine)
    before = last_seen(pid)
    monkeypatch.setattr(shared.db, "IDLE_PING_SECONDS", 0.0)

    with engine.connect() as connection:
        assert backend_pid(connection) == pid

    assert last_seen(pid) != before  # the ping reached the server


def test_a_connection_that_does_not_answer_the_ping_is_replaced(worker_ctx, graph, db_session, monkeypatch):
    engine = worker_ctx.engine
    with engine.connect() as connection:
        pid = backend_pid(connection)
    monkeypatch.setattr(shared.db, "IDLE_PING_SECONDS", 0.0)
    pinged = []

    def lost_on_the_way(dbapi_connection):
        pinged.append(dbapi_connection.info.backend_pid)
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(engine.dialect, "do_ping", lost_on_the_way)
    post = make_post(db_session, make_connection(db_session))
    assert publish_post(post.id) == "published"
    assert pid in pinged
    with engine.connect() as connection:
        assert backend_pid(connection) != pid
    assert gone(pid)  # the pool closed the connection that did not answer


def gone(pid: int, within: float = 5.0) -> bool:
    """The server's backend for that connection has ended (it notices the closed socket at once)."""
    deadline = time.monotonic() + within
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        while time.monotonic() < deadline:
            if admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() is None:
                return True
            time.sleep(0.05)
    return False


def test_connections_the_server_ended_are_replaced_before_a_post_uses_them(worker_ctx, graph, db_session):
    engine = worker_ctx.engine
    held = [engine.connect() for _ in range(engine.pool.size())]  # the whole pool, opened
    pids = {backend_pid(connection) for connection in held}
    for connection in held:
        connection.close()
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        for pid in pids:  # as a server restart would; waits until each is gone
            assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone() == (True,)

    post = make_post(db_session, make_connection(db_session))
    assert publish_post(post.id) == "published"
    assert reload(db_session, post.id).status == "published"
    with engine.connect() as connection:
        assert backend_pid(connection) not in pids


DESCRIBED = "SELECT 1 AS one, 'x'::varchar(12) AS label, now() AS at, NULL::numeric(5, 2) AS amount"


def test_the_workers_cursor_describes_a_result_as_psycopgs_does_even_once_it_moved_on(database_url):
    """Its description's columns are made only when read (SQLAlchemy reads them only the first
    time a statement runs), but they are the result's, read before or after the cursor's next one."""
    from shared.pg_cursor import LazyDescriptionCursor

    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as plain, psycopg.connect(url, cursor_factory=LazyDescriptionCursor) as lazy:
        expected = [tuple(column) for column in plain.execute(DESCRIBED).description]
        cursor = lazy.cursor()
        described = cursor.execute(DESCRIBED).description
        assert described is not None and len(described) == 4
        cursor.execute("SELECT 2 AS two")  # the cursor moves on before the columns are read
        assert [tuple(column) for column in described] == expected
        assert [column.name for column in described[1:3]] == ["label", "at"]
        assert cursor.execute("UPDATE pg_class SET relname = relname WHERE false").description is None
        empty = cursor.execute("SELECT").description
        assert empty is not None and len(empty) == 0  # columns, though none: as psycopg has it


def test_the_worker_engines_connections_use_that_cursor(worker_ctx, graph, db_session):
    post = make_post(db_session, make_connection(db_session))
    assert publish_post(post.id) == "published"  # its statements' results read through it
    with worker_ctx.engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()
        assert type(cursor).__name__ == "LazyDescriptionCursor"
    assert reload(db_session, post.id).status == "published"
