"""The services a call needs: settings, database sessions, Redis, the token cipher, Graph clients.

Built once per process — by ``create_app`` for the web app, by the worker for its jobs —
and handed to the shared functions, which take the session first, then the services,
then the call's own arguments.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from redis import Redis
from requests.utils import get_environ_proxies
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from shared.crypto import TokenCipher, cipher_from_settings
from shared.db import make_engine, make_session_factory
from shared.graph import GraphClient, GraphObserver
from shared.meta_adapter import MetaAdapter
from shared.metrics import observe_graph_call
from shared.redis_conn import make_redis
from shared.settings import Settings

_http = threading.local()


def thread_http_session(graph_url: str) -> requests.Session:
    """This thread's HTTP session: connections to Meta are reused across calls on the thread.

    The environment (``HTTPS_PROXY``/``NO_PROXY``, ``REQUESTS_CA_BUNDLE``) is read once, here,
    not by requests on every call (``trust_env``, a scan of ``os.environ`` per request).
    """
    http: requests.Session | None = getattr(_http, "session", None)
    if http is None:
        http = _http.session = environment_read_once(meta_session(), graph_url)
    return http


def meta_session() -> requests.Session:
    """A session whose transport is :class:`MetaAdapter` for both schemes."""
    http = requests.Session()
    http.mount("https://", MetaAdapter())
    http.mount("http://", MetaAdapter())
    return http


def environment_read_once(http: requests.Session, url: str) -> requests.Session:
    http.proxies.update(get_environ_proxies(url))
    http.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    http.trust_env = False
    return http


@dataclass(frozen=True)
class Services:
    """What the web app's handlers and the worker's jobs share, besides the call's own arguments."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    redis: Redis
    cipher: TokenCipher
    graph_observer: GraphObserver | None = observe_graph_call
    # The worker keeps one HTTP session per thread; the web app opens one per Graph client.
    reuse_http: bool = False

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session of its own (the web app's requests use Flask-SQLAlchemy's ``db.session``)."""
        with self.session_factory() as session:
            yield session

    def graph(
        self,
        *,
        timeout: tuple[float, float] | None = None,
        budget_seconds: float | None = None,
        client: type[GraphClient] = GraphClient,
        **client_args: Any,
    ) -> GraphClient:
        """A Graph client, optionally with its own timeouts and an overall time budget for its calls;
        ``client`` a subclass given ``client_args`` too."""
        deadline = time.monotonic() + budget_seconds if budget_seconds else None
        return client(
            self.settings,
            session=thread_http_session(self.settings.meta_graph_url) if self.reuse_http else None,
            timeout=timeout,
            deadline=deadline,
            observer=self.graph_observer,
            **client_args,
        )

    def close(self) -> None:
        """Dispose of the engine (for services that built it: the worker, not the web app)."""
        self.engine.dispose()


def build_services(
    settings: Settings, *, redis: Redis | None = None, engine: Engine | None = None, reuse_http: bool = False
) -> Services:
    """Services from settings: a new engine and Redis client unless given ones."""
    engine = engine if engine is not None else make_engine(settings.database_url)
    return Services(
        settings=settings,
        engine=engine,
        session_factory=make_session_factory(engine),
        redis=redis if redis is not None else make_redis(settings),
        cipher=cipher_from_settings(settings),
        reuse_http=reuse_http,
    )
