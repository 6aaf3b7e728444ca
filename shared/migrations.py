"""Bring a database's schema up to date with the Alembic migrations under ``migrations/``."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from shared.settings import PROJECT_ROOT


def alembic_config(database_url: str) -> Config:
    """The project's Alembic configuration, pointed at ``database_url``."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def run_migrations(database_url: str, revision: str = "head") -> None:
    """``alembic upgrade head`` (or to ``revision``) against ``database_url``.

    On SQLite the migrations run with ``foreign_keys`` off (``migrations/env.py``): a batch
    ``drop_column`` rebuilds the table, and with the pragma on the rebuild's ``DROP TABLE``
    would cascade into ``post_targets`` (DESIGN §13.5).
    """
    command.upgrade(alembic_config(database_url), revision)
