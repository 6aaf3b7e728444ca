"""Running the publish worker: as its own process (production) or inside the demo process.

Both run RQ's scheduler as a thread calling ``acquire_locks()`` / ``enqueue_scheduled_jobs()``
(RQ would fork it, which does not mix with the threads here) and the periodic duties.
Jobs run in the worker's own process (``SimpleWorker``): no fork per job, one
database pool reused across jobs, and up to ``WORKER_CONCURRENCY`` jobs at once on a
thread pool fed by one RQ worker (DESIGN §13.4).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker
from rq.exceptions import DeserializationError, NoSuchJobError, StopRequested
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.suspension import is_suspended
from rq.utils import current_timestamp, import_attribute, now
from rq.worker import WorkerStatus
from sqlalchemy.orm import configure_mappers

from publish_worker.collector import settle_after_startup
from publish_worker.context import install_context, worker_services
from publish_worker.duties import periodic_duties
from publish_worker.pacing import PAGE_SLOTS
from publish_worker.time_limits import SharedTimerDeathPenalty
from shared.queue import (
    JOB_FUNCTIONS,
    QUEUE_NAME,
    JobRefused,
    PublishJob,
    job_timeout,
    make_queue,
    note_refusal,
    note_unreadable,
    refuse,
)
from shared.services import Services
from shared.settings import Settings

log = logging.getLogger(__name__)

SCHEDULER_INTERVAL_SECONDS = 1.0
# Due jobs the scheduler moves onto the queue per round trip, and at most per tick.
MOVE_CHUNK = 32
MOVED_PER_TICK = 1024
MIN_WAKE_SECONDS = 0.005
LOCK_RETRY_SECONDS = 5.0
RQ_LOG_LEVEL = "WARNING"
HEARTBEAT_EVERY_SECONDS = 1.0
SUSPENSION_CHECK_EVERY_SECONDS = 1.0


class PublishScheduler(RQScheduler):
    """RQ's scheduler, screening due jobs with ``PublishJob`` before they reach the queue.

    RQ 3.0's scheduler takes no ``job_class``: it reads due jobs with the base ``Job`` (which
    imports nothing) and moves them to the queue. A due job the allow-list refuses goes to
    the failed registry here instead, so it never reaches the queue at all.
    """

    def enqueue_scheduled_jobs(self) -> None:
        """Move the due jobs onto their queue, ``MOVE_CHUNK`` at a time, each read once and screened.

        RQ's own move reads a tick's due jobs (up to 1,000) twice and puts them on the queue in
        one pipeline at the end, so a burst's first post waited for its last to be moved. Here
        each chunk is on the queue, and being taken, while the next is read.
        """
        self._status = self.Status.WORKING
        if not self._scheduled_job_registries and self._acquired_locks:
            self.prepare_registries()
        for registry in self._scheduled_job_registries:
            queue = Queue(registry.name, connection=self.connection, serializer=self.serializer)
            timestamp = current_timestamp()
            # At most RQ's 1,000 a tick: the loop then renews the scheduler lock before the next.
            for _ in range(MOVED_PER_TICK // MOVE_CHUNK):
                job_ids = registry.get_jobs_to_schedule(timestamp, chunk_size=MOVE_CHUNK)
                if job_ids:
                    self._move(registry, queue, job_ids)
                if len(job_ids) < MOVE_CHUNK:
                    break
        self._status = self.Status.STARTED

    def _move(self, registry: ScheduledJobRegistry, queue: Queue, job_ids: list[str]) -> None:
        """One chunk: each due job onto the queue, or to the failed registry if the allow-list
        refuses it; an id whose hash is gone, or that RQ cannot read, off the schedule."""
        unreadable: list[str] = []
        jobs = {job.id: job for job in self._fetch_due(job_ids, unreadable)}
        with self.connection.pipeline() as pipe:
            for job_id in job_ids:
                job = jobs.get(job_id)
                registry.remove(job_id, pipeline=pipe)
                if job is None:
                    if job_id in unreadable:
                        note_unreadable(job_id)  # not even a job RQ can read: dropped, never run
                    continue
                reason = job.refusal() if isinstance(job, PublishJob) else "not_allowed"
                if reason:
                    refuse(job, reason, registry.name, pipe)
                else:
                    queue._enqueue_job(job, pipeline=pipe, at_front=job.should_enqueue_at_front())
            pipe.execute()

    def _fetch_due(self, job_ids: list[str], unreadable: list[str]) -> list[Job]:
        """The due jobs in one round trip; one at a time (noting the unreadable ones) only
        when a forged hash spoils the batch."""
        try:
            batch = PublishJob.fetch_many(job_ids, connection=self.connection, serializer=self.serializer)
            return [job for job in batch if job is not None]
        except RedisError:
            raise  # Redis failing is not a forged hash: the chunk stays scheduled for the next tick
        except Exception:  # noqa: BLE001 - one forged hash must not stop every other job
            pass
        jobs = []
        for job_id in job_ids:
            try:
                jobs.append(PublishJob.fetch(job_id, connection=self.connection, serializer=self.serializer))
            except NoSuchJobError:
                continue
            except RedisError:
                raise
            except Exception:  # noqa: BLE001 - as above
                unreadable.append(job_id)
        return jobs

    def seconds_to_next_due(self, now: float | None = None) -> float | None:
        """How long until the earliest scheduled job falls due (None: nothing scheduled)."""
        firsts = [
            self.connection.zrange(registry.key, 0, 0, withscores=True) for registry in self._scheduled_job_registries
        ]
        scores = [float(first[0][1]) for first in firsts if first]
        return min(scores) - (time.time() if now is None else now) if scores else None


class SchedulerLoop(threading.Thread):
    """Moves due ``enqueue_at`` jobs onto the queue at the second they fall due (and checks
    at least once a second)."""

    def __init__(self, redis: Redis, stop: threading.Event, interval: float = SCHEDULER_INTERVAL_SECONDS):
        super().__init__(name="rq-scheduler", daemon=True)
        self.scheduler = PublishScheduler(
            [QUEUE_NAME], connection=redis, interval=int(max(1, interval)), serializer=JSONSerializer
        )
        # Use this client as is (it may be the embedded Redis). RQ 3.0 infers the attribute's type
        # from its ``None`` initial value.
        self.scheduler._connection = redis  # type: ignore[assignment]
        self.stop_event = stop
        self.interval = interval

    def _wait_for_next_due(self, now: float | None = None) -> float:
        """Wake when the next job falls due rather than up to a tick later (a burst due at one
        second starts at that second), but at least every ``interval``."""
        due_in = self.scheduler.seconds_to_next_due(now)
        if due_in is None:
            return self.interval
        # Scores are whole seconds; RQ moves a job once the current whole second reaches it.
        return min(self.interval, max(MIN_WAKE_SECONDS, due_in + MIN_WAKE_SECONDS))

    def run(self) -> None:
        last_attempt = 0.0
        while not self.stop_event.is_set():
            try:
                holds_all = self.scheduler.acquired_locks == {QUEUE_NAME}
                # RQ would only retry a lock held elsewhere after ten minutes; a dead holder's
                # lock expires in about a minute, so ask every few seconds instead.
                if not holds_all and time.monotonic() - last_attempt >= LOCK_RETRY_SECONDS:
                    last_attempt = time.monotonic()
                    self.scheduler.acquire_locks()  # type: ignore[no-untyped-call]  # unannotated in RQ 3.0
                wait = self.interval
                if self.scheduler.acquired_locks:
                    self.scheduler.heartbeat()  # type: ignore[no-untyped-call]  # unannotated in RQ 3.0
                    self.scheduler.enqueue_scheduled_jobs()
                    wait = self._wait_for_next_due()
            except Exception as exc:  # noqa: BLE001 - the scheduler must outlive any one failure
                log.warning("scheduler tick failed: %s", type(exc).__name__)
                wait = self.interval
            self.stop_event.wait(wait)
        try:
            self.scheduler.release_locks()  # type: ignore[no-untyped-call]  # unannotated in RQ 3.0
        except RedisError:
            pass


class ThreadPublishWorker(SimpleWorker):
    """RQ's in-process worker as one of several on threads of one process: no signal
    handlers, the process's one timer thread instead of SIGALRM (``time_limits``), and it stops
    (between jobs) once ``stop_event`` is set.
    Jobs are ``PublishJob``: only the contract's job functions run."""

    death_penalty_class = SharedTimerDeathPenalty
    job_class = PublishJob
    log_result_lifespan = False  # a line per job through the JSON formatter and the secret mask

    def __init__(self, *args: Any, stop_event: threading.Event | None = None, **kwargs: Any):
        # A description is whatever the enqueuer wrote (a whole payload, say): log job ids only.
        kwargs.setdefault("log_job_description", False)
        super().__init__(*args, **kwargs)
        self.stop_event = stop_event or threading.Event()

    def _install_signal_handlers(self) -> None:
        pass

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """Wait for a job a second at a time, leaving only before a dequeue (never after one),
        and not taking one while ``rq suspend`` holds."""
        while True:
            if self.stop_event.is_set():
                raise StopRequested()
            self.check_for_suspension(False)
            if self.stop_event.is_set():
                raise StopRequested()
            result = super().dequeue_job_and_maintain_ttl(1, max_idle_time=1)
            if result is not None:
                return result

    def check_for_suspension(self, burst: bool) -> None:
        """While ``rq suspend`` holds, take no job; leave when this worker is asked to stop too
        (RQ's own loop watches only its own flag, so a suspended worker could not be stopped)."""
        suspended = False
        while not self.stop_event.is_set() and is_suspended(self.connection, self):
            if not suspended:
                log.info("worker suspended (rq suspend): no job is taken until rq resume")
                suspended = True
            self.heartbeat()
            self.stop_event.wait(1.0)

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        """RQ's own; then, with the job's time limit gone, any Page turn the limit kept from
        being given back (``PageSlots.release_left_by``) is given back."""
        try:
            return super().perform_job(job, queue, execution)
        finally:
            PAGE_SLOTS.release_left_by(threading.get_ident())

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        """RQ writes the job's heartbeat here on its own, a round trip a job, to give a success
        callback its time; a ``PublishJob`` has none. On success the job's hash is saved with the
        outcome (``handle_job_success``), heartbeat included; a failure keeps RQ's write."""
        if job.get_status(refresh=False) == JobStatus.FAILED:
            super().handle_execution_ended(job, queue, heartbeat_ttl)
            return
        job.ended_at = job.last_heartbeat = now()

    def handle_job_success(
        self, job: Job, queue: Queue, started_job_registry: StartedJobRegistry, execution: Execution
    ) -> None:
        """RQ's bookkeeping of a success in one round trip instead of three. RQ first WATCHes the
        job's dependents and reads them, to enqueue them with the outcome, and schedules a repeat
        and frees a rate-limit slot; a ``PublishJob`` runs only without dependencies, repeats or
        rate limits (``PublishJob.refusal``). A job naming one as its dependency would itself be
        refused: it is left deferred instead of being enqueued to be refused. The rest is RQ's
        own: counts, the result and the finished registry, the execution."""
        with self.connection.pipeline() as pipeline:
            self.increment_successful_job_count(pipeline=pipeline)
            if job.started_at and job.ended_at:
                self.increment_total_working_time(job.ended_at - job.started_at, pipeline)
            result_ttl = job.get_result_ttl(self.default_result_ttl)
            if result_ttl != 0:
                job._handle_success(
                    result_ttl,
                    pipeline=pipeline,
                    worker_name=self.name,
                    execution_id=execution.id,
                    execution_started_at=execution.created_at,
                    execution_ended_at=job.ended_at,
                )
            job.cleanup(result_ttl, pipeline=pipeline, remove_from_queue=False)
            job._status = JobStatus.FINISHED
            self.cleanup_execution(job, pipeline=pipeline, execution=execution)
            pipeline.execute()

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        """RQ's own line would carry the refused job's raw function name and arguments;
        ``PublishJob`` has already logged the refusal, capped. A job whose data is not
        even readable fails before ``func`` is reached: refused the same way here."""
        if isinstance(exc_info[1], DeserializationError):
            job.retries_left = None
            note_refusal(job, "unreadable")
            return
        if isinstance(exc_info[1], JobRefused):
            return
        super().handle_exception(job, *exc_info)


