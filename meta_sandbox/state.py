"""The sandbox's in-memory world: tokens, grants, codes, posts, containers,
faults and counters.

Everything here is guarded by ``World.lock``. Methods do NOT take the lock
themselves: callers hold it (``with world.lock: ...``) for the whole of one
request's work, so a request sees and changes a consistent world.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from dataclasses import dataclass, field

from .scenarios import PageSpec, Scenario, get_scenario

ALNUM = string.ascii_letters + string.digits
SHORT_LIVED_SECONDS = 5400
LONG_LIVED_SECONDS = 5183944
DATA_ACCESS_SECONDS = 90 * 86400
CODE_TTL_SECONDS = 600
CONTAINER_TTL_SECONDS = 86400
QUOTA_WINDOW_SECONDS = 86400
REELS_PER_DAY = 30  # Facebook Reels API: 30 API-published reels per Page per 24 h
BAD_FILE_MARKER = "bad_file"  # a media URL containing it is a file Meta cannot process
DEFAULT_USAGE = {"call_count": 1, "total_cputime": 1, "total_time": 1}
ALWAYS_GRANTED = ("public_profile",)


def random_alnum(n: int) -> str:
    return "".join(secrets.choice(ALNUM) for _ in range(n))


@dataclass
class Token:
    value: str
    kind: str  # "user" | "page"
    user_id: str
    page_id: str | None
    long_lived: bool
    issued_at: float
    expires_at: float  # 0 = never
    data_access_expires_at: float
    valid: bool = True
    invalid_subcode: int | None = None
    checked: bool = False  # seen by debug_token at least once


@dataclass
class Grant:
    """The user's grant to the app: scopes and Pages, user-level like Meta's."""

    user_id: str
    granted: list[str]
    declined: list[str]
    pages: list[str]
    granted_at: float
    data_access_expires_at: float
    active: bool = True


@dataclass
class AuthCode:
    value: str
    user_id: str
    redirect_uri: str
    granted: list[str]
    declined: list[str]
    pages: list[str]
    created_at: float
    used: bool = False
    valid: bool = True


@dataclass
class Container:
    id: str
    ig_user_id: str
    page_id: str
    image_url: str
    caption: str
    created_at: float
    ready_at: float
    status_override: str | None = None
    media_id: str | None = None
    status_text: str | None = None  # Meta's ``status`` text, when set by the admin API
    media_type: str = "IMAGE"  # IMAGE | VIDEO (carousel items) | CAROUSEL | REELS | STORIES
    video_url: str | None = None
    is_carousel_item: bool = False
    children: list[str] = field(default_factory=list)
    alt_text: str | None = None
    share_to_feed: bool | None = None
    cover_url: str | None = None
    bad_file: bool = False  # turns ERROR (with ``bad_file_text``) once processed
    bad_file_text: str | None = None
    carousel_id: str | None = None  # the carousel that published this child

    @property
    def url(self) -> str | None:
        return self.video_url or self.image_url or None


@dataclass
class ContainerOutcome:
    """What the next ``times`` new containers turn into (``ERROR``/``EXPIRED``, with a ``status`` text)."""

    status_code: str
    status_text: str | None
    times: int

    def describe(self) -> dict:
        return {"status_code": self.status_code, "status": self.status_text, "times": self.times}


@dataclass
class FbPost:
    page_id: str
    post_id: str | None
    photo_id: str | None
    message: str | None
    url: str | None
    link: str | None
    created_at: float
    published: bool = True
    # A post a visitor wrote on the Page (in /feed, never in /published_posts): (id, name).
    visitor: tuple[str, str] | None = None
    # post | photo | album (attached_media) | video | reel | photo_story | video_story
    kind: str = "post"
    attached: list[str] = field(default_factory=list)  # album: the unpublished photo ids
    attached_to: str | None = None  # an unpublished photo: the album or story that used it
    video_id: str | None = None
    alt_text: str | None = None

    @property
    def is_story(self) -> bool:
        return self.kind in ("photo_story", "video_story")


@dataclass
class FbVideo:
    """A Facebook video: a ``/videos`` upload, or a reel / video story in its three phases."""

    id: str
    page_id: str
    kind: str  # video | reel | video_story
    created_at: float
    phase: str = "started"  # started -> uploaded -> published (or draft)
    file_url: str | None = None
    description: str | None = None
    post_id: str | None = None
    published_at: float | None = None


@dataclass
class Comment:
    """A comment on a Facebook object or an Instagram media."""

    id: str
    object_id: str
    network: str  # facebook | instagram
    message: str
    from_id: str
    from_name: str  # the Page's name, or the IG username
    created_at: float
    ours: bool = True  # written by the app (not a visitor added through the admin API)


@dataclass
class IgMedia:
    ig_user_id: str
    media_id: str
    container_id: str
    caption: str
    image_url: str
    created_at: float
    media_type: str = "IMAGE"  # IMAGE | VIDEO | CAROUSEL_ALBUM, as Meta names them
    product_type: str = "FEED"  # FEED | REELS | STORY
    video_url: str | None = None
    alt_text: str | None = None
    share_to_feed: bool | None = None
    cover_url: str | None = None
    children: list[dict] = field(default_factory=list)  # carousel: {"id", "media_type", "media_url", ...}


@dataclass
class Fault:
    endpoint: str
    status: int | None
    error: dict | None
    latency_ms: int
    times: int
    after_processing: bool

    def describe(self) -> dict:
        return {
            "endpoint": self.endpoint,
            "status": self.status,
            "error": self.error,
            "latency_ms": self.latency_ms,
            "times": self.times,
            "after_processing": self.after_processing,
        }


@dataclass
class Quota:
    total: int
    times: list[float] = field(default_factory=list)
    report_total: bool = True  # False: content_publishing_limit leaves config.quota_total out


def default_flags() -> dict:
    return {
        "page_tokens_expired": False,
        "page_tokens_expire_after_check": False,
        "throttle_once": False,
        "throttle_regain_minutes": 0,
        "flaky_every": 0,
        "flaky_slow_every": 0,
        "flaky_slow_ms": 200,
        # Real Meta wants instagram_manage_comments / pages_manage_engagement to comment;
        # DESIGN's default META_SCOPES asks for neither, so the sandbox checks only when on.
        "comments_need_scopes": False,
    }


class World:
    """All sandbox state. Hold ``lock`` around every use."""

    def __init__(self, config: dict):
        self.lock = threading.Lock()
        self.config = config
        self.reset(config["SANDBOX_SCENARIO"])

    # --- lifecycle ---------------------------------------------------------

    def reset(self, scenario_name: str) -> None:
        """Forget everything and load ``scenario_name`` (``KeyError`` if unknown)."""
        scenario = get_scenario(scenario_name)
        self.scenario: Scenario = scenario
        self.pages: dict[str, PageSpec] = {p.id: p for p in scenario.pages}
        self.ig_accounts: dict[str, PageSpec] = {p.ig_id: p for p in scenario.pages if p.ig_id}
        self.tokens: dict[str, Token] = {}
        self.page_token_cache: dict[tuple[str, str], str] = {}
        self.grants: dict[str, Grant] = {}
        self.codes: dict[str, AuthCode] = {}
        self.posts: list[FbPost] = []
        self.videos: dict[str, FbVideo] = {}
        self.comments: list[Comment] = []
        self.containers: dict[str, Container] = {}
        self.media: dict[str, IgMedia] = {}
        self.reels_used: dict[str, list[float]] = {}
        self.reels_total = REELS_PER_DAY
        self.faults: list[Fault] = []
        self.container_outcomes: list[ContainerOutcome] = []
        self.revocations: list[dict] = []
        self.calls: dict[str, int] = {}
        self.quotas: dict[str, Quota] = {}
        self.flags = default_flags()
        self.flags.update(scenario.flags)
        self.throttled_done: set[str] = set()
        self.publishing_seq = 0
        self.graph_seq = 0
        self.latency_ms = int(self.config.get("SANDBOX_LATENCY_MS") or 0)
        self.usage_app = dict(DEFAULT_USAGE)
        self.usage_business = dict(DEFAULT_USAGE)
        self.regain_minutes = 0
        self.image_delay = float(self.config.get("SANDBOX_CONTAINER_DELAY") or 0)
        self.video_delay = float(self.config.get("SANDBOX_VIDEO_DELAY") or 0)
        self._seq = 1000

    def new_seq(self) -> int:
        self._seq += 1
        return self._seq

    # --- identity --------------------------------------------------------

    @property
    def user_id(self) -> str:
        return self.scenario.user_id

    @property
    def user_name(self) -> str:
        return self.scenario.user_name

    def kind_of(self, node_id: str) -> str | None:
        """What a Graph id names: user, page, ig_user, container, ig_media, post."""
        if node_id == self.user_id:
            return "user"
        if node_id in self.pages:
            return "page"
        if node_id in self.ig_accounts:
            return "ig_user"
        if node_id in self.containers:
            return "container"
        if node_id in self.media:
            return "ig_media"
        if self.find_post(node_id):
            return "post"
        if node_id in self.videos:
            return "video"
        if self.find_photo(node_id):
            return "photo"
        return None

    def find_post(self, post_id: str) -> FbPost | None:
        for post in self.posts:
            if post.post_id == post_id:
                return post
        return None

    def find_photo(self, photo_id: str) -> FbPost | None:
        for post in self.posts:
            if post.photo_id == photo_id:
                return post
        return None

    def fb_object(self, object_id: str) -> FbPost | None:
        """The Page post a Facebook id names: a post id, a photo id or a video id."""
        post = self.find_post(object_id) or self.find_photo(object_id)
        if post is None and object_id in self.videos:
            video = self.videos[object_id]
            post = self.find_post(video.post_id) if video.post_id else None
        return post

    # --- grants, codes, tokens -----------------------------------------------

    def apply_consent(self, requested: list[str], ticked: list[str], pages: list[str]) -> Grant:
        """Record the user's answer on the consent page (user-level, like Meta)."""
        now = time.time()
        old = self.grants.get(self.user_id)
        status: dict[str, str] = {}
        if old and old.active:
            status.update({s: "granted" for s in old.granted})
            status.update({s: "declined" for s in old.declined})
        for scope in requested:
            status[scope] = "granted" if scope in ticked else "declined"
        for scope in ALWAYS_GRANTED:
            status[scope] = "granted"
        grant = Grant(
            self.user_id,
            granted=[s for s, v in status.items() if v == "granted"],
            declined=[s for s, v in status.items() if v == "declined"],
            pages=[p for p in pages if p in self.pages],
            granted_at=now,
            data_access_expires_at=now + DATA_ACCESS_SECONDS,
        )
        self.grants[self.user_id] = grant
        return grant

    def new_code(self, redirect_uri: str, grant: Grant) -> AuthCode:
        code = AuthCode(
            "AQ" + random_alnum(120),
            self.user_id,
            redirect_uri,
            list(grant.granted),
            list(grant.declined),
            list(grant.pages),
            created_at=time.time(),
        )
        self.codes[code.value] = code
        return code

    def _new_token(self, kind: str, user_id: str, page_id: str | None, long_lived: bool, expires_at: float) -> Token:
        grant = self.grants.get(user_id)
        now = time.time()
        tok = Token(
            "EAA" + random_alnum(96),
            kind,
            user_id,
            page_id,
            long_lived,
            now,
            expires_at,
            grant.data_access_expires_at if grant else now + DATA_ACCESS_SECONDS,
        )
        self.tokens[tok.value] = tok
        return tok

    def new_user_token(self, user_id: str, long_lived: bool) -> Token:
        ttl = LONG_LIVED_SECONDS if long_lived else SHORT_LIVED_SECONDS
        return self._new_token("user", user_id, None, long_lived, time.time() + ttl)

    def page_token_for(self, user_token: Token, page_id: str) -> Token:
        """The page token derived from ``user_token`` (stable while it is valid).
        From a long-lived user token it never expires (``expires_at`` 0)."""
        key = (user_token.value, page_id)
        existing = self.tokens.get(self.page_token_cache.get(key, ""))
        if existing and existing.valid:
            return existing
        expires_at = 0 if user_token.long_lived else user_token.expires_at
        tok = self._new_token("page", user_token.user_id, page_id, user_token.long_lived, expires_at)
        self.page_token_cache[key] = tok.value
        return tok

    def token_problem(self, tok: Token) -> int | None:
        """None when usable, else the 190 subcode (463 expired, 460 revoked)."""
        if not tok.valid:
            return tok.invalid_subcode or 467
        if tok.expires_at and time.time() >= tok.expires_at:
            return 463
        grant = self.grants.get(tok.user_id)
        if grant is None or not grant.active:
            return 460
        if tok.kind == "page":
            if self.flags.get("page_tokens_expired"):
                return 463
            if self.flags.get("page_tokens_expire_after_check") and tok.checked:
                return 463
            if tok.page_id not in grant.pages:
                return 460
        return None

    def expire_tokens(self, *, token=None, user_id=None, page_id=None, kind=None, all=False, subcode: int = 463) -> int:
        """Invalidate matching tokens; returns how many changed."""
        n = 0
        for tok in self.tokens.values():
            hit = (
                all
                or (token and tok.value == token)
                or (user_id and tok.user_id == user_id)
                or (page_id and tok.page_id == page_id)
                or (kind and tok.kind == kind)
            )
            if hit and tok.valid:
                tok.valid = False
                tok.invalid_subcode = subcode
                if not tok.expires_at or tok.expires_at > time.time():
                    tok.expires_at = time.time()
                n += 1
        return n

    def revoke(self, user_id: str, via: str) -> None:
        """The app's grant is removed: every token and unused code dies (460)."""
        grant = self.grants.get(user_id)
        if grant:
            grant.active = False
        for tok in self.tokens.values():
            if tok.user_id == user_id and tok.valid:
                tok.valid = False
                tok.invalid_subcode = 460
        for code in self.codes.values():
            if code.user_id == user_id:
                code.valid = False
        self.revocations.append({"user_id": user_id, "at": time.time(), "via": via})

    def scopes_of(self, user_id: str | None) -> list[str]:
        """The scopes a user granted; none for a caller without a user (the app token)."""
        grant = self.grants.get(user_id) if user_id is not None else None
        return list(grant.granted) if grant and grant.active else []

    def granted_pages(self, user_id: str | None) -> list[PageSpec]:
        grant = self.grants.get(user_id) if user_id is not None else None
        if not grant or not grant.active:
            return []
        return [self.pages[p] for p in self.pages if p in grant.pages]

    # --- publishing --------------------------------------------------------

    def add_fb_post(
        self, page_id: str, *, message, url=None, link=None, photo: bool, published: bool = True, kind: str = ""
    ) -> FbPost:
        photo_id = f"12200000{self.new_seq():08d}" if photo else None
        post_id = f"{page_id}_12210000{self.new_seq():08d}" if published else None
        post = FbPost(page_id, post_id, photo_id, message, url, link, time.time(), published)
        post.kind = kind or ("photo" if photo else "post")
        self.posts.append(post)
        return post

    def new_video(self, page_id: str, kind: str) -> FbVideo:
        video = FbVideo(f"12250000{self.new_seq():08d}", page_id, kind, time.time())
        self.videos[video.id] = video
        return video

    def publish_video(self, video: FbVideo, description: str | None) -> FbPost:
        """The video (or reel, or video story) goes live as a post of its Page."""
        kind = {"video": "video", "reel": "reel", "video_story": "video_story"}[video.kind]
        post = self.add_fb_post(video.page_id, message=description, url=video.file_url, photo=False, kind=kind)
        post.video_id = video.id
        video.phase, video.description, video.post_id = "published", description, post.post_id
        video.published_at = post.created_at
        if video.kind == "reel":
            self.reels_of(video.page_id).append(post.created_at)
        return post

    def reels_of(self, page_id: str) -> list[float]:
        """When the Page's API-published reels of the last 24 h were published."""
        cutoff = time.time() - QUOTA_WINDOW_SECONDS
        times = self.reels_used[page_id] = [t for t in self.reels_used.get(page_id, []) if t > cutoff]
        return times

    def add_comment(
        self, object_id: str, network: str, message: str, from_id: str, from_name: str, *, ours: bool = True
    ) -> Comment:
        prefix = object_id.split("_")[-1] + "_" if network == "facebook" else ""
        comment = Comment(
            f"{prefix}17860000{self.new_seq():09d}", object_id, network, message, from_id, from_name, time.time(), ours
        )
        self.comments.append(comment)
        return comment

    def comments_on(self, object_id: str) -> list[Comment]:
        return [c for c in self.comments if c.object_id == object_id]

    def add_visitor_post(self, page_id: str, message: str, from_id: str, from_name: str) -> FbPost:
        """A visitor writes on the Page: it shows in ``/feed``, not in ``/published_posts``."""
        post = FbPost(
            page_id,
            f"{page_id}_12230000{self.new_seq():08d}",
            None,
            message,
            None,
            None,
            time.time(),
            True,
            visitor=(from_id, from_name),
        )
        self.posts.append(post)
        return post

    def add_container(
        self, page: PageSpec, image_url: str, caption: str, *, video: bool = False, **extra: object
    ) -> Container:
        """A new container; ``video`` ones stay ``IN_PROGRESS`` for ``video_delay`` seconds,
        the others for ``image_delay``. ``extra`` sets the other :class:`Container` fields."""
        if page.ig_id is None:
            raise ValueError(f"page {page.id} has no Instagram account")
        now = time.time()
        delay = self.video_delay if video else self.image_delay
        c = Container(f"17900000{self.new_seq():09d}", page.ig_id, page.id, image_url, caption, now, now + delay)
        for key, value in extra.items():
            setattr(c, key, value)
        if self.container_outcomes:
            outcome = self.container_outcomes[0]
            c.status_override, c.status_text = outcome.status_code, outcome.status_text
            outcome.times -= 1
            if outcome.times <= 0:
                self.container_outcomes.pop(0)
        self.containers[c.id] = c
        return c

    def container_status(self, c: Container) -> str:
        if c.media_id:
            return "PUBLISHED"
        if c.status_override:
            return c.status_override
        now = time.time()
        if now - c.created_at >= CONTAINER_TTL_SECONDS:
            return "EXPIRED"
        if now < c.ready_at:
            return "IN_PROGRESS"
        return "ERROR" if c.bad_file else "FINISHED"

    def publish_container(self, c: Container) -> IgMedia:
        """Publish a container (a carousel publishes its children with it): one quota use."""
        media_type = {"CAROUSEL": "CAROUSEL_ALBUM", "REELS": "VIDEO", "STORIES": "VIDEO" if c.video_url else "IMAGE"}
        product = {"REELS": "REELS", "STORIES": "STORY"}.get(c.media_type, "FEED")
        m = IgMedia(
            c.ig_user_id,
            f"17950000{self.new_seq():09d}",
            c.id,
            c.caption,
            c.image_url,
            time.time(),
            media_type=media_type.get(c.media_type, c.media_type),
            product_type=product,
            video_url=c.video_url,
            alt_text=c.alt_text,
            share_to_feed=c.share_to_feed,
            cover_url=c.cover_url,
        )
        for child_id in c.children:
            child = self.containers[child_id]
            child.media_id, child.carousel_id = f"17950000{self.new_seq():09d}", c.id
            m.children.append(
                {
                    "id": child.media_id,
                    "container_id": child.id,
                    "media_type": child.media_type,
                    "media_url": child.url,
                    "alt_text": child.alt_text,
                }
            )
        c.media_id = m.media_id
        self.media[m.media_id] = m
        self.quota(c.ig_user_id).times.append(m.created_at)
        return m

    def quota(self, ig_user_id: str) -> Quota:
        q = self.quotas.get(ig_user_id)
        if q is None:
            q = self.quotas[ig_user_id] = Quota(int(self.config.get("SANDBOX_QUOTA_TOTAL") or 100))
        cutoff = time.time() - QUOTA_WINDOW_SECONDS
        q.times = [t for t in q.times if t > cutoff]
        return q

    # --- faults and counters -------------------------------------------------

    def count_call(self, endpoint: str) -> None:
        self.calls[endpoint] = self.calls.get(endpoint, 0) + 1
        self.graph_seq += 1

    def take_fault(self, endpoint: str, *broader: str) -> Fault | None:
        """Consume one use of the first fault for ``endpoint``, else for a ``broader``
        name (``media`` for every kind of container), else for ``*``."""
        for wanted in (endpoint, *broader, "*"):
            for fault in self.faults:
                if fault.endpoint == wanted and fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # --- views for the admin API -------------------------------------------

    def snapshot(self) -> dict:
        counts: dict[str, dict[str, int]] = {"user": {"valid": 0, "invalid": 0}, "page": {"valid": 0, "invalid": 0}}
        for tok in self.tokens.values():
            counts[tok.kind]["invalid" if self.token_problem(tok) else "valid"] += 1
        return {
            "scenario": self.scenario.name,
            "app_id": self.config["SANDBOX_APP_ID"],
            "users": [{"id": self.user_id, "name": self.user_name}],
            "pages": [
                {
                    "id": p.id,
                    "name": p.name,
                    "tasks": list(p.tasks),
                    "instagram_business_account": ({"id": p.ig_id, "username": p.ig_username} if p.ig_id else None),
                }
                for p in self.pages.values()
            ],
            "grants": [
                {
                    "user_id": g.user_id,
                    "active": g.active,
                    "granted": g.granted,
                    "declined": g.declined,
                    "pages": g.pages,
                }
                for g in self.grants.values()
            ],
            "tokens": counts,
            "codes": {"issued": len(self.codes), "used": sum(1 for c in self.codes.values() if c.used)},
            "revocations": list(self.revocations),
            "calls": dict(self.calls),
            "containers": [
                {
                    "id": c.id,
                    "ig_user_id": c.ig_user_id,
                    "status_code": self.container_status(c),
                    "media_type": c.media_type,
                    "is_carousel_item": c.is_carousel_item,
                    "media_id": c.media_id,
                }
                for c in self.containers.values()
            ],
            "posts": {"facebook": sum(1 for p in self.posts if p.visitor is None), "instagram": len(self.media)},
            "visitor_posts": sum(1 for p in self.posts if p.visitor is not None),
            "videos": [
                {"id": v.id, "page_id": v.page_id, "kind": v.kind, "phase": v.phase, "post_id": v.post_id}
                for v in self.videos.values()
            ],
            "comments": {
                "ours": sum(1 for c in self.comments if c.ours),
                "others": sum(1 for c in self.comments if not c.ours),
            },
            "reels": {p: {"used": len(self.reels_of(p)), "total": self.reels_total} for p in self.pages},
            "delays": {"image_s": self.image_delay, "video_s": self.video_delay},
            "quotas": {
                ig: {"used": len(self.quota(ig).times), "total": self.quota(ig).total} for ig in self.ig_accounts
            },
            "faults": [f.describe() for f in self.faults],
            "container_outcomes": [o.describe() for o in self.container_outcomes],
            "flags": dict(self.flags),
            "latency_ms": self.latency_ms,
            "usage": {
                "app": dict(self.usage_app),
                "business": dict(self.usage_business),
                "estimated_time_to_regain_access": self.regain_minutes,
            },
        }
