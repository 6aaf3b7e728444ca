"""``python -m publish_worker``: the RQ publish worker with its scheduler and periodic duties."""

from __future__ import annotations

import sys

from shared.log import configure_logging, register_secret
from shared.settings import SettingsError, load_settings


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"publish worker not started: {exc}", file=sys.stderr)
        return 2
    configure_logging()
    for secret in (
        settings.meta_app_secret,
        settings.session_secret,
        settings.scheduler_api_token,
        settings.webhook_secret,
    ):
        register_secret(secret)
    from publish_worker.runner import run_forever

    run_forever(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
