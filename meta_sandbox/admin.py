"""Admin API for tests (``/_sandbox/...``, no auth), the published page and
the index page."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from flask import Blueprint, current_app, jsonify, render_template, request

from .calls import ENDPOINTS, get_world
from .objects import meta_time
from .scenarios import SCENARIOS
from .state import DEFAULT_USAGE, ContainerOutcome, Fault, Quota, default_flags

bp = Blueprint("admin", __name__)

CONTAINER_STATUSES = ("IN_PROGRESS", "FINISHED", "ERROR", "EXPIRED")


class AdminError(Exception):
    """A bad admin request: answered ``400 {"error": message}``."""


@bp.errorhandler(AdminError)
def _admin_error(exc):
    return jsonify({"error": str(exc)}), 400


def _body() -> dict:
    if not request.data and not request.form:
        return {}
    if request.form:
        return dict(request.form.items())
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise AdminError("body must be a JSON object")
    return body


def _int(body: dict, key: str, default=None, *, minimum=0):
    value = body.get(key, default)
    if value is None:
        return None
    try:
        value = int(value)
    except (TypeError, ValueError):
        raise AdminError(f"{key} must be an integer") from None
    if value < minimum:
        raise AdminError(f"{key} must be >= {minimum}")
    return value


def _scenario_name(name) -> str:
    if name not in SCENARIOS:
        raise AdminError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}")
    return name


# --- world -------------------------------------------------------------------


@bp.post("/_sandbox/reset")
def reset():
    """Forget everything; optionally switch scenario (default: the current one)."""
    world = get_world()
    body = _body()
    with world.lock:
        name = _scenario_name(body.get("scenario") or world.scenario.name)
        world.reset(name)
    return jsonify({"reset": True, "scenario": name})


@bp.post("/_sandbox/scenario")
def set_scenario():
    """Switch scenario. Same as a reset with that scenario."""
    world = get_world()
    name = _scenario_name(_body().get("name"))
    with world.lock:
        world.reset(name)
    return jsonify({"scenario": name})


@bp.get("/_sandbox/scenarios")
def scenarios():
    world = get_world()
    with world.lock:
        current = world.scenario.name
    return jsonify(
        {"current": current, "scenarios": [{"name": s.name, "description": s.description} for s in SCENARIOS.values()]}
    )


@bp.get("/_sandbox/state")
def state():
    world = get_world()
    with world.lock:
        return jsonify(world.snapshot())


@bp.post("/_sandbox/flags")
def flags():
    """Change scenario flags (``page_tokens_expired``, ``throttle_once``,
    ``throttle_regain_minutes``, ``flaky_every``, ``flaky_slow_every``, ``flaky_slow_ms``)."""
    world = get_world()
    body = _body()
    known = default_flags()
    unknown = set(body) - set(known)
    if unknown:
        raise AdminError(f"unknown flags: {', '.join(sorted(unknown))}")
    with world.lock:
        for key, value in body.items():
            world.flags[key] = bool(value) if isinstance(known[key], bool) else _int(body, key)
            if key == "throttle_once" and value:
                world.throttled_done.clear()
        return jsonify({"flags": dict(world.flags)})


# --- tokens ------------------------------------------------------------------


@bp.post("/_sandbox/tokens/expire")
def expire_tokens():
    """Expire tokens (190/463) by ``token``, ``user_id``, ``page_id``, ``kind``
    or ``all``; ``page_tokens_expired: true|false`` toggles the scenario flag
    (every page token, including future ones, reported expired)."""
    world = get_world()
    body = _body()
    selectors = {k: body.get(k) for k in ("token", "user_id", "page_id", "kind")}
    if body.get("kind") not in (None, "user", "page"):
        raise AdminError("kind must be 'user' or 'page'")
    toggle = "page_tokens_expired" in body
    if not any(selectors.values()) and not body.get("all") and not toggle:
        raise AdminError("give token, user_id, page_id, kind, all or page_tokens_expired")
    with world.lock:
        n = 0
        if any(selectors.values()) or body.get("all"):
            n = world.expire_tokens(**selectors, all=bool(body.get("all")))
        if toggle:
            world.flags["page_tokens_expired"] = bool(body["page_tokens_expired"])
        return jsonify({"expired": n, "page_tokens_expired": world.flags["page_tokens_expired"]})


def _signed_request(user_id: str, extra: dict | None = None) -> str:
    payload = {"algorithm": "HMAC-SHA256", "issued_at": int(time.time()), "user_id": user_id, **(extra or {})}
    encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    sig = hmac.new(current_app.config["SANDBOX_APP_SECRET"].encode(), encoded.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(sig).decode().rstrip("=") + "." + encoded


@bp.post("/_sandbox/signed-request")
def signed_request():
    """A Meta ``signed_request`` for ``user_id`` (default: the sandbox user)."""
    world = get_world()
    body = _body()
    with world.lock:
        user_id = str(body.get("user_id") or world.user_id)
    extra = body.get("extra") if isinstance(body.get("extra"), dict) else None
    return jsonify({"signed_request": _signed_request(user_id, extra)})


@bp.post("/_sandbox/deauthorize")
def deauthorize():
    """The user removes the app in their Facebook settings: the grant is
    revoked and, when ``callback_url`` is given, Meta's deauthorize callback
    is POSTed there (form field ``signed_request``)."""
    world = get_world()
    body = _body()
    with world.lock:
        user_id = str(body.get("user_id") or world.user_id)
        world.revoke(user_id, via="user removed the app (admin deauthorize)")
    signed = _signed_request(user_id)
    out: dict = {"revoked": True, "user_id": user_id, "signed_request": signed}
    if body.get("callback_url"):
        import requests

        try:
            resp = requests.post(body["callback_url"], data={"signed_request": signed}, timeout=5)
            out["callback"] = {"status": resp.status_code}
        except requests.RequestException as exc:
            out["callback"] = {"error": type(exc).__name__}
    return jsonify(out)


# --- faults, latency, usage, quota, containers ---------------------------------


@bp.post("/_sandbox/faults")
def add_fault():
    """Queue a fault for the next ``times`` calls of ``endpoint`` (or ``*``)."""
    body = _body()
    endpoint = body.get("endpoint")
    if endpoint != "*" and endpoint not in ENDPOINTS:
        raise AdminError(f"endpoint must be '*' or one of: {', '.join(ENDPOINTS)}")
    status = _int(body, "status", minimum=100)
    error = body.get("error")
    if error is not None and not isinstance(error, dict):
        raise AdminError("error must be an object")
    latency = _int(body, "latency_ms", 0)
    if status is None and not error and not latency:
        raise AdminError("a fault needs a status, an error or latency_ms")
    fault = Fault(
        endpoint, status, error, latency, _int(body, "times", 1, minimum=1), bool(body.get("after_processing", False))
    )
    world = get_world()
    with world.lock:
        world.faults.append(fault)
        return jsonify({"faults": [f.describe() for f in world.faults]}), 201


@bp.get("/_sandbox/faults")
def list_faults():
    world = get_world()
    with world.lock:
        return jsonify({"faults": [f.describe() for f in world.faults]})


@bp.delete("/_sandbox/faults")
def clear_faults():
    world = get_world()
    with world.lock:
        world.faults.clear()
    return jsonify({"faults": []})


@bp.post("/_sandbox/latency")
def latency():
    """Global latency added to every Graph call."""
    ms = _int(_body(), "ms", 0)
    world = get_world()
    with world.lock:
        world.latency_ms = ms
    return jsonify({"latency_ms": ms})


def _usage_value(value, key: str) -> dict:
    if isinstance(value, dict):
        return {k: _int(value, k, DEFAULT_USAGE[k]) for k in DEFAULT_USAGE}
    pct = _int({key: value}, key)
    return {k: pct for k in DEFAULT_USAGE}


@bp.post("/_sandbox/usage")
def usage():
    """Percentages reported in X-App-Usage (``app``) and
    X-Business-Use-Case-Usage (``business``): an int for all three figures or
    ``{"call_count", "total_cputime", "total_time"}``; plus
    ``estimated_time_to_regain_access`` (minutes)."""
    body = _body()
    world = get_world()
    with world.lock:
        if "app" in body:
            world.usage_app = _usage_value(body["app"], "app")
        if "business" in body:
            world.usage_business = _usage_value(body["business"], "business")
        if "estimated_time_to_regain_access" in body:
            world.regain_minutes = _int(body, "estimated_time_to_regain_access")
        return jsonify(
            {
                "app": world.usage_app,
                "business": world.usage_business,
                "estimated_time_to_regain_access": world.regain_minutes,
            }
        )


@bp.post("/_sandbox/quota")
def quota():
    """Set an IG account's publishing quota (all accounts when ``ig_user_id`` is absent).
    ``report_total: false`` leaves ``config.quota_total`` out of content_publishing_limit."""
    body = _body()
    world = get_world()
    with world.lock:
        ig_ids = [body["ig_user_id"]] if body.get("ig_user_id") else list(world.ig_accounts)
        for ig in ig_ids:
            if ig not in world.ig_accounts:
                raise AdminError(f"unknown ig_user_id {ig!r}")
        out = {}
        for ig in ig_ids:
            q = world.quota(ig)
            total = _int(body, "total", q.total)
            used = _int(body, "used", len(q.times))
            now = time.time()
            world.quotas[ig] = Quota(total, [now] * used, report_total=bool(body.get("report_total", True)))
            out[ig] = {"used": used, "total": total, "report_total": world.quotas[ig].report_total}
        return jsonify({"quotas": out})


def _status_text(body: dict) -> str | None:
    text = body.get("status")
    if text is not None and not isinstance(text, str):
        raise AdminError("status must be a string")
    return text


@bp.post("/_sandbox/container-outcomes")
def container_outcomes():
    """The next ``times`` (1) new containers come out ``ERROR`` or ``EXPIRED``, with
    ``status`` as Meta's status text when given."""
    body = _body()
    status = body.get("status_code")
    if status not in ("ERROR", "EXPIRED"):
        raise AdminError("status_code must be ERROR or EXPIRED")
    outcome = ContainerOutcome(status, _status_text(body), _int(body, "times", 1, minimum=1))
    world = get_world()
    with world.lock:
        world.container_outcomes.append(outcome)
        return jsonify({"container_outcomes": [o.describe() for o in world.container_outcomes]}), 201


