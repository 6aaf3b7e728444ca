"""Instagram's content-v2 formats (DESIGN §13.2): alt text, carousels, reels, stories, the first comment.

The publish job runs in this process against a requests-mock Instagram that keeps its
containers, media and comments, so each test can say what Meta ended up with: each post
published once, each child made once, the comment posted once.
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import parse_qs

import pytest
import requests
import requests_mock

from meta_sandbox import serve_in_thread
from publish_worker.context import install_context, worker_services
from publish_worker.failures import request_lifetime
from publish_worker.jobs import publish_post
from shared.db import utcnow
from shared.tokens import store_tokens
from tests.factories import IG_ID, cipher, make_connection, make_post
from tests.publish_mock import BASE, graph_error
from tests.test_meta_errors_sandbox import APP_ID, APP_SECRET, PAGE, Sandbox
from tests.test_meta_errors_sandbox import IG as SANDBOX_IG
from tests.worker_fixtures import (
    FAST,
    queued_jobs,
    reload,
    run_next_continuation,
    scheduled_jobs,
    set_target,
    skip_the_wait,
)

CAPTION = "Kemeja batik biru #batik"
COMMENT = "#batik #promo"
IMG = "https://cdn.example.com/{}.jpg"
CLIP = "https://cdn.example.com/clip.mp4"
PASS = {"pass": True}  # an override that lets the call through
FINISHED_TEXT = "Finished: Media has been uploaded and it is ready to be published."


def image(n: int, alt_text: str | None = None) -> dict:
    item = {"url": IMG.format(n), "type": "image"}
    if alt_text:
        item["alt_text"] = alt_text
    return item


VIDEO = {"url": CLIP, "type": "video"}


class Instagram:
    """One Instagram business account as the Graph API shows it: containers, media, comments.

    ``script(url, *statuses)`` sets what the next container made for ``url`` reads on each
    status check (the last repeats); ``queue(name, *answers)`` overrides the next calls of
    ``name`` (``media`` for images, ``media_child``, ``media_carousel``, ``media_reels``,
    ``media_stories``, ``container``, ``media_publish``, ``media_list``, ``comment``,
    ``comments``): ``PASS`` lets a call through, ``carried_out`` does the work before failing,
    ``carried_out_later`` leaves it for :meth:`meta_finishes` (a slow Meta still at it when
    the read timeout gave up).
    """

    def __init__(self, mocker):
        self.m = mocker
        self.seq = 0
        self.containers: dict[str, dict] = {}
        self.media: list[dict] = []  # oldest first
        self.comments: dict[str, list[dict]] = defaultdict(list)
        self.scripts: dict[str, deque] = defaultdict(deque)
        self.overrides: dict[str, deque] = defaultdict(deque)
        self.late: deque = deque()  # (handler, request): work Meta is still doing after the answer was lost
        self.quota_used = 0
        mocker.get(f"{BASE}/{IG_ID}/content_publishing_limit", json=self._limit)
        mocker.post(f"{BASE}/{IG_ID}/media", json=self._route(self._create, kind=True))
        mocker.get(f"{BASE}/{IG_ID}/media", json=self._route(self._list_media, "media_list"))
        mocker.post(f"{BASE}/{IG_ID}/media_publish", json=self._route(self._publish, "media_publish"))
        mocker.get(re.compile(rf"^{re.escape(BASE)}/(c\d+)(\?.*)?$"), json=self._route(self._status, "container"))
        comments = re.compile(rf"^{re.escape(BASE)}/(m\d+)/comments(\?.*)?$")
        mocker.post(comments, json=self._route(self._comment, "comment"))
        mocker.get(comments, json=self._route(self._list_comments, "comments"))

    # -- set-up --

    def script(self, url: str, *statuses: str, text: str | None = None) -> None:
        self.scripts[url].append((deque(statuses), text))

    def queue(self, name: str, *answers: dict) -> None:
        self.overrides[name].extend(answers)

    def someone_posts(self, caption: str, *, media_type: str = "IMAGE", product: str = "FEED") -> str:
        """A media the seller published by hand (or another app did)."""
        return self._new_media({"caption": caption, "media_type": media_type, "product": product})["id"]

    def meta_finishes(self) -> None:
        """Meta carries out the requests it was still working on when their answers were lost."""
        while self.late:
            handler, request = self.late.popleft()
            handler(request, SimpleNamespace(status_code=200))

    # -- what Meta received --

    def created(self, name: str | None = None) -> list[dict]:
        """The form of every ``POST /{ig-user-id}/media`` (of one kind), in order."""
        forms = [_form(r) for r in self.m.request_history if r.method == "POST" and r.path.endswith("/media")]
        return [f for f in forms if name is None or _kind(f) == name]

    def calls(self, name: str) -> list:
        ends = {"media_publish": "/media_publish", "comment": "/comments", "limit": "/content_publishing_limit"}
        method = "POST" if name in ("media_publish", "comment") else "GET"
        if name == "container":
            return [r for r in self.m.request_history if re.search(r"/c\d+$", r.path)]
        if name == "comments":
            return [r for r in self.m.request_history if r.method == "GET" and r.path.endswith("/comments")]
        return [r for r in self.m.request_history if r.method == method and r.path.endswith(ends[name])]

    # -- the endpoints --

    def _route(self, handler, name: str | None = None, *, kind: bool = False):
        def respond(request, context):
            key = _kind(_form(request)) if kind else name
            if self.overrides[key]:
                answer = self.overrides[key].popleft()
                if answer is PASS:
                    return handler(request, context)
                if answer.get("carried_out"):
                    handler(request, context)
                elif answer.get("carried_out_later"):
                    self.late.append((handler, request))
                if "exc" in answer:
                    raise answer["exc"]
                context.status_code = answer.get("status_code", 200)
                return answer.get("json", {})
            return handler(request, context)

        return respond

    def _next(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}{self.seq}"

    def _limit(self, request, context):
        return {"data": [{"quota_usage": self.quota_used, "config": {"quota_total": 100, "quota_duration": 86400}}]}

    def _create(self, request, context):
        form = _form(request)
        url = form.get("image_url") or form.get("video_url") or "CAROUSEL"
        statuses, text = self.scripts[url].popleft() if self.scripts[url] else (deque(["FINISHED"]), None)
        container = {"id": self._next("c"), "form": form, "statuses": statuses, "text": text, "status": None}
        if form.get("media_type") == "CAROUSEL":
            for child_id in form["children"].split(","):
                child = self.containers[child_id]
                assert child["form"].get("is_carousel_item") == "true", "a carousel takes carousel items"
                if child["status"] != "FINISHED":
                    context.status_code = 400
                    return graph_error(-1, 2207032, message="Create media fail")["json"]
        self.containers[container["id"]] = container
        return {"id": container["id"]}

    def _status(self, request, context):
        container = self.containers[request.path.rsplit("/", 1)[-1]]
        if container["status"] != "PUBLISHED":
            statuses = container["statuses"]
            container["status"] = statuses.popleft() if len(statuses) > 1 else statuses[0]
        texts = {"FINISHED": FINISHED_TEXT, "IN_PROGRESS": "In Progress: Media is still being processed."}
        text = container["text"] or texts.get(container["status"], container["status"].title())
        return {"id": container["id"], "status_code": container["status"], "status": text}

    def _publish(self, request, context):
        container = self.containers[_form(request)["creation_id"]]
        if container["status"] == "PUBLISHED":
            context.status_code = 400
            return graph_error(9007, 2207027, message="Media ID is not available")["json"]
        assert container["status"] == "FINISHED", "published before it was read FINISHED"
        container["status"] = "PUBLISHED"
        form = container["form"]
        kind = {"CAROUSEL": ("CAROUSEL_ALBUM", "FEED"), "REELS": ("VIDEO", "REELS")}.get(form.get("media_type", ""))
        if form.get("media_type") == "STORIES":
            kind = ("VIDEO" if form.get("video_url") else "IMAGE", "STORY")
        media_type, product = kind or ("IMAGE", "FEED")
        media = self._new_media(
            {"caption": form.get("caption"), "media_type": media_type, "product": product, "container": container}
        )
        self.quota_used += 1
        return {"id": media["id"]}

    def _new_media(self, fields: dict) -> dict:
        media = {"id": self._next("m"), "timestamp": utcnow().strftime("%Y-%m-%dT%H:%M:%S+0000"), **fields}
        self.media.append(media)
        return media

    def _list_media(self, request, context):
        return {
            "data": [
                {
                    "id": m["id"],
                    "caption": m["caption"],
                    "media_type": m["media_type"],
                    "media_product_type": m["product"],
                    "timestamp": m["timestamp"],
                }
                for m in reversed(self.media)
            ]
        }

    def _comment(self, request, context):
        media_id = request.path.split("/")[-2]
        comment = {
            "id": self._next("k"),
            "text": _form(request)["message"],
            "username": "tokouji",
            "from": {"id": IG_ID, "username": "tokouji"},
        }
        self.comments[media_id].append(comment)
        return {"id": comment["id"]}

    def _list_comments(self, request, context):
        fields = request.qs.get("fields", [""])[0]
        assert "message" not in fields.split(","), "an Instagram comment has no message field"
        return {"data": list(self.comments[request.path.split("/")[-2]])}


def _form(request) -> dict:
    return {k: v[0] for k, v in parse_qs(request.text or "").items()}


def _kind(form: dict) -> str:
    if form.get("is_carousel_item") == "true":
        return "media_child"
    return {"CAROUSEL": "media_carousel", "REELS": "media_reels", "STORIES": "media_stories"}.get(
        form.get("media_type", ""), "media"
    )


@pytest.fixture
def ig():
    with requests_mock.Mocker() as m:
        yield Instagram(m)


@pytest.fixture
def conn(db_session):
    return make_connection(db_session)


def instagram_post(db_session, conn, media, *, fmt="post", comment=None, **fields):
    return make_post(
        db_session,
        conn,
        targets=["instagram"],
        caption=fields.pop("caption", CAPTION),
        media_url=None,
        media=media,
        format=fmt,
        first_comment=comment,
        instagram={"comment_status": "pending"} if comment else {},
        **fields,
    )


def pending_jobs(redis) -> list:
    """The post's continuation: scheduled, or queued at once when it is due already."""
    return scheduled_jobs(redis) + queued_jobs(redis)


