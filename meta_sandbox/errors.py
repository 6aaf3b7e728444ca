"""Meta-shaped error bodies: ``{"error": {"message", "type", "code",
"error_subcode", "error_user_title", "error_user_msg", "fbtrace_id"}}``."""

from __future__ import annotations

import secrets
import time
from typing import Any

from flask import Response, jsonify


def fbtrace_id() -> str:
    """A random trace id shaped like Meta's."""
    return secrets.token_urlsafe(17)[:23]


class GraphError(Exception):
    """An error answered the way the Graph API answers it."""

    def __init__(
        self,
        message: str,
        code: int,
        *,
        type: str = "OAuthException",
        subcode: int | None = None,
        status: int = 400,
        user_title: str | None = None,
        user_msg: str | None = None,
        is_transient: bool | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.code = code
        self.type = type
        self.subcode = subcode
        self.status = status
        self.user_title = user_title
        self.user_msg = user_msg
        self.is_transient = is_transient
        self.trace_id = fbtrace_id()

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            err["error_subcode"] = self.subcode
        if self.is_transient is not None:
            err["is_transient"] = self.is_transient
        if self.user_title:
            err["error_user_title"] = self.user_title
        if self.user_msg:
            err["error_user_msg"] = self.user_msg
        err["fbtrace_id"] = self.trace_id
        return {"error": err}

    def response(self) -> Response:
        resp = jsonify(self.body())
        resp.status_code = self.status
        resp.headers["x-fb-trace-id"] = self.trace_id
        if self.code in (102, 190):
            resp.headers["WWW-Authenticate"] = f'OAuth "Facebook Platform" "invalid_token" "{self.message}"'
        return resp

    @classmethod
    def from_spec(cls, error: dict[str, Any] | None, status: int | None) -> GraphError:
        """Build an error from an admin fault spec (``{"code", "message", ...}``)."""
        error = dict(error or {})
        code = int(error.get("code", 2 if (status or 500) >= 500 else 100))
        if status is None:
            status = 500 if code in (1, 2) else 400
        default_msg = (
            "An unexpected error has occurred. Please retry your request later."
            if status >= 500
            else "Invalid parameter"
        )
        transient = error.get("is_transient")
        if transient is None and status >= 500:
            transient = True
        return cls(
            error.get("message") or default_msg,
            code,
            type=error.get("type") or "OAuthException",
            subcode=error.get("error_subcode"),
            status=status,
            user_title=error.get("error_user_title"),
            user_msg=error.get("error_user_msg"),
            is_transient=transient,
        )


def _meta_time(ts: float) -> str:
    return time.strftime("%A, %d-%b-%y %H:%M:%S UTC", time.gmtime(ts))


# --- access tokens -------------------------------------------------------


def token_error(subcode: int, expires_at: float | None = None, app_id: str = "") -> GraphError:
    """Code 190: 463 expired, 460 invalidated/revoked, 467 invalid."""
    if subcode == 463:
        when = expires_at or time.time()
        msg = (
            f"Error validating access token: Session has expired on {_meta_time(when)}. "
            f"The current time is {_meta_time(time.time())}."
        )
    elif subcode == 460:
        msg = (
            "Error validating access token: The session has been invalidated because "
            "the user changed their password or Facebook has changed the session for "
            f"security reasons, or the user has not authorized application {app_id}."
        )
    else:
        subcode = 467
        msg = "Invalid OAuth access token - Cannot parse access token"
    return GraphError(msg, 190, subcode=subcode)


def no_token(me: bool = False) -> GraphError:
    if me:
        return GraphError("An active access token must be used to query information about the current user.", 2500)
    return GraphError("An access token is required to request this resource.", 104)


def missing_proof() -> GraphError:
    return GraphError("API calls from the server require an appsecret_proof argument", 100, type="GraphMethodException")


def bad_proof() -> GraphError:
    return GraphError("Invalid appsecret_proof provided in the API argument", 100, type="GraphMethodException")


# --- objects and permissions ----------------------------------------------


def unsupported(object_id: str, method: str = "get") -> GraphError:
    return GraphError(
        f"Unsupported {method} request. Object with ID '{object_id}' does not exist, "
        "cannot be loaded due to missing permissions, or does not support this operation. "
        "Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
        100,
        type="GraphMethodException",
        subcode=33,
    )


def nonexisting_field(name: str, node_type: str) -> GraphError:
    return GraphError(f"(#100) Tried accessing nonexisting field ({name}) on node type ({node_type})", 100)


def missing_param(name: str) -> GraphError:
    return GraphError(f"(#100) The parameter {name} is required", 100)


def pages_permission() -> GraphError:
    return GraphError(
        "(#200) Requires pages_manage_posts permission: if posting to a page, requires both "
        "pages_read_engagement and pages_manage_posts as an admin with sufficient "
        "administrative permission",
        200,
    )


def page_token_required() -> GraphError:
    return GraphError("(#210) A page access token is required to request this resource.", 210)


def app_permission(scope: str) -> GraphError:
    return GraphError(f"(#10) Requires {scope} permission: Application does not have permission for this action", 10)


def transient() -> GraphError:
    return GraphError(
        "An unexpected error has occurred. Please retry your request later.", 2, status=500, is_transient=True
    )


def unknown_error() -> GraphError:
    return GraphError("An unknown error has occurred.", 1, status=500, is_transient=False)


# --- publishing --------------------------------------------------------------


def fb_media_invalid(missing: bool = False) -> GraphError:
    """Facebook could not use ``url``: code 324 (documented choice)."""
    if missing:
        return GraphError("(#324) Requires upload file", 324)
    return GraphError(
        "(#324) Missing or invalid image file",
        324,
        user_title="Image download failed",
        user_msg="The image URL could not be downloaded.",
    )


def ig_media_invalid() -> GraphError:
    return GraphError(
        "Media download has failed. The media URI doesn't meet our requirements.",
        9004,
        subcode=2207052,
        user_title="Media download failed",
        user_msg="The media could not be fetched from this URI.",
    )


def container_not_ready() -> GraphError:
    return GraphError(
        "Media ID is not available",
        9007,
        subcode=2207027,
        user_title="Media not ready for publishing",
        user_msg="The media is not ready for publishing, please wait for a moment",
    )


def container_already_published(container_id: str) -> GraphError:
    """Same code/subcode as "not ready" (Meta says the media ID is no longer
    available); the user message tells the two apart. Check the container's
    ``status_code`` (``PUBLISHED``) instead of publishing again."""
    return GraphError(
        "Media ID is not available",
        9007,
        subcode=2207027,
        user_title="Media already published",
        user_msg=f"The container {container_id} has already been published.",
    )


def container_missing(container_id: str) -> GraphError:
    return GraphError(
        f"The media builder with creation id = {container_id} does not exist or has been expired.",
        24,
        subcode=2207008,
        user_title="Media builder expired",
    )


def container_expired() -> GraphError:
    return GraphError(
        "The media you are trying to access has expired. Please try to upload again.",
        -2,
        subcode=2207020,
        user_title="Media expired",
    )


def container_failed() -> GraphError:
    return GraphError(
        "Create media fail, please try to re-create media", -1, subcode=2207032, user_title="Create media fail"
    )


def publishing_limit() -> GraphError:
    return GraphError(
        "The maximum number of posts that can be published within the 24 hour window has been reached",
        9,
        subcode=2207042,
        user_title="Limit reached",
        user_msg="You reached maximum number of posts that is allowed to be published by Content Publishing API.",
    )


def page_throttled() -> GraphError:
    return GraphError("(#32) Page request limit reached", 32, user_title="Page request limit reached")


def ig_throttled() -> GraphError:
    return GraphError("There have been too many calls to this Instagram account. Wait a bit and try again.", 80002)


# --- content v2: carousels, reels, stories, videos, comments ------------------
# Codes and subcodes follow Meta's published tables where they name the case (IG error
# codes: 2207006, 2207023, 2207026, 2207028; Video API: 6000, 1363130); the others are
# the sandbox's documented choice of Meta's generic ``(#100)`` parameter error.


def invalid_param(message: str, subcode: int | None = None, **extra: Any) -> GraphError:
    """Meta's generic parameter error, ``(#100) …``."""
    return GraphError(f"(#100) {message}", 100, subcode=subcode, **extra)


def media_type_unknown(media_type: str) -> GraphError:
    return GraphError(
        f"The media type {media_type} is unknown.",
        100,
        subcode=2207023,
        user_title="Unknown media type",
        user_msg=f"The media type {media_type} is unknown.",
    )


def carousel_size(count: int) -> GraphError:
    return GraphError(
        f"(#100) The carousel has {count} children; it needs between 2 and 10.",
        100,
        subcode=2207028,
        user_title="Carousel validation failed",
        user_msg="Your post won't be shared as a carousel. Carousels need at least 2 photos/videos and no more "
        "than 10 photos/videos. Please try again with a different number of photos/videos.",
    )


def media_not_found(media_id: str) -> GraphError:
    return GraphError(
        f"The media with id {media_id} cannot be found.",
        100,
        subcode=2207006,
        user_title="Media not found",
        user_msg="The media could not be found. It may have been deleted or belong to another account.",
    )


def video_upload_missing() -> GraphError:
    """``finish`` before the file was uploaded to the upload host."""
    return GraphError(
        "There was a problem uploading your video file. Please try again with another file.",
        6000,
        subcode=1363130,
        user_title="Video Upload Is Missing",
        user_msg="The video was not uploaded.",
    )


def video_file_failed() -> GraphError:
    """A file Facebook cannot process (the ``bad_file`` URL marker)."""
    return GraphError(
        "There was a problem uploading your video file. Please try again with another file.",
        6000,
        user_title="Video upload failed",
        user_msg="The video file could not be processed.",
    )


def reels_limit(total: int) -> GraphError:
    return GraphError(
        f"(#9) The Page has published {total} reels through the API in the last 24 hours, the most allowed.",
        9,
        user_title="Reels publishing limit reached",
        user_msg=f"Reels API is limited to {total} API-published posts within a 24-hour moving period.",
    )


class UploadError(GraphError):
    """An error of the upload host (``rupload``): ``{"debug_info": {"retriable", "type", "message"}}``."""

    def __init__(self, message: str, kind: str, status: int = 400, retriable: bool = False):
        super().__init__(message, 1, type=kind, status=status)
        self.retriable = retriable

    def body(self) -> dict[str, Any]:
        return {"debug_info": {"retriable": self.retriable, "type": self.type, "message": self.message}}
