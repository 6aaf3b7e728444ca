"""Publishing endpoints: Page photos and feed, IG containers, media_publish
and the content publishing limit."""

from __future__ import annotations

from flask import Blueprint, request

from . import errors
from .auth import authenticate, params
from .calls import get_world, run_graph
from .checks import fetchable, public_url, publisher_page, truthy
from .content import album_post, attached_media, container_endpoint, create_container
from .errors import GraphError, missing_param, unsupported
from .fields import parse_fields, select
from .objects import can_see_page, media_obj, parse_time, post_obj, require_ig
from .routing import graph_route, paginate
from .state import BAD_FILE_MARKER, QUOTA_WINDOW_SECONDS, World

bp = Blueprint("publishing", __name__)


# --- Facebook Page -----------------------------------------------------------


@graph_route(bp, "/<node:page_id>/photos", methods=["POST"])
def photos(page_id: str):
    world = get_world()
    return run_graph("photos", lambda: _photos(world, page_id), subject=page_id)


def _photos(world: World, page_id: str) -> dict:
    page = publisher_page(world, page_id)
    p = params()
    url = p.get("url")
    if not url:
        raise errors.fb_media_invalid(missing=True)
    if not fetchable(url, https_only=False) or BAD_FILE_MARKER in str(url).lower():
        raise errors.fb_media_invalid()
    post = world.add_fb_post(
        page.id,
        message=p.get("caption") or p.get("message"),
        url=str(url),
        photo=True,
        published=truthy(p.get("published")),
    )
    out = {"id": post.photo_id}
    if post.post_id:
        out["post_id"] = post.post_id
    return out


@graph_route(bp, "/<node:page_id>/feed", methods=["GET", "POST"])
def feed(page_id: str):
    world = get_world()
    if request.method == "POST":
        return run_graph("feed_post", lambda: _feed_post(world, page_id), subject=page_id)
    return run_graph("feed_get", lambda: _feed_get(world, page_id), subject=page_id)


def _feed_post(world: World, page_id: str) -> dict:
    page = publisher_page(world, page_id)
    p = params()
    message, link = p.get("message"), p.get("link")
    photos = attached_media()
    if photos is not None:
        return album_post(world, page.id, photos, message)
    if not message and not link:
        raise GraphError("(#100) Missing message or attachment", 100)
    if link and not public_url(link, https_only=False):
        raise GraphError("(#100) The link URL is not properly formatted or not reachable", 100)
    post = world.add_fb_post(page.id, message=message, link=link, photo=False)
    return {"id": post.post_id}


def _feed_get(world: World, page_id: str) -> dict:
    """The Page's feed: its own posts and what visitors wrote on it, recent first."""
    caller = authenticate(world)
    page = world.pages.get(page_id)
    if page is None or not can_see_page(world, caller, page):
        raise unsupported(page_id)
    if "pages_read_engagement" not in world.scopes_of(caller.user_id):
        raise errors.app_permission("pages_read_engagement")
    return _list_posts(world, caller, page_id, "feed", lambda post: True)


@graph_route(bp, "/<node:page_id>/published_posts", methods=["GET"])
def published_posts(page_id: str):
    world = get_world()
    return run_graph("published_posts", lambda: _published_posts(world, page_id), subject=page_id)


def _published_posts(world: World, page_id: str) -> dict:
    """Only the Page's own posts (never visitors'), recent first; a Page token is required."""
    caller = authenticate(world)
    page = world.pages.get(page_id)
    if page is None or not can_see_page(world, caller, page):
        raise unsupported(page_id)
    if caller.kind != "page":
        raise errors.page_token_required()
    if "pages_read_engagement" not in world.scopes_of(caller.user_id):
        raise errors.app_permission("pages_read_engagement")
    return _list_posts(world, caller, page_id, "published_posts", lambda post: post.visitor is None)