def run_to_the_end(ctx, post_id: str, max_runs: int = 10) -> str:
    return carry_on(ctx, post_id, publish_post(post_id), max_runs)


def carry_on(ctx, post_id: str, result: str = "continuing", max_runs: int = 10) -> str:
    """Run the post's continuations, each when its time has come, until it is done."""
    for _ in range(max_runs):
        if result != "continuing":
            return result
        skip_the_wait(ctx, post_id)
        result = run_next_continuation(ctx.redis)
    raise AssertionError(f"still continuing after {max_runs} runs")


# ---------- single image ----------


def test_an_image_carries_its_alt_text(worker_ctx, ig, conn, db_session):
    post = instagram_post(db_session, conn, [image(1, "Kemeja batik biru, lengan panjang")])
    assert publish_post(post.id) == "published"
    [form] = ig.created()
    assert form == {
        "image_url": IMG.format(1),
        "caption": CAPTION,
        "alt_text": "Kemeja batik biru, lengan panjang",
        "appsecret_proof": form["appsecret_proof"],
    }
    row = reload(db_session, post.id).target("instagram")
    assert (row.status, row.remote_id) == ("published", ig.media[0]["id"])


def test_an_image_without_alt_text_sends_none(worker_ctx, ig, conn, db_session):
    post = instagram_post(db_session, conn, [image(1)])
    assert publish_post(post.id) == "published"
    [form] = ig.created()
    assert "alt_text" not in form and form["image_url"] == IMG.format(1)


