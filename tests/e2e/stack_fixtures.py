"""End-to-end fixtures: the whole system (sandbox, connect service, worker) over real HTTP.

One stack per test session on free ports, against this run's PostgreSQL database
and Redis database; every test starts from empty tables, an empty Redis database
and a freshly reset sandbox. Loaded as a plugin (``pytest_plugins`` in tests/conftest.py),
so the browser tests share the stack.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
import requests
from sqlalchemy import text

from social_connect_demo import DemoStack
from tests.conftest import ALL_TABLES, create_database, drop_database, redis_url_for

E2E_TUNING = {
    "sweep_interval_seconds": 1.0,
    "retry_base_seconds": 0.3,
    "ig_status_poll_seconds": 0.3,
    "lease_seconds": 20,
}


E2E_REDIS_DB = 14


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    """Its own database and Redis database: its worker must not see other tests' posts."""
    database_url = create_database("e2e", tmp_path_factory.mktemp("e2e"))
    redis_url = redis_url_for(E2E_REDIS_DB)
    redis_client: redis.Redis | None = None
    if redis_url is None:
        import fakeredis

        redis_client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    demo = DemoStack(
        port=0,
        sandbox_port=0,
        database_url=database_url,
        redis_url=redis_url,
        redis_client=redis_client,
        settings_overrides=E2E_TUNING,
    )
    demo.start()
    yield demo
    demo.stop()
    drop_database(database_url)
    if redis_url is not None:  # nothing of the run left behind in its Redis database either
        with redis.Redis.from_url(redis_url) as client:
            client.flushdb()


@pytest.fixture
def live(stack: DemoStack) -> DemoStack:
    """The running stack, cleaned: empty tables and Redis database, sandbox on ``one_page``."""
    from connect_service.extensions import db

    assert stack.app is not None and stack.worker is not None
    with stack.app.app_context():
        with db.engine.begin() as conn:
            for table in ALL_TABLES:
                conn.execute(text(f"DELETE FROM {table}"))
    stack.worker.ctx.redis.flushdb()
    reset_sandbox(stack, "one_page")
    return stack


def reset_sandbox(stack: DemoStack, scenario: str) -> None:
    assert stack.sandbox is not None
    response = requests.post(f"{stack.sandbox.url}/_sandbox/reset", json={"scenario": scenario}, timeout=5)
    response.raise_for_status()
