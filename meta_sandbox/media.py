"""Sample media under ``/_sandbox/media/<name>`` (JPEGs of several aspect ratios and a
small MP4), with ``Content-Length``, ``Accept-Ranges`` and ``Range`` (206 with
``Content-Range``), so the demo and the media pre-check work with no outside host."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, jsonify, request, send_from_directory
from flask.typing import ResponseReturnValue

from .samples import JPEGS, MEDIA, STATIC, VIDEO, VIDEO_SECONDS, VIDEO_SIZE

bp = Blueprint("media", __name__)

MEDIA_PREFIX = "/_sandbox/media/"


def media_url(name: str) -> str:
    """The absolute URL of a sample (``SANDBOX_PUBLIC_URL`` or the request's host)."""
    base = current_app.config.get("SANDBOX_PUBLIC_URL") or request.host_url
    return f"{base.rstrip('/')}{MEDIA_PREFIX}{name}"


def own_media(url: str) -> str | None:
    """The sample a URL names when it points at this sandbox (its host or
    ``SANDBOX_PUBLIC_URL``) and the sample exists; ``None`` otherwise."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return None
    hosts = {request.host.lower()}
    public = current_app.config.get("SANDBOX_PUBLIC_URL")
    if public:
        hosts.add(urlsplit(public).netloc.lower())
    if parts.scheme not in ("http", "https") or parts.netloc.lower() not in hosts:
        return None
    if not parts.path.startswith(MEDIA_PREFIX):
        return None
    name = parts.path[len(MEDIA_PREFIX) :]
    return name if name in MEDIA else None


@bp.get("/_sandbox/media")
def index() -> ResponseReturnValue:
    """The samples with their URLs, sizes and kinds."""
    items = [
        {"name": name, "url": media_url(name), "type": "image", "width": w, "height": h, "ratio": label}
        for name, (w, h, _colour, label) in JPEGS.items()
    ]
    items.append(
        {
            "name": VIDEO,
            "url": media_url(VIDEO),
            "type": "video",
            "width": VIDEO_SIZE[0],
            "height": VIDEO_SIZE[1],
            "seconds": VIDEO_SECONDS,
        }
    )
    return jsonify({"media": items})


@bp.get("/_sandbox/media/<name>")
def sample(name: str) -> ResponseReturnValue:
    """One sample; Werkzeug answers ``Range`` with 206 and ``Content-Range``."""
    if name not in MEDIA:
        abort(404)
    mimetype = "video/mp4" if name == VIDEO else "image/jpeg"
    resp = send_from_directory(STATIC, name, mimetype=mimetype, conditional=True, max_age=3600)
    resp.headers["Accept-Ranges"] = "bytes"
    return resp