class PoolPublishWorker(ThreadPublishWorker):
    """The process's one RQ worker: it dequeues a job only when one of ``concurrency`` slots is
    free and runs RQ's own ``perform_job`` on a thread of a bounded pool, so RQ keeps its
    bookkeeping (started/finished/failed registries, retries, results, one execution per job)
    while many posts wait on Meta at once.

    Each execution is registered (``prepare_execution``) before its job is handed to the pool,
    with a TTL of the job's timeout plus a minute; the job's time limit is raised in its pool
    thread (``time_limits``), so each job is stopped at its own time limit. The dispatcher keeps the
    worker's registration alive (heartbeats) while it waits for a slot and, on a stop, while
    the jobs in flight finish.
    """

    def __init__(self, *args: Any, concurrency: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.concurrency = max(1, concurrency)
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="publish-job")
        self._in_flight: set[Future[None]] = set()
        self._in_flight_lock = threading.Lock()
        self._beaten_at = 0.0
        self._suspension_checked_at = 0.0

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """Take a free slot (heartbeating while all are busy), then wait for a job."""
        while not self._slots.acquire(timeout=1.0):
            if self.stop_event.is_set():
                raise StopRequested()
            self.heartbeat()
        try:
            result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        except BaseException:
            self._slots.release()
            raise
        if result is None:
            self._slots.release()
        return result

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            execution = self.start_execution(job, queue)
        except BaseException:
            self._slots.release()  # the job never reaches the pool (Redis failing, say)
            raise
        future = self._pool.submit(self._perform, job, queue, execution)
        with self._in_flight_lock:
            self._in_flight.add(future)
        future.add_done_callback(self._done)

    def start_execution(self, job: Job, queue: Queue) -> Execution:
        """RQ's two writes before a job runs in one round trip: its execution registered (RQ's
        ``prepare_execution``, on this thread) and the job marked started and taken off the queue's
        intermediate list (``prepare_job_execution``, which RQ does on the job's thread, and which
        is left out there). RQ also wrote the job's heartbeat on its own, which the start writes too,
        and the worker's, which the dispatcher keeps once a second."""
        heartbeat_ttl = self.get_heartbeat_ttl(job)
        with self.connection.pipeline() as pipeline:
            execution = Execution.create(job, heartbeat_ttl, pipeline=pipeline, worker_name=self.name)
            if self.get_state() != WorkerStatus.BUSY:
                self.set_state(WorkerStatus.BUSY, pipeline=pipeline)
            job.prepare_for_execution(self.name, pipeline=pipeline)
            pipeline.persist(job.key)
            pipeline.lrem(queue.intermediate_queue_key, 1, job.id)
            pipeline.execute()
        self.executions[execution.id] = execution
        return execution

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        """Done by ``start_execution`` before the job was handed to its thread."""

    def _perform(self, job: Job, queue: Queue, execution: Execution) -> None:
        try:
            self.perform_job(job, queue, execution)
        except Exception:  # noqa: BLE001 - RQ records the job's own failures; this is RQ's bookkeeping failing
            log.exception("job %s: RQ's bookkeeping failed", job.id)

    def _done(self, future: Future[None]) -> None:
        with self._in_flight_lock:
            self._in_flight.discard(future)
        self._slots.release()

    def set_state(self, state: str, pipeline: Any = None) -> None:
        # RQ marks the worker idle whenever it listens for the next job; busy while any job runs.
        if state == WorkerStatus.IDLE and self.executions:
            state = WorkerStatus.BUSY
        if pipeline is None and state == self.get_state():
            return  # already written: RQ sets it before every dequeue
        super().set_state(state, pipeline=pipeline)

    def check_for_suspension(self, burst: bool) -> None:
        # RQ looks for ``rq suspend`` before every dequeue, a round trip a job; once a second
        # (a burst may take up to a second of jobs after it) is enough for an operator's pause.
        now = time.monotonic()
        if now - self._suspension_checked_at < SUSPENSION_CHECK_EVERY_SECONDS:
            return
        super().check_for_suspension(burst)
        self._suspension_checked_at = time.monotonic()

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        # RQ beats before and after every dequeue and after every job handed over: three round
        # trips each time, which a burst of jobs would pay hundreds of times a second. Once a
        # second keeps the registration (a TTL of minutes) just as alive.
        if timeout is None and pipeline is None:
            now = time.monotonic()
            if now - self._beaten_at < HEARTBEAT_EVERY_SECONDS:
                return
            self._beaten_at = now
        super().heartbeat(timeout, pipeline)

    def teardown(self) -> None:
        """Warm shutdown: no job is dequeued any more; those in flight finish (each bounded by its
        timeout) while the worker stays registered; then RQ registers its death."""
        while True:
            with self._in_flight_lock:
                pending = list(self._in_flight)
            if not pending:
                break
            wait(pending, timeout=1.0)
            try:
                self.heartbeat()
            except RedisError:
                pass
        super().teardown()  # type: ignore[no-untyped-call]  # unannotated in RQ 3.0

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def make_worker(ctx: Services, concurrency: int, stop: threading.Event) -> PoolPublishWorker:
    # Random suffix: a crashed worker's registration (same host and pid) may still be in Redis.
    name = f"publish-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    return PoolPublishWorker(
        [make_queue(ctx.redis)],
        connection=ctx.redis,
        serializer=JSONSerializer,
        job_class=PublishJob,
        name=name,
        stop_event=stop,
        concurrency=concurrency,
    )


