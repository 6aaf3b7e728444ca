"""The body of ``POST /api/meta/schedule`` (and of ``publish_request``), validated."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate, validates, validates_schema

from shared.db import utcnow
from shared.validation import UnsafeJSON, check_json_value, host_meta_cannot_reach

MAX_CAPTION = 2200
MAX_HASHTAGS = 30
MAX_MENTIONS = 20
PAST_TOLERANCE = timedelta(minutes=5)
MAX_AHEAD = timedelta(days=365)

_HASHTAG = re.compile(r"(?<![\w#])#\w+")
_MENTION = re.compile(r"(?<![\w@])@[\w.]+")


def check_public_https_url(value: str, *, schemes: tuple[str, ...] = ("https",)) -> None:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValidationError(f"Must be an absolute {' or '.join(schemes)} URL.")
    if parts.username or parts.password:
        raise ValidationError("Must not carry a user name or password.")
    if host_meta_cannot_reach(parts.hostname):
        raise ValidationError("Must be reachable from the internet (Meta fetches it).")


class Text(fields.String):
    """A string without NUL characters (PostgreSQL cannot store them)."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError("Must not contain NUL characters.")
        return text


class ScheduleBody(Schema):
    """``now`` is the moment the 5-minutes-in-the-past rule is measured from (default: now)."""

    class Meta:
        unknown = RAISE

    def __init__(self, *args: Any, now: datetime | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.reference_time = now

    @pre_load
    def refuse_pathological_json(self, data: Any, **kwargs: Any) -> Any:
        """The same refusals as the HTTP parser, for bodies handed over on RQ (``publish_request``)."""
        try:
            check_json_value(data)
        except UnsafeJSON as exc:
            raise ValidationError(f"Not acceptable JSON: {exc}.") from None
        return data

    connection_id = Text(load_default=None, validate=validate.Length(max=64))
    publish_at = fields.AwareDateTime(
        required=True,
        format="iso",
        error_messages={
            "invalid": "Must be an ISO-8601 date and time with a time zone, e.g. 2026-02-20T10:00:00Z.",
            "invalid_awareness": "Must include a time zone (Z or an offset such as +07:00).",
        },
    )
    caption = Text(load_default="")
    media_url = Text(load_default=None, allow_none=True, validate=validate.Length(max=2048))
    link = Text(load_default=None, allow_none=True, validate=validate.Length(max=2048))
    targets = fields.List(
        fields.String(validate=validate.OneOf(["facebook", "instagram"])),
        load_default=lambda: ["facebook", "instagram"],
        validate=validate.Length(min=1, error="Choose at least one target."),
    )

    @validates("publish_at")
    def check_publish_at(self, value: datetime, data_key: str) -> None:
        now = self.reference_time or utcnow()
        if value < now - PAST_TOLERANCE:
            raise ValidationError("Must not be more than 5 minutes in the past.")
        if value > now + MAX_AHEAD:
            raise ValidationError("Must be within a year from now.")

    @validates("caption")
    def check_caption(self, value: str, data_key: str) -> None:
        problems = []
        if len(value) > MAX_CAPTION:
            problems.append(f"Must be at most {MAX_CAPTION} characters.")
        if len(_HASHTAG.findall(value)) > MAX_HASHTAGS:
            problems.append(f"Must have at most {MAX_HASHTAGS} hashtags.")
        if len(_MENTION.findall(value)) > MAX_MENTIONS:
            problems.append(f"Must have at most {MAX_MENTIONS} @mentions.")
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
        targets = data.get("targets") or []
        if "instagram" in targets and not data.get("media_url"):
            raise ValidationError("Required when instagram is a target.", "media_url")
        if data.get("link") and "facebook" not in targets:
            raise ValidationError("A link is only posted to Facebook.", "link")
        if "facebook" in targets and not (data.get("media_url") or data.get("caption") or data.get("link")):
            raise ValidationError("A post needs a caption, a media_url or a link.", "caption")


def normalized(body: dict[str, Any]) -> dict[str, Any]:
    """The validated body in a canonical form (for idempotency hashing)."""
    return {
        "connection_id": body.get("connection_id"),
        "publish_at": body["publish_at"].astimezone(UTC).isoformat(),
        "caption": body.get("caption") or "",
        "media_url": body.get("media_url"),
        "link": body.get("link"),
        "targets": sorted(body.get("targets") or []),
    }
