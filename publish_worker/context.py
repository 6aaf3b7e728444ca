"""The worker's :class:`~shared.services.Services`: settings, database sessions, Redis, the token cipher, Graph clients.

Built once per process, or installed by whoever runs the worker in-process (the demo,
the tests).
"""

from __future__ import annotations

import threading

from redis import Redis

from shared.services import Services, build_services
from shared.settings import Settings, load_settings


def worker_services(settings: Settings, redis: Redis | None = None) -> Services:
    """The worker's services: its own engine, and one HTTP session to Meta per thread, reused across jobs."""
    return build_services(settings, redis=redis, reuse_http=True)


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
