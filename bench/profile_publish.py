"""Where the publish worker's CPU goes, in one process: N posts (photo → Facebook, image →
Instagram) run through the real path — RQ job on the queue, the worker's RQ worker,
``publish_post``, the Graph client — against the Meta sandbox (a process of its own, as in
``bench/publish.py``) answering at once. Prints CPU per post and the top functions by
cumulative time; asserts nothing.

    .venv/bin/python bench/profile_publish.py --posts 200 --top 40

Two CPU figures: the worker's (``time.process_time`` of this process: the job's thread, the
helper threads that run a post's second target side by side, RQ's scheduler and the wait for
the round's end, whose share is a query every 0.1 s), and the job's thread alone
(``time.thread_time``), which is what the profile covers. It needs PostgreSQL and Redis on
127.0.0.1; it creates and drops its own database and uses Redis database 13 of
``PROFILE_REDIS_URL`` (FLUSHDB only).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import sys
import threading
import time
from argparse import Namespace
from pathlib import Path
from typing import Any

import requests
from rq.serializers import JSONSerializer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.publish import Bench  # noqa: E402
from shared.models import PENDING, QUEUED, PostTarget, ScheduledPost, SocialConnection, new_id  # noqa: E402
from shared.queue import PublishJob, make_queue  # noqa: E402
from shared.settings import DEMO_APP_SECRET  # noqa: E402
from shared.targets import TARGET_NAMES  # noqa: E402

REDIS_URL = os.environ.get("PROFILE_REDIS_URL", "redis://127.0.0.1:6379/13")
FINAL = ("publishing", QUEUED)


def store_posts(bench: Bench, connection_id: str, count: int) -> list[str]:
    from shared.db import utcnow

    with bench.sessions() as session:
        conn = session.get(SocialConnection, connection_id)
        assert conn is not None
        ids = []
        for n in range(count):
            post = ScheduledPost(
                id=new_id("job"),
                connection_id=conn.id,
                user_id_resellio=conn.user_id_resellio,
                publish_at=utcnow(),
                caption=f"Profile post {n}",
                media_url="https://cdn.example.com/profile.jpg",
                targets=["facebook", "instagram"],
                status=QUEUED,
                target_rows=[PostTarget(target=name, status=PENDING) for name in TARGET_NAMES],
                enqueue_seq=0,
            )
            session.add(post)
            ids.append(post.id)
        session.commit()
    return ids


def enqueue(ctx: Any, ids: list[str]) -> None:
    """Each post's job as the scheduling path enqueues it (``enqueue_publish``)."""
    from shared.queue import enqueue_publish

    with ctx.session() as session:
        for post_id in ids:
            enqueue_publish(session, ctx, post_id)


def unfinished(bench: Bench) -> int:
    """Posts not yet done (each round starts once the one before has ended)."""
    with bench.sessions() as session:
        return int(session.query(ScheduledPost).filter(ScheduledPost.status.in_(FINAL)).count())


def quiet_logging() -> None:
    """The worker's logging as ``python -m publish_worker`` sets it up, written to /dev/null."""
    from shared.log import configure_logging, register_secret

    configure_logging()
    for handler in logging.getLogger().handlers:
        if getattr(handler, "_social_connect", False) and isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - for the life of the process
    register_secret(DEMO_APP_SECRET)


