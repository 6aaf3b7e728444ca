"""``python -m meta_sandbox [--host 127.0.0.1] [--port 8001] [--quiet]``.

Reads ``SANDBOX_*`` settings from the environment; refuses to start unless ``APP_ENV`` is
``demo`` or ``test``.
"""

from __future__ import annotations

import argparse
import sys

from werkzeug.serving import run_simple

from . import SandboxRefused, config_from_env, create_app, require_demo_or_test
from .server import MaskingRequestHandler, QuietRequestHandler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m meta_sandbox", description="Run the Meta sandbox (a local stand-in for Meta)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--quiet", action="store_true", help="log failed requests only (benchmarks)")
    args = parser.parse_args(argv)
    try:
        require_demo_or_test()
        app = create_app(config_from_env())
    except (SandboxRefused, ValueError) as exc:
        print(f"meta_sandbox: refusing to start: {exc}", file=sys.stderr)
        return 2
    print(
        f"Meta sandbox on http://{args.host}:{args.port}/ (scenario {app.config['SANDBOX_SCENARIO']})", file=sys.stderr
    )
    handler = QuietRequestHandler if args.quiet else MaskingRequestHandler
    run_simple(args.host, args.port, app, threaded=True, request_handler=handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
