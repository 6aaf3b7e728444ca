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


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int, help="The Social Connect page and API.")
@click.option("--sandbox-port", default=8001, show_default=True, type=int, help="The Meta sandbox.")
@click.option("--scenario", default="one_page", show_default=True, help="The sandbox scenario to start with.")
def demo(host: str, port: int, sandbox_port: int, scenario: str) -> None:
    """Run everything on this machine: SQLite, embedded Redis, the Meta sandbox, the worker."""
    import os
    import signal
    import threading

    from connect_service.demo import DemoStack
    from shared.log import configure_logging

    os.environ.setdefault("APP_ENV", "demo")
    if os.environ["APP_ENV"] != "demo":
        raise click.ClickException("social-connect demo runs only with APP_ENV=demo (or unset)")
    configure_logging("WARNING", json_lines=False)
    stack = DemoStack(
        host=host,
        port=port,
        sandbox_port=sandbox_port,
        scenario=scenario,
        database_url=os.environ.get("DATABASE_URL") or None,
        redis_url=os.environ.get("REDIS_URL") or None,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stack.start()
    except OSError as exc:
        raise click.ClickException(f"could not start the demo: {exc}") from None
    click.echo(f"Resellio Social Connect demo: {stack.url}/")
    click.echo(f"Meta sandbox (scenarios, published posts): {stack.sandbox.url}/")
    click.echo("Signed in as the demo seller on first visit. Ctrl-C stops everything.", err=False)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        click.echo("stopping…")
        stack.stop()
    click.echo("stopped")


if __name__ == "__main__":
    sys.exit(main())
