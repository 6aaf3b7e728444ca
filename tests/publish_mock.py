"""requests-mock stand-ins for the Graph endpoints the worker calls."""

from __future__ import annotations

import re
from collections import defaultdict, deque

from tests.factories import IG_ID, PAGE_ID

BASE = "https://graph.meta.test/v25.0"


def graph_error(code: int, subcode: int | None = None, status: int = 400, message: str = "error", **extra) -> dict:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbC123", **extra}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"status_code": status, "json": {"error": error}}


class PublishMock:
    """Default answers for every publishing endpoint; ``queue(name, *responses)`` overrides the next calls."""

    def __init__(self, mocker):
        self.m = mocker
        self.overrides: dict[str, deque] = defaultdict(deque)
        self.feed: list[dict] = []  # the Page's own posts, newest last
        self.visitor_posts: list[dict] = []  # what visitors wrote on the Page: in /feed only
        self.ig_media: list[dict] = []  # the account's media as GET /{ig-user-id}/media lists them, newest last
        self.container_text = "Finished: Media has been uploaded and it is ready to be published."
        self.quota_total: int | None = 100
        self.page_size = 25  # /published_posts entries a page
        self.container_status = "FINISHED"
        self.quota_used = 0
        # Each platform numbers its own objects: a post's Facebook and Instagram calls run side by side.
        self.counters = {"facebook": 0, "instagram": 0}
        routes = {
            "photos": ("POST", f"{BASE}/{PAGE_ID}/photos", self._photos),
            "feed_post": ("POST", f"{BASE}/{PAGE_ID}/feed", self._feed_post),
            "feed_get": ("GET", f"{BASE}/{PAGE_ID}/feed", self._feed_get),
            "published_posts": ("GET", f"{BASE}/{PAGE_ID}/published_posts", self._published_posts),
            "limit": ("GET", f"{BASE}/{IG_ID}/content_publishing_limit", self._limit),
            "media": ("POST", f"{BASE}/{IG_ID}/media", self._media),
            "media_publish": ("POST", f"{BASE}/{IG_ID}/media_publish", self._publish),
            "media_list": ("GET", f"{BASE}/{IG_ID}/media", self._media_list),
        }
        for name, (method, url, handler) in routes.items():
            mocker.register_uri(method, url, json=self._wrap(name, handler))
        mocker.get(
            re.compile(rf"^{re.escape(BASE)}/container-\d+(\?.*)?$"), json=self._wrap("container", self._container)
        )

    def queue(self, name: str, *responses: dict) -> None:
        """The next calls to ``name`` get these answers (dicts with status_code/json or exc)."""
        self.overrides[name].extend(responses)

    def _wrap(self, name, handler):
        def respond(request, context):
            if self.overrides[name]:
                answer = self.overrides[name].popleft()
                if "exc" in answer:
                    raise answer["exc"]
                context.status_code = answer.get("status_code", 200)
                context.headers.update(answer.get("headers", {}))
                if answer.get("carried_out"):
                    handler(request, context)
                return answer.get("json", {})
            return handler(request, context)

        return respond

    def _next(self, platform: str = "facebook") -> int:
        self.counters[platform] += 1
        return self.counters[platform]

    def _photos(self, request, context):
        n = self._next()
        self.feed.append(feed_item(f"{PAGE_ID}_{n}", _form(request).get("caption", "")))
        return {"id": str(n), "post_id": f"{PAGE_ID}_{n}"}

    def _feed_post(self, request, context):
        n = self._next()
        self.feed.append(feed_item(f"{PAGE_ID}_{n}", _form(request).get("message", "")))
        return {"id": f"{PAGE_ID}_{n}"}

    def _feed_get(self, request, context):
        return {"data": sorted(self.feed + self.visitor_posts, key=lambda p: p["created_time"], reverse=True)}

    def _published_posts(self, request, context):
        """Newest first, ``page_size`` a page, with Meta's ``paging.next``."""
        newest_first = list(reversed(self.feed))
        start = int(request.qs.get("after", ["0"])[0])
        end = start + self.page_size
        body: dict = {"data": newest_first[start:end]}
        if end < len(newest_first):
            body["paging"] = {"next": f"{BASE}/{PAGE_ID}/published_posts?after={end}"}
        return body

    def _limit(self, request, context):
        config = {"quota_duration": 86400}
        if self.quota_total is not None:
            config["quota_total"] = self.quota_total
        return {"data": [{"quota_usage": self.quota_used, "config": config}]}

    def _media(self, request, context):
        return {"id": f"container-{self._next('instagram')}"}

    def _media_list(self, request, context):
        return {"data": list(reversed(self.ig_media))}

    def _container(self, request, context):
        return {
            "status_code": self.container_status,
            "status": self.container_text,
            "id": request.path.rsplit("/", 1)[-1],
        }

    def _publish(self, request, context):
        self.container_status = "PUBLISHED"
        return {"id": f"1795{self._next('instagram'):08d}"}

    def calls(self, name: str) -> list:
        paths = {
            "photos": f"/{PAGE_ID}/photos",
            "feed": f"/{PAGE_ID}/feed",
            "media": f"/{IG_ID}/media",
            "media_publish": f"/{IG_ID}/media_publish",
            "limit": f"/{IG_ID}/content_publishing_limit",
        }
        if name == "container":
            return [r for r in self.m.request_history if "/container-" in r.path]
        if name == "feed_get":
            return [r for r in self.m.request_history if r.method == "GET" and r.path.endswith("/feed")]
        if name == "published_posts":
            return [r for r in self.m.request_history if r.method == "GET" and r.path.endswith("/published_posts")]
        return [r for r in self.m.request_history if r.method == "POST" and r.path == "/v25.0" + paths[name]]


def feed_item(post_id: str, message: str, *, seconds_ago: float = 0) -> dict:
    """A Page feed entry as Meta lists it."""
    from datetime import timedelta

    from shared.db import utcnow

    created = (utcnow() - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    return {"id": post_id, "message": message, "created_time": created}


def _form(request) -> dict:
    from urllib.parse import parse_qs

    return {k: v[0] for k, v in parse_qs(request.text or "").items()}
