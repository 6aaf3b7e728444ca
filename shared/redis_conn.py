"""The Redis connection both processes use, or an embedded one for demo and tests."""

from __future__ import annotations

import threading

import redis

_embedded_server = None
_embedded_lock = threading.Lock()

KEY_PREFIX = "social_connect:"


def embedded_server():
    """One in-process fakeredis server per process, shared by web app and worker threads."""
    global _embedded_server
    with _embedded_lock:
        if _embedded_server is None:
            import fakeredis

            _embedded_server = fakeredis.FakeServer()
        return _embedded_server


def make_redis(settings) -> redis.Redis:
    """A client for ``REDIS_URL``; without one (demo/test only) the embedded server."""
    if settings.redis_url:
        return redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=3, socket_timeout=10, health_check_interval=30
        )
    if settings.is_production:
        raise RuntimeError("REDIS_URL is required in production")
    import fakeredis

    return fakeredis.FakeRedis(server=embedded_server())


def key(*parts: str) -> str:
    return KEY_PREFIX + ":".join(parts)
