"""What a publish job needs: settings, database sessions, Redis, the token cipher.

Built once per process, or installed by whoever runs the worker in-process (the demo,
the tests).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests
from redis import Redis
from rq import Queue
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from shared.crypto import TokenCipher, cipher_from_settings
from shared.db import make_engine, make_session_factory
from shared.graph import GraphClient
from shared.metrics import observe_graph_call
from shared.queue import make_queue
from shared.redis_conn import make_redis
from shared.settings import Settings, load_settings


@dataclass
class WorkerContext:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker
    redis: Redis
    cipher: TokenCipher

    @classmethod
    def build(cls, settings: Settings, redis: Redis | None = None) -> WorkerContext:
        engine = make_engine(settings.database_url)
        return cls(
            settings=settings,
            engine=engine,
            session_factory=make_session_factory(engine),
            redis=redis if redis is not None else make_redis(settings),
            cipher=cipher_from_settings(settings),
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.session_factory() as session:
            yield session

    @property
    def queue(self) -> Queue:
        return make_queue(self.redis)

    def graph(self) -> GraphClient:
        """A Graph client on this thread's HTTP session: connections to Meta are reused across jobs."""
        http = getattr(_http, "session", None)
        if http is None:
            http = _http.session = requests.Session()
        return GraphClient(self.settings, session=http, observer=observe_graph_call)

    def close(self) -> None:
        self.engine.dispose()


_http = threading.local()
_context: WorkerContext | None = None
_lock = threading.Lock()


def install_context(context: WorkerContext | None) -> None:
    global _context
    with _lock:
        _context = context


def get_context() -> WorkerContext:
    """This process's context, built from the environment on first use.

    Jobs run on threads of the process that built it (RQ 3's forking worker would start a
    fresh interpreter, which builds its own), so no engine is ever shared across a fork.
    """
    global _context
    with _lock:
        if _context is None:
            _context = WorkerContext.build(load_settings())
        return _context