def run(args: argparse.Namespace) -> int:
    from publish_worker.context import install_context, worker_services
    from publish_worker.runner import RQ_LOG_LEVEL, PoolPublishWorker, SchedulerLoop, ThreadPublishWorker

    os.environ["BENCH_REDIS_URL"] = REDIS_URL
    bench = Bench(Namespace(posts=args.posts, latency_ms=0, concurrency=1, sellers=1, lead_seconds=5, timeout=600))
    bench.env["REDIS_URL"] = REDIS_URL
    bench.create_database()
    try:
        bench.start_sandbox()
        bench._redis().flushdb()
        quiet_logging()
        bench.make_app()
        connection_id = bench.connect("profile-seller", 0)
        ctx = worker_services(bench.settings)
        install_context(ctx)
        stop = threading.Event()
        scheduler = SchedulerLoop(ctx.redis, stop, interval=0.2)  # continuations, if any
        scheduler.start()

        def one_round(count: int, profile: cProfile.Profile | None) -> tuple[float, float, float]:
            ids = store_posts(bench, connection_id, count)
            enqueue(ctx, ids)
            done = threading.Event()

            def watch() -> None:
                while unfinished(bench):
                    time.sleep(0.1)
                done.set()
                worker_stop.set()

            worker_stop = threading.Event()
            # RQ's in-thread worker runs each job on this thread, so the thread's CPU clock and
            # cProfile see all of it; with --pool the dispatcher hands it to a thread of its pool.
            options: dict[str, Any] = {"concurrency": 1} if args.pool else {}
            worker = (PoolPublishWorker if args.pool else ThreadPublishWorker)(
                [make_queue(ctx.redis)],
                connection=ctx.redis,
                serializer=JSONSerializer,
                job_class=PublishJob,
                stop_event=worker_stop,
                **options,
            )
            watcher = threading.Thread(target=watch, daemon=True)
            cpu0, proc0, wall0 = time.thread_time(), time.process_time(), time.perf_counter()
            watcher.start()
            if profile is not None:
                profile.enable()
            worker.work(logging_level=RQ_LOG_LEVEL, with_scheduler=False)
            if profile is not None:
                profile.disable()
            if isinstance(worker, PoolPublishWorker):
                worker.close()
            cpu, proc, wall = time.thread_time() - cpu0, time.process_time() - proc0, time.perf_counter() - wall0
            watcher.join()
            assert done.is_set()
            return cpu, proc, wall

        one_round(args.warmup, None)  # imports, compiled statements, connection pools
        # Timed by the thread's CPU clock: a wait on Meta, PostgreSQL or Redis costs nothing here.
        profile = cProfile.Profile(time.thread_time) if args.top else None
        rounds = sorted((one_round(args.posts, None) for _ in range(args.rounds)), key=lambda r: r[1])
        plain = rounds[len(rounds) // 2]  # the median round by worker CPU (the box is shared)
        profiled = one_round(args.posts, profile) if profile is not None else None
        stop.set()
        scheduler.join(timeout=5)
        with bench.sessions() as session:
            statuses: dict[str, int] = {}
            for (status,) in session.query(ScheduledPost.status):
                statuses[status] = statuses.get(status, 0) + 1
        published = requests.get(bench.sandbox_url + "/_sandbox/published.json", timeout=30).json()
        cpu, proc, wall = plain
        n = args.posts
        how = "the production dispatcher, a pool of one thread" if args.pool else "one worker thread"
        print(f"profile: {n} posts (photo → Facebook, image → Instagram), sandbox latency 0, {how}")
        seen = f"{len(published['facebook'])} FB / {len(published['instagram'])} IG"
        print(f"  statuses    {statuses}; sandbox saw {seen}")
        print(
            f"  worker cpu  {proc / n * 1000:.2f} ms per post (this process, time.process_time; median of "
            f"{len(rounds)} rounds, min {rounds[0][1] / n * 1000:.2f})"
        )
        print(f"  job thread  {cpu / n * 1000:.2f} ms per post (time.thread_time: what the profile covers)")
        print(f"  wall        {wall / n * 1000:.2f} ms per post (includes the last idle dequeue wait)")
        if profile is not None and profiled is not None:
            print(f"  profiled    {profiled[0] / n * 1000:.2f} ms per post under cProfile (its own overhead included)")
            out = io.StringIO()
            stats = pstats.Stats(profile, stream=out)
            stats.sort_stats(args.sort).print_stats(args.top)
            print(out.getvalue())
            if args.save:
                stats.dump_stats(args.save)
        install_context(None)
        ctx.close()
    finally:
        bench._redis().flushdb()
        bench.stop(bench.procs)
        bench.drop_database()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="unprofiled rounds of --posts (median reported)")
    parser.add_argument("--top", type=int, default=40, help="functions to list (0: no profile)")
    parser.add_argument("--sort", default="cumulative", help="pstats sort key (cumulative, tottime…)")
    parser.add_argument("--save", help="also write the pstats data to this file")
    parser.add_argument(
        "--pool",
        action="store_true",
        help="the production dispatcher (one RQ worker handing jobs to a pool of one thread): the worker "
        "cpu figure is then the production path's; the job-thread figure and the profile cover the "
        "dispatcher only",
    )
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
