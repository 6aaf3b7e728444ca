"""A real ``python -m publish_worker`` process against PostgreSQL, Redis and the Meta sandbox.

Posts are published exactly once even when the worker is killed mid-publish or
Redis loses its jobs; a dead token and throttling behave as the seller expects.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import requests
from sqlalchemy import Engine, text

from social_connect_demo import DemoStack
from tests.conftest import free_port
from tests.e2e.driver import Seller
from tests.e2e.process_fixtures import WorkerProcess, fault, published, schedule, wait_until_final
from tests.e2e.stack_fixtures import reset_sandbox


def test_posts_due_soon_are_each_published_exactly_once(
    fresh: tuple[DemoStack, Engine], workers: WorkerProcess
) -> None:
    system, _ = fresh
    seller = Seller(system)
    assert seller.consent().json()["connected"] is True
    workers.start()
    workers.start()
    job_ids = [schedule(seller, 2 + n % 3, f"Post {n}") for n in range(12)]
    posts = wait_until_final(seller, job_ids)
    assert {p["status"] for p in posts.values()} == {"published"}
    sent = published(system)
    assert sorted(p["message"] for p in sent["facebook"]) == sorted(f"Post {n}" for n in range(12))
    assert sorted(p["caption"] for p in sent["instagram"]) == sorted(f"Post {n}" for n in range(12))


def test_a_worker_killed_mid_publish_leaves_the_post_published_once(
    fresh: tuple[DemoStack, Engine], workers: WorkerProcess
) -> None:
    system, engine = fresh
    seller = Seller(system)
    seller.consent()
    # Meta creates the photo, then the answer takes 5 s: the worker dies waiting for it.
    fault(system, endpoint="photos", latency_ms=5000, after_processing=True, times=1)
    first = workers.start()
    job_id = schedule(seller, 1, "Kill me softly")
    deadline = time.monotonic() + 20
    while True:
        with engine.connect() as conn:
            sent_at = conn.execute(
                text("SELECT sent_at FROM post_targets WHERE post_id = :id AND target = 'facebook'"), {"id": job_id}
            ).scalar()
        if sent_at is not None:
            break
        assert time.monotonic() < deadline, "the worker never started sending"
        time.sleep(0.1)
    time.sleep(0.5)  # the request is in flight at the sandbox
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    workers.start()
    post = wait_until_final(seller, [job_id])[job_id]
    assert post["status"] == "published"
    sent = published(system)
    assert [p["message"] for p in sent["facebook"]] == ["Kill me softly"]
    assert [p["caption"] for p in sent["instagram"]] == ["Kill me softly"]
    assert post["targets"]["facebook"]["post_id"] == sent["facebook"][0]["post_id"]


def test_a_redis_wipe_after_scheduling_is_repaired_by_the_sweeper(
    fresh: tuple[DemoStack, Engine], workers: WorkerProcess
) -> None:
    system, _ = fresh
    seller = Seller(system)
    seller.consent()
    job_ids = [schedule(seller, 3, f"Survivor {n}") for n in range(3)]
    # FLUSHDB on this run's own Redis database: what FLUSHALL does to it, without touching others.
    assert system.app is not None
    system.app.extensions["social_connect"].redis.flushdb()
    workers.start()
    posts = wait_until_final(seller, job_ids)
    assert {p["status"] for p in posts.values()} == {"published"}
    assert len(published(system)["facebook"]) == 3


def test_a_token_expired_at_publish_time_fails_the_post_and_asks_to_reconnect(
    fresh: tuple[DemoStack, Engine], workers: WorkerProcess
) -> None:
    system, _ = fresh
    seller = Seller(system)
    seller.consent()
    job_id = schedule(seller, 2, "Too late")
    assert system.sandbox is not None
    requests.post(f"{system.sandbox.url}/_sandbox/tokens/expire", json={"kind": "page"}, timeout=5)
    metrics_port = free_port()
    workers.env["METRICS_PORT"] = str(metrics_port)
    workers.start()
    post = wait_until_final(seller, [job_id])[job_id]
    assert post["status"] == "failed" and post["error_code"] == "token_expired"
    assert post["targets"]["facebook"]["error_code"] == "token_expired"
    status = seller.status()
    assert status["status"] == "needs_reauth" and status["error_code"] == "token_expired"
    assert published(system) == {"facebook": [], "instagram": []}
    metrics = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    assert 'social_connect_publishes_total{result="failed",target="facebook"} 1.0' in metrics
    assert 'social_connect_errors_total{error_code="token_expired"} 2.0' in metrics


def test_throttled_once_is_retried_and_published_once(fresh: tuple[DemoStack, Engine], workers: WorkerProcess) -> None:
    system, _ = fresh
    reset_sandbox(system, "throttled")
    seller = Seller(system)
    seller.consent()
    workers.start()
    job_id = schedule(seller, 1, "Patience")
    post = wait_until_final(seller, [job_id])[job_id]
    assert post["status"] == "published"
    assert post["attempts"] >= 2
    sent = published(system)
    assert len(sent["facebook"]) == 1 and len(sent["instagram"]) == 1


def test_a_foreign_job_on_the_queue_is_refused_by_the_worker_process(
    fresh: tuple[DemoStack, Engine], workers: WorkerProcess, tmp_path: Path
) -> None:
    from rq import Queue
    from rq.serializers import JSONSerializer

    system, _ = fresh
    seller = Seller(system)
    seller.consent()
    assert system.app is not None
    redis = system.app.extensions["social_connect"].redis
    marker = tmp_path / "pwned"
    # What anyone who can write to Redis could do, with stock RQ.
    attacker = Queue("meta-publish", connection=redis, serializer=JSONSerializer)
    foreign = [
        attacker.enqueue("os.system", f"touch {marker}"),
        attacker.enqueue("tests.marker_jobs.make_marker", str(marker)),
    ]
    metrics_port = free_port()
    workers.env["METRICS_PORT"] = str(metrics_port)
    workers.start()
    job_id = schedule(seller, 1, "Ours")
    assert wait_until_final(seller, [job_id])[job_id]["status"] == "published"
    failed = attacker.failed_job_registry
    deadline = time.monotonic() + 20
    while len(failed) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sorted(failed.get_job_ids()) == sorted(j.id for j in foreign)
    assert not marker.exists()
    metrics = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    assert 'social_connect_jobs_refused_total{reason="not_allowed"} 2.0' in metrics
    log = workers.log_path.read_text()
    assert log.count("job refused (not_allowed)") == 2 and "touch" not in log
