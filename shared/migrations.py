"""Bring a database's schema up to date with the Alembic migrations under ``migrations/``."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from shared.settings import PROJECT_ROOT


def run_migrations(database_url: str) -> None:
    """``alembic upgrade head`` against ``database_url``."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")
