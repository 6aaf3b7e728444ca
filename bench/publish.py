"""Publish benchmark: N posts due at the same second, K worker processes, the Meta sandbox
answering every Graph call after a chosen latency. Prints figures; asserts nothing.

    .venv/bin/python bench/publish.py --posts 1000 --latency-ms 100 --workers 4 --threads 8

It needs PostgreSQL and Redis (127.0.0.1 by default); it creates and drops its own
database and uses Redis database 12 (FLUSHDB only).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.db import make_engine, make_session_factory, utcnow  # noqa: E402
from shared.migrations import run_migrations  # noqa: E402
from shared.models import CANCELLED, PENDING, QUEUED, ScheduledPost, SocialConnection, new_id  # noqa: E402
from shared.queue import PUBLISH_POST, job_timeout, make_queue  # noqa: E402
from shared.settings import DEFAULT_SCOPES, DEMO_APP_ID, DEMO_APP_SECRET, load_settings  # noqa: E402

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(pct / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.db_name = f"social_connect_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.database_url = (
            ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + self.db_name
        )
        self.sandbox_port = free_port()
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = {
            **os.environ,
            "APP_ENV": "test",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": REDIS_URL,
            "META_APP_ID": DEMO_APP_ID,
            "META_APP_SECRET": DEMO_APP_SECRET,
            "META_GRAPH_URL": self.sandbox_url,
            "META_DIALOG_URL": self.sandbox_url,
            "METRICS_PORT": "0",
            "SWEEP_INTERVAL_SECONDS": "5",
            "PYTHONPATH": str(ROOT),
            "WORKER_THREADS": str(args.threads),
        }

    # -- setup --

    def create_database(self) -> None:
        import psycopg

        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.db_name}"')
        run_migrations(self.database_url)
        self.settings = load_settings(self.env)
        self.engine = make_engine(self.database_url)
        self.sessions = make_session_factory(self.engine)

    def drop_database(self) -> None:
        import psycopg

        self.engine.dispose()
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')

    def start_sandbox(self) -> None:
        env = {
            **self.env,
            "SANDBOX_APP_ID": DEMO_APP_ID,
            "SANDBOX_APP_SECRET": DEMO_APP_SECRET,
            "SANDBOX_SCENARIO": "one_page",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "meta_sandbox", "--port", str(self.sandbox_port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        self.sandbox_proc = proc
        for _ in range(100):
            try:
                requests.get(self.sandbox_url + "/_sandbox/state", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        requests.post(self.sandbox_url + "/_sandbox/quota", json={"used": 0, "total": 1_000_000}, timeout=5)

    def connect(self) -> str:
        """The seller's OAuth connect through the connect service and the sandbox's consent page."""
        from connect_service import create_app
        from shared.redis_conn import make_redis

        app = create_app(
            {
                "SETTINGS": self.settings.with_overrides(meta_redirect_uri="http://bench/callback"),
                "REDIS": make_redis(self.settings),
            }
        )
        client = app.test_client()
        import jwt

        client.set_cookie(
            "resellio_session",
            jwt.encode(
                {"sub": "bench-seller", "exp": int(time.time()) + 3600}, self.settings.session_secret, algorithm="HS256"
            ),
        )
        connect = client.get("/api/meta/connect").json
        assert connect is not None
        oauth_url = connect["oauth_url"]
        query = parse_qs(urlsplit(oauth_url).query)
        html = requests.get(oauth_url, timeout=5).text
        form = {
            "client_id": query["client_id"][0],
            "redirect_uri": query["redirect_uri"][0],
            "state": query["state"][0],
            "scope": query["scope"][0],
            "action": "continue",
            "pages": re.findall(r'name="pages" value="(\d+)"', html),
            "permissions": list(DEFAULT_SCOPES),
        }
        answer = requests.post(oauth_url.split("?")[0], data=form, allow_redirects=False, timeout=5)
        callback = parse_qs(urlsplit(answer.headers["Location"]).query)
        body = client.get(
            "/api/meta/callback",
            query_string={"code": callback["code"][0], "state": callback["state"][0]},
            headers={"Accept": "application/json"},
        ).json
        assert body is not None and body.get("connected"), body
        connection_id: str = body["connection_id"]
        return connection_id

    def schedule(self, connection_id: str, due_at: datetime, noop: bool) -> list[str]:
        with self.sessions() as session:
            conn = session.get(SocialConnection, connection_id)
            assert conn is not None, connection_id
            ids = []
            for n in range(self.args.posts):
                post = ScheduledPost(
                    id=new_id("job"),
                    connection_id=conn.id,
                    user_id_resellio=conn.user_id_resellio,
                    publish_at=due_at,
                    caption=f"Bench post {n}",
                    media_url="https://cdn.example.com/bench.jpg",
                    targets=["facebook", "instagram"],
                    status=CANCELLED if noop else QUEUED,
                    fb_status=PENDING,
                    ig_status=PENDING,
                    rq_job_id=None,
                    enqueue_seq=1,
                )
                session.add(post)
                ids.append(post.id)
            for post_id in ids:
                stored = session.get(ScheduledPost, post_id)
                assert stored is not None, post_id
                stored.rq_job_id = f"pub-{post_id}-1"
            session.commit()
        queue = make_queue(self._redis())
        # The worker runs only the contract's job functions, so the floor is publish_post on a
        # cancelled post: RQ's own cost plus the one lease UPDATE that finds nothing to take.
        with queue.connection.pipeline() as pipe:
            for post_id in ids:
                queue.enqueue_at(
                    due_at,
                    PUBLISH_POST,
                    args=(post_id,),
                    job_id=f"pub-{post_id}-1",
                    job_timeout=job_timeout(self.settings),
                    pipeline=pipe,
                )
            pipe.execute()
        return ids

    def _redis(self) -> redis.Redis:
        from shared.redis_conn import make_redis

        return make_redis(self.settings)

    def start_workers(self) -> list[subprocess.Popen[bytes]]:
        workers = []
        for _ in range(self.args.workers):
            proc = subprocess.Popen(
                [sys.executable, "-m", "publish_worker"],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            workers.append(proc)
        self.procs.extend(workers)
        return workers

    def stop(self, procs: Iterable[subprocess.Popen[bytes]]) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    # -- runs --

    def run_publish(self, connection_id: str) -> dict[str, Any]:
        requests.post(self.sandbox_url + "/_sandbox/latency", json={"ms": self.args.latency_ms}, timeout=5)
        workers = self.start_workers()
        time.sleep(3)  # let the workers boot before the posts fall due
        due_at = utcnow() + timedelta(seconds=self.args.lead_seconds)
        ids = self.schedule(connection_id, due_at, noop=False)
        cpu_before = {p.pid: cpu_seconds(p.pid) for p in workers}
        sandbox_cpu_before = cpu_seconds(self.sandbox_proc.pid)
        deadline = time.monotonic() + self.args.timeout
        while time.monotonic() < deadline:
            with self.sessions() as session:
                left = session.query(ScheduledPost).filter(ScheduledPost.status.in_([QUEUED, "publishing"])).count()
            if left == 0:
                break
            time.sleep(0.5)
        cpu = sum(cpu_seconds(p.pid) - cpu_before[p.pid] for p in workers)
        sandbox_cpu = cpu_seconds(self.sandbox_proc.pid) - sandbox_cpu_before
        self.stop(workers)
        with self.sessions() as session:
            posts = session.query(ScheduledPost).filter(ScheduledPost.id.in_(ids)).all()
        done = [p for p in posts if p.status == "published"]
        # A published post has both targets live (the bench posts to both).
        live = [max(t.published_at for t in p.target_rows if t.published_at is not None) for p in done]
        lateness = [(t - due_at).total_seconds() for t in live]
        start = [(p.started_at - due_at).total_seconds() for p in posts if p.started_at]
        span = max((t - due_at).total_seconds() for t in live) if live else float("nan")
        published = requests.get(self.sandbox_url + "/_sandbox/published.json", timeout=30).json()
        return {
            "published": len(done),
            "statuses": _count(p.status for p in posts),
            "throughput": len(done) / span if span else float("nan"),
            "lateness": lateness,
            "start_lateness": start,
            "cpu_per_post": cpu / max(1, len(posts)),
            "sandbox_cpu": sandbox_cpu,
            "fb_posts": len(published["facebook"]),
            "ig_media": len(published["instagram"]),
        }

    def run_noop(self, connection_id: str) -> dict[str, Any]:
        from rq.job import Job
        from rq.serializers import JSONSerializer

        self._redis().flushdb()
        workers = self.start_workers()
        time.sleep(3)
        due_at = utcnow() + timedelta(seconds=self.args.lead_seconds)
        ids = self.schedule(connection_id, due_at, noop=True)
        cpu_before = {p.pid: cpu_seconds(p.pid) for p in workers}
        client = self._redis()
        queue = make_queue(client)
        deadline = time.monotonic() + self.args.timeout
        while time.monotonic() < deadline:
            if len(queue.finished_job_registry) >= len(ids):
                break
            time.sleep(0.2)
        cpu = sum(cpu_seconds(p.pid) - cpu_before[p.pid] for p in workers)
        self.stop(workers)
        ended = []
        for post_id in ids:
            job = Job.fetch(f"pub-{post_id}-1", connection=client, serializer=JSONSerializer)
            if job.ended_at:
                ended.append((job.ended_at.replace(tzinfo=due_at.tzinfo) - due_at).total_seconds())
        span = max(ended) if ended else float("nan")
        return {
            "done": len(ended),
            "throughput": len(ended) / span if span else float("nan"),
            "lateness": ended,
            "cpu_per_job": cpu / max(1, len(ids)),
        }


def _count(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def describe(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"p50 {statistics.median(values):.2f} s, p99 {percentile(values, 99):.2f} s, max {max(values):.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=100, help="sandbox delay on every Graph call")
    parser.add_argument("--workers", type=int, default=4, help="worker processes")
    parser.add_argument("--threads", type=int, default=8, help="RQ workers on threads in each process")
    parser.add_argument("--lead-seconds", type=float, default=8, help="how far ahead the posts fall due")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--skip-noop", action="store_true")
    args = parser.parse_args()

    bench = Bench(args)
    bench.create_database()
    try:
        bench.start_sandbox()
        bench._redis().flushdb()
        connection_id = bench.connect()
        print(
            f"benchmark: {args.posts} posts due at the same second, {args.workers} worker processes "
            f"× {args.threads} threads, "
            f"{args.latency_ms} ms per Graph call (5 calls per post), {os.cpu_count()} cores"
        )
        result = bench.run_publish(connection_id)
        print(
            f"publish: {result['published']}/{args.posts} published {result['statuses']}; "
            f"sandbox saw {result['fb_posts']} Facebook posts and {result['ig_media']} Instagram media"
        )
        print(f"  throughput  {result['throughput']:.1f} posts/s")
        print(f"  lateness    {describe(result['lateness'])}  (live on every target − publish_at)")
        print(f"  start       {describe(result['start_lateness'])}  (first run start − publish_at)")
        print(
            f"  cpu         {result['cpu_per_post'] * 1000:.1f} ms per post in the workers "
            f"(+ {result['sandbox_cpu'] / max(1, args.posts) * 1000:.1f} ms in the sandbox)"
        )
        if not args.skip_noop:
            floor = bench.run_noop(connection_id)
            print(
                f"no-op floor: {floor['done']}/{args.posts} jobs, {floor['throughput']:.1f} jobs/s, "
                f"lateness {describe(floor['lateness'])}, cpu {floor['cpu_per_job'] * 1000:.1f} ms per job"
            )
    finally:
        bench.stop(bench.procs)
        bench._redis().flushdb()
        bench.drop_database()
    return 0


if __name__ == "__main__":
    sys.exit(main())
