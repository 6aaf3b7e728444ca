"""Status benchmark: ``GET /api/meta/status`` for a connected seller against a bare Flask
"hello", both under ``gunicorn -w 2 -c gunicorn.conf.py``, each loaded by
``wrk -t2 -c32 -d10s --latency``. Prints req/s, p99 and the ratios; asserts nothing.

    .venv/bin/python bench/status.py [--duration 10] [--connections 32] [--rounds 3] [--redis-url URL]

It needs PostgreSQL and Redis (127.0.0.1 by default) and wrk; it creates and drops its own
database and uses Redis database 12 (FLUSHDB only). The goal (DESIGN §13.4): status req/s
at least 0.6x the bare app's, status p99 at most 2x the bare app's p99 of the same run.
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
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import children, cpu_seconds, free_port  # noqa: E402
from shared.crypto import cipher_from_settings  # noqa: E402
from shared.db import make_engine, make_session_factory, utcnow  # noqa: E402
from shared.migrations import run_migrations  # noqa: E402
from shared.models import CONNECTED, SocialConnection, new_id  # noqa: E402
from shared.settings import DEFAULT_SCOPES, DEMO_APP_ID, DEMO_APP_SECRET, load_settings  # noqa: E402
from shared.tokens import store_tokens  # noqa: E402

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
SELLER = "bench-seller-1"
STATUS_PATH = "/api/meta/status"

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def parse_wrk(output: str) -> dict[str, Any]:
    """req/s, p99 (ms) and the count of non-2xx/3xx answers from ``wrk --latency`` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*", output)
    if not rps or not p99:
        raise RuntimeError("wrk output not understood:\n" + output)
    return {
        "rps": float(rps.group(1)),
        "p99_ms": float(p99.group(1)) * _UNITS[p99.group(2)],
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(0) if errors else None,
    }


def run_wrk(url: str, *, duration: int, connections: int, threads: int, headers: list[str]) -> dict[str, Any]:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    done = subprocess.run([*command, url], capture_output=True, text=True, check=True)
    return parse_wrk(done.stdout)