# ---------- carousel ----------


def test_a_carousel_of_three_images_and_a_video(worker_ctx, ig, conn, db_session):
    ig.script(CLIP, "IN_PROGRESS", "FINISHED")
    media = [image(1, "Depan"), image(2), image(3, "Belakang"), VIDEO]
    post = instagram_post(db_session, conn, media)
    # The video item is still processing: the run lets go of the worker and comes back.
    assert publish_post(post.id) == "continuing"
    held = reload(db_session, post.id).target("instagram")
    assert [c["status"] for c in held.children] == ["FINISHED", "FINISHED", "FINISHED", "IN_PROGRESS"]
    assert held.container_id is None and len(pending_jobs(worker_ctx.redis)) == 1
    assert run_next_continuation(worker_ctx.redis) == "published"

    children = ig.created("media_child")
    assert [(c.get("image_url") or c.get("video_url"), c.get("alt_text")) for c in children] == [
        (IMG.format(1), "Depan"),
        (IMG.format(2), None),
        (IMG.format(3), "Belakang"),
        (CLIP, None),
    ]
    assert children[3]["media_type"] == "VIDEO" and "media_type" not in children[0]
    assert all("caption" not in c for c in children)
    [carousel] = ig.created("media_carousel")
    row = reload(db_session, post.id).target("instagram")
    assert carousel["children"] == ",".join(c["id"] for c in row.children)
    assert carousel["caption"] == CAPTION
    assert len(ig.calls("media_publish")) == 1 and ig.quota_used == 1
    assert [m["media_type"] for m in ig.media] == ["CAROUSEL_ALBUM"]
    assert row.status == "published" and row.remote_id == ig.media[0]["id"]
    assert len(ig.calls("limit")) == 1


def test_a_full_quota_defers_a_carousel_before_any_child_is_made(worker_ctx, ig, conn, db_session):
    ig.quota_used = 100
    post = instagram_post(db_session, conn, [image(1), VIDEO])
    assert publish_post(post.id) == "continuing"
    row = reload(db_session, post.id).target("instagram")
    assert (row.status, row.error_code, row.children) == ("pending", "publishing_limit_reached", None)
    assert ig.created() == []


def test_a_timed_out_child_is_made_again_but_no_finished_child_is(worker_ctx, ig, conn, db_session):
    # The third child's creation times out after the first two were made and recorded.
    ig.queue("media_child", PASS, PASS, {"exc": requests.exceptions.ReadTimeout})
    post = instagram_post(db_session, conn, [image(1), image(2), image(3)])
    assert publish_post(post.id) == "continuing"
    held = reload(db_session, post.id).target("instagram")
    assert [bool(c.get("id")) for c in held.children] == [True, True, False]
    assert (held.tries, held.status, held.sent_at) == (1, "pending", None)
    first_two = [c["id"] for c in held.children[:2]]
    assert run_next_continuation(worker_ctx.redis) == "published"
    made = [c["image_url"] for c in ig.created("media_child")]
    assert made == [IMG.format(1), IMG.format(2), IMG.format(3), IMG.format(3)]
    row = reload(db_session, post.id).target("instagram")
    assert [c["id"] for c in row.children[:2]] == first_two
    [carousel] = ig.created("media_carousel")
    assert carousel["children"].split(",")[:2] == first_two
    assert len(ig.calls("media_publish")) == 1 and len(ig.media) == 1


