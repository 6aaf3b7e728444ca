"""A real ``python -m publish_worker`` process beside the connect service and the Meta sandbox.

One stack per test session (its own database and Redis database 15, no in-process
worker); each test starts from empty tables, an empty Redis database and a reset
sandbox, and starts the worker processes it needs. Loaded as a plugin
(``pytest_plugins`` in tests/conftest.py); the helpers are imported by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from sqlalchemy import Engine, text

from shared.db import make_engine
from shared.settings import DEMO_APP_ID, DEMO_APP_SECRET
from social_connect_demo import DemoStack
from tests.conftest import ALL_TABLES, create_database, drop_database, redis_url_for
from tests.e2e.driver import Seller
from tests.e2e.stack_fixtures import reset_sandbox

ROOT = Path(__file__).resolve().parents[2]
PROC_REDIS_DB = 15
IMAGE = "https://cdn.example.com/promo.jpg"


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    redis_url = redis_url_for(PROC_REDIS_DB)
    if redis_url is None:
        pytest.skip("a worker process needs a real Redis")
    database_url = create_database("proc", tmp_path_factory.mktemp("proc"))
    stack = DemoStack(port=0, sandbox_port=0, database_url=database_url, redis_url=redis_url, with_worker=False)
    stack.start()
    yield stack
    stack.stop()
    drop_database(database_url)
    with redis.Redis.from_url(redis_url) as client:  # nothing of the run left behind in its Redis database either
        client.flushdb()


@pytest.fixture
def fresh(system: DemoStack) -> Iterator[tuple[DemoStack, Engine]]:
    assert system.settings is not None and system.app is not None
    engine = make_engine(system.settings.database_url)
    with engine.begin() as conn:
        for table in ALL_TABLES:
            conn.execute(text(f"DELETE FROM {table}"))
    system.app.extensions["social_connect"].redis.flushdb()
    reset_sandbox(system, "one_page")
    yield system, engine
    engine.dispose()


class WorkerProcess:
    def __init__(self, system: DemoStack, log_path: Path) -> None:
        assert system.settings is not None and system.settings.redis_url and system.sandbox is not None
        self.env = {
            **os.environ,
            "APP_ENV": "test",
            "DATABASE_URL": system.settings.database_url,
            "REDIS_URL": system.settings.redis_url,
            "META_APP_ID": DEMO_APP_ID,
            "META_APP_SECRET": DEMO_APP_SECRET,
            "META_GRAPH_URL": system.sandbox.url,
            "META_GRAPH_VIDEO_URL": system.sandbox.url,
            "META_UPLOAD_URL": system.sandbox.url,
            "META_DIALOG_URL": system.sandbox.url,
            "METRICS_PORT": "0",
            "PUBLISH_LEASE_SECONDS": "4",
            "SWEEP_INTERVAL_SECONDS": "1",
            "RETRY_BASE_SECONDS": "0.5",
            "IG_STATUS_POLL_SECONDS": "0.3",
            "USAGE_SLOWDOWN_MAX_SECONDS": "0.2",
        }
        self.log_path = log_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = open(self.log_path, "a")
        proc = subprocess.Popen(
            [sys.executable, "-m", "publish_worker"], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def workers(fresh: tuple[DemoStack, Engine], tmp_path: Path) -> Iterator[WorkerProcess]:
    system, _ = fresh
    pool = WorkerProcess(system, tmp_path / "worker.log")
    yield pool
    pool.stop_all()


def schedule(seller: Seller, seconds_ahead: float, caption: str) -> str:
    publish_at = (datetime.now(UTC) + timedelta(seconds=seconds_ahead)).isoformat()
    response = seller.api(
        "POST", "/api/meta/schedule", json={"publish_at": publish_at, "caption": caption, "media_url": IMAGE}
    )
    assert response.status_code == 200, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def wait_until_final(seller: Seller, job_ids: list[str], timeout: float = 60) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        posts = {j: seller.api("GET", f"/api/meta/schedule/{j}").json() for j in job_ids}
        if all(p["status"] not in ("queued", "publishing") for p in posts.values()):
            return posts
        if time.monotonic() > deadline:
            raise AssertionError(f"not finished: {[(j, p['status']) for j, p in posts.items()]}")
        time.sleep(0.3)


def published(system: DemoStack) -> dict[str, Any]:
    assert system.sandbox is not None
    sent: dict[str, Any] = requests.get(f"{system.sandbox.url}/_sandbox/published.json", timeout=5).json()
    return sent


def fault(system: DemoStack, **spec: object) -> None:
    assert system.sandbox is not None
    requests.post(f"{system.sandbox.url}/_sandbox/faults", json=spec, timeout=5).raise_for_status()
