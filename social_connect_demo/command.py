"""``social-connect demo``: added to the production CLI through the ``social_connect.commands`` entry point."""

from __future__ import annotations

import os
import signal
import threading

import click

from shared.log import configure_logging
from social_connect_demo.stack import DemoStack


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int, help="The Social Connect page and API.")
@click.option("--sandbox-port", default=8001, show_default=True, type=int, help="The Meta sandbox.")
@click.option("--scenario", default="one_page", show_default=True, help="The sandbox scenario to start with.")
def demo(host: str, port: int, sandbox_port: int, scenario: str) -> None:
    """Run everything on this machine: SQLite, embedded Redis, the Meta sandbox, the worker."""
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
    assert stack.sandbox is not None
    click.echo(f"Resellio Social Connect demo: {stack.url}/")
    click.echo(f"Meta sandbox (scenarios, published posts): {stack.sandbox.url}/")
    click.echo(f"Outcome events as Resellio receives them: {stack.url}/_demo/webhooks")
    click.echo("Signed in as the demo seller on first visit. Ctrl-C stops everything.")
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        click.echo("stopping…")
        stack.stop()
    click.echo("stopped")