def test_a_child_in_error_fails_the_target_with_metas_words(worker_ctx, ig, conn, db_session):
    text = "Error: Media upload has failed with error code 2207026"
    ig.script(CLIP, "ERROR", text=text)
    post = instagram_post(db_session, conn, [image(1), VIDEO])
    assert publish_post(post.id) == "failed"
    row = reload(db_session, post.id).target("instagram")
    assert (row.status, row.error_code) == ("failed", "media_invalid")
    assert text in row.error_message and "media.1" in row.error_message
    assert ig.created("media_carousel") == [] and ig.calls("media_publish") == []
    assert row.tries == 0  # Meta's verdict on the file: not retried


def test_an_expired_child_is_made_again_alone(worker_ctx, ig, conn, db_session):
    ig.script(IMG.format(2), "EXPIRED")
    post = instagram_post(db_session, conn, [image(1), image(2), image(3)])
    assert run_to_the_end(worker_ctx, post.id) == "published"
    made = [c["image_url"] for c in ig.created("media_child")]
    assert made == [IMG.format(1), IMG.format(2), IMG.format(3), IMG.format(2)]
    [carousel] = ig.created("media_carousel")
    expired = [cid for cid, c in ig.containers.items() if c["status"] == "EXPIRED"]
    assert len(expired) == 1 and expired[0] not in carousel["children"].split(",")
    assert len(ig.media) == 1


def test_a_carousel_meta_cannot_use_is_made_again_from_the_same_children(worker_ctx, ig, conn, db_session):
    ig.queue("media_carousel", graph_error(-1, 2207032, message="Create media fail, please try to re-create media"))
    post = instagram_post(db_session, conn, [image(1), image(2)])
    assert run_to_the_end(worker_ctx, post.id) == "published"
    assert len(ig.created("media_child")) == 2  # the children were read again, not made again
    first, second = ig.created("media_carousel")
    assert first["children"] == second["children"]
    assert len(ig.calls("media_publish")) == 1 and len(ig.media) == 1


def test_an_expired_carousel_at_publish_is_made_again(worker_ctx, ig, conn, db_session):
    ig.queue("media_publish", graph_error(-2, 2207020, message="The media you are trying to access has expired."))
    post = instagram_post(db_session, conn, [image(1), VIDEO])
    assert run_to_the_end(worker_ctx, post.id) == "published"
    assert len(ig.created("media_carousel")) == 2 and len(ig.created("media_child")) == 2
    assert len(ig.media) == 1


# ---------- reels ----------


def test_a_reel_with_its_cover_is_shared_to_the_feed(worker_ctx, ig, conn, db_session):
    cover = "https://cdn.example.com/cover.jpg"
    post = instagram_post(db_session, conn, [VIDEO], fmt="reel", cover_url=cover)
    assert publish_post(post.id) == "published"
    [form] = ig.created()
    assert {k: v for k, v in form.items() if k != "appsecret_proof"} == {
        "media_type": "REELS",
        "video_url": CLIP,
        "caption": CAPTION,
        "share_to_feed": "true",
        "cover_url": cover,
    }
    assert [(m["media_type"], m["product"]) for m in ig.media] == [("VIDEO", "REELS")]


def test_a_post_of_one_video_is_a_reel_shared_to_the_feed(worker_ctx, ig, conn, db_session):
    post = instagram_post(db_session, conn, [VIDEO])
    assert publish_post(post.id) == "published"
    [form] = ig.created()
    assert (form["media_type"], form["video_url"], form["share_to_feed"]) == ("REELS", CLIP, "true")
    assert "cover_url" not in form and "is_carousel_item" not in form


def test_a_video_in_progress_is_polled_across_continuations_then_published_once(worker_ctx, ig, conn, db_session):
    ig.script(CLIP, "IN_PROGRESS", "IN_PROGRESS", "FINISHED")
    post = instagram_post(db_session, conn, [VIDEO], fmt="reel")
    assert publish_post(post.id) == "continuing"
    held = reload(db_session, post.id)
    row = held.target("instagram")
    assert row.container_id and row.not_before is not None and row.sent_at is None
    [job] = pending_jobs(worker_ctx.redis)
    assert job.kwargs["lease"] == held.lease_owner
    assert run_next_continuation(worker_ctx.redis) == "continuing"
    assert ig.calls("media_publish") == []
    assert run_next_continuation(worker_ctx.redis) == "published"
    assert len(ig.created()) == 1 and len(ig.calls("container")) == 3
    assert len(ig.calls("media_publish")) == 1 and len(ig.media) == 1


def test_a_video_still_processing_after_the_timeout_fails(worker_ctx, ig, conn, db_session):
    ig.script(CLIP, "IN_PROGRESS")
    post = instagram_post(db_session, conn, [VIDEO], fmt="reel")
    assert publish_post(post.id) == "continuing"
    timeout = worker_ctx.settings.ig_container_timeout_seconds
    with worker_ctx.session() as session:
        row = reload(session, post.id).target("instagram")
        row.container_at = utcnow() - timedelta(seconds=timeout + 1)
        session.commit()
    assert run_next_continuation(worker_ctx.redis) == "failed"
    row = reload(db_session, post.id).target("instagram")
    assert (row.status, row.error_code) == ("failed", "media_invalid")
    assert ig.calls("media_publish") == []


