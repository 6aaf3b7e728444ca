"""The worker's database pool checks a connection that sat idle before handing it out, and
does not spend a round trip on one handed back moments ago (``shared.db.ping_when_idle``)."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from publish_worker.context import worker_services
from shared.db import make_engine
from tests.conftest import POSTGRES_ADMIN_URL


@pytest.fixture
def postgres_url(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL (a backend to terminate)")
    return database_url


def backend_pid(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def terminate(pid: int) -> None:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(0.2)  # the backend is gone once the server has processed it


def test_a_connection_killed_while_idle_is_replaced_before_use(postgres_url):
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0, ping_after_idle=0.3)
    try:
        first = backend_pid(engine)
        terminate(first)  # a database restart, an idle timeout on the way
        time.sleep(0.4)

        second = backend_pid(engine)  # no error: the dead connection was noticed and replaced

        assert second != first
    finally:
        engine.dispose()


def test_a_connection_back_a_moment_ago_is_not_pinged(postgres_url):
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0, ping_after_idle=60)
    try:
        terminate(backend_pid(engine))

        # Within the idle window the connection is trusted: its death shows on first use (a
        # step's error, retried like any other) instead of costing a ping on every checkout.
        with pytest.raises(OperationalError), engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert backend_pid(engine)  # the pool then replaced it
    finally:
        engine.dispose()


def test_the_worker_engine_pings_only_idle_connections(settings):
    ctx = worker_services(settings)
    try:
        assert ctx.engine.pool._pre_ping is False
        if settings.database_url.startswith("postgresql"):
            first = backend_pid(ctx.engine)
            terminate(first)
            time.sleep(2.1)  # PING_AFTER_IDLE_SECONDS
            assert backend_pid(ctx.engine) != first
    finally:
        ctx.close()