@bp.post("/_sandbox/containers/<container_id>")
def container_status(container_id: str):
    """Force a container's ``status_code`` (``IN_PROGRESS``, ``FINISHED``,
    ``ERROR``, ``EXPIRED``), and optionally its ``status`` text."""
    body = _body()
    status = body.get("status_code")
    if status not in CONTAINER_STATUSES:
        raise AdminError(f"status_code must be one of {', '.join(CONTAINER_STATUSES)}")
    world = get_world()
    with world.lock:
        c = world.containers.get(container_id)
        if c is None:
            return jsonify({"error": "unknown container"}), 404
        c.status_override = None if status == "FINISHED" else status
        c.status_text = _status_text(body)
        c.ready_at = min(c.ready_at, time.time()) if status == "FINISHED" else c.ready_at
        return jsonify({"id": c.id, "status_code": world.container_status(c)})


@bp.post("/_sandbox/pages/<page_id>/visitor-posts")
def visitor_post(page_id: str):
    """A visitor writes ``message`` on the Page (``from_name``, default "Pengunjung"): it
    shows in the Page's ``/feed`` but not in ``/published_posts`` nor in what was published."""
    body = _body()
    message = body.get("message")
    if not isinstance(message, str) or not message:
        raise AdminError("message must be a non-empty string")
    world = get_world()
    with world.lock:
        if page_id not in world.pages:
            return jsonify({"error": "unknown page"}), 404
        post = world.add_visitor_post(
            page_id, message, str(body.get("from_id") or "100090000000999"), str(body.get("from_name") or "Pengunjung")
        )
        return jsonify({"id": post.post_id, "page_id": page_id, "message": message}), 201


