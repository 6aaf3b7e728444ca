"""The ``social-connect`` command: migrations, key rotation, and commands other packages add (the demo)."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime
from importlib.metadata import EntryPoint, entry_points

import click

from shared.migrations import run_migrations
from shared.settings import Settings, SettingsError, load_settings

COMMANDS_GROUP = "social_connect.commands"


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


class _Commands(click.Group):
    """The commands below plus those installed packages add under the ``social_connect.commands`` entry point.

    That is how ``social-connect demo`` arrives (declared in pyproject.toml, served by the demo package) without this
    module naming the demo: an image without the demo package has no ``demo`` command.
    """

    def _added(self) -> dict[str, EntryPoint]:
        # The project's own metadata declares ``demo`` even where its package was left out (the
        # production image): offer only commands whose top-level package is importable.
        return {
            ep.name: ep
            for ep in entry_points(group=COMMANDS_GROUP)
            if importlib.util.find_spec(ep.module.partition(".")[0]) is not None
        }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._added()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        entry_point = self._added().get(cmd_name) if command is None else None
        if entry_point is not None:
            loaded = entry_point.load()
            if not isinstance(loaded, click.Command):
                raise click.ClickException(f"{entry_point.value} is not a click command")
            command = loaded
        return command


@click.group(cls=_Commands)
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


@main.group()
def webhooks() -> None:
    """Outcome events sent to Resellio (RESELLIO_WEBHOOK_URL)."""


def _instant(ctx: click.Context, param: click.Parameter, value: str) -> datetime:
    """An ISO-8601 time with a zone (``Z`` or an offset), in UTC."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("an ISO-8601 time such as 2026-12-01T08:00:00Z") from None
    if parsed.tzinfo is None:
        raise click.BadParameter("give a time zone (Z or +07:00): the events' times are UTC")
    return parsed.astimezone(UTC)


@webhooks.command("replay")
@click.option(
    "--since", required=True, callback=_instant, help="ISO-8601 time with a zone: events created at or after it."
)
def replay(since: datetime) -> None:
    """Send again every event created since a time, delivered, pending or dead (same webhook-id)."""
    from shared.db import make_engine, make_session_factory
    from shared.log import configure_logging
    from shared.redis_conn import make_redis
    from shared.webhooks import replay as replay_events

    start = since
    settings = _settings()
    if not settings.webhook_url:
        raise click.ClickException("RESELLIO_WEBHOOK_URL is not set: there is nowhere to send events")
    if not settings.redis_url:
        raise click.ClickException("REDIS_URL is not set: the worker takes deliveries from Redis")
    configure_logging()
    engine = make_engine(settings.database_url)
    redis = make_redis(settings)
    try:
        with make_session_factory(engine)() as session:
            count = replay_events(session, redis, start)
    finally:
        engine.dispose()
        redis.close()
    click.echo(f"{count} event(s) since {start.isoformat()} queued for delivery again")


if __name__ == "__main__":
    sys.exit(main())