class StatusBench:
    def __init__(self, *, redis_url: str = REDIS_URL) -> None:
        self.redis_url = redis_url
        self.db_name = f"social_connect_bench_status_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.database_url = (
            ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + self.db_name
        )
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-status-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = {
            **os.environ,
            "APP_ENV": "test",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": redis_url,
            "META_APP_ID": DEMO_APP_ID,
            "META_APP_SECRET": DEMO_APP_SECRET,
            # Nothing should call Meta (the token was just checked); if it did, it stays local.
            "META_GRAPH_URL": f"http://127.0.0.1:{free_port()}",
            "PYTHONPATH": str(ROOT),
            # Each gunicorn of this run gets its own metrics directory (on_starting empties it).
            "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "metrics"),
        }
        self.env.pop("BIND", None)
        self.env.pop("PORT", None)

    # -- setup --

    def create_database(self) -> None:
        import psycopg

        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.db_name}"')
        run_migrations(self.database_url)
        self.settings = load_settings(self.env)

    def drop_database(self) -> None:
        import psycopg

        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')

    def add_seller(self) -> str:
        """A seller with a connected Page whose token was just checked; their session cookie."""
        engine = make_engine(self.database_url)
        try:
            with make_session_factory(engine)() as session:
                now = utcnow()
                conn = SocialConnection(
                    id=new_id("conn"),
                    user_id_resellio=SELLER,
                    meta_user_id="10150000000000001",
                    facebook_page_id="104000000000001",
                    page_name="Toko Bench",
                    instagram_business_account_id="17841400000000009",
                    instagram_username="tokobench",
                    status=CONNECTED,
                    scopes_granted=list(DEFAULT_SCOPES),
                    connected_at=now,
                    token_last_checked_at=now,
                )
                store_tokens(
                    conn,
                    cipher_from_settings(self.settings),
                    page_token="EAAbenchpage" + "x" * 40,
                    user_token="EAAbenchuser" + "y" * 40,
                )
                session.add(conn)
                session.commit()
        finally:
            engine.dispose()
        token = jwt.encode(
            {"sub": SELLER, "exp": int(time.time()) + 3600}, self.settings.session_secret, algorithm="HS256"
        )
        return f"{self.settings.session_cookie}={token}"

    def start_gunicorn(self, app_spec: str, name: str) -> str:
        """``gunicorn -w 2 -c gunicorn.conf.py <app_spec>`` on a free port; its base URL."""
        port = free_port()
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-w", "2", "-c", "gunicorn.conf.py", app_spec],
            cwd=ROOT,
            env={**self.env, "BIND": f"127.0.0.1:{port}"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn {name} exited:\n" + (self.workdir / f"{name}.log").read_text()[-3000:])
            try:
                requests.get(base + "/healthz", timeout=5)
                return base
            except requests.RequestException:  # not listening yet, or a busy machine
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn {name} did not start")

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()

    # -- the run --

    def measure(
        self, base: str, path: str, proc: subprocess.Popen[bytes], load: dict[str, int], headers: list[str]
    ) -> dict[str, Any]:
        """wrk against one app, with its workers' CPU time per answer (less sensitive than req/s to
        whatever else the machine runs)."""
        workers = children(proc.pid)
        before = sum(cpu_seconds(pid) for pid in workers)
        figures = run_wrk(base + path, **load, headers=headers)
        spent = sum(cpu_seconds(pid) for pid in workers) - before
        figures["cpu_us_per_answer"] = spent / max(1.0, figures["rps"] * load["duration"]) * 1e6
        return figures

    def run(self, *, duration: int, connections: int, threads: int, rounds: int = 1) -> dict[str, Any]:
        redis.Redis.from_url(self.redis_url).flushdb()
        self.create_database()
        try:
            session = self.add_seller()
            cookie = [f"Cookie: {session}"]
            hello = self.start_gunicorn("bench.hello_app:app", "hello")
            status = self.start_gunicorn("connect_service:create_app()", "status")
            hello_proc, status_proc = self.procs
            check = requests.get(status + STATUS_PATH, headers={"Cookie": session}, timeout=30)
            if check.status_code != 200 or check.json().get("status") != "connected":
                raise RuntimeError(f"status answered {check.status_code}: {check.text[:300]}")
            load = {"duration": duration, "connections": connections, "threads": threads}
            # A short warm-up each, so both are measured with their workers' imports done.
            run_wrk(hello + "/", **{**load, "duration": 2}, headers=[])
            run_wrk(status + STATUS_PATH, **{**load, "duration": 2}, headers=cookie)
            runs = []
            for _ in range(rounds):  # alternating, so that a burst of other load hits both alike
                bare = self.measure(hello, "/", hello_proc, load, [])
                lean = self.measure(status, STATUS_PATH, status_proc, load, cookie)
                runs.append(
                    {
                        "bare_rps": bare["rps"],
                        "bare_p99_ms": bare["p99_ms"],
                        "bare_cpu_us": bare["cpu_us_per_answer"],
                        "status_rps": lean["rps"],
                        "status_p99_ms": lean["p99_ms"],
                        "status_cpu_us": lean["cpu_us_per_answer"],
                        "rps_ratio": lean["rps"] / bare["rps"],
                        "p99_ratio": lean["p99_ms"] / bare["p99_ms"],
                        "bare_non_2xx": bare["non_2xx"],
                        "status_non_2xx": lean["non_2xx"],
                    }
                )
        finally:
            self.stop_all()
            self.drop_database()
            redis.Redis.from_url(self.redis_url).flushdb()
            shutil.rmtree(self.workdir, ignore_errors=True)
        # Each figure's median over the rounds (the ratios: the median of each round's own ratio).
        medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        return {**medians, "load": load, "rounds": runs}


def run_status_bench(
    *, duration: int = 10, connections: int = 32, threads: int = 2, rounds: int = 1, redis_url: str = REDIS_URL
) -> dict[str, Any]:
    """The bare app's and the status endpoint's req/s, p99 and worker CPU per answer, and their
    ratios (medians when ``rounds`` > 1; each round's figures under ``rounds``)."""
    return StatusBench(redis_url=redis_url).run(
        duration=duration, connections=connections, threads=threads, rounds=rounds
    )


def report(figures: dict[str, Any]) -> str:
    load = figures["load"]
    rounds = len(figures["rounds"])
    lines = [
        f"load: wrk -t{load['threads']} -c{load['connections']} -d{load['duration']}s --latency, "
        f"gunicorn -w 2 -c gunicorn.conf.py; {rounds} round(s){', medians' if rounds > 1 else ''}",
    ]
    if rounds > 1:
        for number, run in enumerate(figures["rounds"], 1):
            lines.append(
                f"  round {number}: bare {run['bare_rps']:7.1f} req/s p99 {run['bare_p99_ms']:6.2f} ms | "
                f"status {run['status_rps']:7.1f} req/s p99 {run['status_p99_ms']:6.2f} ms | "
                f"ratios {run['rps_ratio']:.2f} / {run['p99_ratio']:.2f}"
            )
    lines += [
        f"bare Flask hello: {figures['bare_rps']:8.1f} req/s  p99 {figures['bare_p99_ms']:7.2f} ms  "
        f"worker CPU {figures['bare_cpu_us']:5.0f} us/answer",
        f"GET {STATUS_PATH}: {figures['status_rps']:8.1f} req/s  p99 {figures['status_p99_ms']:7.2f} ms  "
        f"worker CPU {figures['status_cpu_us']:5.0f} us/answer",
        f"req/s ratio (status / bare): {figures['rps_ratio']:.2f}  (goal >= 0.60)",
        f"p99 ratio (status / bare):   {figures['p99_ratio']:.2f}  (goal <= 2.00)",
    ]
    if figures["bare_non_2xx"] or figures["status_non_2xx"]:
        lines.append(f"non-2xx answers: bare {figures['bare_non_2xx']}, status {figures['status_non_2xx']}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per app (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating runs of both; medians (default 1)")
    parser.add_argument("--redis-url", default=REDIS_URL, help=f"Redis database to use, FLUSHDB only ({REDIS_URL})")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed", file=sys.stderr)
        return 2
    figures = run_status_bench(
        duration=args.duration,
        connections=args.connections,
        threads=args.threads,
        rounds=args.rounds,
        redis_url=args.redis_url,
    )
    print(report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