@bp.post("/_sandbox/delays")
def delays():
    """How long new containers stay ``IN_PROGRESS``: ``image_s`` (default
    ``SANDBOX_CONTAINER_DELAY``) and ``video_s`` (videos, reels, video stories;
    default ``SANDBOX_VIDEO_DELAY``). Applies to containers made from now on."""
    body = _body()
    world = get_world()
    values = {}
    for key in ("image_s", "video_s"):
        if key in body:
            try:
                values[key] = float(body[key])
            except (TypeError, ValueError):
                raise AdminError(f"{key} must be a number of seconds") from None
            if values[key] < 0:
                raise AdminError(f"{key} must be >= 0")
    with world.lock:
        world.image_delay = values.get("image_s", world.image_delay)
        world.video_delay = values.get("video_s", world.video_delay)
        return jsonify({"image_s": world.image_delay, "video_s": world.video_delay})


@bp.post("/_sandbox/reels-quota")
def reels_quota():
    """Facebook Reels published in the last 24 h: ``used`` for ``page_id`` (every Page
    when absent) and the ``total`` allowed (30, Meta's figure, for every Page)."""
    body = _body()
    world = get_world()
    with world.lock:
        page_ids = [body["page_id"]] if body.get("page_id") else list(world.pages)
        for page_id in page_ids:
            if page_id not in world.pages:
                raise AdminError(f"unknown page_id {page_id!r}")
        world.reels_total = _int(body, "total", world.reels_total, minimum=0)
        now = time.time()
        out = {}
        for page_id in page_ids:
            used = _int(body, "used", len(world.reels_of(page_id)))
            world.reels_used[page_id] = [now] * used
            out[page_id] = {"used": used, "total": world.reels_total}
        return jsonify({"reels": out})


