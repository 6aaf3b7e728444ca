"""A requests-mock stand-in for the Facebook Page's content-v2 calls (DESIGN §13.2).

It keeps a small model of the Page (photos, posts, videos and their phases, stories,
comments), answers the shapes the Meta sandbox documents, and refuses what Meta
refuses where a test relies on it (an attached photo used twice, a finish before the
upload, a comment field the comment node lacks). ``queue(name, *answers)`` overrides the
next calls of one endpoint; an answer with ``"carried_out": True`` does the work first
(an ambiguous failure that went through), one with ``"carried_out_later": True`` leaves
the work for :meth:`FacebookMock.meta_finishes` (a slow Meta still at it when our read
timeout gave up), ``PASS`` lets one call through as usual.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

from shared.db import utcnow
from tests.factories import PAGE_ID, PAGE_TOKEN

BASE = "https://graph.meta.test/v25.0"
VIDEO_URL = "https://graph-video.meta.test"
UPLOAD_URL = "https://rupload.meta.test"

PASS = {"pass": True}
COMMENT_FIELDS = {"id", "message", "from", "created_time", "like_count"}


@dataclass
class Post:
    id: str
    message: str
    kind: str
    created_time: str
    photos: list[str] = field(default_factory=list)
    video_id: str | None = None
    comments: list[dict] = field(default_factory=list)


@dataclass
class Video:
    id: str
    kind: str  # video | reel | video_story
    phase: str = "started"  # started -> uploaded -> published
    file_url: str | None = None
    post_id: str | None = None


class FacebookMock:
    def __init__(self, mocker):
        self.m = mocker
        self.overrides: dict[str, deque] = defaultdict(deque)
        self.late: deque = deque()  # (handler, request): work Meta is still doing after the answer was lost
        self.counter = 0
        self.photos: dict[str, dict] = {}  # photo id -> {"url", "used_by"}
        self.posts: list[Post] = []  # the Page's posts and stories, oldest first
        self.videos: dict[str, Video] = {}
        self.reels_limit = 30
        self.reels_used = 0
        pid = re.escape(PAGE_ID)
        upload = re.compile(rf"^{re.escape(UPLOAD_URL)}/video-upload/v25\.0/(\d+)(\?.*)?$")
        routes = {
            "photos": ("POST", f"{BASE}/{PAGE_ID}/photos", self._photos),
            "feed": ("POST", f"{BASE}/{PAGE_ID}/feed", self._feed),
            "published_posts": ("GET", f"{BASE}/{PAGE_ID}/published_posts", self._published_posts),
            "videos": ("POST", f"{VIDEO_URL}/v25.0/{PAGE_ID}/videos", self._videos),
            "video_list": ("GET", f"{BASE}/{PAGE_ID}/videos", self._video_list),
            "video_reels": ("POST", f"{BASE}/{PAGE_ID}/video_reels", self._phase("reel")),
            "video_stories": ("POST", f"{BASE}/{PAGE_ID}/video_stories", self._phase("video_story")),
            "photo_stories": ("POST", f"{BASE}/{PAGE_ID}/photo_stories", self._photo_story),
            "upload": ("POST", upload, self._upload),
            "node": ("GET", re.compile(rf"^{re.escape(BASE)}/(\d+)(\?.*)?$"), self._node),
            "comment": ("POST", re.compile(rf"^{re.escape(BASE)}/({pid}_)?\d+/comments$"), self._comment),
            "comments": ("GET", re.compile(rf"^{re.escape(BASE)}/({pid}_)?\d+/comments(\?.*)?$"), self._comments),
        }
        for name, (method, url, handler) in routes.items():
            mocker.register_uri(method, url, json=self._wrap(name, handler))

    # -- test controls --

    def queue(self, name: str, *answers: dict) -> None:
        self.overrides[name].extend(answers)

    def calls(self, name: str, **form) -> list:
        """The requests of one endpoint (name as in ``queue``), optionally with these form values."""
        found = [r for r in self.m.request_history if _route_name(r) == name]
        return [r for r in found if all(_form(r).get(k) == v for k, v in form.items())]

    def meta_finishes(self) -> None:
        """Meta carries out the requests it was still working on when their answers were lost."""
        while self.late:
            handler, request = self.late.popleft()
            handler(request, SimpleNamespace(status_code=200, headers={}))

    def post_of(self, remote_id: str) -> Post:
        return next(p for p in self.posts if remote_id in (p.id, p.video_id))

    def visitor_comment(self, post_id: str, message: str) -> None:
        self.post_of(post_id).comments.append(
            {"id": f"{self._next()}", "message": message, "from": {"id": "100090000000999", "name": "Pengunjung"}}
        )

    # -- plumbing --

    def _wrap(self, name, handler):
        def respond(request, context):
            if self.overrides[name]:
                answer = self.overrides[name].popleft()
                if answer.get("pass"):
                    return handler(request, context)  # this call answers as usual
                if "exc" in answer:
                    if answer.get("carried_out"):
                        handler(request, context)
                    elif answer.get("carried_out_later"):
                        self.late.append((handler, request))
                    raise answer["exc"]
                if answer.get("carried_out"):
                    handler(request, context)
                context.status_code = answer.get("status_code", 200)
                context.headers.update(answer.get("headers", {}))
                return answer.get("json", {})
            return handler(request, context)

        return respond

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    def _new_post(self, message: str, kind: str, **extra) -> Post:
        created = utcnow().strftime("%Y-%m-%dT%H:%M:%S+0000")
        post = Post(f"{PAGE_ID}_{9000 + self._next()}", message, kind, created, **extra)
        self.posts.append(post)
        return post

    # -- handlers --

    def _photos(self, request, context):
        form = _form(request)
        photo_id = str(7000 + self._next())
        self.photos[photo_id] = {"url": form["url"], "used_by": None}
        if form.get("published") == "false":
            return {"id": photo_id}
        post = self._new_post(form.get("caption", ""), "photo", photos=[photo_id])
        self.photos[photo_id]["used_by"] = post.id
        return {"id": photo_id, "post_id": post.id}

    def _feed(self, request, context):
        form = _form(request)
        attached = [json.loads(v)["media_fbid"] for k, v in sorted(form.items()) if k.startswith("attached_media[")]
        for photo_id in attached:
            photo = self.photos.get(photo_id)
            if photo is None or photo["used_by"]:
                context.status_code = 400
                return _error(100, f"(#100) Param attached_media has an invalid media_fbid {photo_id}")
        post = self._new_post(form.get("message", ""), "album" if attached else "post", photos=attached)
        for photo_id in attached:
            self.photos[photo_id]["used_by"] = post.id
        return {"id": post.id}

    def _published_posts(self, request, context):
        fields = set(_query(request).get("fields", "id,message,created_time").split(","))
        data = []
        for post in reversed(self.posts):
            if post.kind.endswith("story"):
                continue
            item = {"id": post.id, "message": post.message, "created_time": post.created_time}
            if "attachments" in fields and post.kind == "album":
                subs = [{"target": {"id": p}, "type": "photo"} for p in post.photos]
                item["attachments"] = {"data": [{"type": "album", "subattachments": {"data": subs}}]}
            data.append(item)
        return {"data": data}

    def _videos(self, request, context):
        form = _form(request)
        video = Video(str(6000 + self._next()), "video", "published", form.get("file_url"))
        video.post_id = self._new_post(form.get("description", ""), "video", video_id=video.id).id
        self.videos[video.id] = video
        return {"id": video.id}

    def _video_list(self, request, context):
        """The Page's published videos and reels by video id (not the post's id), recent first."""
        videos = [p for p in reversed(self.posts) if p.video_id and p.kind in ("video", "reel")]
        return {"data": [{"id": p.video_id, "description": p.message, "created_time": p.created_time} for p in videos]}

    def _phase(self, kind: str):
        def handler(request, context):
            form = _form(request)
            if form.get("upload_phase") == "start":
                video = Video(str(6000 + self._next()), kind)
                self.videos[video.id] = video
                return {"video_id": video.id, "upload_url": f"{UPLOAD_URL}/video-upload/v25.0/{video.id}"}
            video = self.videos[form["video_id"]]
            if video.phase == "published":
                context.status_code = 400
                return _error(100, "(#100) The video has already been published", title="Video already published")
            if video.phase == "started":
                context.status_code = 400
                return _error(6000, "There was a problem uploading your video file.", subcode=1363130)
            if kind == "reel":
                assert form.get("video_state") == "PUBLISHED"
                if self.reels_used >= self.reels_limit:
                    context.status_code = 400
                    return _error(9, "(#9) The Page has published 30 reels through the API in the last 24 hours")
                self.reels_used += 1
            else:
                assert "video_state" not in form
            post = self._new_post(form.get("description", ""), kind, video_id=video.id)
            video.phase, video.post_id = "published", post.id
            return {"success": True, "post_id": post.id} if kind == "video_story" else {"success": True}

        return handler

    def _upload(self, request, context):
        video = self.videos.get(request.path.rsplit("/", 1)[-1])
        if request.headers.get("Authorization") != f"OAuth {PAGE_TOKEN}":
            context.status_code = 401
            return {"debug_info": {"retriable": False, "type": "AuthError", "message": "Invalid OAuth access token."}}
        if video is None:
            context.status_code = 404
            return {"debug_info": {"retriable": False, "type": "NotFoundError", "message": "No upload session."}}
        video.file_url, video.phase = request.headers["file_url"], "uploaded"
        return {"success": True}

    def _photo_story(self, request, context):
        photo_id = _form(request)["photo_id"]
        photo = self.photos[photo_id]
        if photo["used_by"]:
            context.status_code = 400
            return _error(100, "(#100) Param photo_id must be an unpublished photo not used in another post")
        story = self._new_post("", "photo_story", photos=[photo_id])
        photo["used_by"] = story.id
        return {"success": True, "post_id": story.id}

    def _node(self, request, context):
        node_id = request.path.rsplit("/", 1)[-1]
        if node_id in self.videos:
            video = self.videos[node_id]
            published = video.phase == "published"
            return {
                "id": video.id,
                "post_id": video.post_id,
                "status": {
                    "video_status": "ready" if published else "upload_complete",
                    "publishing_phase": {"status": "complete" if published else "not_started"},
                },
            }
        if node_id in self.photos:
            photo = self.photos[node_id]
            return {"id": node_id, "published": False, "page_story_id": photo["used_by"]}
        context.status_code = 400
        return _error(100, "Unsupported get request.", subcode=33)

    def _comment(self, request, context):
        post = self.post_of(request.path.split("/")[-2])
        comment = {"id": f"{self._next()}", "message": _form(request)["message"], "from": {"id": PAGE_ID}}
        post.comments.append(comment)
        return {"id": comment["id"]}

    def _comments(self, request, context):
        fields = _query(request).get("fields", "id,message,from,created_time")
        unknown = sorted(
            name for name in (part.split("{")[0] for part in _top_level(fields)) if name not in COMMENT_FIELDS
        )
        if unknown:
            context.status_code = 400
            return _error(100, f"(#100) Tried accessing nonexisting field ({unknown[0]}) on node type (Comment)")
        return {"data": self.post_of(request.path.split("/")[-2]).comments}


def _top_level(fields: str) -> list[str]:
    """``id,from{id,name},message`` -> ``["id", "from{id,name}", "message"]``."""
    parts, depth, current = [], 0, ""
    for char in fields:
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += {"{": 1, "}": -1}.get(char, 0)
        current += char
    return [p for p in [*parts, current] if p]


def _route_name(request) -> str | None:
    url, method = request.url, request.method
    path = urlsplit(url).path
    if url.startswith(UPLOAD_URL):
        return "upload"
    if url.startswith(VIDEO_URL):
        return "videos"
    tail = path.removeprefix("/v25.0/")
    if tail.endswith("/comments"):
        return "comment" if method == "POST" else "comments"
    if "/" not in tail:
        return "node"
    edge = tail.split("/", 1)[1]
    if edge == "videos" and method == "GET":
        return "video_list"
    return {"feed": "feed"}.get(edge, edge)


def _error(code: int, message: str, *, subcode: int | None = None, title: str | None = None) -> dict:
    error: dict = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbC123"}
    if subcode is not None:
        error["error_subcode"] = subcode
    if title:
        error["error_user_title"] = title
    return {"error": error}


def _form(request) -> dict:
    return {k: v[0] for k, v in parse_qs(request.text or "").items()}


def _query(request) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}


def hours_ago(hours: float):
    return utcnow() - timedelta(hours=hours)
