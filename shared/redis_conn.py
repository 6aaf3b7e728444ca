"""The Redis connection both processes use.

The demo and the tests may run on an embedded in-process Redis: they create it
themselves and hand the client in (``create_app({"REDIS": …})``, the worker's
context), so production code never imports one.
"""

from __future__ import annotations

import redis

from shared.settings import Settings

KEY_PREFIX = "social_connect:"


def make_redis(settings: Settings, *, max_connections: int | None = None) -> redis.Redis:
    """A client for ``REDIS_URL``; without one, a caller must hand in its own client instead.

    ``max_connections`` sizes its pool (redis-py's default is 100: past it every command
    raises ``MaxConnectionsError``); the worker sizes it from its concurrency.
    """
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set (the demo and the tests hand in an embedded Redis instead)")
    return redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=3,
        socket_timeout=10,
        health_check_interval=30,
        **({"max_connections": max_connections} if max_connections else {}),
    )


def key(*parts: str) -> str:
    return KEY_PREFIX + ":".join(parts)
