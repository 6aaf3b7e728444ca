"""Graph endpoints about people and objects: ``/me``, ``/{id}``, accounts,
permissions and ``debug_token``."""

from __future__ import annotations

from flask import Blueprint, current_app, request

from .auth import Caller, authenticate, is_app_token, params
from .calls import get_world, run_graph
from .content import photo_obj, video_obj
from .errors import GraphError, missing_param, no_token, nonexisting_field, token_error, unsupported
from .fields import parse_fields, select
from .objects import (
    can_see_page,
    container_obj,
    granular_scopes,
    ig_obj,
    media_obj,
    page_obj,
    post_obj,
    require_ig,
    user_obj,
)
from .routing import graph_route, paginate
from .state import World

bp = Blueprint("graph", __name__)

NODE_ENDPOINTS = {
    "user": "me",
    "page": "page",
    "container": "container_status",
    "ig_user": "ig_user",
    "ig_media": "ig_media",
    "post": "post",
    "video": "video",
    "photo": "photo",
}
ACCOUNT_DEFAULT_FIELDS = ("access_token", "category", "name", "id", "tasks")


def _user_for(world: World, caller: Caller, node_id: str) -> str:
    """The user a ``/me/...`` or ``/{user-id}/...`` edge is about."""
    if caller.kind == "page":
        raise nonexisting_field("accounts", "Page")
    if caller.kind == "app":
        if node_id == "me":
            raise no_token(me=True)
        if node_id != world.user_id:
            raise unsupported(node_id)
        return node_id
    user_id = caller.user_id
    if user_id is None or node_id not in ("me", user_id):
        raise unsupported(node_id)
    return user_id


# --- /me and /{id} ----------------------------------------------------------


@graph_route(bp, "/<node:node_id>", methods=["GET"])
def get_node(node_id: str):
    world = get_world()
    with world.lock:
        kind = "user" if node_id == "me" else world.kind_of(node_id)
        subject = None
        if kind in ("page", "ig_user"):
            subject = node_id
        elif kind == "container":
            subject = world.containers[node_id].ig_user_id
        elif kind == "video":
            subject = world.videos[node_id].page_id
    endpoint = NODE_ENDPOINTS.get(kind, "node") if kind else "node"
    return run_graph(endpoint, lambda: _read_node(world, node_id), subject)


def _read_node(world: World, node_id: str) -> dict:
    caller = authenticate(world, me=node_id == "me")
    fields = parse_fields(params().get("fields"))
    if node_id == "me":
        if caller.token is None:  # the app token
            raise no_token(me=True)
        if caller.kind == "page" and caller.token.page_id is not None:
            return select(page_obj(world, caller, world.pages[caller.token.page_id]), fields, ("name", "id"), "Page")
        node_id = caller.token.user_id
    kind = world.kind_of(node_id)
    if kind == "user" and (caller.kind == "app" or (caller.kind == "user" and caller.user_id == node_id)):
        return select(user_obj(world), fields, ("name", "id"), "User")
    if kind == "page":
        page = world.pages[node_id]
        if can_see_page(world, caller, page):
            return select(page_obj(world, caller, page), fields, ("name", "id"), "Page")
    if kind == "ig_user":
        page = require_ig(world, caller, node_id, "instagram_basic")
        return select(ig_obj(world, page), fields, ("id",), "IGUser")
    if kind == "container":
        c = world.containers[node_id]
        require_ig(world, caller, c.ig_user_id, "instagram_basic")
        return select(container_obj(world, c), fields, ("id",), "ShadowIGMediaBuilder")
    if kind == "ig_media":
        m = world.media[node_id]
        require_ig(world, caller, m.ig_user_id, "instagram_basic")
        return select(media_obj(world, m), fields, ("id",), "IGMedia")
    if kind == "post":
        post = world.find_post(node_id)
        if post is not None and can_see_page(world, caller, world.pages[post.page_id]):
            return select(post_obj(world, post), fields, ("created_time", "message", "id"), "Post")
    if kind == "video":
        video = world.videos[node_id]
        if can_see_page(world, caller, world.pages[video.page_id]):
            return select(video_obj(video), fields, ("updated_time", "description", "id"), "Video")
    if kind == "photo":
        photo = world.find_photo(node_id)
        if photo is not None and can_see_page(world, caller, world.pages[photo.page_id]):
            return select(photo_obj(photo), fields, ("created_time", "id"), "Photo")
    raise unsupported(node_id)


