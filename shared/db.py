"""The declarative base, column types and engine/session factories both processes use."""

from __future__ import annotations

import select
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, create_engine, event
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

    ``ping_on_checkout=False`` (the worker's): a pooled PostgreSQL connection is not pinged (a
    round trip) each time it is checked out, only looked at (:func:`_replace_if_closed_by_server`).
    The worker checks out a connection for each step of a post, several times a post."""
    options = engine_options(database_url, pool_size=pool_size, max_overflow=max_overflow)
    if not ping_on_checkout and "pool_pre_ping" in options:
        options["pool_pre_ping"] = False
    engine = create_engine(database_url, **options)
    if not ping_on_checkout and engine.dialect.name == "postgresql":
        event.listen(engine, "connect", _note_new)
        event.listen(engine, "checkout", _replace_if_closed_by_server)
    install_sqlite_pragmas(engine)
    return engine


def _note_new(_dbapi_connection: Any, record: Any) -> None:
    record.info["new"] = True


def _replace_if_closed_by_server(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Before a pooled connection is handed out: if the server has ended it (a restart,
    ``pg_terminate_backend``, an idle timeout), the pool replaces it.

    No round trip: an idle connection whose socket is readable, or has hung up, has been sent
    something it did not ask for, which the server sends as it ends the session (its FATAL
    notice, then the end of the stream); anything else unasked (a changed setting's report) only
    costs a new connection. A connection the server ends after this look fails its next
    statement, as it would after a ping."""
    if record.info.pop("new", False):
        return  # just opened (and ``connect`` has already used it)
    if dbapi_connection.closed or dbapi_connection.broken:
        raise DisconnectionError("the database connection is closed")
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLPRI)
    if poller.poll(0):
        raise DisconnectionError("the database server closed the connection")


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
