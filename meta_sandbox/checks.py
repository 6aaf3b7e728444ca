"""Checks shared by the publishing endpoints: which media URLs Meta could fetch,
Meta's booleans, and who may publish on a Page."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from .auth import authenticate
from .errors import unsupported
from .objects import require_publisher
from .scenarios import PageSpec
from .state import World

BLOCKED_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa")


def public_url(url: str, *, https_only: bool) -> bool:
    """True when Meta could fetch ``url``: http(s) (https for IG), a public host."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return False
    if parts.scheme not in (("https",) if https_only else ("http", "https")):
        return False
    host = (parts.hostname or "").lower().rstrip(".")
    if not host or host == "localhost" or host.endswith(BLOCKED_SUFFIXES):
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "." in host  # a bare intranet name is not reachable from Meta
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_unspecified or ip.is_multicast
    )


def fetchable(url, *, https_only: bool) -> bool:
    """True when Meta could fetch ``url``: a public URL (:func:`public_url`), or one of
    this sandbox's own samples (``/_sandbox/media/...``, http allowed) so the demo works
    offline."""
    from .media import own_media

    return own_media(str(url)) is not None or public_url(url, https_only=https_only)


def truthy(value, default: bool = True) -> bool:
    if value is None:
        return default
    return str(value).strip().lower() not in ("false", "0", "no", "")


def publisher_page(world: World, page_id: str) -> PageSpec:
    """The Page a publishing call targets, if the caller's token may post to it."""
    caller = authenticate(world)
    page = world.pages.get(page_id)
    if page is None:
        raise unsupported(page_id, "post")
    require_publisher(world, caller, page)
    return page
