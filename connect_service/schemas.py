"""marshmallow schemas of the API's inputs and outputs (also the OpenAPI source)."""

from __future__ import annotations

from marshmallow import EXCLUDE, RAISE, Schema, fields, validate

from shared.models import POST_STATUSES


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


class PageOut(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    has_instagram = fields.Boolean(required=True)


class ConnectOut(Schema):
    oauth_url = fields.String(required=True)
    state = fields.String(required=True)


class ConnectedOut(Schema):
    connected = fields.Boolean(required=True)
    facebook_page_id = fields.String()
    instagram_business_account_id = fields.String()
    status = fields.String()
    connection_id = fields.String()
    page_name = fields.String(allow_none=True)


class SelectionOut(Schema):
    connected = fields.Boolean(required=True)
    requires_page_selection = fields.Boolean(required=True)
    pages = fields.List(fields.Nested(PageOut), required=True)


class PagesOut(Schema):
    pages = fields.List(fields.Nested(PageOut), required=True)


class StatusOut(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["connected", "not_connected", "needs_reauth"]))
    connection_id = fields.String()
    facebook_page_id = fields.String()
    instagram_business_account_id = fields.String(allow_none=True)
    instagram_username = fields.String(allow_none=True)
    page_name = fields.String(allow_none=True)
    connected_at = fields.String(allow_none=True)
    expires_at = fields.String(allow_none=True)
    data_access_expires_at = fields.String(allow_none=True)
    scopes_granted = fields.List(fields.String())
    token_last_checked_at = fields.String(allow_none=True)
    expiring_soon = fields.Boolean(
        metadata={
            "description": "Always present when connected: true when the earlier "
            "of expires_at and data_access_expires_at is less than "
            "14 days away (show a reconnect banner)."
        }
    )
    error_code = fields.String()


class DisconnectOut(Schema):
    disconnected = fields.Boolean(required=True)
    status = fields.String(required=True)


class ErrorOut(Schema):
    error_code = fields.String(required=True)
    message = fields.String(required=True)
    action = fields.String(allow_none=True, required=True)
    fields_ = fields.Dict(keys=fields.String(), values=fields.List(fields.String()), data_key="fields")


class ScheduleOut(Schema):
    queued = fields.Boolean(required=True)
    job_id = fields.String(required=True)


class FacebookTargetOut(Schema):
    status = fields.String(required=True)
    post_id = fields.String(allow_none=True, required=True)
    error_code = fields.String(allow_none=True, required=True)


class InstagramTargetOut(Schema):
    status = fields.String(required=True)
    media_id = fields.String(allow_none=True, required=True)
    error_code = fields.String(allow_none=True, required=True)


class TargetsOut(Schema):
    facebook = fields.Nested(FacebookTargetOut, required=True)
    instagram = fields.Nested(InstagramTargetOut, required=True)


class PostOut(Schema):
    job_id = fields.String(required=True)
    connection_id = fields.String(required=True)
    status = fields.String(
        required=True,
        validate=validate.OneOf(
            ["queued", "publishing", "published", "partially_published", "unconfirmed", "failed", "cancelled"]
        ),
    )
    publish_at = fields.String(required=True)
    caption = fields.String(required=True)
    media_url = fields.String(allow_none=True, required=True)
    link = fields.String(allow_none=True, required=True)
    targets = fields.Nested(TargetsOut, required=True)
    attempts = fields.Integer(required=True)
    next_attempt_at = fields.String(allow_none=True)
    error_code = fields.String(allow_none=True, required=True)
    error_message = fields.String(allow_none=True, required=True)
    created_at = fields.String()
    finished_at = fields.String(allow_none=True)


class PostListOut(Schema):
    items = fields.List(fields.Nested(PostOut), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class CancelOut(Schema):
    cancelled = fields.Boolean(required=True)
    job_id = fields.String(required=True)


class DeauthorizeOut(Schema):
    success = fields.Boolean(required=True)


class DeletionOut(Schema):
    url = fields.String(required=True)
    confirmation_code = fields.String(required=True)


class DeletionStatusOut(Schema):
    confirmation_code = fields.String(required=True)
    status = fields.String(required=True)
    requested_at = fields.String(required=True)
    completed_at = fields.String(allow_none=True, required=True)
