"""Alembic environment: the URL comes from the project settings (DATABASE_URL)."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import engine_from_config, pool

import shared.models  # noqa: F401  (registers every table on the metadata)
from shared.db import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from shared.settings import load_settings

    return load_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        section = config.get_section(config.config_ini_section, {})
        section["sqlalchemy.url"] = database_url()
        engine = engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
        with engine.connect() as connection:
            _run(connection)
    else:
        _run(connectable)


def _run(connection) -> None:
    restore = _foreign_keys_off(connection)
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True, compare_type=True)
    try:
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if restore:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


def _foreign_keys_off(connection) -> bool:
    """SQLite: migrate with ``foreign_keys`` off; returns whether it was on (to turn it back on).

    A batch ``drop_column`` rebuilds the table (copy, ``DROP TABLE``, rename); with the pragma
    on, that ``DROP TABLE`` fires ``ON DELETE CASCADE`` and empties ``post_targets``
    (DESIGN §13.5). The pragma cannot change inside a transaction, so a connection handed
    over with one open and the pragma on is refused rather than migrated with data loss.
    """
    if connection.dialect.name != "sqlite":
        return False
    callers_transaction = connection.in_transaction()
    was_on = bool(connection.exec_driver_sql("PRAGMA foreign_keys").scalar())
    if callers_transaction:
        if was_on:
            raise RuntimeError(
                "SQLite migrations must run with PRAGMA foreign_keys=OFF (a table rebuild would cascade-delete "
                "post_targets), and the pragma cannot change inside the open transaction of the connection given"
            )
        return False
    # End the transaction the read began (pysqlite sent no BEGIN for it): Alembic must own its own.
    connection.commit()
    if was_on:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    return was_on


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
