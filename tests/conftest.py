"""Test fixtures: a fresh PostgreSQL database per run and a Redis database of their own.

When ``CI=true`` both must be reachable (the run fails otherwise). On a laptop
without them the tests fall back to SQLite and fakeredis.

Fixtures shared beyond this file live in plugin modules listed in ``pytest_plugins``
(never imported by name into a test module); their helper functions are imported normally.
Tests under tests/e2e and tests/browser are marked ``e2e``/``browser`` here, so
``make test-fast`` can leave them out with the ``slow`` ones.
"""

from __future__ import annotations

import base64
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import redis as redis_lib
from sqlalchemy import text

from shared.db import make_engine
from shared.migrations import run_migrations
from shared.settings import load_settings

pytest_plugins = ["tests.worker_fixtures", "tests.e2e.stack_fixtures", "tests.e2e.process_fixtures"]

CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
REDIS_DB = int(os.environ.get("TEST_REDIS_DB", "13"))

KEY_A = "k2026a:" + base64.b64encode(b"A" * 32).decode()
KEY_B = "k2026b:" + base64.b64encode(b"B" * 32).decode()
APP_SECRET = "test-app-secret-7f3a9c1e5b"
SESSION_SECRET = "test-session-secret-with-enough-entropy-42"
SCHEDULER_TOKEN = "test-scheduler-token-8d6e2f0a4c91b7"
GRAPH_URL = "https://graph.meta.test"
DIALOG_URL = "https://www.meta.test"
REDIRECT_URI = "https://connect.resellio.test/api/meta/callback"
DASHBOARD_URL = "https://dashboard.resellio.test/social-connect"
DASHBOARD_ORIGIN = "https://dashboard.resellio.test"
TESTS_DIR = Path(__file__).parent
MARKED_DIRECTORIES = {TESTS_DIR / "e2e": "e2e", TESTS_DIR / "browser": "browser"}
ALL_TABLES = (
    "audit_events",
    "data_deletion_requests",
    "meta_callback_receipts",
    "post_targets",
    "scheduled_posts",
    "social_connections",
    "webhook_events",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by the folder it lives in (the whole system over HTTP, or a real browser)."""
    for item in items:
        for directory, marker in MARKED_DIRECTORIES.items():
            if item.path.is_relative_to(directory):
                item.add_marker(marker)


def _postgres_reachable() -> bool:
    import psycopg

    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _redis_reachable() -> bool:
    try:
        return bool(redis_lib.Redis.from_url(REDIS_BASE_URL, socket_connect_timeout=2).ping())
    except redis_lib.RedisError:
        return False


def create_database(tag: str, tmp_dir) -> str:
    """A new, migrated database for this run: PostgreSQL when reachable, else SQLite (not in CI)."""
    if _postgres_reachable():
        import psycopg

        name = f"social_connect_test_{os.getpid()}_{uuid.uuid4().hex[:8]}_{tag}"
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    elif CI:
        pytest.fail(f"CI=true but PostgreSQL is unreachable at {POSTGRES_ADMIN_URL}", pytrace=False)
    else:
        url = "sqlite:///" + str(tmp_dir / f"social_connect_{tag}.db")
    run_migrations(url)
    return url


def drop_database(url: str) -> None:
    if not url.startswith("postgresql"):
        return
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """A database created for this run, migrated with Alembic, dropped afterwards."""
    url = create_database("main", tmp_path_factory.mktemp("db"))
    yield url
    drop_database(url)


def redis_url_for(db_number: int) -> str | None:
    """A Redis database of this run's own, or None for the embedded fakeredis."""
    if _redis_reachable():
        return f"{REDIS_BASE_URL}/{db_number}"
    if CI:
        pytest.fail(f"CI=true but Redis is unreachable at {REDIS_BASE_URL}", pytrace=False)
    return None


@pytest.fixture(scope="session")
def redis_url():
    """This run's own Redis database number, or None for the embedded fakeredis."""
    return redis_url_for(REDIS_DB)


def make_test_env(database_url: str, redis_url: str | None, **extra: str) -> dict[str, str]:
    env = {
        "APP_ENV": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url or "",
        "META_APP_ID": "1234567890",
        "META_APP_SECRET": APP_SECRET,
        "META_REDIRECT_URI": REDIRECT_URI,
        "META_GRAPH_URL": GRAPH_URL,
        "META_DIALOG_URL": DIALOG_URL,
        "TOKEN_ENCRYPTION_KEYS": KEY_A,
        "RESELLIO_SESSION_SECRET": SESSION_SECRET,
        "SCHEDULER_API_TOKEN": SCHEDULER_TOKEN,
        "DASHBOARD_URL": DASHBOARD_URL,
        "CORS_ORIGINS": DASHBOARD_ORIGIN,
    }
    env.update(extra)
    return env


@pytest.fixture
def settings(database_url, redis_url):
    return load_settings(make_test_env(database_url, redis_url))


@pytest.fixture
def redis_client(settings):
    from shared.redis_conn import make_redis
    from social_connect_demo import embedded_redis

    client = make_redis(settings) if settings.redis_url else embedded_redis()
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    _clean_tables(engine)
    yield engine
    engine.dispose()


def _clean_tables(engine) -> None:
    with engine.begin() as conn:
        for table in ALL_TABLES:
            conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def db_session(engine):
    from shared.db import make_session_factory

    with make_session_factory(engine)() as session:
        yield session


@pytest.fixture
def app(settings, redis_client, engine):
    from connect_service import create_app

    app = create_app({"SETTINGS": settings, "REDIS": redis_client, "TESTING": True})
    yield app
    with app.app_context():
        from connect_service.extensions import db

        db.session.remove()
        db.engine.dispose()


def session_jwt(user_id: str, *, secret: str = SESSION_SECRET, expires_in: int = 3600, **claims) -> str:
    payload = {"sub": user_id, "exp": int(time.time()) + expires_in, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


@pytest.fixture
def client(app):
    """A browser-like client signed in as seller ``user-1`` by cookie."""
    test_client = app.test_client()
    test_client.set_cookie("resellio_session", session_jwt("user-1"))
    return test_client


@pytest.fixture
def anon_client(app):
    return app.test_client()


def same_origin() -> dict[str, str]:
    return {"Origin": "http://localhost"}


def free_port() -> int:
    """A loopback port nothing listens on (just now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A loopback port whose accept queue is full: further connects hang, as with a public
    address that drops packets."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=1)
    yield port
    filler.close()
    listener.close()
