"""The API's answers about a post and a connection, as marshmallow schemas both processes use.

``GET /api/meta/schedule/<job_id>`` and ``GET /api/meta/status`` answer with these (the connect
service re-exports them from ``connect_service/schemas.py``, and its OpenAPI document is
generated from them), and the outcome events of DESIGN §13.3 carry the same bodies, written
by the worker too, which never imports the connect service.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import Schema, fields, missing, post_dump, validate

from shared.db import iso_z
from shared.models import (
    POST_FORMATS,
    POST_STATUSES,
    PUBLISHING,
    QUEUED,
    SKIPPED,
    TARGET_STATUSES,
    PostTarget,
    expiring_soon,
)
from shared.targets import IMAGE, TARGETS, VIDEO, TargetSpec, media_items, target_message


class Instant(fields.String):
    """An aware datetime as the API writes it: ISO-8601 in UTC with ``Z`` (documented as a string)."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return iso_z(value)


class Derived(fields.Boolean):
    """A boolean the object does not store, computed from it by ``derive`` (a dict carries it)."""

    def __init__(self, derive: Callable[[Any], bool], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.derive = derive

    def get_value(self, obj: Any, attr: str, accessor: Any = None, default: Any = missing) -> Any:
        return obj.get(attr, missing) if isinstance(obj, dict) else self.derive(obj)


class DerivedString(fields.String):
    """A string the object does not store, computed from it by ``derive``."""

    def __init__(self, derive: Callable[[Any], str | None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.derive = derive

    def get_value(self, obj: Any, attr: str, accessor: Any = None, default: Any = missing) -> Any:
        return self.derive(obj)


class Whole(fields.Nested):
    """The same object again, written by another schema (a nested view of it)."""

    def get_value(self, obj: Any, attr: str, accessor: Any = None, default: Any = missing) -> Any:
        return obj


# --- a connection (GET /api/meta/status) ---

NOT_CONNECTED = {"status": "not_connected"}


class StatusOut(Schema):
    """A connection, or :data:`NOT_CONNECTED` (then ``status`` is the only key)."""

    status = fields.String(required=True, validate=validate.OneOf(["connected", "not_connected", "needs_reauth"]))
    connection_id = fields.String(attribute="id")
    facebook_page_id = fields.String()
    instagram_business_account_id = fields.String(allow_none=True)
    instagram_username = fields.String(allow_none=True)
    page_name = fields.String(allow_none=True)
    connected_at = Instant(allow_none=True)
    expires_at = Instant(allow_none=True)
    data_access_expires_at = Instant(allow_none=True)
    scopes_granted = fields.List(fields.String())
    token_last_checked_at = Instant(allow_none=True)
    expiring_soon = Derived(
        lambda conn: expiring_soon(conn),
        metadata={
            "description": "Always present when connected: true when the earlier "
            "of expires_at and data_access_expires_at is less than "
            "14 days away (show a reconnect banner)."
        },
    )
    error_code = fields.String(attribute="last_error_code")

    @post_dump(pass_original=True)
    def presence(self, data: dict[str, Any], original: Any, **kwargs: Any) -> dict[str, Any]:
        """``error_code`` only when the connection needs attention (a stored one, else token_expired)."""
        if data["status"] == "not_connected":
            return data
        data["scopes_granted"] = data.get("scopes_granted") or []
        if data["status"] == "connected":
            data.pop("error_code", None)
        else:
            data["error_code"] = data.get("error_code") or "token_expired"
        return data


# --- a post (GET /api/meta/schedule/<job_id>) ---


class TargetRow(fields.Nested):
    """The post's row for one target (a skipped one when the post has none)."""

    def __init__(self, target: str, nested: type[Schema], **kwargs: Any) -> None:
        super().__init__(nested, **kwargs)
        self.target = target

    def get_value(self, obj: Any, attr: str, accessor: Any = None, default: Any = missing) -> Any:
        return obj.target(self.target) or PostTarget(target=self.target, status=SKIPPED)


class CommentOut(Schema):
    """The first comment on one target (DESIGN §13.2): its own status, Meta's id, its error."""

    status = fields.String(
        required=True,
        validate=validate.OneOf([status for status in TARGET_STATUSES if status != SKIPPED]),
        attribute="comment_status",
    )
    comment_id = fields.String(allow_none=True, required=True)
    error_code = fields.String(allow_none=True, required=True, attribute="comment_error_code")


class CommentOfTarget(fields.Nested):
    """A target row's first comment, or null when the post has none (or the target is skipped)."""

    def get_value(self, obj: Any, attr: str, accessor: Any = None, default: Any = missing) -> Any:
        return obj if obj.comment_status is not None else None


def target_out(spec: TargetSpec) -> type[Schema]:
    """What the API says about one target of a post: its ``post_targets`` row, Meta's id under
    the target's own key (``post_id``, ``media_id``)."""
    return Schema.from_dict(
        {
            "status": fields.String(required=True, validate=validate.OneOf(TARGET_STATUSES)),
            spec.remote_id_key: fields.String(allow_none=True, required=True, attribute="remote_id"),
            "error_code": fields.String(allow_none=True, required=True),
            "error_message": DerivedString(
                lambda row: target_message(row.status, row.error_code, row.error_message),
                allow_none=True,
                required=True,
                metadata={"description": "What the seller reads when the target failed or is unconfirmed"},
            ),
            "published_at": Instant(allow_none=True, required=True),
            "comment": CommentOfTarget(
                CommentOut,
                allow_none=True,
                required=True,
                metadata={"description": "The first comment on this target; null when the post has none"},
            ),
        },
        name=f"{spec.label}TargetOut",
    )


# One key per target of shared.targets.TARGETS, each written by its own schema.
TargetsOut = Schema.from_dict(
    {spec.name: TargetRow(spec.name, target_out(spec), required=True) for spec in TARGETS}, name="TargetsOut"
)


class MediaOut(Schema):
    """One item of a post's media."""

    url = fields.String(required=True)
    type = fields.String(required=True, validate=validate.OneOf([IMAGE, VIDEO]))
    alt_text = fields.String(allow_none=True, required=True)


class PostMedia(fields.List[Any]):
    """A post's media list (an earlier post's ``media_url`` as its one image)."""

    def get_value(self, obj: Any, attr: str, accessor: Any = None, default: Any = missing) -> Any:
        return media_items(obj.media, obj.media_url)


def _first_media_url(post: Any) -> str | None:
    media = media_items(post.media, post.media_url)
    return media[0].url if media else None


class PostOut(Schema):
    """A :class:`~shared.models.ScheduledPost` with its per-target outcome."""

    job_id = fields.String(required=True, attribute="id")
    connection_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(POST_STATUSES))
    publish_at = Instant(required=True)
    caption = fields.String(required=True)
    media_url = DerivedString(
        _first_media_url,
        allow_none=True,
        required=True,
        metadata={"description": "The first media item's URL"},
    )
    link = fields.String(allow_none=True, required=True)
    format = fields.String(required=True, validate=validate.OneOf(POST_FORMATS))
    media = PostMedia(fields.Nested(MediaOut), required=True)
    first_comment = fields.String(allow_none=True, required=True)
    cover_url = fields.String(allow_none=True, required=True)
    targets = Whole(TargetsOut, required=True)
    attempts = fields.Integer(required=True)
    next_attempt_at = Instant(allow_none=True)
    error_code = fields.String(allow_none=True, required=True)
    error_message = fields.String(allow_none=True, required=True)
    created_at = Instant()
    finished_at = Instant(allow_none=True)

    @post_dump
    def next_attempt_only_while_pending(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if data["status"] not in (QUEUED, PUBLISHING):
            data["next_attempt_at"] = None
        return data
