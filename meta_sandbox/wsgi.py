"""The sandbox as a WSGI application for a production-grade server, where connections are
kept alive as Meta keeps them (Werkzeug's development server closes each one after a
single request). The benchmark serves it so, in one process (the sandbox's state is in memory):

    gunicorn -w 1 -k gthread --threads 512 --keep-alive 75 --no-control-socket \\
        --bind 127.0.0.1:8001 'meta_sandbox.wsgi:app_from_env()'

gunicorn drops request headers with an underscore, as Werkzeug does; the upload host's
``file_url`` (Facebook Reels, video stories) then needs ``--header-map dangerous`` (loopback only).
The benchmark posts photos and images, which do not use it.

Reads ``SANDBOX_*`` settings from the environment; refuses unless ``APP_ENV`` is ``demo`` or ``test``.
"""

from __future__ import annotations

from flask import Flask

from . import config_from_env, create_app, require_demo_or_test


def app_from_env() -> Flask:
    require_demo_or_test()
    return create_app(config_from_env())