# ---------- stories ----------


@pytest.mark.parametrize("item, key", [(image(1), "image_url"), (VIDEO, "video_url")])
def test_a_story_has_no_caption(worker_ctx, ig, conn, db_session, item, key):
    post = instagram_post(db_session, conn, [item], fmt="story", caption=None)
    assert publish_post(post.id) == "published"
    [form] = ig.created()
    assert {k: v for k, v in form.items() if k != "appsecret_proof"} == {"media_type": "STORIES", key: item["url"]}
    assert ig.media[0]["product"] == "STORY"


def test_a_story_never_gets_a_comment(worker_ctx, ig, conn, db_session):
    # Validation refuses a story with a first comment; one stored anyway is not sent to Meta.
    post = instagram_post(db_session, conn, [image(1)], fmt="story", caption=None, comment=COMMENT)
    assert publish_post(post.id) == "published"
    row = reload(db_session, post.id).target("instagram")
    assert row.status == "published"
    assert (row.comment_status, row.comment_error_code) == ("failed", "validation_error")
    assert ig.calls("comment") == []


# ---------- an ambiguous media_publish ----------


def test_an_ambiguous_publish_that_went_through_is_not_repeated(worker_ctx, ig, conn, db_session):
    ig.queue("media_publish", {"exc": requests.exceptions.ReadTimeout, "carried_out": True})
    post = instagram_post(db_session, conn, [image(1), image(2)], comment=COMMENT)
    assert publish_post(post.id) == "continuing"
    held = reload(db_session, post.id).target("instagram")
    assert held.sent_at is not None and held.status == "pending"
    skip_the_wait(worker_ctx, post.id)  # Meta can no longer be carrying the lost request out
    assert run_next_continuation(worker_ctx.redis) == "published"
    assert len(ig.calls("media_publish")) == 1 and len(ig.media) == 1
    row = reload(db_session, post.id).target("instagram")
    # The media id was learned from the account's media, so the first comment went on it.
    assert row.remote_id == ig.media[0]["id"]
    assert (row.comment_status, row.comment_id) == ("published", ig.comments[row.remote_id][0]["id"])


def test_an_ambiguous_publish_that_did_not_go_through_is_sent_again(worker_ctx, ig, conn, db_session):
    ig.queue("media_publish", {"exc": requests.exceptions.ReadTimeout})
    post = instagram_post(db_session, conn, [VIDEO], fmt="reel")
    assert run_to_the_end(worker_ctx, post.id) == "published"
    assert len(ig.calls("media_publish")) == 2 and len(ig.media) == 1
    assert reload(db_session, post.id).target("instagram").remote_id == ig.media[0]["id"]


def comes_early(ctx, post_id: str) -> str:
    """The post's continuation runs before its time (its own job, or one due for another target)."""
    set_target(ctx, post_id, "instagram", not_before=utcnow())
    return run_next_continuation(ctx.redis)


def test_a_lost_publish_is_not_published_again_while_meta_may_still_be_publishing(worker_ctx, ig, conn, db_session):
    # A slow Meta: the read timeout gives up while Meta is still publishing; the container reads FINISHED.
    ig.queue("media_publish", {"exc": requests.exceptions.ReadTimeout, "carried_out_later": True})
    post = instagram_post(db_session, conn, [image(1)], comment=COMMENT)
    assert publish_post(post.id) == "continuing"
    row = reload(db_session, post.id).target("instagram")
    assert row.not_before >= row.sent_at + request_lifetime(worker_ctx.settings)
    reads = len(ig.calls("container"))
    assert run_next_continuation(worker_ctx.redis) == "continuing"
    assert comes_early(worker_ctx, post.id) == "continuing"
    assert len(ig.calls("media_publish")) == 1 and len(ig.calls("container")) == reads
    ig.meta_finishes()
    skip_the_wait(worker_ctx, post.id)
    assert run_next_continuation(worker_ctx.redis) == "published"
    [media] = ig.media
    row = reload(db_session, post.id).target("instagram")
    assert len(ig.calls("media_publish")) == 1 and row.remote_id == media["id"]
    assert [c["id"] for c in ig.comments[media["id"]]] == [row.comment_id]


def test_a_lost_comment_answer_is_looked_for_only_once_meta_cannot_still_be_at_it(worker_ctx, ig, conn, db_session):
    ig.queue("comment", {"exc": requests.exceptions.ReadTimeout, "carried_out_later": True})
    post = instagram_post(db_session, conn, [image(1)], comment=COMMENT)
    assert publish_post(post.id) == "continuing"
    row = reload(db_session, post.id).target("instagram")
    assert row.not_before >= row.comment_sent_at + request_lifetime(worker_ctx.settings)
    assert run_next_continuation(worker_ctx.redis) == "continuing"
    assert comes_early(worker_ctx, post.id) == "continuing"
    assert ig.calls("comments") == [] and len(ig.calls("comment")) == 1
    ig.meta_finishes()
    skip_the_wait(worker_ctx, post.id)
    assert run_next_continuation(worker_ctx.redis) == "published"
    [comment] = ig.comments[row.remote_id]
    assert len(ig.calls("comment")) == 1
    assert reload(db_session, post.id).target("instagram").comment_id == comment["id"]


