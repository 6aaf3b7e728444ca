"""Content v2 (DESIGN §13.2): Instagram carousels, reels and stories; Facebook
multi-photo posts, videos, Reels and stories (three-phase upload through the upload
host), and comments on both networks.

The connect service and the worker do not call these yet (groundwork for issue 9);
they are here so the publishing run that uses them can be built and tested against
Meta's shapes and Meta's refusals.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, current_app, request

from . import errors
from .auth import authenticate, extract_token, params, proof_for, same
from .calls import get_world, run_graph
from .checks import fetchable, publisher_page, truthy
from .errors import GraphError, UploadError, invalid_param, missing_param, unsupported
from .fields import parse_fields, select
from .objects import can_see_page, comment_obj, meta_time, parse_time, require_ig, require_publisher
from .routing import graph_route, paginate, version
from .state import BAD_FILE_MARKER, Container, FbPost, FbVideo, World

bp = Blueprint("content", __name__)

MEDIA_TYPES = ("IMAGE", "VIDEO", "CAROUSEL", "REELS", "STORIES")
REELS_ONLY = ("share_to_feed", "cover_url")
ALT_TEXT_MAX = 1000
CAROUSEL_MIN, CAROUSEL_MAX = 2, 10


def bad_file(url: str | None) -> bool:
    """True for a URL carrying the ``bad_file`` marker: a file Meta cannot process."""
    return bool(url) and BAD_FILE_MARKER in str(url).lower()


# --- Instagram containers ------------------------------------------------------


def container_endpoint() -> str:
    """The call name (for counters and faults) of a ``POST /{ig-user-id}/media``."""
    p = params()
    if truthy(p.get("is_carousel_item"), False):
        return "media_child"
    kind = str(p.get("media_type") or "").strip().upper()
    return {"CAROUSEL": "media_carousel", "REELS": "media_reels", "STORIES": "media_stories"}.get(kind, "media")


def _children() -> list[str]:
    """``children`` as Meta takes it: ``id1,id2``, a JSON array, or repeated fields."""
    for source in (request.form, request.args):
        many = source.getlist("children") or source.getlist("children[]")
        if len(many) > 1:
            return [str(c).strip() for c in many if str(c).strip()]
    raw: Any = params().get("children")
    if raw is None:
        raw = params().get("children[]")
    if isinstance(raw, list):
        return [str(c).strip() for c in raw if str(c).strip()]
    text = str(raw or "").strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            raise invalid_param("Param children must be a list of container IDs") from None
        if not isinstance(parsed, list):
            raise invalid_param("Param children must be a list of container IDs")
        return [str(c).strip() for c in parsed if str(c).strip()]
    return [c.strip() for c in text.split(",") if c.strip()]


def _check_url(url: Any) -> str:
    if not fetchable(url, https_only=True):
        raise errors.ig_media_invalid()
    return str(url)


def _check_child(world: World, ig_id: str, child_id: str) -> Container:
    child = world.containers.get(child_id)
    if child is None or child.ig_user_id != ig_id:
        raise errors.media_not_found(child_id)
    if not child.is_carousel_item:
        raise invalid_param(f"The container {child_id} was not created as a carousel item (is_carousel_item=true)")
    status = world.container_status(child)
    if status == "PUBLISHED" or child.carousel_id:
        raise errors.container_already_published(child_id)
    if status == "IN_PROGRESS":
        raise errors.container_not_ready()
    if status == "ERROR":
        raise errors.container_failed()
    if status == "EXPIRED":
        raise errors.container_expired()
    return child


def create_container(world: World, ig_id: str) -> dict:
    """``POST /{ig-user-id}/media``: an image, a carousel item (image or VIDEO), a
    ``CAROUSEL`` of 2–10 finished items, ``REELS`` or ``STORIES``."""
    caller = authenticate(world)
    page = require_ig(world, caller, ig_id, "instagram_content_publish", "post")
    p = params()
    media_type = str(p.get("media_type") or "").strip().upper()
    image_url, video_url = p.get("image_url") or None, p.get("video_url") or None
    caption = str(p.get("caption") or "")
    alt_text = p.get("alt_text")
    item = truthy(p.get("is_carousel_item"), False)
    if media_type and media_type not in MEDIA_TYPES:
        raise errors.media_type_unknown(media_type)
    if image_url and video_url:
        raise invalid_param("Only one of image_url and video_url can be given")
    if media_type != "REELS":
        for name in REELS_ONLY:
            if p.get(name) not in (None, ""):
                raise invalid_param(f"The parameter {name} is only supported for media_type REELS")
    if alt_text is not None:
        if media_type in ("CAROUSEL", "REELS") or video_url:
            raise invalid_param("The parameter alt_text is only supported on image containers")
        if len(str(alt_text)) > ALT_TEXT_MAX:
            raise invalid_param(f"The parameter alt_text must be at most {ALT_TEXT_MAX} characters")
    if item and media_type in ("CAROUSEL", "REELS", "STORIES"):
        raise invalid_param(f"A carousel item must be an IMAGE or a VIDEO, not {media_type}")

    if media_type == "CAROUSEL":
        if image_url or video_url:
            raise invalid_param("A CAROUSEL container takes children, not image_url or video_url")
        children = _children()
        if not children:
            raise missing_param("children")
        if not CAROUSEL_MIN <= len(children) <= CAROUSEL_MAX:
            raise errors.carousel_size(len(children))
        if len(set(children)) != len(children):
            raise invalid_param("Param children lists the same container more than once")
        for child_id in children:
            _check_child(world, ig_id, child_id)
        container = world.add_container(page, "", caption, media_type="CAROUSEL", children=children)
    elif media_type == "REELS":
        if not video_url:
            if image_url:
                raise invalid_param("media_type REELS takes a video_url, not an image_url")
            raise missing_param("video_url")
        cover = p.get("cover_url") or None
        container = world.add_container(
            page,
            "",
            caption,
            video=True,
            media_type="REELS",
            video_url=_check_url(video_url),
            share_to_feed=truthy(p.get("share_to_feed"), True),
            cover_url=_check_url(cover) if cover else None,
        )
    elif media_type == "STORIES":
        if p.get("caption") not in (None, ""):
            raise invalid_param("The parameter caption is not supported for media_type STORIES")
        if not image_url and not video_url:
            raise missing_param("image_url or video_url")
        container = world.add_container(
            page,
            _check_url(image_url) if image_url else "",
            "",
            video=bool(video_url),
            media_type="STORIES",
            video_url=_check_url(video_url) if video_url else None,
            alt_text=alt_text,
        )
    elif video_url:
        if not item:
            raise invalid_param(
                "The media type VIDEO is no longer supported for feed posts: use media_type=REELS "
                "(or VIDEO with is_carousel_item=true)"
            )
        if media_type != "VIDEO":
            raise invalid_param("A video carousel item needs media_type=VIDEO")
        container = world.add_container(
            page, "", caption, video=True, media_type="VIDEO", video_url=_check_url(video_url), is_carousel_item=True
        )
    else:
        if media_type == "VIDEO":
            raise missing_param("video_url")
        if not image_url:
            raise missing_param("image_url")
        container = world.add_container(
            page, _check_url(image_url), caption, media_type="IMAGE", is_carousel_item=item, alt_text=alt_text
        )
    if any(bad_file(world.containers[c].url) for c in container.children) or bad_file(container.url):
        container.bad_file = True
        code = 2207026 if container.video_url else 2207005
        container.bad_file_text = f"Error: Media upload has failed with error code {code}"
    return {"id": container.id}


# --- Facebook: several photos in one post ------------------------------------


def attached_media() -> list[str] | None:
    """The ``media_fbid`` values of ``attached_media`` (a JSON array, or the
    ``attached_media[N]`` fields Meta's samples send); ``None`` when absent."""
    p = params()
    raw: Any = p.get("attached_media")
    entries: list[Any]
    if raw is not None:
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise invalid_param("Param attached_media must be a JSON array of objects") from None
        if not isinstance(raw, list):
            raise invalid_param("Param attached_media must be a JSON array of objects")
        entries = raw
    else:
        indexed = []
        for key, value in p.items():
            if key.startswith("attached_media[") and key.endswith("]") and key[15:-1].isdigit():
                indexed.append((int(key[15:-1]), value))
        if not indexed:
            return None
        entries = [value for _, value in sorted(indexed)]
    ids = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            try:
                entry = json.loads(entry)
            except ValueError:
                entry = None
        if not isinstance(entry, dict) or not entry.get("media_fbid"):
            raise invalid_param(f"Param attached_media[{i}] must be an object with a media_fbid")
        ids.append(str(entry["media_fbid"]))
    return ids


def _unpublished_photo(world: World, page_id: str, photo_id: str, param: str) -> FbPost:
    photo = world.find_photo(photo_id)
    if photo is None or photo.page_id != page_id or photo.published or photo.attached_to:
        raise invalid_param(
            f"Param {param} has an invalid media_fbid {photo_id}: it must be an unpublished photo of this Page "
            "not used in another post"
        )
    return photo


def album_post(world: World, page_id: str, ids: list[str], message: str | None) -> dict:
    """``POST /{page-id}/feed`` with ``attached_media``: one post holding the photos."""
    if not ids:
        raise invalid_param("Param attached_media must list at least one photo")
    if len(set(ids)) != len(ids):
        raise invalid_param("Param attached_media lists the same photo more than once")
    photos = [_unpublished_photo(world, page_id, pid, f"attached_media[{i}]") for i, pid in enumerate(ids)]
    post = world.add_fb_post(page_id, message=message, url=photos[0].url, photo=False, kind="album")
    post.attached = ids
    for photo in photos:
        photo.attached_to = post.post_id
    return {"id": post.post_id}


# --- Facebook: videos, reels and video stories -------------------------------


@graph_route(bp, "/<node:page_id>/videos", methods=["GET", "POST"])
def videos(page_id: str):
    """The graph-video host's ``POST /{page-id}/videos`` (served on the sandbox's own port), and
    the Graph host's ``GET /{page-id}/videos``: the Page's published videos."""
    world = get_world()
    if request.method == "GET":
        return run_graph("videos_list", lambda: _list_videos(world, page_id), subject=page_id)
    return run_graph("videos", lambda: _videos(world, page_id), subject=page_id)


def _videos(world: World, page_id: str) -> dict:
    page = publisher_page(world, page_id)
    p = params()
    file_url = p.get("file_url")
    if not file_url:
        raise invalid_param("A video file is required: give file_url")
    if not fetchable(file_url, https_only=False):
        raise GraphError("(#389) Unable to fetch video file from URL.", 389)
    if bad_file(file_url):
        raise errors.video_file_failed()
    video = world.new_video(page.id, "video")
    video.file_url = str(file_url)
    world.publish_video(video, p.get("description"))
    return {"id": video.id}


def upload_url(video_id: str) -> str:
    cfg = current_app.config
    base = cfg.get("SANDBOX_UPLOAD_URL") or cfg.get("SANDBOX_PUBLIC_URL") or request.host_url
    return f"{base.rstrip('/')}/video-upload/{version()}/{video_id}"


def _phase_endpoint(edge: str) -> str:
    phase = str(params().get("upload_phase") or "").lower()
    return f"{edge}_{phase}" if phase in ("start", "finish") else edge


@graph_route(bp, "/<node:page_id>/video_reels", methods=["GET", "POST"])
def video_reels(page_id: str):
    world = get_world()
    if request.method == "GET":
        return run_graph("video_reels_list", lambda: _list_reels(world, page_id), subject=page_id)
    endpoint = _phase_endpoint("video_reels")
    return run_graph(endpoint, lambda: _video_phase(world, page_id, "reel"), subject=page_id)


@graph_route(bp, "/<node:page_id>/video_stories", methods=["POST"])
def video_stories(page_id: str):
    world = get_world()
    endpoint = _phase_endpoint("video_stories")
    return run_graph(endpoint, lambda: _video_phase(world, page_id, "video_story"), subject=page_id)


def _video_phase(world: World, page_id: str, kind: str) -> dict:
    """``upload_phase=start`` → ``video_id`` and ``upload_url``; ``finish`` once the
    file was uploaded to the upload host (``video_state=PUBLISHED`` for a reel)."""
    page = publisher_page(world, page_id)
    p = params()
    phase = str(p.get("upload_phase") or "").strip().lower()
    if not phase:
        raise missing_param("upload_phase")
    if phase == "start":
        started = world.new_video(page.id, kind)
        return {"video_id": started.id, "upload_url": upload_url(started.id)}
    if phase != "finish":
        raise invalid_param("Param upload_phase must be one of {START, FINISH} (the sandbox uploads by file_url)")
    video_id = str(p.get("video_id") or "")
    if not video_id:
        raise missing_param("video_id")
    video = world.videos.get(video_id)
    if video is None or video.page_id != page.id or video.kind != kind:
        raise invalid_param(f"Invalid video_id {video_id}: no {kind.replace('_', ' ')} upload session of this Page")
    if video.phase == "published":
        raise invalid_param(
            f"The video {video_id} has already been published",
            user_title="Video already published",
            user_msg="This upload session has already been finished.",
        )
    if video.phase == "started":
        raise errors.video_upload_missing()
    if bad_file(video.file_url):
        raise errors.video_file_failed()
    if kind == "video_story":
        post = world.publish_video(video, None)
        return {"success": True, "post_id": post.post_id}
    state = str(p.get("video_state") or "").strip().upper()
    if not state:
        raise missing_param("video_state")
    if state == "DRAFT":
        video.phase, video.description = "draft", p.get("description")
        return {"success": True}
    if state != "PUBLISHED":
        raise invalid_param("Param video_state must be PUBLISHED or DRAFT in the sandbox (SCHEDULED is not emulated)")
    if len(world.reels_of(page.id)) >= world.reels_total:
        raise errors.reels_limit(world.reels_total)
    world.publish_video(video, p.get("description"))
    return {"success": True}


def _list_reels(world: World, page_id: str) -> dict:
    caller = authenticate(world)
    page = world.pages.get(page_id)
    if page is None or not can_see_page(world, caller, page):
        raise unsupported(page_id)
    reels = sorted(
        (v for v in world.videos.values() if v.page_id == page_id and v.kind == "reel" and v.phase != "started"),
        key=lambda v: v.id,
        reverse=True,
    )
    chunk, paging = paginate(reels, lambda v: v.id, path=f"/{page_id}/video_reels", query={"access_token": caller.raw})
    data = [video_obj(v) for v in chunk]
    return {"data": data, "paging": paging} if paging else {"data": data}


def _list_videos(world: World, page_id: str) -> dict:
    """The Page's published videos and reels (not stories), recent first, by video id; ``since``/``until``
    bound ``created_time`` (Unix seconds or ISO-8601) as on ``/published_posts``."""
    caller = authenticate(world)
    page = world.pages.get(page_id)
    if page is None or not can_see_page(world, caller, page):
        raise unsupported(page_id)
    p = params()
    since = parse_time(p["since"]) if p.get("since") else None
    until = parse_time(p["until"]) if p.get("until") else None
    items = sorted(
        (
            v
            for v in world.videos.values()
            if v.page_id == page_id
            and v.kind in ("video", "reel")
            and v.phase == "published"
            and (since is None or int(v.created_at) >= int(since))
            and (until is None or int(v.created_at) <= int(until))
        ),
        key=lambda v: v.id,
        reverse=True,
    )
    raw_fields = p.get("fields")
    chunk, paging = paginate(
        items,
        lambda v: v.id,
        path=f"/{page_id}/videos",
        query={"access_token": caller.raw, "fields": raw_fields, "since": p.get("since"), "until": p.get("until")},
    )
    fields = parse_fields(raw_fields)
    data = [select(video_obj(v), fields, ("updated_time", "description", "id"), "Video") for v in chunk]
    return {"data": data, "paging": paging} if paging else {"data": data}


def video_obj(v: FbVideo) -> dict:
    """A Facebook video as ``GET /{video-id}`` shows it (``status`` like Meta's)."""
    uploaded = v.phase != "started"
    published = v.phase == "published"
    return {
        "id": v.id,
        "description": v.description,
        "created_time": meta_time(v.created_at),
        "updated_time": meta_time(v.published_at or v.created_at),
        "permalink_url": f"/reel/{v.id}" if v.kind == "reel" else f"/{v.page_id}/videos/{v.id}",
        "post_id": v.post_id,
        "status": {
            "video_status": "ready" if published else ("upload_complete" if uploaded else "upload_pending"),
            "uploading_phase": {"status": "complete" if uploaded else "not_started"},
            "processing_phase": {"status": "complete" if uploaded else "not_started"},
            "publishing_phase": {"status": "complete" if published else "not_started"},
        },
    }


def photo_obj(photo: FbPost) -> dict:
    """A Page photo as ``GET /{photo-id}`` shows it; ``published`` false until a post uses it."""
    return {
        "id": photo.photo_id,
        "created_time": meta_time(photo.created_at),
        "name": photo.message,
        "published": photo.published,
        "images": [{"source": photo.url}],
        "page_story_id": photo.post_id or photo.attached_to,
    }


@bp.route("/video-upload/<version:version>/<node:video_id>", methods=["POST"])
def video_upload(video_id: str):
    """The upload host (``rupload.facebook.com``): ``Authorization: OAuth <page token>``
    and a ``file_url`` header; Meta fetches the file from there."""
    world = get_world()
    with world.lock:
        video = world.videos.get(video_id)
        subject = video.page_id if video else None
    return run_graph("video_upload", lambda: _upload(world, video_id), subject=subject)


def _upload(world: World, video_id: str) -> dict:
    raw = extract_token()
    if not raw:
        raise UploadError("No access token was given (Authorization: OAuth <token>).", "AuthError", 401)
    tok = world.tokens.get(raw)
    if tok is None or world.token_problem(tok):
        raise UploadError("Invalid OAuth access token.", "OAuthException", 401)
    proof = params().get("appsecret_proof")
    if proof and not same(str(proof), proof_for(raw, current_app.config["SANDBOX_APP_SECRET"])):
        raise UploadError("Invalid appsecret_proof provided in the API argument", "OAuthException", 401)
    video = world.videos.get(video_id)
    if video is None:
        raise UploadError(f"No upload session {video_id}.", "NotFoundError", 404)
    if tok.kind != "page" or tok.page_id != video.page_id:
        raise UploadError("This token may not upload to this Page's video.", "AuthError", 403)
    if video.phase in ("published", "draft"):
        raise UploadError(f"The upload session {video_id} is already finished.", "ProcessingError")
    file_url = request.headers.get("file_url") or request.headers.get("file-url")
    if not file_url:
        raise UploadError("HeaderValuePredicate: Header file_url is missing", "ParameterValidationError")
    if not fetchable(file_url, https_only=False):
        raise UploadError("The file at file_url could not be fetched.", "ProcessingError", retriable=False)
    video.file_url, video.phase = file_url, "uploaded"
    return {"success": True}


# --- Facebook: stories ---------------------------------------------------------


@graph_route(bp, "/<node:page_id>/photo_stories", methods=["POST"])
def photo_stories(page_id: str):
    world = get_world()
    return run_graph("photo_stories", lambda: _photo_story(world, page_id), subject=page_id)


def _photo_story(world: World, page_id: str) -> dict:
    page = publisher_page(world, page_id)
    photo_id = str(params().get("photo_id") or "")
    if not photo_id:
        raise missing_param("photo_id")
    photo = _unpublished_photo(world, page.id, photo_id, "photo_id")
    story = world.add_fb_post(page.id, message=None, url=photo.url, photo=False, kind="photo_story")
    story.attached = [photo_id]
    photo.attached_to = story.post_id
    return {"success": True, "post_id": story.post_id}


@graph_route(bp, "/<node:page_id>/stories", methods=["GET"])
def stories(page_id: str):
    world = get_world()
    return run_graph("stories", lambda: _list_stories(world, page_id), subject=page_id)


def _list_stories(world: World, page_id: str) -> dict:
    caller = authenticate(world)
    page = world.pages.get(page_id)
    if page is None or not can_see_page(world, caller, page):
        raise unsupported(page_id)
    items = [p for p in reversed(world.posts) if p.page_id == page_id and p.is_story]
    data = [
        {
            "post_id": s.post_id,
            "status": "PUBLISHED",
            "creation_time": str(int(s.created_at)),
            "media_type": "video" if s.kind == "video_story" else "photo",
            "media_id": s.video_id or (s.attached[0] if s.attached else None),
            "url": f"https://www.facebook.com/stories/{page_id}/{s.post_id}",
        }
        for s in items
    ]
    return {"data": data}


# --- comments ------------------------------------------------------------------


@graph_route(bp, "/<node:object_id>/comments", methods=["GET", "POST"])
def comments(object_id: str):
    world = get_world()
    with world.lock:
        media = world.media.get(object_id)
        post = None if media else world.fb_object(object_id)
        subject = media.ig_user_id if media else (post.page_id if post else None)
    network = "ig" if media else "fb"
    if request.method == "POST":
        return run_graph(f"{network}_comment", lambda: _comment(world, object_id), subject=subject)
    return run_graph(f"{network}_comments", lambda: _list_comments(world, object_id), subject=subject)


def _comment(world: World, object_id: str) -> dict:
    """``POST /{ig-media-id}/comments`` or ``/{post-id}/comments`` (``message``)."""
    caller = authenticate(world)
    message = params().get("message")
    strict = bool(world.flags.get("comments_need_scopes"))
    media = world.media.get(object_id)
    if media is not None:
        page = require_ig(world, caller, media.ig_user_id, "instagram_basic", "post")
        if strict and "instagram_manage_comments" not in world.scopes_of(caller.user_id):
            raise errors.app_permission("instagram_manage_comments")
        if media.product_type == "STORY":
            raise invalid_param("Comments cannot be posted on a story")
        if not message:
            raise missing_param("message")
        comment = world.add_comment(media.media_id, "instagram", str(message), page.ig_id or "", page.ig_username or "")
        return {"id": comment.id}
    post = world.fb_object(object_id)
    if post is None or not post.post_id:
        raise unsupported(object_id, "post")
    page = world.pages[post.page_id]
    require_publisher(world, caller, page)
    if strict and "pages_manage_engagement" not in world.scopes_of(caller.user_id):
        raise errors.app_permission("pages_manage_engagement")
    if post.is_story:
        raise invalid_param("Comments cannot be posted on a story")
    if not message:
        raise GraphError("(#100) Missing message or attachment", 100)
    comment = world.add_comment(post.post_id, "facebook", str(message), page.id, page.name)
    return {"id": comment.id}


def _list_comments(world: World, object_id: str) -> dict:
    """The object's comments, oldest first (Meta's chronological order), with their authors."""
    caller = authenticate(world)
    media = world.media.get(object_id)
    defaults: tuple[str, ...]
    if media is not None:
        require_ig(world, caller, media.ig_user_id, "instagram_basic")
        canonical, defaults, node_type = media.media_id, ("timestamp", "text", "id"), "IGComment"
    else:
        post = world.fb_object(object_id)
        if post is None or not post.post_id or not can_see_page(world, caller, world.pages[post.page_id]):
            raise unsupported(object_id)
        canonical, defaults, node_type = post.post_id, ("created_time", "from", "message", "id"), "Comment"
    raw_fields = params().get("fields")
    fields = parse_fields(raw_fields)
    chunk, paging = paginate(
        world.comments_on(canonical),
        lambda c: c.id,
        path=f"/{object_id}/comments",
        query={"access_token": caller.raw, "fields": raw_fields},
    )
    data = [select(comment_obj(c), fields, defaults, node_type) for c in chunk]
    return {"data": data, "paging": paging} if paging else {"data": data}
