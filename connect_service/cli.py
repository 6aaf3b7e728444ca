"""The ``social-connect`` command: migrations, key rotation, and (later) the demo."""
from __future__ import annotations

import sys

import click

from shared.settings import PROJECT_ROOT, SettingsError, load_settings


def _settings():
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def run_migrations(database_url: str) -> None:
    """``alembic upgrade head`` against ``database_url``."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


@click.group()
def main() -> None:
    """Resellio Social Connect."""


@main.command()
def migrate() -> None:
    """Bring the database schema up to date (alembic upgrade head)."""
    run_migrations(_settings().database_url)
    click.echo("database schema is up to date")


@main.command("rotate-keys")
def rotate_keys() -> None:
    """Re-encrypt every stored token under the first key of TOKEN_ENCRYPTION_KEYS."""
    from shared.crypto import cipher_from_settings
    from shared.db import make_engine, make_session_factory
    from shared.log import configure_logging
    from shared.tokens import reencrypt_all

    settings = _settings()
    configure_logging()
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            changed = reencrypt_all(session, cipher_from_settings(settings))
    finally:
        engine.dispose()
    click.echo(f"re-encrypted {changed} connection(s) under key '{settings.token_encryption_keys[0][0]}'")


if __name__ == "__main__":
    sys.exit(main())