def test_when_the_media_id_cannot_be_told_the_comment_is_not_guessed(worker_ctx, ig, conn, db_session):
    ig.queue("media_publish", {"exc": requests.exceptions.ReadTimeout, "carried_out": True})
    post = instagram_post(db_session, conn, [image(1)], comment=COMMENT)
    assert publish_post(post.id) == "continuing"
    # The seller posted the same caption by hand meanwhile: two media could be ours.
    ig.someone_posts(CAPTION)
    skip_the_wait(worker_ctx, post.id)  # Meta can no longer be carrying the lost request out
    assert run_next_continuation(worker_ctx.redis) == "published"
    row = reload(db_session, post.id).target("instagram")
    assert (row.status, row.remote_id) == ("published", None)
    assert (row.comment_status, row.comment_error_code) == ("failed", "meta_unavailable")
    assert ig.calls("comment") == [] and len(ig.calls("media_publish")) == 1


# ---------- the retry budget: deferrals are not tries, a lost publish is looked for ----------


def defer_five_times(ctx, ig, db_session, post):
    """Five hours of "quota full": the first run and four hourly continuations are deferred."""
    ig.quota_used = 100
    assert publish_post(post.id) == "continuing"
    for _ in range(4):
        set_target(ctx, post.id, "instagram", not_before=utcnow())
        assert run_next_continuation(ctx.redis) == "continuing"
    row = reload(db_session, post.id).target("instagram")
    assert (row.status, row.error_code, row.tries) == ("pending", "publishing_limit_reached", 0)
    ig.quota_used = 0
    set_target(ctx, post.id, "instagram", not_before=utcnow())


def test_quota_deferrals_do_not_use_up_the_tries_of_later_transient_errors(worker_ctx, ig, conn, db_session):
    post = instagram_post(db_session, conn, [image(1)])
    defer_five_times(worker_ctx, ig, db_session, post)
    # Once the window frees, a 5xx is the first real try, retried like any other.
    ig.queue("media", graph_error(2, status=500, message="Service temporarily unavailable", is_transient=True))
    assert run_next_continuation(worker_ctx.redis) == "continuing"
    row = reload(db_session, post.id).target("instagram")
    assert (row.status, row.error_code, row.tries) == ("pending", "meta_unavailable", 1)
    skip_the_wait(worker_ctx, post.id)
    assert run_next_continuation(worker_ctx.redis) == "published"
    assert len(ig.media) == 1


def test_an_ambiguous_publish_after_deferrals_is_checked_not_given_up(worker_ctx, ig, conn, db_session):
    post = instagram_post(db_session, conn, [image(1)])
    defer_five_times(worker_ctx, ig, db_session, post)
    ig.queue("media_publish", {"exc": requests.exceptions.ReadTimeout})  # never reached Meta's publish
    assert run_next_continuation(worker_ctx.redis) == "continuing"
    row = reload(db_session, post.id).target("instagram")
    assert (row.status, row.tries) == ("pending", 1) and row.sent_at is not None
    skip_the_wait(worker_ctx, post.id)
    assert run_next_continuation(worker_ctx.redis) == "published"
    assert len(ig.calls("media_publish")) == 2 and len(ig.media) == 1


@pytest.mark.parametrize("went_through", [True, False])
def test_the_last_lost_publish_is_looked_for_before_giving_up(worker_ctx, ig, conn, db_session, went_through):
    post = instagram_post(db_session, conn, [image(1)])
    set_target(worker_ctx, post.id, "instagram", tries=worker_ctx.settings.retry_max_tries - 1)  # one try left
    failure = graph_error(2, status=500, message="An unexpected error has occurred.", is_transient=True)
    ig.queue("media_publish", {**failure, "carried_out": went_through})
    assert publish_post(post.id) == "continuing"
    row = reload(db_session, post.id).target("instagram")
    assert (row.status, row.tries) == ("pending", worker_ctx.settings.retry_max_tries)
    skip_the_wait(worker_ctx, post.id)
    result = run_next_continuation(worker_ctx.redis)
    row = reload(db_session, post.id).target("instagram")
    # Found, it is published; surely not there, it failed (nothing live) and is not sent again.
    assert (result, row.status) == (("published",) * 2 if went_through else ("failed",) * 2)
    assert len(ig.calls("media_publish")) == 1 and len(ig.media) == (1 if went_through else 0)
    assert row.remote_id == (ig.media[0]["id"] if went_through else None)


# ---------- Meta's advice: try again, then a new container ----------

TEMPORARY = graph_error(24, 2207008, message="Temporary error publishing a container. Please try again.")


