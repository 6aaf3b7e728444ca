"""Publish benchmark: N posts due at the same second, K worker processes with default
settings, the Meta sandbox answering every Graph call after a chosen latency. Prints
figures; asserts nothing.

    .venv/bin/python bench/publish.py --posts 1000 --latency-ms 100 --workers 2
    .venv/bin/python bench/publish.py --table      # every figure of the throughput issue

Sellers connect through the connect service and the sandbox's consent page (one Page
each, ``--sellers`` of them), and the posts (a photo to Facebook and an image to
Instagram) are scheduled through ``POST /api/meta/schedule`` as the Resellio scheduler,
spread over the sellers. Lateness is the moment the last target went live minus
``publish_at``; lost and duplicated are counted from what the sandbox holds.

It needs PostgreSQL and Redis (127.0.0.1 by default); it creates and drops its own
database and uses Redis database 12 (FLUSHDB only). Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
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

from bench.machine import (  # noqa: E402
    cpu_seconds,
    cpu_split,
    free_port,
    loop_seconds,
    machine_busy_seconds,
    steal_seconds,
    tree_cpu_seconds,
)
from shared.db import make_engine, make_session_factory, utcnow  # noqa: E402
from shared.migrations import run_migrations  # noqa: E402
from shared.models import CANCELLED, PENDING, QUEUED, PostTarget, ScheduledPost, new_id  # noqa: E402
from shared.queue import PUBLISH_POST, job_timeout, make_queue  # noqa: E402
from shared.settings import DEFAULT_SCOPES, DEMO_APP_ID, DEMO_APP_SECRET, load_settings  # noqa: E402
from shared.targets import TARGET_NAMES  # noqa: E402

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(pct / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]


SCHEDULER_TOKEN = "bench-scheduler-token-of-at-least-32-bytes"
MEDIA_SAMPLE = "square.jpg"


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
            "META_GRAPH_VIDEO_URL": self.sandbox_url,
            "META_UPLOAD_URL": self.sandbox_url,
            "META_DIALOG_URL": self.sandbox_url,
            "SCHEDULER_API_TOKEN": SCHEDULER_TOKEN,
            # The sandbox's own sample over http on 127.0.0.1; the API's pre-check is not
            # part of what is measured here (it runs when a post is scheduled, not when due).
            "MEDIA_PRECHECK": "off",
            "MEDIA_PRECHECK_ALLOW_HOSTS": "127.0.0.1",
            "METRICS_PORT": "0",
            "PYTHONPATH": str(ROOT),
        }
        for name in ("WORKER_THREADS", "WORKER_CONCURRENCY"):
            self.env.pop(name, None)
        if args.concurrency:
            self.env["WORKER_CONCURRENCY"] = str(args.concurrency)
        self.connection_ids: list[str] = []
        self.run_number = 0

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
            "SANDBOX_SCENARIO": "burst",
        }
        # One gunicorn process (the sandbox's state is in memory) with keep-alive, as Meta
        # keeps connections open: Werkzeug's development server (``python -m meta_sandbox``)
        # closes each connection after one request, so every Graph call paid a new TCP
        # connection and a new server thread. A thread per call in flight (100 ms or 1 s each),
        # no access log (a line per call is the stand-in's cost, not the worker's).
        command = [
            sys.executable, "-m", "gunicorn",
            "-w", "1", "-k", "gthread", "--threads", "512", "--worker-connections", "2000",
            "--keep-alive", "75", "--timeout", "120", "--no-control-socket",
            "--bind", f"127.0.0.1:{self.sandbox_port}",
            "meta_sandbox.wsgi:app_from_env()",
        ]  # fmt: skip
        proc = subprocess.Popen(
            command,
            # Not the repository's root: gunicorn would read the connect service's gunicorn.conf.py.
            cwd=ROOT / "bench",
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

    def make_app(self) -> None:
        from connect_service import create_app
        from shared.redis_conn import make_redis

        self.app = create_app(
            {
                "SETTINGS": self.settings.with_overrides(meta_redirect_uri="http://bench/callback"),
                "REDIS": make_redis(self.settings),
            }
        )

    def connect_sellers(self) -> None:
        """Each seller connects one Page of the sandbox through OAuth, as a seller would."""
        for n in range(self.args.sellers):
            self.connection_ids.append(self.connect(f"bench-seller-{n}", n))

    def connect(self, seller: str, index: int) -> str:
        import jwt

        client = self.app.test_client()
        client.set_cookie(
            "resellio_session",
            jwt.encode(
                {"sub": seller, "exp": int(time.time()) + 3600}, self.settings.session_secret, algorithm="HS256"
            ),
        )
        connect = client.get("/api/meta/connect").json
        assert connect is not None
        oauth_url = connect["oauth_url"]
        query = parse_qs(urlsplit(oauth_url).query)
        html = requests.get(oauth_url, timeout=5).text
        pages = re.findall(r'name="pages" value="(\d+)"', html)
        # Every Page is granted (a new consent replaces the last one's Pages on Meta), then
        # this seller picks their own.
        form = {
            "client_id": query["client_id"][0],
            "redirect_uri": query["redirect_uri"][0],
            "state": query["state"][0],
            "scope": query["scope"][0],
            "action": "continue",
            "pages": pages,
            "permissions": list(DEFAULT_SCOPES),
        }
        answer = requests.post(oauth_url.split("?")[0], data=form, allow_redirects=False, timeout=5)
        callback = parse_qs(urlsplit(answer.headers["Location"]).query)
        body = client.get(
            "/api/meta/callback",
            query_string={"code": callback["code"][0], "state": callback["state"][0]},
            headers={"Accept": "application/json"},
        ).json
        if len(pages) > 1:  # with one Page, the callback has connected it already
            body = client.post(
                "/api/meta/select-page",
                json={"page_id": pages[index % len(pages)]},
                headers={"Origin": "http://localhost"},
            ).json
        assert body is not None and body.get("connected"), body
        connection_id: str = body["connection_id"]
        return connection_id

    def schedule_through_api(self, posts: int, tag: str) -> tuple[datetime, list[str]]:
        """``posts`` posts due at one second, scheduled as the Resellio scheduler would, spread
        over the sellers. The due second is set far enough ahead for the scheduling to finish."""
        client = self.app.test_client()
        headers = {"Authorization": f"Bearer {SCHEDULER_TOKEN}"}
        media_url = f"{self.sandbox_url}/_sandbox/media/{MEDIA_SAMPLE}"
        lead = self.args.lead_seconds + posts * 0.03
        due_at = (utcnow() + timedelta(seconds=lead)).replace(microsecond=0)
        ids = []
        for n in range(posts):
            answer = client.post(
                "/api/meta/schedule",
                headers=headers,
                json={
                    "connection_id": self.connection_ids[n % len(self.connection_ids)],
                    "publish_at": due_at.isoformat().replace("+00:00", "Z"),
                    "caption": f"{tag} post {n}",
                    "media_url": media_url,
                    "targets": list(TARGET_NAMES),
                },
            )
            assert answer.status_code == 200, answer.get_data(as_text=True)
            ids.append(answer.json["job_id"])  # type: ignore[index]
        if utcnow() >= due_at:
            print(f"  note: scheduling ran past the due second; raise --lead-seconds (tag {tag})")
        return due_at, ids

    def schedule_cancelled(self, due_at: datetime) -> list[str]:
        """The no-op floor's posts: cancelled ones (the API cannot make those), enqueued directly."""
        with self.sessions() as session:
            ids = []
            for n in range(self.args.posts):
                post = ScheduledPost(
                    id=new_id("job"),
                    connection_id=self.connection_ids[n % len(self.connection_ids)],
                    user_id_resellio=f"bench-seller-{n % len(self.connection_ids)}",
                    publish_at=due_at,
                    caption=f"Bench no-op {n}",
                    media_url="https://cdn.example.com/bench.jpg",
                    targets=list(TARGET_NAMES),
                    status=CANCELLED,
                    target_rows=[PostTarget(target=name, status=PENDING) for name in TARGET_NAMES],
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

    def run_publish(self, posts: int, latency_ms: int) -> dict[str, Any]:
        """One burst: ``posts`` posts due at one second, Meta answering after ``latency_ms``."""
        self.run_number += 1
        tag = f"Bench run {self.run_number}"
        self._redis().flushdb()
        requests.post(self.sandbox_url + "/_sandbox/latency", json={"ms": latency_ms}, timeout=5)
        workers = self.start_workers()
        due_at, ids = self.schedule_through_api(posts, tag)
        cpu_before = {p.pid: cpu_seconds(p.pid, reaped_children=True) for p in workers}
        sandbox_cpu_before = tree_cpu_seconds(self.sandbox_proc.pid)
        sys_before = sum(cpu_split(p.pid)[1] for p in workers)
        machine_before = machine_busy_seconds()
        steal_before = steal_seconds()
        deadline = time.monotonic() + self.args.timeout
        while time.monotonic() < deadline:
            with self.sessions() as session:
                left = (
                    session.query(ScheduledPost)
                    .filter(ScheduledPost.id.in_(ids), ScheduledPost.status.in_([QUEUED, "publishing"]))
                    .count()
                )
            if left == 0:
                break
            time.sleep(0.5)
        cpu = sum(cpu_seconds(p.pid, reaped_children=True) - cpu_before[p.pid] for p in workers)
        system_cpu = sum(cpu_split(p.pid)[1] for p in workers) - sys_before
        sandbox_cpu = tree_cpu_seconds(self.sandbox_proc.pid) - sandbox_cpu_before
        machine_cpu = machine_busy_seconds() - machine_before
        stolen = steal_seconds() - steal_before
        self.stop(workers)
        with self.sessions() as session:
            stored = session.query(ScheduledPost).filter(ScheduledPost.id.in_(ids)).all()
            done = [p for p in stored if p.status == "published"]
            # A published post has both targets live (the bench posts to both).
            live = [max(row.published_at for row in p.target_rows if row.published_at is not None) for p in done]
            start = [(p.started_at - due_at).total_seconds() for p in stored if p.started_at]
            statuses = _count(p.status for p in stored)
            errors = _count(f"{row.target}:{row.error_code}" for p in stored for row in p.target_rows if row.error_code)
            extra_jobs = sum(p.enqueue_seq - 1 for p in stored)
        lateness = [(t - due_at).total_seconds() for t in live]
        lost, duplicated = self.count_on_meta(tag, posts)
        span = max(lateness) if lateness else float("nan")
        return {
            "posts": posts,
            "latency_ms": latency_ms,
            "published": len(done),
            "statuses": statuses,
            "errors": errors,
            "extra_jobs": extra_jobs,
            "lost": lost,
            "duplicated": duplicated,
            "throughput": len(done) / span if span else float("nan"),
            "lateness": lateness,
            "start_lateness": start,
            "cpu_per_post": cpu / max(1, posts),
            "sandbox_cpu_per_post": sandbox_cpu / max(1, posts),
            "system_cpu_per_post": system_cpu / max(1, posts),
            "machine_cpu_per_post": machine_cpu / max(1, posts),
            "steal_seconds": stolen,
        }

    def count_on_meta(self, tag: str, posts: int) -> tuple[int, int]:
        """Posts missing on a target, and extra copies, as the sandbox (Meta) holds them."""
        published = requests.get(self.sandbox_url + "/_sandbox/published.json", timeout=60).json()
        lost = duplicated = 0
        for target, key in (("facebook", "message"), ("instagram", "caption")):
            seen: dict[str, int] = {}
            for item in published[target]:
                text = item.get(key) or ""
                if text.startswith(tag + " post "):
                    seen[text] = seen.get(text, 0) + 1
            lost += sum(1 for n in range(posts) if f"{tag} post {n}" not in seen)
            duplicated += sum(count - 1 for count in seen.values())
        return lost, duplicated

    def run_noop(self) -> dict[str, Any]:
        from rq.job import Job
        from rq.serializers import JSONSerializer

        self._redis().flushdb()
        workers = self.start_workers()
        time.sleep(3)
        due_at = utcnow() + timedelta(seconds=self.args.lead_seconds)
        ids = self.schedule_cancelled(due_at)
        cpu_before = {p.pid: cpu_seconds(p.pid, reaped_children=True) for p in workers}
        client = self._redis()
        queue = make_queue(client)
        deadline = time.monotonic() + self.args.timeout
        while time.monotonic() < deadline:
            if len(queue.finished_job_registry) >= len(ids):
                break
            time.sleep(0.2)
        cpu = sum(cpu_seconds(p.pid, reaped_children=True) - cpu_before[p.pid] for p in workers)
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
    return (
        f"min {min(values):.2f} s, p50 {statistics.median(values):.2f} s, p99 {percentile(values, 99):.2f} s, "
        f"max {max(values):.2f} s"
    )


def print_publish(result: dict[str, Any]) -> None:
    print(
        f"publish {result['posts']} posts at {result['latency_ms']} ms a call: "
        f"{result['published']}/{result['posts']} published {result['statuses']}; "
        f"lost {result['lost']}, duplicated {result['duplicated']} (counted on the sandbox)"
    )
    if result["errors"]:
        print(f"  errors      {result['errors']}")
    if result["extra_jobs"]:
        print(f"  extra jobs  {result['extra_jobs']} (a post enqueued again: the sweeper, a continuation)")
    print(f"  throughput  {result['throughput']:.1f} posts/s")
    print(f"  lateness    {describe(result['lateness'])}  (live on every target − publish_at)")
    print(f"  start       {describe(result['start_lateness'])}  (first run start − publish_at)")
    print(
        f"  cpu         {result['cpu_per_post'] * 1000:.1f} ms per post in the workers "
        f"(of which {result['system_cpu_per_post'] * 1000:.1f} ms in the kernel; "
        f"+ {result['sandbox_cpu_per_post'] * 1000:.1f} ms in the sandbox; "
        f"{result['machine_cpu_per_post'] * 1000:.1f} ms on the whole machine)"
    )
    if result["sandbox_cpu_per_post"] > 0:
        # The sandbox's work for a post is fixed, so its CPU moves only with the machine's speed.
        ratio = result["cpu_per_post"] / result["sandbox_cpu_per_post"]
        print(f"  vs sandbox  {ratio:.2f}× the sandbox's CPU a post (a yardstick steadier than the machine)")
    print(f"  steal       {result['steal_seconds']:.2f} s of CPU the hypervisor kept from the machine during the run")


def print_machine_speed(when: str) -> None:
    print(f"machine: a loop of 10 million additions takes {loop_seconds():.2f} s, best of 3 ({when})")


TABLE_CASES = ((100, 100), (1000, 100), (1000, 1000))


def print_table(results: list[dict[str, Any]], status: dict[str, Any] | None) -> None:
    """The throughput issue's table, as measured here."""
    print()
    print("| case | measured | target |")
    print("|---|---|---|")
    targets = {(100, 100): "p99 ≤ 2 s", (1000, 100): "p99 ≤ 10 s, 0 lost, 0 duplicated", (1000, 1000): "p99 ≤ 30 s"}
    for r in results:
        p99 = percentile(r["lateness"], 99) if r["lateness"] else float("nan")
        print(
            f"| {r['posts']} posts, {r['latency_ms']} ms per Meta call | p99 {p99:.1f} s, "
            f"{r['posts'] - r['published']} not published, {r['lost']} lost, {r['duplicated']} duplicated "
            f"| {targets.get((r['posts'], r['latency_ms']), '')} |"
        )
    cpu = [r["cpu_per_post"] for r in results if r["latency_ms"] == 100]
    if cpu:
        print(f"| worker CPU per post (100 ms runs) | {min(cpu) * 1000:.1f}–{max(cpu) * 1000:.1f} ms | ≤ 8 ms |")
    if status:
        print(
            f"| status vs bare Flask, 32 connections | {status['rps_ratio']:.2f}× req/s, "
            f"p99 {status['status_p99_ms']:.1f} ms vs {status['bare_p99_ms']:.1f} ms "
            f"({status['p99_ratio']:.1f}×) | ≥ 0.6×, p99 ≤ 2× bare |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=100, help="sandbox delay on every Graph call")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=0, help="WORKER_CONCURRENCY (default: the worker's)")
    parser.add_argument("--sellers", type=int, default=100, help="connections (one Page each) the posts spread over")
    parser.add_argument("--lead-seconds", type=float, default=5, help="slack before the posts fall due")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--noop", action="store_true", help="also measure the no-op floor (RQ and the lease only)")
    parser.add_argument(
        "--table", action="store_true", help="run every case of the throughput issue and the status bench"
    )
    parser.add_argument("--skip-status", action="store_true", help="with --table: leave out the status bench")
    args = parser.parse_args()
    if not 1 <= args.sellers <= 100:
        parser.error("--sellers must be 1 to 100 (the sandbox's burst scenario has 100 Pages)")
    if args.table and not args.skip_status and shutil.which("wrk") is None:
        # Said before the publish runs, not after them: the status bench needs wrk.
        parser.error("--table needs wrk for the status bench (Debian: apt-get install -y wrk); or add --skip-status")

    bench = Bench(args)
    bench.create_database()
    try:
        bench.start_sandbox()
        bench._redis().flushdb()
        bench.make_app()
        bench.connect_sellers()
        concurrency = args.concurrency or "default"
        print(
            f"benchmark: {args.workers} worker processes (concurrency {concurrency}), {args.sellers} sellers, "
            f"photo to Facebook + image to Instagram, {os.cpu_count()} cores"
        )
        print_machine_speed("before the runs")
        cases = TABLE_CASES if args.table else ((args.posts, args.latency_ms),)
        results = []
        for posts, latency_ms in cases:
            results.append(bench.run_publish(posts, latency_ms))
            print_publish(results[-1])
        if args.noop:
            floor = bench.run_noop()
            print(
                f"no-op floor: {floor['done']}/{args.posts} jobs, {floor['throughput']:.1f} jobs/s, "
                f"lateness {describe(floor['lateness'])}, cpu {floor['cpu_per_job'] * 1000:.1f} ms per job"
            )
        print_machine_speed("after the runs")
    finally:
        bench.stop(bench.procs)
        bench._redis().flushdb()
        bench.drop_database()
    status = None
    if args.table and not args.skip_status:
        status = run_status()
    if args.table:
        print_table(results, status)
    return 0


def run_status() -> dict[str, Any] | None:
    """The status endpoint against bare Flask (bench/status.py), when that bench is here."""
    try:
        from bench.status import run_status_bench
    except ImportError:
        print("status: bench/status.py not available")
        return None
    result: dict[str, Any] = run_status_bench(rounds=3)  # medians: one round varies by ±30% here
    return result


if __name__ == "__main__":
    sys.exit(main())
