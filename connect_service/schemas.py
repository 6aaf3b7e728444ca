"""marshmallow schemas of the API's inputs and outputs (also the OpenAPI source)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, fields, missing, post_dump, validate

from connect_service.connections import expiring_soon
from shared.db import iso_z
from shared.models import POST_STATUSES, PUBLISHING, QUEUED, SKIPPED, PostTarget


class ConnectQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    redirect = fields.Boolean(load_default=False)


class CallbackQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    code = fields.String(load_default=None, validate=validate.Length(max=2048))
    state = fields.String(load_default=None)
    error = fields.String(load_default=None)
    error_reason = fields.String(load_default=None)


class PostListQuery(Schema):
    """``GET /api/meta/schedule``: the scheduler must give ``connection_id``."""

    class Meta:
        unknown = EXCLUDE

    status = fields.String(load_default=None, validate=validate.OneOf(POST_STATUSES))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.String(load_default=None)
    connection_id = fields.String(load_default=None)


class SignedRequestForm(Schema):
    """Meta's platform callbacks: one form field, ``signed_request`` (``sig.payload``, base64url)."""

    signed_request = fields.String(required=True)


class SelectPageBody(Schema):
    class Meta:
        unknown = RAISE

    page_id = fields.String(required=True, validate=validate.Regexp(r"^\d{1,32}$", error="Must be a Page id."))


class EmptyBody(Schema):
    class Meta:
        unknown = RAISE


# --- Answers: each is dumped from the model object (or a dict) by the schema that documents it ---


class Instant(fields.String):
    """An aware datetime as the API writes it: ISO-8601 in UTC with ``Z`` (documented as a string)."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return iso_z(value)


class Derived(fields.Boolean):
    """A boolean the object does not store, computed from it by ``derive`` (a dict carries it)."""

    def __init__(self, derive: Callable[[Any], bool], **kwargs: Any):
        super().__init__(**kwargs)
        self.derive = derive

    def get_value(self, obj: Any, attr: str, accessor: Any = None, default: Any = missing) -> Any:
        return obj.get(attr, missing) if isinstance(obj, dict) else self.derive(obj)


class Whole(fields.Nested):
    """The same object again, written by another schema (a nested view of it)."""

    def get_value(self, obj: Any, attr: str, accessor: Any = None, default: Any = missing) -> Any:
        return obj


class PageOut(Schema):
    """A :class:`~connect_service.page_selection.PageChoice`."""

    id = fields.String(required=True)
    name = fields.String(required=True)
    has_instagram = fields.Boolean(required=True)


class ConnectOut(Schema):
    oauth_url = fields.String(required=True)
    state = fields.String(required=True)


class ConnectedOut(Schema):
    """A connection just made (callback or select-page)."""

    connected = Derived(lambda conn: True, required=True)
    facebook_page_id = fields.String()
    instagram_business_account_id = fields.String()
    status = fields.String()
    connection_id = fields.String(attribute="id")
    page_name = fields.String(allow_none=True)


class SelectionOut(Schema):
    """A :class:`~connect_service.page_selection.PendingSelection`: the seller picks a Page."""

    connected = Derived(lambda selection: False, required=True)
    requires_page_selection = Derived(lambda selection: True, required=True)
    pages = fields.List(fields.Nested(PageOut), required=True)


class PagesOut(Schema):
    """The pages of a pending selection."""

    pages = fields.List(fields.Nested(PageOut), required=True)


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


class DisconnectOut(Schema):
    disconnected = fields.Boolean(required=True)
    status = fields.String(required=True)


class ErrorOut(Schema):
    """``shared.errors.error_body``: ``fields`` only on a validation error."""

    error_code = fields.String(required=True)
    message = fields.String(required=True)
    action = fields.String(allow_none=True, required=True)
    fields_ = fields.Dict(
        keys=fields.String(), values=fields.List(fields.String()), data_key="fields", attribute="fields"
    )


class ScheduleOut(Schema):
    """The post just stored."""

    queued = Derived(lambda post: True, required=True)
    job_id = fields.String(required=True, attribute="id")


class TargetRow(fields.Nested):
    """The post's row for one target (a skipped one when the post has none)."""

    def __init__(self, target: str, nested: type[Schema], **kwargs: Any):
        super().__init__(nested, **kwargs)
        self.target = target

    def get_value(self, obj: Any, attr: str, accessor: Any = None, default: Any = missing) -> Any:
        return obj.target(self.target) or PostTarget(target=self.target, status=SKIPPED)


class FacebookTargetOut(Schema):
    """The Facebook side of a :class:`~shared.models.ScheduledPost` (its ``post_targets`` row)."""

    status = fields.String(required=True)
    post_id = fields.String(allow_none=True, required=True, attribute="remote_id")
    error_code = fields.String(allow_none=True, required=True)


class InstagramTargetOut(Schema):
    """The Instagram side of a :class:`~shared.models.ScheduledPost` (its ``post_targets`` row)."""

    status = fields.String(required=True)
    media_id = fields.String(allow_none=True, required=True, attribute="remote_id")
    error_code = fields.String(allow_none=True, required=True)


class TargetsOut(Schema):
    facebook = TargetRow("facebook", FacebookTargetOut, required=True)
    instagram = TargetRow("instagram", InstagramTargetOut, required=True)


class PostOut(Schema):
    """A :class:`~shared.models.ScheduledPost` with its per-target outcome."""

    job_id = fields.String(required=True, attribute="id")
    connection_id = fields.String(required=True)
    status = fields.String(
        required=True,
        validate=validate.OneOf(
            ["queued", "publishing", "published", "partially_published", "unconfirmed", "failed", "cancelled"]
        ),
    )
    publish_at = Instant(required=True)
    caption = fields.String(required=True)
    media_url = fields.String(allow_none=True, required=True)
    link = fields.String(allow_none=True, required=True)
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


class PostListOut(Schema):
    items = fields.List(fields.Nested(PostOut), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class CancelOut(Schema):
    """The post just cancelled."""

    cancelled = Derived(lambda post: True, required=True)
    job_id = fields.String(required=True, attribute="id")


class DeauthorizeOut(Schema):
    success = fields.Boolean(required=True)


class DeletionOut(Schema):
    url = fields.String(required=True)
    confirmation_code = fields.String(required=True)


class DeletionStatusOut(Schema):
    """A :class:`~shared.models.DataDeletionRequest`."""

    confirmation_code = fields.String(required=True)
    status = fields.String(required=True)
    requested_at = Instant(required=True)
    completed_at = Instant(allow_none=True, required=True)
