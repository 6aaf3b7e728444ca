"""One Graph call: count it, apply latency, faults and scenario misbehaviour,
run the handler under the world lock, and add Meta's usage headers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from flask import current_app, jsonify

from . import errors
from .errors import GraphError
from .state import World

IG_CONTAINERS = ("media_child", "media_carousel", "media_reels", "media_stories")
FB_PHASES = ("video_reels_start", "video_reels_finish", "video_stories_start", "video_stories_finish")
PUBLISHING = (
    "photos",
    "feed_post",
    "media",
    "media_publish",
    *IG_CONTAINERS,
    "videos",
    "video_upload",
    *FB_PHASES,
    "photo_stories",
)
IG_ENDPOINTS = ("media", "media_publish", *IG_CONTAINERS)
# A fault on the broader name also hits these (a ``media`` fault hits every kind of container).
BROADER = {
    **{name: ("media",) for name in IG_CONTAINERS},
    **{name: (name.rsplit("_", 1)[0],) for name in FB_PHASES},
}
ENDPOINTS = (
    "access_token",
    "me",
    "accounts",
    "permissions",
    "debug_token",
    "page",
    "photos",
    "feed_post",
    "feed_get",
    "published_posts",
    "media",
    "media_list",
    "container_status",
    "media_publish",
    "publishing_limit",
    "ig_user",
    "ig_media",
    "post",
    "node",
    *IG_CONTAINERS,
    "ig_comment",
    "ig_comments",
    "videos",
    "videos_list",
    "video_reels",
    *FB_PHASES[:2],
    "video_reels_list",
    "video_upload",
    "video_stories",
    *FB_PHASES[2:],
    "photo_stories",
    "stories",
    "fb_comment",
    "fb_comments",
    "video",
    "photo",
)


def get_world() -> World:
    return current_app.extensions["meta_sandbox"]


def _scenario_fault(world: World, endpoint: str) -> GraphError | None:
    """Throttled (first call of each publishing kind) and flaky (every Nth)."""
    if endpoint not in PUBLISHING:
        return None
    flags = world.flags
    if flags.get("throttle_once") and endpoint not in world.throttled_done:
        world.throttled_done.add(endpoint)
        return errors.ig_throttled() if endpoint in IG_ENDPOINTS else errors.page_throttled()
    every = int(flags.get("flaky_every") or 0)
    if every > 0:
        world.publishing_seq += 1
        if world.publishing_seq % every == 0:
            return errors.transient()
    return None


def _usage_headers(world: World, resp, subject: str | None, throttled: bool) -> None:
    resp.headers["X-App-Usage"] = json.dumps(world.usage_app, separators=(",", ":"))
    if subject:
        kind = "instagram" if subject in world.ig_accounts else "pages"
        usage = dict(world.usage_business)
        regain = world.regain_minutes
        if throttled:
            usage = {k: 100 for k in usage}
            regain = int(world.flags.get("throttle_regain_minutes") or 0)
        resp.headers["X-Business-Use-Case-Usage"] = json.dumps(
            {subject: [{"type": kind, **usage, "estimated_time_to_regain_access": regain}]}, separators=(",", ":")
        )


def run_graph(endpoint: str, handler: Callable[[], dict], subject: str | None = None):
    """Run ``handler`` (called with the world lock held) as Graph call ``endpoint``.

    ``subject`` is the Page or IG account id the call is about (for the
    ``X-Business-Use-Case-Usage`` header).
    """
    world = get_world()
    with world.lock:
        world.count_call(endpoint)
        fault = world.take_fault(endpoint, *BROADER.get(endpoint, ()))
        scenario_error = _scenario_fault(world, endpoint)
        latency = world.latency_ms
        slow_every = int(world.flags.get("flaky_slow_every") or 0)
        if slow_every and world.graph_seq % slow_every == 0:
            latency += int(world.flags.get("flaky_slow_ms") or 0)
    if fault:
        latency += fault.latency_ms
    if latency > 0:
        time.sleep(latency / 1000.0)

    fault_error = None
    if fault and (fault.status is not None or fault.error):
        fault_error = GraphError.from_spec(fault.error, fault.status)

    if scenario_error is not None:
        resp = scenario_error.response()
    elif fault_error is not None and not (fault and fault.after_processing):
        resp = fault_error.response()
    else:
        try:
            with world.lock:
                result = handler()
            resp = jsonify(result)
        except GraphError as exc:
            resp = exc.response()
        if fault_error is not None:  # after_processing: the work is done, the client is told otherwise
            resp = fault_error.response()

    throttled = scenario_error is not None and scenario_error.code in (32, 80002)
    with world.lock:
        _usage_headers(world, resp, subject, throttled)
    return resp
