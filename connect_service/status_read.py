"""The one read behind ``GET /api/meta/status``: a single prepared SELECT, straight on libpq.

The dashboard asks for the status on every load. Under gunicorn's threads each blocking
call gives up the GIL and waits to get it back, so the answer costs about as many waits
as database round trips: this read makes one. It skips the ORM (identity map, session,
transaction) and selects only the columns the answer needs, on a small pool of its own
(bounded; nothing is kept per thread) whose connections are in autocommit mode (no
``BEGIN``, nothing to roll back on return) and are not pinged before each use: a
connection found broken is dropped and the read tried on another one instead.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import pq
from psycopg.abc import Transformer as RowLoader
from psycopg.adapt import Transformer
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

from shared.models import CONNECTED, DISCONNECTED, expiring_soon
from shared.token_check import is_fresh

# At most this many connections per web process (gunicorn runs 4 threads per worker by
# default); a thread beyond it waits for one, up to POOL_TIMEOUT_SECONDS.
POOL_SIZE = 4
POOL_TIMEOUT_SECONDS = 10

# The answer's columns (StatusOut), in this order.
_COLUMNS = (
    "id",
    "status",
    "facebook_page_id",
    "instagram_business_account_id",
    "instagram_username",
    "page_name",
    "connected_at",
    "expires_at",
    "data_access_expires_at",
    "scopes_granted",
    "token_last_checked_at",
    "last_error_code",
)
_SCOPES = _COLUMNS.index("scopes_granted")
# Prepared once on each pooled connection and executed straight on libpq: psycopg's cursor
# layers cost several times the statement itself.
_STATEMENT = b"social_connect_status_read"
# The status literal matches the partial unique index on the active connection.
_ACTIVE_CONNECTION_SQL = (
    f"SELECT {', '.join(_COLUMNS)} FROM social_connections"
    f" WHERE user_id_resellio = $1 AND status <> '{DISCONNECTED}' LIMIT 1"
).encode()
_PREPARED = "social_connect_status_read"  # key in the pooled connection's info: its row loader


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """What the status answer says about a connection (the attributes StatusOut reads)."""

    id: str
    status: str
    facebook_page_id: str | None
    instagram_business_account_id: str | None
    instagram_username: str | None
    page_name: str | None
    connected_at: datetime | None
    expires_at: datetime | None
    data_access_expires_at: datetime | None
    scopes_granted: tuple[str, ...] | None  # a tuple, so that a state can key the answers it gives
    token_last_checked_at: datetime | None
    last_error_code: str | None


def _utc(value: Any) -> Any:
    # As the ORM's UTCDateTime gives them back.
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def _select(driver: psycopg.Connection[Any], info: dict[Any, Any], user_id: str) -> tuple[Any, ...] | None:
    """The row, loaded by psycopg's own loaders (as its cursors would), or None."""
    pgconn = driver.pgconn
    loader: RowLoader | None = info.get(_PREPARED)
    if loader is None:
        _check(driver, pgconn.prepare(_STATEMENT, _ACTIVE_CONNECTION_SQL))
        loader = info[_PREPARED] = Transformer(driver)
    result = pgconn.exec_prepared(_STATEMENT, [user_id.encode(driver.info.encoding)])
    _check(driver, result)
    if result.ntuples == 0:
        return None
    loader.set_pgresult(result)
    row: tuple[Any, ...] = loader.load_row(0, tuple)
    loader.set_pgresult(None)
    return row


def _check(driver: psycopg.Connection[Any], result: pq.abc.PGresult) -> None:
    if driver.pgconn.status == pq.ConnStatus.BAD:  # the server went away (libpq gives no SQLSTATE for it)
        raise psycopg.OperationalError("the status read lost its database connection")
    if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
        raise psycopg.errors.error_from_result(result, encoding=driver.info.encoding)


def _state(row: tuple[Any, ...]) -> ConnectionState:
    values = [_utc(value) for value in row]
    scopes = values[_SCOPES]
    values[_SCOPES] = tuple(scopes) if isinstance(scopes, list) else scopes
    return ConnectionState(*values)


NOT_CONNECTED_KEY = "not_connected"


def answer_key(state: ConnectionState | None, token_check_max_age_seconds: int) -> Hashable | None:
    """All the status answer depends on, or None when the answer must come from the view's
    full path (a connected token due for its re-check, which may change the row)."""
    if state is None or state.status == DISCONNECTED:
        return NOT_CONNECTED_KEY
    if state.status == CONNECTED and not is_fresh(state, token_check_max_age_seconds):
        return None
    return (state, expiring_soon(state))


class AnswerMemo:
    """The answers already written (body and content type), by what they were written from (bounded).

    The status answer is a function of the stored state and of whether it expires soon, and
    the dashboard asks again and again while neither changes: writing it once is enough.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._bodies: OrderedDict[Hashable, tuple[bytes, str]] = OrderedDict()

    def get(self, key: Hashable) -> tuple[bytes, str] | None:
        with self._lock:
            body = self._bodies.get(key)
            if body is not None:
                self._bodies.move_to_end(key)
            return body

    def put(self, key: Hashable, body: tuple[bytes, str]) -> None:
        with self._lock:
            self._bodies[key] = body
            while len(self._bodies) > self.capacity:
                self._bodies.popitem(last=False)


class StatusReader:
    """Reads a user's active connection on a pool of its own beside the app's engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.answers = AnswerMemo()

    @classmethod
    def beside(cls, app_engine: Engine) -> StatusReader | None:
        """A reader on the app engine's database, closed whenever that engine is disposed; None
        where the direct read does not apply (it is written for PostgreSQL through psycopg; the
        demo's SQLite answers through the ORM)."""
        if app_engine.dialect.name != "postgresql" or app_engine.dialect.driver != "psycopg":
            return None
        reader = cls(
            create_engine(
                app_engine.url,
                pool_size=POOL_SIZE,
                max_overflow=0,
                pool_timeout=POOL_TIMEOUT_SECONDS,
                pool_reset_on_return=None,
                isolation_level="AUTOCOMMIT",
            )
        )
        event.listen(app_engine, "engine_disposed", lambda _engine: reader.close())
        return reader

    def active_connection(self, user_id: str) -> ConnectionState | None:
        """The user's connection that is not ``disconnected`` (at most one), or None."""
        # A restarted server leaves every pooled connection broken: one more try than the pool holds.
        for attempt in range(POOL_SIZE + 1):
            pooled = self.engine.raw_connection()
            driver = pooled.driver_connection
            assert driver is not None
            try:
                row = _select(driver, pooled.info, user_id)
            except psycopg.OperationalError:
                pooled.invalidate()
                if not driver.broken or attempt == POOL_SIZE:
                    raise
                continue
            except BaseException:
                pooled.invalidate()  # its state is unknown: the pool opens a new one next time
                raise
            finally:
                pooled.close()
            return None if row is None else _state(row)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.engine.dispose()