@pytest.mark.parametrize("failures, containers", [(2, 1), (3, 2)])
def test_a_temporary_publishing_error_is_retried_then_a_new_container_is_made(
    worker_ctx, ig, conn, db_session, failures, containers
):
    ig.queue("media_publish", *[TEMPORARY] * failures)
    post = instagram_post(db_session, conn, [image(1)])
    before = utcnow()
    assert publish_post(post.id) == "continuing"
    row = reload(db_session, post.id).target("instagram")
    assert (row.status, row.error_code) == ("pending", "meta_unavailable")
    assert row.not_before - before >= timedelta(seconds=30)  # Meta: again within 30 s to 2 min
    assert carry_on(worker_ctx, post.id) == "published"
    # Tried three times in all on one container (Meta: 1-2 more times), then on a new one.
    assert len(ig.created("media")) == containers and len(ig.calls("media_publish")) == failures + 1
    [media] = ig.media
    row = reload(db_session, post.id).target("instagram")
    assert row.remote_id == media["id"] and row.tries == failures
    assert media["container"]["id"] == row.container_id


@pytest.mark.parametrize("subcode", [2207053, 2207006])
def test_a_container_meta_cannot_upload_is_made_again(worker_ctx, ig, conn, db_session, subcode):
    ig.queue("media_publish", graph_error(-1, subcode, message="An unknown error occurred. Please try again."))
    post = instagram_post(db_session, conn, [VIDEO], fmt="reel")
    assert run_to_the_end(worker_ctx, post.id) == "published"
    assert len(ig.created("media_reels")) == 2 and len(ig.media) == 1
    row = reload(db_session, post.id).target("instagram")
    assert (row.tries, row.steps) == (0, {"recreated": 1})


# ---------- the first comment ----------


def test_the_first_comment_is_posted_once_on_the_media(worker_ctx, ig, conn, db_session):
    post = instagram_post(db_session, conn, [image(1)], comment=COMMENT)
    assert publish_post(post.id) == "published"
    row = reload(db_session, post.id).target("instagram")
    [sent] = ig.calls("comment")
    assert sent.path.endswith(f"/{row.remote_id}/comments") and _form(sent)["message"] == COMMENT
    assert (row.comment_status, row.comment_id, row.comment_error_code) == (
        "published",
        ig.comments[row.remote_id][0]["id"],
        None,
    )
    assert publish_post(post.id) == "skipped" and len(ig.calls("comment")) == 1


def test_an_ambiguous_comment_that_went_through_is_found_not_repeated(worker_ctx, ig, conn, db_session):
    ig.queue("comment", {"exc": requests.exceptions.ReadTimeout, "carried_out": True})
    post = instagram_post(db_session, conn, [VIDEO], fmt="reel", comment=COMMENT)
    assert publish_post(post.id) == "continuing"
    held = reload(db_session, post.id).target("instagram")
    assert held.status == "published" and held.comment_status == "pending" and held.comment_sent_at
    skip_the_wait(worker_ctx, post.id)  # Meta can no longer be carrying the lost request out
    assert run_next_continuation(worker_ctx.redis) == "published"
    row = reload(db_session, post.id).target("instagram")
    [ours] = ig.comments[row.remote_id]
    assert (row.comment_status, row.comment_id) == ("published", ours["id"])
    assert len(ig.calls("comment")) == 1
    [listed] = ig.calls("comments")
    assert listed.qs["fields"] == ["id,text,username,from{id,username},timestamp"]


def test_an_ambiguous_comment_that_did_not_go_through_is_sent_again(worker_ctx, ig, conn, db_session):
    ig.queue("comment", {"exc": requests.exceptions.ReadTimeout})
    post = instagram_post(db_session, conn, [image(1), image(2)], comment=COMMENT)
    assert publish_post(post.id) == "continuing"
    media_id = reload(db_session, post.id).target("instagram").remote_id
    # A follower wrote the same words: not ours, so it does not count as sent.
    ig.comments[media_id].append(
        {"id": "k900", "text": COMMENT, "username": "pembeli", "from": {"id": "17841499999999999", "username": "x"}}
    )
    skip_the_wait(worker_ctx, post.id)  # Meta can no longer be carrying the lost request out
    assert run_next_continuation(worker_ctx.redis) == "published"
    row = reload(db_session, post.id).target("instagram")
    assert len(ig.calls("comment")) == 2 and len(ig.calls("comments")) == 1
    assert row.comment_status == "published" and row.comment_id != "k900"
    assert [c["id"] for c in ig.comments[media_id]] == ["k900", row.comment_id]


def test_a_failed_comment_leaves_the_post_published(worker_ctx, ig, conn, db_session):
    ig.queue("comment", graph_error(100, message="(#100) Invalid parameter"))
    post = instagram_post(db_session, conn, [image(1)], comment=COMMENT)
    assert publish_post(post.id) == "published"
    post = reload(db_session, post.id)
    row = post.target("instagram")
    assert (row.status, row.remote_id) == ("published", ig.media[0]["id"])
    assert (row.comment_status, row.comment_error_code) == ("failed", "bad_request")
    assert post.error_code is None and len(ig.calls("comment")) == 1


# ---------- against the Meta sandbox ----------


@pytest.fixture(scope="module")
def sandbox():
    server = serve_in_thread(
        "127.0.0.1",
        0,
        {
            "SANDBOX_APP_ID": APP_ID,
            "SANDBOX_APP_SECRET": APP_SECRET,
            "SANDBOX_SCENARIO": "one_page",
            "SANDBOX_VIDEO_DELAY": "0",
            "APP_ENV": "test",
        },
    )
    yield server
    server.stop()