def _list_posts(world: World, caller, page_id: str, edge: str, keep) -> dict:
    p = params()
    raw_fields = p.get("fields")
    fields = parse_fields(raw_fields)
    since = parse_time(p["since"]) if p.get("since") else None
    until = parse_time(p["until"]) if p.get("until") else None
    posts = [
        post
        for post in reversed(world.posts)
        if post.page_id == page_id
        and post.post_id
        and not post.is_story  # stories are listed by /{page-id}/stories
        and keep(post)
        and (since is None or int(post.created_at) >= int(since))
        and (until is None or int(post.created_at) <= int(until))
    ]
    chunk, paging = paginate(
        posts,
        lambda post: post.post_id,
        path=f"/{page_id}/{edge}",
        query={"access_token": caller.raw, "fields": raw_fields, "since": p.get("since"), "until": p.get("until")},
    )
    data = [select(post_obj(world, post), fields, ("created_time", "message", "id"), "Post") for post in chunk]
    return {"data": data, "paging": paging} if paging else {"data": data}


# --- Instagram ---------------------------------------------------------------


@graph_route(bp, "/<node:ig_id>/media", methods=["GET", "POST"])
def media(ig_id: str):
    world = get_world()
    if request.method == "POST":
        return run_graph(container_endpoint(), lambda: create_container(world, ig_id), subject=ig_id)
    return run_graph("media_list", lambda: _list_media(world, ig_id), subject=ig_id)


def _list_media(world: World, ig_id: str) -> dict:
    caller = authenticate(world)
    require_ig(world, caller, ig_id, "instagram_basic")
    raw_fields = params().get("fields")
    fields = parse_fields(raw_fields)
    items = sorted((m for m in world.media.values() if m.ig_user_id == ig_id), key=lambda m: m.media_id, reverse=True)
    chunk, paging = paginate(
        items, lambda m: m.media_id, path=f"/{ig_id}/media", query={"access_token": caller.raw, "fields": raw_fields}
    )
    data = [select(media_obj(world, m), fields, ("id",), "IGMedia") for m in chunk]
    return {"data": data, "paging": paging} if paging else {"data": data}


@graph_route(bp, "/<node:ig_id>/media_publish", methods=["POST"])
def media_publish(ig_id: str):
    world = get_world()
    return run_graph("media_publish", lambda: _media_publish(world, ig_id), subject=ig_id)


def _media_publish(world: World, ig_id: str) -> dict:
    caller = authenticate(world)
    require_ig(world, caller, ig_id, "instagram_content_publish", "post")
    creation_id = params().get("creation_id")
    if not creation_id:
        raise missing_param("creation_id")
    container = world.containers.get(str(creation_id))
    if container is None or container.ig_user_id != ig_id:
        raise errors.container_missing(str(creation_id))
    if container.is_carousel_item:
        raise errors.invalid_param(
            f"The container {container.id} is a carousel item: publish the CAROUSEL container that holds it"
        )
    status = world.container_status(container)
    if status == "PUBLISHED":
        raise errors.container_already_published(container.id)
    if status == "IN_PROGRESS":
        raise errors.container_not_ready()
    if status == "ERROR":
        raise errors.container_failed()
    if status == "EXPIRED":
        raise errors.container_expired()
    quota = world.quota(ig_id)
    if len(quota.times) >= quota.total:
        raise errors.publishing_limit()
    return {"id": world.publish_container(container).media_id}


@graph_route(bp, "/<node:ig_id>/content_publishing_limit", methods=["GET"])
def publishing_limit(ig_id: str):
    world = get_world()
    return run_graph("publishing_limit", lambda: _publishing_limit(world, ig_id), subject=ig_id)


def _publishing_limit(world: World, ig_id: str) -> dict:
    caller = authenticate(world)
    require_ig(world, caller, ig_id, "instagram_basic")
    quota = world.quota(ig_id)
    config = {"quota_duration": QUOTA_WINDOW_SECONDS}
    if quota.report_total:
        config["quota_total"] = quota.total
    obj = {
        "quota_usage": len(quota.times),
        "config": lambda sub: select(
            config, sub, tuple(config), "ContentPublishingLimitConfig", allowed={"quota_total", "quota_duration"}
        ),
    }
    fields = parse_fields(params().get("fields"))
    return {"data": [select(obj, fields, ("quota_usage", "config"), "ContentPublishingLimit")]}
