"""The body of ``POST /api/meta/schedule`` (and of ``publish_request``), validated."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate, validates, validates_schema

from shared.db import utcnow
from shared.media_fetch import MediaUnreachable, normal_host
from shared.models import FORMAT_POST, FORMAT_STORY, POST_FORMATS
from shared.targets import (
    IMAGE,
    MAX_MEDIA,
    TARGET_NAMES,
    TARGETS,
    VIDEO,
    MediaItem,
    Refused,
    check_format,
    media_items,
)
from shared.validation import UnsafeJSON, check_json_value, host_meta_cannot_reach

MAX_CAPTION = 2200
MAX_HASHTAGS = 30
MAX_MENTIONS = 20
MAX_URL = 2048
MAX_ALT_TEXT = 1000
PAST_TOLERANCE = timedelta(minutes=5)
MAX_AHEAD = timedelta(days=365)

_HASHTAG = re.compile(r"(?<![\w#])#\w+")
_MENTION = re.compile(r"(?<![\w@])@[\w.]+")


# Hosts exempt from the https/public-address rule while a body is loaded
# (``MEDIA_PRECHECK_ALLOW_HOSTS``: the demo's sandbox, the tests' local server; never production).
_ALLOW_HOSTS: ContextVar[frozenset[str]] = ContextVar("schedule_body_allow_hosts", default=frozenset())


@contextmanager
def allowed_hosts(hosts: Collection[str]) -> Iterator[None]:
    token = _ALLOW_HOSTS.set(frozenset(hosts))
    try:
        yield
    finally:
        _ALLOW_HOSTS.reset(token)


def _is_allowed(host: str, allow_hosts: Collection[str]) -> bool:
    if not allow_hosts:
        return False
    try:
        return normal_host(host) in allow_hosts
    except MediaUnreachable:
        return False


def check_public_https_url(
    value: str, *, schemes: tuple[str, ...] = ("https",), allow_hosts: Collection[str] | None = None
) -> None:
    """An absolute URL Meta can fetch. A host of ``allow_hosts`` (default: the body being loaded's)
    may also be http and a loopback or private address."""
    parts = urlsplit(value)
    allowed = bool(parts.hostname) and _is_allowed(
        parts.hostname or "", _ALLOW_HOSTS.get() if allow_hosts is None else allow_hosts
    )
    accepted = schemes + (("http",) if allowed and "http" not in schemes else ())
    if parts.scheme not in accepted or not parts.hostname:
        raise ValidationError(f"Must be an absolute {' or '.join(schemes)} URL.")
    if parts.username or parts.password:
        raise ValidationError("Must not carry a user name or password.")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValidationError("Must have a port from 1 to 65535, or none.")
    if not allowed and host_meta_cannot_reach(parts.hostname):
        raise ValidationError("Must be reachable from the internet (Meta fetches it).")


PUBLISH_AT_ERRORS: dict[str, str | list[Any] | dict[Any, Any]] = {
    "invalid": "Must be an ISO-8601 date and time with a time zone, e.g. 2026-02-20T10:00:00Z.",
    "invalid_awareness": "Must include a time zone (Z or an offset such as +07:00).",
}


def publish_at_field(**kwargs: Any) -> fields.AwareDateTime:
    """``publish_at`` as every body takes it (checked by :func:`check_publish_time`)."""
    return fields.AwareDateTime(format="iso", error_messages=dict(PUBLISH_AT_ERRORS), **kwargs)


def check_publish_time(value: datetime, now: datetime | None = None) -> None:
    """Not more than 5 minutes before ``now`` (default: now), at most a year after it."""
    now = now or utcnow()
    if value < now - PAST_TOLERANCE:
        raise ValidationError("Must not be more than 5 minutes in the past.")
    if value > now + MAX_AHEAD:
        raise ValidationError("Must be within a year from now.")


class Text(fields.String):
    """A string without NUL characters (PostgreSQL cannot store them)."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError("Must not contain NUL characters.")
        return text


def _text_problems(value: str, messages: tuple[str, str, str]) -> list[str]:
    """The caption's limits (length, hashtags, @mentions), worded by ``messages``."""
    too_long, hashtags, mentions = messages
    problems = []
    if len(value) > MAX_CAPTION:
        problems.append(too_long)
    if len(_HASHTAG.findall(value)) > MAX_HASHTAGS:
        problems.append(hashtags)
    if len(_MENTION.findall(value)) > MAX_MENTIONS:
        problems.append(mentions)
    return problems


CAPTION_LIMITS = (
    f"Must be at most {MAX_CAPTION} characters.",
    f"Must have at most {MAX_HASHTAGS} hashtags.",
    f"Must have at most {MAX_MENTIONS} @mentions.",
)
COMMENT_LIMITS = (
    f"The comment must be at most {MAX_CAPTION} characters.",
    f"The comment must have at most {MAX_HASHTAGS} hashtags.",
    f"The comment must have at most {MAX_MENTIONS} @mentions.",
)

# Field messages of the content-v2 combinations (DESIGN §13.2); Indonesian in shared.errors.
BOTH_MEDIA_FORMS = "Give either media_url or media, not both."
ALT_TEXT_ON_VIDEO = "Alt text is only for images."
BLANK_COMMENT = "Must not be blank (leave first_comment out for no comment)."
STORY_CAPTION = "A story has no caption."
STORY_COMMENT = "A story has no first comment."
LINK_ONLY_POST = "A link can only go with format post."
COVER_ONLY_REEL = "A cover is only used where Instagram makes a reel (a reel, or one video posted to Instagram)."


class MediaURL(Text):
    """A media URL Meta fetches: at most 2,048 characters, then absolute https on a public host
    (or an allowed one), as ``media_url`` is judged."""

    def __init__(self, **kwargs: Any):
        super().__init__(validate=validate.Length(max=MAX_URL), **kwargs)

    def _validate(self, value: Any) -> None:
        super()._validate(value)
        check_public_https_url(value)


class MediaItemBody(Schema):
    """One item of ``media``: ``{"url", "type", "alt_text"?}``."""

    class Meta:
        unknown = RAISE

    url = MediaURL(required=True)
    type = fields.String(required=True, validate=validate.OneOf([IMAGE, VIDEO]))
    alt_text = Text(load_default=None, allow_none=True, validate=validate.Length(max=MAX_ALT_TEXT))

    @validates_schema(skip_on_field_errors=True)
    def alt_text_only_on_images(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("alt_text") is not None and data["type"] != IMAGE:
            raise ValidationError(ALT_TEXT_ON_VIDEO, "alt_text")


class ScheduleBody(Schema):
    """``now`` is the moment the 5-minutes-in-the-past rule is measured from (default: now);
    ``allow_hosts`` the hosts exempt from the https/public-address rule of every URL
    (``MEDIA_PRECHECK_ALLOW_HOSTS``, demo and test only)."""

    class Meta:
        unknown = RAISE

    def __init__(
        self, *args: Any, now: datetime | None = None, allow_hosts: Collection[str] = (), **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.reference_time = now
        self.allow_hosts = frozenset(allow_hosts)

    def load(self, data: Any, **kwargs: Any) -> Any:
        with allowed_hosts(self.allow_hosts):
            return super().load(data, **kwargs)

    @pre_load
    def refuse_pathological_json(self, data: Any, **kwargs: Any) -> Any:
        """The same refusals as the HTTP parser, for bodies handed over on RQ (``publish_request``)."""
        try:
            check_json_value(data)
        except UnsafeJSON as exc:
            raise ValidationError(f"Not acceptable JSON: {exc}.") from None
        return data

    connection_id = Text(load_default=None, validate=validate.Length(max=64))
    publish_at = publish_at_field(required=True)
    caption = Text(load_default="")
    media_url = Text(load_default=None, allow_none=True, validate=validate.Length(max=MAX_URL))
    link = Text(load_default=None, allow_none=True, validate=validate.Length(max=MAX_URL))
    targets = fields.List(
        fields.String(validate=validate.OneOf(list(TARGET_NAMES))),
        load_default=lambda: list(TARGET_NAMES),
        validate=validate.Length(min=1, error="Choose at least one target."),
    )
    # Content v2 (DESIGN §13.2).
    format = fields.String(load_default=FORMAT_POST, validate=validate.OneOf(POST_FORMATS))
    media = fields.List(
        fields.Nested(MediaItemBody),
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=MAX_MEDIA),
    )
    first_comment = Text(load_default=None, allow_none=True)
    cover_url = MediaURL(load_default=None, allow_none=True)

    @validates("publish_at")
    def check_publish_at(self, value: datetime, data_key: str) -> None:
        check_publish_time(value, self.reference_time)

    @validates("caption")
    def check_caption(self, value: str, data_key: str) -> None:
        problems = _text_problems(value, CAPTION_LIMITS)
        if problems:
            raise ValidationError(problems)

    @validates("first_comment")
    def check_first_comment(self, value: str | None, data_key: str) -> None:
        if value is None:
            return
        problems = _text_problems(value, COMMENT_LIMITS) if value.strip() else [BLANK_COMMENT]
        if problems:
            raise ValidationError(problems)

    @validates("media_url")
    def check_media_url(self, value: str | None, data_key: str) -> None:
        if value is not None:
            check_public_https_url(value)

    @validates("link")
    def check_link(self, value: str | None, data_key: str) -> None:
        if value is not None:
            check_public_https_url(value, schemes=("https", "http"))

    @validates("targets")
    def check_targets(self, value: list[str], data_key: str) -> None:
        if len(set(value)) != len(value):
            raise ValidationError("Each target at most once.")

    @validates_schema(skip_on_field_errors=True)
    def check_combination(self, data: dict[str, Any], **kwargs: Any) -> None:
        """What the formats table refuses (DESIGN §13.2), the first refusal naming its field.

        A body of the earlier form (``media_url``, no ``format``/``media``) meets exactly the
        refusals, in the order, it met before content v2.
        """
        try:
            _check_combination(data)
        except Refused as refused:
            raise ValidationError(refused.message, refused.field) from None


def _check_combination(data: dict[str, Any]) -> None:
    targets = data.get("targets") or []
    post_format = data.get("format") or FORMAT_POST
    if data.get("media") is not None and data.get("media_url") is not None:
        raise Refused("media_url", BOTH_MEDIA_FORMS)
    media = body_media(data)
    short_form = data.get("media_url") is not None
    if post_format == FORMAT_STORY and data.get("caption"):
        raise Refused("caption", STORY_CAPTION)
    if post_format == FORMAT_STORY and data.get("first_comment") is not None:
        raise Refused("first_comment", STORY_COMMENT)
    try:
        check_format(post_format, media)
        for target in TARGETS:
            if target.name in targets:
                target.kind(post_format, media)
    except Refused as refused:
        # The body gave its one image as media_url: name the field it used.
        raise Refused(
            "media_url" if short_form and refused.field == "media" else refused.field, refused.message
        ) from None
    if data.get("link") and "facebook" not in targets:
        raise Refused("link", "A link is only posted to Facebook.")
    if data.get("link") and post_format != FORMAT_POST:
        raise Refused("link", LINK_ONLY_POST)
    if data.get("cover_url") and not any(
        target.makes_reels_container(post_format, media) for target in TARGETS if target.name in targets
    ):
        raise Refused("cover_url", COVER_ONLY_REEL)
    if "facebook" in targets and not (media or data.get("caption") or data.get("link")):
        raise Refused("caption", "A post needs a caption, a media_url or a link.")


def body_media(body: Mapping[str, Any]) -> list[MediaItem]:
    """The validated body's media: its ``media`` items, or the one image of ``media_url``."""
    return media_items(body.get("media"), body.get("media_url"))


def stored_media(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The media list as a post stores it (``alt_text`` only where given)."""
    return [
        {"url": item.url, "type": item.type, **({"alt_text": item.alt_text} if item.alt_text is not None else {})}
        for item in body_media(body)
    ]


def normalized(body: dict[str, Any]) -> dict[str, Any]:
    """The validated body in a canonical form (for idempotency hashing).

    A body of the earlier form gives exactly the form it gave then (posts stored before
    content v2 still replay); the content-v2 fields appear only when they say something.
    ``media`` holding one image without alt text is the same post as ``media_url``.
    """
    media = stored_media(body)
    short = len(media) <= 1 and all(set(item) == {"url", "type"} and item["type"] == IMAGE for item in media)
    canonical: dict[str, Any] = {
        "connection_id": body.get("connection_id"),
        "publish_at": body["publish_at"].astimezone(UTC).isoformat(),
        "caption": body.get("caption") or "",
        "media_url": media[0]["url"] if short and media else None,
        "link": body.get("link"),
        "targets": sorted(body.get("targets") or []),
    }
    if not short:
        canonical["media"] = media
    if (body.get("format") or FORMAT_POST) != FORMAT_POST:
        canonical["format"] = body["format"]
    for name in ("first_comment", "cover_url"):
        if body.get(name) is not None:
            canonical[name] = body[name]
    return canonical
