"""The declarative base, column types and engine/session factories both processes use."""

from __future__ import annotations

import select
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, create_engine, event, make_url
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import CursorResult, Dialect, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, registry, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def iso_z(value: datetime | None) -> str | None:
    """An aware datetime as the API writes it: ISO-8601 in UTC with ``Z``."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC and always gives back aware datetimes, SQLite included (DESIGN §11)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Base of every model; Flask-SQLAlchemy uses it as ``model_class``."""

    # One registry carrying the type map, so Flask-SQLAlchemy's subclass can share it.
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime()},
    )


def engine_options(database_url: str, *, pool_size: int = 5, max_overflow: int = 5) -> dict[str, Any]:
    """Engine keyword arguments suited to the database in use (the pool size is PostgreSQL's)."""
    if database_url.startswith("sqlite"):
        return {"connect_args": {"check_same_thread": False, "timeout": 30}}
    return {"pool_pre_ping": True, "pool_size": pool_size, "max_overflow": max_overflow}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(
    database_url: str, *, pool_size: int = 5, max_overflow: int = 5, ping_on_checkout: bool = True
) -> Engine:
    """Create an engine for the worker or CLI (the web app goes through Flask-SQLAlchemy).

    ``ping_on_checkout=False`` (the worker's, which checks a connection out for each step of a
    post, several times a post): a pooled PostgreSQL connection used moments ago is handed out
    without a round trip to the server (:class:`PooledConnectionCheck`), and its cursors make a
    result's description only when SQLAlchemy reads it (``shared.pg_cursor``)."""
    options = engine_options(database_url, pool_size=pool_size, max_overflow=max_overflow)
    psycopg_driver = make_url(database_url).get_driver_name() == "psycopg"
    check = not ping_on_checkout and psycopg_driver
    if check:
        from shared.pg_cursor import LazyDescriptionCursor

        options["pool_pre_ping"] = False  # the check below pings only where it has to
        options["connect_args"] = {**options.get("connect_args", {}), "cursor_factory": LazyDescriptionCursor}
    engine = create_engine(database_url, **options)
    if check:
        PooledConnectionCheck(engine.dialect).install(engine)
    if psycopg_driver:
        event.listen(engine, "checkin", _out_of_autocommit)
    install_sqlite_pragmas(engine)
    return engine


def _out_of_autocommit(dbapi_connection: Any, _record: Any) -> None:
    """A connection goes back to the pool out of autocommit, whatever left it in it. The worker's
    one-statement writes run in autocommit (``publish_worker.lease``) and SQLAlchemy switches it
    off again, unless the job's time limit (raised in the job's thread at any bytecode) lands
    between its switching it on and its noting that it must: the next transaction on that
    connection would then commit statement by statement. An attribute, not a round trip."""
    if dbapi_connection is not None and dbapi_connection.autocommit:
        dbapi_connection.autocommit = False


# A connection idle longer than this is pinged before use: a NAT or firewall may have forgotten
# it (minutes, usually) without the server or this process hearing of it.
IDLE_PING_SECONDS = 30.0


class PooledConnectionCheck:
    """Before a pooled psycopg connection is handed out, the pool replaces it if it is dead.

    - The server ended it (a restart, ``pg_terminate_backend``, ``idle_session_timeout``): it
      sent a FATAL error and closed the stream, so the idle connection's socket is readable or
      hung up. Seen without a round trip. (A live idle session is sent nothing unasked but a
      ``NOTIFY`` after ``LISTEN``, which the worker never issues: at worst a new connection.)
    - The network dropped it silently: nothing arrives until something is sent, so a
      connection idle for more than ``IDLE_PING_SECONDS`` is pinged, as ``pool_pre_ping`` would.

    A connection that dies after this look fails its next statement, as it would after a ping.
    """

    def __init__(self, dialect: Dialect):
        self.dialect = dialect

    def install(self, engine: Engine) -> None:
        event.listen(engine, "connect", self.opened)
        event.listen(engine, "checkin", self.returned)
        event.listen(engine, "checkout", self.check)

    def opened(self, _dbapi_connection: Any, record: Any) -> None:
        record.info["pool_check_new"] = True

    def returned(self, _dbapi_connection: Any, record: Any) -> None:
        record.info["pool_check_idle_since"] = time.monotonic()

    def check(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.pop("pool_check_new", False):
            return  # just opened (and ``connect`` has already used it)
        if dbapi_connection.closed:
            raise DisconnectionError("the database connection is closed")
        poller = select.poll()
        poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLPRI)
        if poller.poll(0):
            raise DisconnectionError("the database server closed the connection")
        idle_since = record.info.get("pool_check_idle_since")
        if idle_since is None or time.monotonic() - idle_since > IDLE_PING_SECONDS:
            try:
                self.dialect.do_ping(dbapi_connection)
            except self.dialect.loaded_dbapi.Error as exc:
                raise DisconnectionError("the database connection did not answer") from exc


def install_sqlite_pragmas(engine: Engine) -> None:
    """WAL lets the web app and the worker share one SQLite file in the demo."""
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)


def affected_rows(result: object) -> int:
    """The rows an UPDATE or DELETE matched. ``Session.execute`` types every result as a plain
    ``Result``; for these statements it is a ``CursorResult``, which carries the count."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"not the result of an UPDATE or DELETE: {type(result).__name__}")
    return result.rowcount


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)
