"""URL converters and a route helper: every Graph route answers both
``/{version}/...`` (``v\\d+.\\d+``) and the bare path."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

from flask import Blueprint, current_app, g, request
from werkzeug.routing import BaseConverter

from .errors import GraphError


class VersionConverter(BaseConverter):
    """``v25.0`` and friends."""

    regex = r"v\d+\.\d+"


class NodeConverter(BaseConverter):
    """A Graph node id: ``me``, a numeric id, or a ``page_post`` id."""

    regex = r"me|\d+(?:_\d+)?"


def install(app) -> None:
    """Register the converters and strip the version from view arguments."""
    app.url_map.converters["version"] = VersionConverter
    app.url_map.converters["node"] = NodeConverter

    @app.url_value_preprocessor
    def _pop_version(endpoint, values):
        if values is not None:
            g.graph_version = values.pop("version", None)


def graph_route(bp: Blueprint, rule: str, **options):
    """Like ``bp.route`` but also under ``/<version>``."""

    def decorator(view):
        bp.add_url_rule(rule, view_func=view, **options)
        bp.add_url_rule("/<version:version>" + rule, view_func=view, **options)
        return view

    return decorator


def version() -> str:
    return g.get("graph_version") or current_app.config["SANDBOX_DEFAULT_VERSION"]


def absolute_url(path: str, query: dict) -> str:
    """An absolute sandbox URL with the version, like Meta's ``paging.next``."""
    base = current_app.config.get("SANDBOX_PUBLIC_URL") or request.host_url
    return f"{base.rstrip('/')}/{version()}{path}?{urlencode(query)}"


def cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def uncursor(value: str) -> str:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise GraphError("(#100) Invalid cursor", 100) from None


def paginate(items: list, key, *, path: str, query: dict, limit_default: int = 25):
    """Cursor paging over ``items`` (already ordered). Returns ``(slice, paging)``.

    ``query`` holds the request's parameters to repeat in ``next``/``previous``
    (``access_token``, ``fields``, ...). ``key(item)`` is the cursor value.
    """
    from .auth import params

    p = params()
    try:
        limit = int(p.get("limit") or limit_default)
    except ValueError:
        raise GraphError("(#100) Param limit must be a number", 100) from None
    limit = max(1, min(limit, 100))
    keys = [key(item) for item in items]
    start = 0
    if p.get("after"):
        after = uncursor(str(p["after"]))
        start = keys.index(after) + 1 if after in keys else len(keys)
    elif p.get("before"):
        before = uncursor(str(p["before"]))
        end = keys.index(before) if before in keys else 0
        start = max(0, end - limit)
    chunk = items[start : start + limit]
    paging: dict = {}
    if chunk:
        paging["cursors"] = {"before": cursor(key(chunk[0])), "after": cursor(key(chunk[-1]))}
        base = {k: v for k, v in query.items() if v is not None}
        base["limit"] = limit
        if start + limit < len(items):
            paging["next"] = absolute_url(path, {**base, "after": paging["cursors"]["after"]})
        if start > 0:
            paging["previous"] = absolute_url(path, {**base, "before": paging["cursors"]["before"]})
    return chunk, paging
