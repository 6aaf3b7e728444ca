"""How sandbox objects look on the Graph (field dictionaries) and who may see them."""

from __future__ import annotations

import time
from datetime import datetime

from .auth import Caller
from .errors import GraphError, app_permission, pages_permission, unsupported
from .fields import select
from .scenarios import PageSpec
from .state import Comment, Container, FbPost, IgMedia, World

PUBLISH_TASKS = {"CREATE_CONTENT", "MANAGE"}
PAGE_SCOPES = {
    "pages_show_list",
    "pages_read_engagement",
    "pages_manage_posts",
    "pages_manage_metadata",
    "pages_read_user_content",
    "pages_manage_engagement",
}
IG_SCOPES = {"instagram_basic", "instagram_content_publish", "instagram_manage_comments", "instagram_manage_insights"}
CONTAINER_STATUS_TEXT = {
    "FINISHED": "Finished: Media has been uploaded and it is ready to be published.",
    "IN_PROGRESS": "In Progress: Media is still being processed.",
    "ERROR": "Error: Create media fail (2207032).",
    "EXPIRED": "Expired: The container was not published within 24 hours.",
    "PUBLISHED": "Published: Media has been successfully published.",
}


def meta_time(ts: float) -> str:
    """``2026-11-26T08:00:00+0000``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(ts))


def parse_time(value) -> float:
    """A ``since``/``until`` value: Unix seconds or ISO-8601; anything else is refused (100)."""
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise GraphError(f"(#100) Invalid time value: {text}", 100) from None


# --- visibility ------------------------------------------------------------


def can_see_page(world: World, caller: Caller, page: PageSpec) -> bool:
    if caller.kind == "page":
        return caller.page_id == page.id
    if caller.kind == "user":
        return page in world.granted_pages(caller.user_id)
    return False


def require_publisher(world: World, caller: Caller, page: PageSpec) -> None:
    """Publishing on a Page needs that Page's token, the scopes and an admin task."""
    if caller.kind != "page" or caller.page_id != page.id:
        raise pages_permission()
    scopes = world.scopes_of(caller.user_id)
    if "pages_manage_posts" not in scopes or "pages_read_engagement" not in scopes:
        raise pages_permission()
    if not PUBLISH_TASKS & set(page.tasks):
        raise pages_permission()


def require_ig(world: World, caller: Caller, ig_id: str, scope: str, method: str = "get") -> PageSpec:
    """IG calls take the linked Page's token (or a user token granted that Page)."""
    page = world.ig_accounts.get(ig_id)
    if page is None or not can_see_page(world, caller, page):
        raise unsupported(ig_id, method)
    if scope not in world.scopes_of(caller.user_id):
        raise app_permission(scope)
    if scope == "instagram_content_publish" and not PUBLISH_TASKS & set(page.tasks):
        raise app_permission(scope)
    return page


# --- representations -----------------------------------------------------


def ig_obj(world: World, page: PageSpec) -> dict:
    return {
        "id": page.ig_id,
        "username": page.ig_username,
        "name": page.name,
        "media_count": sum(1 for m in world.media.values() if m.ig_user_id == page.ig_id),
        "followers_count": 1200,
    }


def page_obj(world: World, caller: Caller, page: PageSpec) -> dict:
    def access_token(_sub):
        if caller.kind == "page":
            return caller.raw
        if caller.token is None:  # the app token is given no page token
            return None
        return world.page_token_for(caller.token, page.id).value

    def instagram(sub):
        if not page.ig_id:
            return None
        return select(ig_obj(world, page), sub, ("id",), "IGUser")

    return {
        "id": page.id,
        "name": page.name,
        "category": page.category,
        "tasks": list(page.tasks),
        "access_token": access_token,
        "instagram_business_account": instagram,
        "connected_instagram_account": instagram,
        "link": f"https://www.facebook.com/{page.id}",
    }


def user_obj(world: World) -> dict:
    first, _, last = world.user_name.partition(" ")
    return {"id": world.user_id, "name": world.user_name, "first_name": first, "last_name": last}


def post_obj(world: World, post: FbPost) -> dict:
    page = world.pages.get(post.page_id)
    author = post.visitor or (post.page_id, page.name if page else post.page_id)
    photos = [world.find_photo(pid) for pid in post.attached]

    def attachments(sub):
        if not photos:
            return None
        media = [
            {"media": {"image": {"src": p.url}}, "target": {"id": p.photo_id}, "type": "photo"} for p in photos if p
        ]
        return {"data": [{"type": "album", "subattachments": {"data": media}}]}

    return {
        "id": post.post_id,
        "message": post.message,
        "from": {"id": author[0], "name": author[1]},
        "created_time": meta_time(post.created_at),
        "permalink_url": f"https://www.facebook.com/{post.post_id}",
        "full_picture": post.url,
        "attachments": attachments,
    }


def container_obj(world: World, c: Container) -> dict:
    status = world.container_status(c)
    text = c.status_text if c.status_text and status == c.status_override else CONTAINER_STATUS_TEXT[status]
    if status == "ERROR" and c.bad_file and not c.status_override and c.bad_file_text:
        text = c.bad_file_text
    return {"id": c.id, "status_code": status, "status": text}


def media_obj(world: World, m: IgMedia) -> dict:
    page = world.ig_accounts.get(m.ig_user_id)
    path = {"REELS": "reel", "STORY": "stories/sandbox"}.get(m.product_type, "p")

    def children(sub):
        if not m.children:
            return None
        items = [{"id": c["id"], "media_type": c["media_type"], "media_url": c["media_url"]} for c in m.children]
        return {"data": [select(c, sub, ("id",), "IGMedia") for c in items]}

    return {
        "id": m.media_id,
        "caption": m.caption,
        "media_type": m.media_type,
        "media_product_type": m.product_type,
        "media_url": m.video_url or m.image_url or None,
        "thumbnail_url": m.cover_url,
        "alt_text": m.alt_text,
        "timestamp": meta_time(m.created_at),
        "permalink": f"https://www.instagram.com/{path}/sandbox{m.media_id[-6:]}/",
        "username": page.ig_username if page else None,
        "comments_count": sum(1 for c in world.comments if c.object_id == m.media_id),
        "children": children,
    }


def comment_obj(c: Comment) -> dict:
    """A comment as Meta shows it: Instagram (``text``, ``timestamp``, ``username``) or
    Facebook (``message``, ``created_time``, ``from{id,name}``)."""
    if c.network == "instagram":
        return {
            "id": c.id,
            "text": c.message,
            "timestamp": meta_time(c.created_at),
            "username": c.from_name,
            "from": {"id": c.from_id, "username": c.from_name},
            "like_count": 0,
            "hidden": False,
        }
    return {
        "id": c.id,
        "message": c.message,
        "created_time": meta_time(c.created_at),
        "from": {"id": c.from_id, "name": c.from_name},
        "like_count": 0,
    }


def granular_scopes(world: World, user_id: str, scopes: list[str]) -> list[dict]:
    pages = world.granted_pages(user_id)
    out = []
    for scope in scopes:
        if scope in PAGE_SCOPES:
            out.append({"scope": scope, "target_ids": [p.id for p in pages]})
        elif scope in IG_SCOPES:
            out.append({"scope": scope, "target_ids": [p.ig_id for p in pages if p.ig_id]})
        else:
            out.append({"scope": scope})
    return out
