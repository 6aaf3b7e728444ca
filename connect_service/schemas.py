"""marshmallow schemas of the API's inputs and outputs (also the OpenAPI source)."""

from __future__ import annotations

from marshmallow import EXCLUDE, RAISE, Schema, fields, validate

# The answers about a post and a connection live in shared (the worker's outcome events carry
# the same bodies); they are this module's too, so the handlers and the OpenAPI document use them.
from shared.answers import NOT_CONNECTED as NOT_CONNECTED
from shared.answers import Derived, Instant, PostOut
from shared.answers import StatusOut as StatusOut
from shared.models import POST_FORMATS, POST_STATUSES
from shared.post_schema import MAX_CAPTION, MAX_URL, MediaItemBody, publish_at_field
from shared.targets import MAX_MEDIA, TARGET_NAMES


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


class PostPatch(Schema):
    """``PATCH /api/meta/schedule/<job_id>`` (documentation): a JSON merge patch of the post.

    An absent key is unchanged, ``null`` removes it (its ``POST /schedule`` default applies);
    ``media`` or ``media_url`` replaces the post's media. The merged post is validated as
    ``ScheduleBody`` (``shared.post_changes``).
    """

    class Meta:
        unknown = RAISE

    connection_id = fields.String(allow_none=True, metadata={"description": "Only the post's own"})
    publish_at = publish_at_field()
    caption = fields.String(allow_none=True, validate=validate.Length(max=MAX_CAPTION))
    media_url = fields.String(allow_none=True, validate=validate.Length(max=MAX_URL))
    link = fields.String(allow_none=True, validate=validate.Length(max=MAX_URL))
    targets = fields.List(
        fields.String(validate=validate.OneOf(list(TARGET_NAMES))),
        allow_none=True,
        validate=validate.Length(min=1, max=len(TARGET_NAMES)),
    )
    format = fields.String(allow_none=True, validate=validate.OneOf(POST_FORMATS))
    media = fields.List(fields.Nested(MediaItemBody), allow_none=True, validate=validate.Length(min=1, max=MAX_MEDIA))
    first_comment = fields.String(allow_none=True, validate=validate.Length(min=1, max=MAX_CAPTION))
    cover_url = fields.String(allow_none=True, validate=validate.Length(max=MAX_URL))


class EmptyBody(Schema):
    class Meta:
        unknown = RAISE


# --- Answers: each is dumped from the model object (or a dict) by the schema that documents it ---


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