# --- accounts ----------------------------------------------------------------


@graph_route(bp, "/<node:node_id>/accounts", methods=["GET"])
def accounts(node_id: str):
    world = get_world()
    return run_graph("accounts", lambda: _accounts(world, node_id))


def _accounts(world: World, node_id: str) -> dict:
    caller = authenticate(world, me=node_id == "me")
    user_id = _user_for(world, caller, node_id)
    if caller.kind == "app":
        raise GraphError("(#100) A user access token is required to list a user's Pages", 100)
    raw_fields = params().get("fields")
    fields = parse_fields(raw_fields)
    pages = world.granted_pages(user_id)
    if "pages_show_list" not in world.scopes_of(user_id):
        pages = []
    chunk, paging = paginate(
        pages, lambda p: p.id, path=f"/{user_id}/accounts", query={"access_token": caller.raw, "fields": raw_fields}
    )
    data = [select(page_obj(world, caller, p), fields, ACCOUNT_DEFAULT_FIELDS, "Page") for p in chunk]
    out = {"data": data}
    if paging:
        out["paging"] = paging
    return out


# --- permissions ---------------------------------------------------------


@graph_route(bp, "/<node:node_id>/permissions", methods=["GET", "DELETE"])
@graph_route(bp, "/<node:node_id>/permissions/<permission>", methods=["GET", "DELETE"])
def permissions(node_id: str, permission: str | None = None):
    world = get_world()
    method = request.method
    return run_graph("permissions", lambda: _permissions(world, node_id, permission, method))


def _permissions(world: World, node_id: str, permission: str | None, method: str) -> dict:
    caller = authenticate(world, me=node_id == "me")
    if caller.kind == "page":
        raise nonexisting_field("permissions", "Page")
    user_id = _user_for(world, caller, node_id)
    grant = world.grants.get(user_id)
    if method == "DELETE":
        if permission is None:
            world.revoke(user_id, via=f"DELETE /permissions ({caller.kind} token)")
        elif grant and permission in grant.granted:
            grant.granted.remove(permission)
            grant.declined.append(permission)
        return {"success": True}
    data = []
    if grant and grant.active:
        data = [{"permission": s, "status": "granted"} for s in grant.granted] + [
            {"permission": s, "status": "declined"} for s in grant.declined
        ]
    if permission is not None:
        data = [d for d in data if d["permission"] == permission]
    return {"data": data}


# --- debug_token -------------------------------------------------------------


@graph_route(bp, "/debug_token", methods=["GET"])
def debug_token():
    world = get_world()
    return run_graph("debug_token", lambda: _debug_token(world))


def _debug_token(world: World) -> dict:
    authenticate(world)
    cfg = current_app.config
    input_token = params().get("input_token")
    if not input_token:
        raise missing_param("input_token")
    base = {"app_id": cfg["SANDBOX_APP_ID"], "application": cfg["SANDBOX_APP_NAME"]}
    if is_app_token(str(input_token)):
        return {"data": {**base, "type": "APP", "is_valid": True}}
    tok = world.tokens.get(str(input_token))
    if tok is None:
        err = token_error(467)
        return {
            "data": {
                "error": {"code": 190, "message": err.message, "subcode": 467},
                "is_valid": False,
                "scopes": [],
                "granular_scopes": [],
            }
        }
    problem = world.token_problem(tok)
    tok.checked = True
    scopes = world.scopes_of(tok.user_id)
    data = {
        **base,
        "type": tok.kind.upper(),
        "data_access_expires_at": int(tok.data_access_expires_at),
        "expires_at": int(tok.expires_at),
        "is_valid": problem is None,
        "issued_at": int(tok.issued_at),
        "scopes": scopes,
        "granular_scopes": granular_scopes(world, tok.user_id, scopes),
        "user_id": tok.user_id,
    }
    if tok.kind == "page":
        data["profile_id"] = tok.page_id
    if problem:
        err = token_error(problem, tok.expires_at, cfg["SANDBOX_APP_ID"])
        data["error"] = {"code": 190, "message": err.message, "subcode": problem}
    return {"data": data}
