"""Running the publish worker: as its own process (production) or inside the demo process.

Both run RQ's scheduler as a thread calling ``acquire_locks()`` / ``enqueue_scheduled_jobs()``
(RQ would fork it, which does not mix with the threads here) and the periodic duties.
Jobs run in the worker's own process (``SimpleWorker``): no fork per job, one
database pool reused across jobs.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time

from redis.exceptions import RedisError
from rq import SimpleWorker
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

from publish_worker.context import WorkerContext, install_context
from publish_worker.duties import PeriodicDuties
from shared.queue import QUEUE_NAME, make_queue

log = logging.getLogger(__name__)

SCHEDULER_INTERVAL_SECONDS = 1.0
LOCK_RETRY_SECONDS = 5.0


class SchedulerLoop(threading.Thread):
    """Moves due ``enqueue_at`` jobs onto the queue, about once a second."""

    def __init__(self, redis, stop: threading.Event, interval: float = SCHEDULER_INTERVAL_SECONDS):
        super().__init__(name="rq-scheduler", daemon=True)
        self.scheduler = RQScheduler([QUEUE_NAME], connection=redis, interval=int(max(1, interval)),
                                     serializer=JSONSerializer)
        self.scheduler._connection = redis  # use this client as is (it may be the embedded Redis)
        self.stop_event = stop
        self.interval = interval

    def run(self) -> None:
        last_attempt = 0.0
        while not self.stop_event.is_set():
            try:
                holds_all = self.scheduler.acquired_locks == {QUEUE_NAME}
                # RQ would only retry a lock held elsewhere after ten minutes; a dead holder's
                # lock expires in about a minute, so ask every few seconds instead.
                if not holds_all and time.monotonic() - last_attempt >= LOCK_RETRY_SECONDS:
                    last_attempt = time.monotonic()
                    self.scheduler.acquire_locks()
                if self.scheduler.acquired_locks:
                    self.scheduler.heartbeat()
                    self.scheduler.enqueue_scheduled_jobs()
            except RedisError as exc:
                log.warning("scheduler tick failed: %s", type(exc).__name__)
            self.stop_event.wait(self.interval)
        try:
            self.scheduler.release_locks()
        except RedisError:
            pass


class PublishWorker(SimpleWorker):
    """RQ's in-process worker, with JSON jobs on ``meta-publish``."""


class ThreadPublishWorker(PublishWorker):
    """For a thread of the demo process: no signal handlers, a timer instead of SIGALRM."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self):
        pass


def make_worker(ctx: WorkerContext, worker_class=PublishWorker, name: str | None = None):
    name = name or f"publish-{socket.gethostname()}-{os.getpid()}-{threading.get_ident() % 10000}"
    return worker_class([make_queue(ctx.redis)], connection=ctx.redis, serializer=JSONSerializer, name=name)


class InProcessWorker:
    """The whole worker on threads of this process (``social-connect demo``, tests)."""

    def __init__(self, settings, redis, *, poll_seconds: float = 0.2):
        self.ctx = WorkerContext.build(settings, redis)
        self.stop_event = threading.Event()
        self.poll_seconds = poll_seconds
        self._threads: list[threading.Thread] = []

    def start(self) -> "InProcessWorker":
        install_context(self.ctx)
        self._threads = [SchedulerLoop(self.ctx.redis, self.stop_event), PeriodicDuties(self.ctx, self.stop_event),
                         threading.Thread(target=self._work, name="publish-worker", daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def _work(self) -> None:
        worker = make_worker(self.ctx, ThreadPublishWorker)
        while not self.stop_event.is_set():
            try:
                worker.work(burst=True, logging_level="WARNING", with_scheduler=False)
            except RedisError as exc:
                log.warning("worker loop: redis unavailable (%s)", type(exc).__name__)
            self.stop_event.wait(self.poll_seconds)

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout=10)
        install_context(None)
        self.ctx.close()


def run_forever(settings) -> None:
    """``python -m publish_worker``: metrics server, scheduler and duty threads, the worker loop."""
    from shared.redis_conn import make_redis

    ctx = WorkerContext.build(settings, make_redis(settings))
    install_context(ctx)
    if settings.metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(settings.metrics_port)
            log.info("metrics on port %d", settings.metrics_port)
        except OSError as exc:
            log.warning("metrics server not started on port %d: %s", settings.metrics_port, exc.strerror)
    stop = threading.Event()
    SchedulerLoop(ctx.redis, stop).start()
    PeriodicDuties(ctx, stop).start()
    try:
        make_worker(ctx).work(logging_level="INFO", with_scheduler=False)
    finally:
        stop.set()
        ctx.close()