def import_job_functions() -> None:
    """Import the job functions, and configure the models' mappers, before the first job: done
    by a burst's first job (about a tenth of a second of CPU), it held every other job thread on
    the import lock."""
    for name in sorted(JOB_FUNCTIONS):
        import_attribute(name)
    configure_mappers()


def start_threads(
    ctx: Services, concurrency: int, stop: threading.Event, logging_level: str = "WARNING"
) -> list[threading.Thread]:
    """The whole worker on threads of this process: RQ's scheduler, the periodic duties and one
    RQ worker running up to ``concurrency`` jobs at once (jobs wait on Meta, not on the CPU).
    All stop when ``stop`` is set; jobs in flight finish first."""

    def loop() -> None:
        while not stop.is_set():
            worker = make_worker(ctx, concurrency, stop)
            try:
                worker.work(logging_level=logging_level, with_scheduler=False)
            except Exception:  # noqa: BLE001 - the thread must outlive any one failure
                log.exception("publish worker stopped unexpectedly; restarting it")
            finally:
                worker.close()
            stop.wait(1.0)

    import_job_functions()
    threads = [SchedulerLoop(ctx.redis, stop), *periodic_duties(ctx, stop)]
    threads.append(threading.Thread(target=loop, name="publish-worker", daemon=True))
    for thread in threads:
        thread.start()
    return threads


