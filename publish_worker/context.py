"""The worker's :class:`~shared.services.Services`: settings, database sessions, Redis, the token cipher, Graph clients.

Built once per process, or installed by whoever runs the worker in-process (the demo,
the tests).
"""

from __future__ import annotations

import threading

from redis import Redis

from shared.db import make_engine
from shared.redis_conn import make_redis
from shared.services import Services, build_services
from shared.settings import Settings, load_settings


def redis_pool_size(concurrency: int) -> int:
    """Redis connections the worker may open: a few per job in flight (RQ's bookkeeping, the
    job's own enqueues), plus the dispatcher's dequeue, its command channel, the scheduler and
    the periodic duties."""
    return 3 * concurrency + 16


def worker_services(settings: Settings, redis: Redis | None = None) -> Services:
    """The worker's services: its own engine (``WORKER_DB_POOL_SIZE`` + ``WORKER_DB_MAX_OVERFLOW``
    connections, whatever the concurrency), a Redis pool sized from ``WORKER_CONCURRENCY``, and
    one HTTP session to Meta per thread, reused across jobs."""
    engine = make_engine(
        settings.database_url,
        pool_size=settings.worker_db_pool_size,
        max_overflow=settings.worker_db_max_overflow,
        ping_on_checkout=False,
    )
    if redis is None:
        redis = make_redis(settings, max_connections=redis_pool_size(settings.worker_concurrency))
    return build_services(settings, redis=redis, engine=engine, reuse_http=True)


_context: Services | None = None
_lock = threading.Lock()


def install_context(context: Services | None) -> None:
    global _context
    with _lock:
        _context = context


def get_context() -> Services:
    """This process's services, built from the environment on first use.

    Jobs run on threads of the process that built them (RQ 3's forking worker would start a
    fresh interpreter, which builds its own), so no engine is ever shared across a fork.
    """
    global _context
    with _lock:
        if _context is None:
            _context = worker_services(load_settings())
        return _context
