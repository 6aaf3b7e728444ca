"""Migration 0007 (DESIGN §13.3): the ``webhook_events`` outbox appears, holds an event, and goes
again on the way down without touching the rest; on PostgreSQL and on SQLite (the demo)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from shared.migrations import alembic_config, run_migrations
from tests.conftest import POSTGRES_ADMIN_URL, _postgres_reachable

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def fresh_postgres():
    if not _postgres_reachable():
        pytest.skip("PostgreSQL is not reachable")
    import psycopg

    name = f"social_connect_migration7_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + "/" + name
    try:
        yield url
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _event(event_id: str, dedupe_key: str | None) -> dict:
    return {
        "id": event_id,
        "type": "connection.connected",
        "body": '{"type":"connection.connected","timestamp":"2026-12-01T08:00:00Z","data":{}}',
        "connection_id": "conn_mig",
        "post_id": None,
        "user_id_resellio": "user-1",
        "dedupe_key": dedupe_key,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": T0,
        "retry_until": T0 + timedelta(days=3),
        "enqueue_seq": 1,
        "rq_job_id": f"hook-{event_id}-1",
        "created_at": T0,
    }


INSERT = text(
    "INSERT INTO webhook_events (id, type, body, connection_id, post_id, user_id_resellio, dedupe_key, status, "
    "attempts, next_attempt_at, retry_until, enqueue_seq, rq_job_id, created_at) VALUES (:id, :type, :body, "
    ":connection_id, :post_id, :user_id_resellio, :dedupe_key, :status, :attempts, :next_attempt_at, "
    ":retry_until, :enqueue_seq, :rq_job_id, :created_at)"
)


def _up_and_down(url: str) -> None:
    run_migrations(url, "0006")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO social_connections (id, user_id_resellio, status, created_at, updated_at) "
                    "VALUES ('conn_mig', 'user-1', 'connected', :t, :t)"
                ),
                {"t": T0.replace(tzinfo=None) if url.startswith("sqlite") else T0},
            )
        assert "webhook_events" not in inspect(engine).get_table_names()

        run_migrations(url, "0007")
        inspector = inspect(engine)
        columns = {column["name"] for column in inspector.get_columns("webhook_events")}
        assert {"id", "type", "body", "status", "attempts", "next_attempt_at", "retry_until"} <= columns
        assert {"last_status", "last_error", "created_at", "delivered_at", "connection_id", "post_id"} <= columns
        indexes = {index["name"]: index for index in inspector.get_indexes("webhook_events")}
        assert indexes["ix_webhook_events_due"]["column_names"] == ["status", "next_attempt_at"]
        params = _event("msg_one", "connection.expiring_soon:conn_mig:2026-12-10T00:00:00Z")
        if url.startswith("sqlite"):
            params = {k: v.replace(tzinfo=None) if isinstance(v, datetime) else v for k, v in params.items()}
        with engine.begin() as conn:
            conn.execute(INSERT, params)
        with pytest.raises(IntegrityError), engine.begin() as conn:  # once per connection per expiry
            conn.execute(INSERT, {**params, "id": "msg_two"})
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id, status FROM webhook_events")).all() == [("msg_one", "pending")]
        engine.dispose()

        command.downgrade(alembic_config(url), "0006")
        inspector = inspect(engine)
        assert "webhook_events" not in inspector.get_table_names()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM social_connections")).scalars().all() == ["conn_mig"]
        engine.dispose()

        run_migrations(url)  # and up again to the head
        assert "webhook_events" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_0007_up_and_down_on_postgresql(fresh_postgres):
    _up_and_down(fresh_postgres)


def test_0007_up_and_down_on_sqlite(tmp_path):
    _up_and_down(f"sqlite:///{tmp_path / 'migrate.db'}")