class InProcessWorker:
    """The whole worker inside another process (``social-connect demo``, tests)."""

    def __init__(self, settings: Settings, redis: Redis | None = None, *, concurrency: int | None = None):
        """``redis`` None: a client for ``REDIS_URL`` sized like the worker's; ``concurrency``
        None: ``WORKER_CONCURRENCY``."""
        self.ctx = worker_services(settings, redis)
        self.stop_event = threading.Event()
        self.concurrency = concurrency or settings.worker_concurrency
        self._threads: list[threading.Thread] = []

    def start(self) -> InProcessWorker:
        install_context(self.ctx)
        self._threads = start_threads(self.ctx, self.concurrency, self.stop_event)
        return self

    def stop(self, timeout: float = 10) -> None:
        """Stop taking jobs; those in flight finish (up to ``timeout`` seconds here)."""
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout=timeout)
        install_context(None)
        self.ctx.close()


def run_forever(settings: Settings) -> None:
    """``python -m publish_worker``: metrics server, scheduler and duty threads, the worker loop."""
    ctx = worker_services(settings)
    install_context(ctx)
    if settings.metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(settings.metrics_port)
            log.info("metrics on port %d", settings.metrics_port)
        except OSError as exc:
            log.warning("metrics server not started on port %d: %s", settings.metrics_port, exc.strerror)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if os.environ.get("WORKER_THREADS") and not os.environ.get("WORKER_CONCURRENCY"):
        log.warning("WORKER_THREADS is deprecated: it is read as WORKER_CONCURRENCY, posts in flight per process")
    log.info(
        "publish worker: up to %d posts in flight, %d per Page or Instagram account",
        settings.worker_concurrency,
        settings.worker_page_concurrency,
    )
    import_job_functions()
    settle_after_startup()
    # RQ's own lines (one per dequeue, "Job OK", "Successfully completed") at WARNING: each job's
    # outcome is already in our own log line and audit event, and they cost CPU on every job.
    threads = start_threads(ctx, settings.worker_concurrency, stop, logging_level=RQ_LOG_LEVEL)
    try:
        while not stop.wait(1.0):
            dead = [t.name for t in threads if not t.is_alive()]
            if dead:
                # Better a restart by the supervisor than a worker that silently stopped sweeping.
                log.error("background thread(s) died: %s; exiting", ", ".join(dead))
                stop.set()
                raise SystemExit(1)
    finally:
        stop.set()
        # Warm shutdown: the jobs in flight finish (a job is shorter than the lease).
        for thread in threads:
            thread.join(timeout=job_timeout(settings) + 5)
        ctx.close()
