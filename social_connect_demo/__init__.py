"""The demo: the whole system in one process on embedded defaults (DESIGN §9).

``social-connect demo`` (``make demo``) and the end-to-end tests use it. It wires the
Meta sandbox, an embedded Redis and the ``/demo/login`` page around the production
packages, which know nothing of it: it is not installed in the production image.
"""

from __future__ import annotations

from social_connect_demo.stack import DemoStack, embedded_redis

__all__ = ["DemoStack", "embedded_redis"]
