"""One SQLAlchemy statement run alone, in autocommit, straight on the psycopg connection.

The worker's fenced writes (``publish_worker.lease``) are each one statement that is all its
transaction holds, three a post. Through ``Session`` and ``Connection`` each cost about a tenth of
a millisecond of CPU more than the statement itself: the session's transaction, the connection's
switch into autocommit and back, and the statement's cache key built anew to find its compiled
form. Here the statement is compiled once (:func:`driver_statement`), its values go through the
same type processing SQLAlchemy applies, and a driver error is raised as SQLAlchemy's own
exception (``sqlalchemy.exc.DataError`` and so on), as a statement run through SQLAlchemy raises it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from psycopg.pq import TransactionStatus
from sqlalchemy import Dialect, Engine
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


@dataclass(frozen=True)
class DriverStatement:
    """A compiled statement in the driver's own terms."""

    sql: str
    # The bind processors of the values a caller gives (a ``TypeDecorator``'s, JSON's…).
    processors: Mapping[str, Callable[[Any], Any]]
    # Values the statement itself carries (``status = 'publishing'``), already processed.
    fixed: Mapping[str, Any]


def driver_statement(statement: ClauseElement, dialect: Dialect) -> DriverStatement:
    """Compile ``statement`` for ``dialect`` once; cache the result with the statement.

    Only what a plain statement with named values needs is supported; anything SQLAlchemy would
    work out at each execution (a Python-side default or ``onupdate``, a value computed by a
    callable, an expanding ``IN``, a renamed or positional parameter) is refused here."""
    compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
    if (
        compiled.positiontup
        or compiled.escaped_bind_names
        or compiled.post_compile_params
        or compiled.insert_prefetch
        or compiled.update_prefetch
        or any(bind.callable or (bind.required and name != bind.key) for bind, name in compiled.bind_names.items())
    ):
        raise ValueError("a statement whose values SQLAlchemy works out at execution cannot run on the driver")
    processors: dict[str, Callable[[Any], Any]] = {}
    fixed: dict[str, Any] = {}
    for bind, name in compiled.bind_names.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if not bind.required:
            fixed[name] = process(bind.effective_value) if process is not None else bind.effective_value
        elif process is not None:
            processors[name] = process
    return DriverStatement(compiled.string, processors, fixed)


def execute_alone(engine: Engine, statement: DriverStatement, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """Run ``statement`` alone in autocommit on a pooled connection; its first row, if any.

    A statement is atomic on its own: it lands whole or not at all. The connection goes back to
    the pool out of autocommit (``shared.db`` also makes sure of that on checkin, should the job's
    time limit land in between); one the error left unusable is dropped, not pooled."""
    values = dict(params)
    for name, process in statement.processors.items():
        values[name] = process(values[name])
    values.update(statement.fixed)
    failure = engine.dialect.loaded_dbapi.Error
    try:
        pooled = engine.raw_connection()
    except failure as exc:  # no connection to be had (the server down, its connections all taken)
        raise _as_sqlalchemy_error(engine, None, None, exc) from exc
    try:
        driver = pooled.driver_connection
        assert driver is not None
        try:
            driver.autocommit = True
            with driver.cursor() as cursor:
                cursor.execute(statement.sql, values)
                return cursor.fetchone() if cursor.description is not None else None
        except failure as exc:
            if driver.broken or driver.info.transaction_status != TransactionStatus.IDLE:
                pooled.invalidate(exc)
            raise _as_sqlalchemy_error(engine, statement.sql, values, exc) from exc
        finally:
            if not driver.closed and driver.info.transaction_status == TransactionStatus.IDLE:
                driver.autocommit = False
    finally:
        pooled.close()


def _as_sqlalchemy_error(
    engine: Engine, sql: str | None, values: Mapping[str, Any] | None, exc: Exception
) -> StatementError:
    """The driver's error as SQLAlchemy raises it from a statement of its own."""
    return DBAPIError.instance(
        sql,
        values,
        exc,
        engine.dialect.loaded_dbapi.Error,
        hide_parameters=engine.hide_parameters,
        dialect=engine.dialect,
    )