@bp.post("/_sandbox/comments/<object_id>")
def visitor_comment(object_id: str):
    """Someone else comments on a published post or IG media (``message``, ``from_name``,
    ``from_id``): it is listed by ``GET /{id}/comments`` but is not the app's."""
    body = _body()
    message = body.get("message")
    if not isinstance(message, str) or not message:
        raise AdminError("message must be a non-empty string")
    world = get_world()
    with world.lock:
        media = world.media.get(object_id)
        post = None if media else world.fb_object(object_id)
        if media is not None:
            network, canonical = "instagram", media.media_id
        elif post is not None and post.post_id:
            network, canonical = "facebook", post.post_id
        else:
            return jsonify({"error": "unknown published object"}), 404
        name = str(body.get("from_name") or ("pengunjung_toko" if media else "Pengunjung"))
        comment = world.add_comment(
            canonical, network, message, str(body.get("from_id") or "100090000000999"), name, ours=False
        )
        return jsonify({"id": comment.id, "object_id": canonical, "network": network}), 201


# --- what was published ---------------------------------------------------------


def _comments(world, object_id: str) -> list[dict]:
    return [
        {
            "comment_id": c.id,
            "message": c.message,
            "from": c.from_name,
            "ours": c.ours,
            "created_time": meta_time(c.created_at),
        }
        for c in world.comments_on(object_id)
    ]


def _published(world) -> dict:
    """What the app published (visitors' posts on a Page are not the app's): posts,
    photos, albums with their photos, videos, reels and stories, each with its comments."""
    fb = []
    for p in world.posts:
        if not p.post_id or p.visitor is not None:
            continue
        photos = [world.find_photo(pid) for pid in p.attached]
        fb.append(
            {
                "page_id": p.page_id,
                "post_id": p.post_id,
                "photo_id": p.photo_id,
                "message": p.message,
                "url": p.url,
                "link": p.link,
                "created_time": meta_time(p.created_at),
                "kind": p.kind,
                "photos": [{"photo_id": ph.photo_id, "url": ph.url} for ph in photos if ph],
                "video_id": p.video_id,
                "comments": _comments(world, p.post_id),
            }
        )
    ig = [
        {
            "ig_user_id": m.ig_user_id,
            "media_id": m.media_id,
            "container_id": m.container_id,
            "caption": m.caption,
            "image_url": m.image_url or None,
            "created_time": meta_time(m.created_at),
            "media_type": m.media_type,
            "media_product_type": m.product_type,
            "video_url": m.video_url,
            "alt_text": m.alt_text,
            "share_to_feed": m.share_to_feed,
            "cover_url": m.cover_url,
            "children": [dict(c) for c in m.children],
            "comments": _comments(world, m.media_id),
        }
        for m in world.media.values()
    ]
    return {"facebook": fb, "instagram": ig}


@bp.get("/_sandbox/published.json")
def published_json():
    world = get_world()
    with world.lock:
        return jsonify(_published(world))


@bp.get("/_sandbox/published")
def published_html():
    world = get_world()
    with world.lock:
        data = _published(world)
        pages = list(world.pages.values())
        scenario = world.scenario.name
    fb_groups = [(p, [x for x in data["facebook"] if x["page_id"] == p.id]) for p in pages]
    ig_groups = [(p, [x for x in data["instagram"] if x["ig_user_id"] == p.ig_id]) for p in pages if p.ig_id]
    return render_template(
        "published.html",
        scenario=scenario,
        fb_groups=[g for g in fb_groups if g[1]],
        ig_groups=[g for g in ig_groups if g[1]],
    )


@bp.get("/")
def index():
    world = get_world()
    with world.lock:
        scenario = world.scenario
        counts = {
            "facebook": sum(1 for p in world.posts if p.post_id and p.visitor is None),
            "instagram": len(world.media),
        }
    return render_template("index.html", scenario=scenario, scenarios=SCENARIOS.values(), counts=counts)


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask for it on the consent page; nothing to show."""
    return "", 204