@pytest.fixture
def meta(sandbox) -> Sandbox:
    meta = Sandbox(sandbox.url)
    meta.admin("reset", {"scenario": "one_page"})
    return meta


@pytest.fixture
def sandbox_ctx(settings, sandbox, redis_client, engine):
    overrides = dict(meta_graph_url=sandbox.url, meta_app_id=APP_ID, meta_app_secret=APP_SECRET, **FAST)
    ctx = worker_services(settings.with_overrides(**overrides), redis_client)
    install_context(ctx)
    yield ctx
    install_context(None)
    ctx.close()


@pytest.fixture
def sandbox_conn(db_session, meta):
    conn = make_connection(db_session, page_id=PAGE, ig_id=SANDBOX_IG)
    user, page = meta.tokens()
    store_tokens(conn, cipher(), page_token=page, user_token=user)
    db_session.commit()
    return conn


def sample(meta: Sandbox, name: str) -> str:
    return f"{meta.url}/_sandbox/media/{name}"


def published_once(meta: Sandbox) -> dict:
    """What the sandbox's Instagram account holds: exactly one media (nothing published twice)."""
    [media] = meta.published()["instagram"]
    return media


def test_sandbox_a_carousel_with_a_video_and_its_comment(sandbox_ctx, meta, sandbox_conn, db_session):
    meta.admin("delays", {"video_s": 600})  # the video item is still processing at first
    media = [
        {"url": sample(meta, "square.jpg"), "type": "image", "alt_text": "Kemeja batik biru"},
        {"url": sample(meta, "portrait.jpg"), "type": "image"},
        {"url": sample(meta, "clip.mp4"), "type": "video"},
    ]
    post = instagram_post(db_session, sandbox_conn, media, comment=COMMENT)
    assert publish_post(post.id) == "continuing"
    video_child = reload(db_session, post.id).target("instagram").children[2]
    assert video_child["status"] == "IN_PROGRESS"
    meta.admin(f"containers/{video_child['id']}", {"status_code": "FINISHED"})
    assert run_next_continuation(sandbox_ctx.redis) == "published"
    carousel = published_once(meta)
    assert (carousel["media_type"], carousel["caption"]) == ("CAROUSEL_ALBUM", CAPTION)
    assert [(c["media_type"], c["alt_text"]) for c in carousel["children"]] == [
        ("IMAGE", "Kemeja batik biru"),
        ("IMAGE", None),
        ("VIDEO", None),
    ]
    [comment] = carousel["comments"]
    assert comment["message"] == COMMENT and comment["ours"]
    row = reload(db_session, post.id).target("instagram")
    assert (row.remote_id, row.comment_id) == (carousel["media_id"], comment["comment_id"])
    assert meta.calls("media_child") == 3 and meta.calls("media_carousel") == 1 and meta.calls("media_publish") == 1


def test_sandbox_a_reel_with_its_cover(sandbox_ctx, meta, sandbox_conn, db_session):
    cover = sample(meta, "portrait.jpg")
    post = instagram_post(
        db_session, sandbox_conn, [{"url": sample(meta, "clip.mp4"), "type": "video"}], fmt="reel", cover_url=cover
    )
    assert run_to_the_end(sandbox_ctx, post.id) == "published"
    reel = published_once(meta)
    assert (reel["media_product_type"], reel["share_to_feed"], reel["cover_url"]) == ("REELS", True, cover)
    assert reel["caption"] == CAPTION and reel["comments"] == []


def test_sandbox_a_story(sandbox_ctx, meta, sandbox_conn, db_session):
    post = instagram_post(
        db_session, sandbox_conn, [{"url": sample(meta, "story.jpg"), "type": "image"}], fmt="story", caption=None
    )
    assert run_to_the_end(sandbox_ctx, post.id) == "published"
    story = published_once(meta)
    assert (story["media_product_type"], story["caption"]) == ("STORY", "")
    assert reload(db_session, post.id).target("instagram").remote_id == story["media_id"]


def test_sandbox_an_ambiguous_publish_and_comment_happen_once(sandbox_ctx, meta, sandbox_conn, db_session):
    # Meta carries out each request, then answers 500: the worker cannot tell, and looks before resending.
    meta.admin("faults", {"endpoint": "media_publish", "status": 500, "after_processing": True})
    meta.admin("faults", {"endpoint": "ig_comment", "status": 500, "after_processing": True})
    media = [{"url": sample(meta, "square.jpg"), "type": "image"}]
    post = instagram_post(db_session, sandbox_conn, media, comment=COMMENT)
    assert run_to_the_end(sandbox_ctx, post.id) == "published"
    image_media = published_once(meta)
    [comment] = image_media["comments"]
    row = reload(db_session, post.id).target("instagram")
    assert (row.remote_id, row.comment_id, row.comment_status) == (
        image_media["media_id"],
        comment["comment_id"],
        "published",
    )
    assert meta.calls("media_publish") == 1 and meta.calls("ig_comment") == 1
    assert meta.calls("media_list") == 1 and meta.calls("ig_comments") == 1
