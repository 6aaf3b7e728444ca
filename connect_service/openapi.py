"""``GET /api/meta/openapi.json``: OpenAPI 3 of the API, generated from the marshmallow schemas."""

from __future__ import annotations

import copy
import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, Response, current_app, jsonify

from connect_service import schemas
from connect_service.responses import response_schemas
from connect_service.schedule_api import MAX_IDEMPOTENCY_KEY
from shared.errors import CATALOGUE
from shared.post_changes import RetryBody
from shared.post_schema import MAX_CAPTION, MAX_HASHTAGS, MAX_MENTIONS, ScheduleBody
from shared.targets import MAX_MEDIA, TARGET_NAMES

bp = Blueprint("openapi", __name__, url_prefix="/api/meta")

USER: list[dict[str, list[str]]] = [{"sessionCookie": []}, {"sessionBearer": []}]
USER_OR_SCHEDULER = USER + [{"schedulerBearer": []}]


def _json(schema: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _answer(schema: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, **_json(schema)}


def _errors(*codes: str | tuple[str, int]) -> dict[str, Any]:
    """One response per HTTP status, listing the error codes it may carry.

    A code is answered with its catalogue status, or with the status given next to it
    (``("bad_request", 415)``: the body is not JSON). Every operation may answer ``bad_request``
    (e.g. a NUL in the URL) and ``internal_error``.
    """
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys(codes + ("bad_request", "internal_error")):
        name, status = code if isinstance(code, tuple) else (code, CATALOGUE[code].http_status)
        by_status.setdefault(status, []).append(name)
    return {
        str(status): _answer("Error", "error_code: " + ", ".join(names)) for status, names in sorted(by_status.items())
    }


def _op(
    operation_id: str,
    summary: str,
    ok: dict[str, Any],  # the 200 answer without its JSON schema: build_spec adds the view's
    *errors: str | tuple[str, int],
    security: list[dict[str, list[str]]] = USER,
    also: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An operation: 200 ``ok``, the ``also`` responses (e.g. a 302), and the errors it may answer."""
    responses = {"200": ok, **(also or {}), **_errors(*errors)}
    return {"operationId": operation_id, "summary": summary, "security": security, "responses": responses, **extra}


def _redirect(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {
            "Location": {"description": "Where the browser goes next", "required": True, "schema": {"type": "string"}}
        },
    }


def _form(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": schema}}}


# A JSON body that is malformed or too deep (400), not JSON (415) or over 64 KB (413).
JSON_BODY_ERRORS = ("bad_request", ("bad_request", 415), ("bad_request", 413), "validation_error")
# Meta answered an error while we acted for the seller (DESIGN §5).
META_ERRORS = ("token_expired", "permissions_missing", "rate_limited", "meta_unavailable")

CREATED_POST_LINKS = {
    "GetPost": {"operationId": "getPost", "parameters": {"job_id": "$response.body#/job_id"}},
    "CancelPost": {"operationId": "cancelPost", "parameters": {"job_id": "$response.body#/job_id"}},
}
# A 200 answer's JSON schema is the one its view names with @responds (connect_service/responses.py).
OK = {"description": "OK"}
CALLBACK_OK = {"description": "Connected, or a page selection is needed"}
DELETION_STATUS_OK = {"description": "OK", "content": {"text/html": {"schema": {"type": "string"}}}}


def _path_param(name: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}]


PATHS: dict[str, dict[str, Any]] = {
    "/api/meta/connect": {
        "get": _op(
            "startConnect",
            "Start OAuth: a single-use state and Meta's dialog URL (302 with ?redirect=1)",
            OK,
            "not_authenticated",
            "forbidden",
            "validation_error",
            also={"302": _redirect("?redirect=1: Meta's dialog")},
            parameters=[{"in": "query", "schema": schemas.ConnectQuery}],
        )
    },
    "/api/meta/callback": {
        "get": _op(
            "oauthCallback",
            "Meta's redirect back; JSON for API callers, 302 to DASHBOARD_URL for browsers",
            CALLBACK_OK,
            "not_authenticated",
            "forbidden",
            "invalid_state",
            "not_admin_page",
            "instagram_not_connected_to_page",
            "validation_error",
            *META_ERRORS,
            also={"302": _redirect("A browser: back to DASHBOARD_URL with ?meta_status=…[&error_code=…]")},
            parameters=[{"in": "query", "schema": schemas.CallbackQuery}],
        )
    },
    "/api/meta/pages": {
        "get": _op(
            "getPendingPages",
            "The pending page selection",
            OK,
            "not_authenticated",
            "forbidden",
            "selection_expired",
        )
    },
    "/api/meta/select-page": {
        "post": _op(
            "selectPage",
            "Finish a multi-page connect",
            OK,
            "not_authenticated",
            "forbidden",
            "forbidden_origin",
            "selection_expired",
            "page_not_found",
            "not_admin_page",
            "instagram_not_connected_to_page",
            *JSON_BODY_ERRORS,
            *META_ERRORS,
            requestBody={"required": True, **_json("SelectPageBody")},
        )
    },
    "/api/meta/status": {"get": _op("getStatus", "The seller's connection", OK, "not_authenticated", "forbidden")},
    "/api/meta/disconnect": {
        "post": _op(
            "disconnect",
            "Revoke, wipe tokens, keep the row; idempotent (no body, or {})",
            OK,
            "not_authenticated",
            "forbidden",
            "forbidden_origin",
            *JSON_BODY_ERRORS,
            requestBody={"required": False, **_json("EmptyBody")},
        )
    },
    "/api/meta/schedule": {
        "post": _op(
            "schedulePost",
            "Store a post and queue it for publish_at",
            {**OK, "links": CREATED_POST_LINKS},
            "not_authenticated",
            "forbidden_origin",
            "not_found",
            "not_connected",
            "token_expired",
            "permissions_missing",
            "meta_action_required",
            "idempotency_conflict",
            *JSON_BODY_ERRORS,
            security=USER_OR_SCHEDULER,
            parameters=[
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
                }
            ],
            requestBody={"required": True, **_json("ScheduleBody")},
        ),
        "get": _op(
            "listPosts",
            "The caller's posts, newest first (the scheduler gives connection_id)",
            OK,
            "not_authenticated",
            "validation_error",
            security=USER_OR_SCHEDULER,
            parameters=[{"in": "query", "schema": schemas.PostListQuery}],
        ),
    },
    "/api/meta/schedule/{job_id}": {
        "parameters": _path_param("job_id"),
        "get": _op(
            "getPost",
            "One post with its per-target outcome",
            OK,
            "not_authenticated",
            "not_found",
            security=USER_OR_SCHEDULER,
        ),
        "patch": _op(
            "editPost",
            "Change a queued post (sellers only): a JSON merge patch, the merged post validated as in "
            "POST /schedule; 409 not_editable once publishing has started",
            OK,
            "not_authenticated",
            "forbidden",
            "forbidden_origin",
            "not_found",
            "not_editable",
            "not_connected",
            "token_expired",
            "permissions_missing",
            "meta_action_required",
            "media_unreachable",
            *JSON_BODY_ERRORS,
            requestBody={
                "required": True,
                "content": {
                    "application/merge-patch+json": {"schema": "PostPatch"},
                    "application/json": {"schema": "PostPatch"},
                },
            },
        ),
        "delete": _op(
            "cancelPost",
            "Cancel a post that has not started publishing (sellers only)",
            OK,
            "not_authenticated",
            "forbidden",
            "forbidden_origin",
            "not_found",
            "not_cancellable",
        ),
    },
    "/api/meta/schedule/{job_id}/retry": {
        "parameters": _path_param("job_id"),
        "post": _op(
            "retryPost",
            "Re-queue the targets that failed with a retryable cause, now or at publish_at; an unconfirmed "
            "target only with confirm_unconfirmed (no body, or {})",
            OK,
            "not_authenticated",
            "forbidden_origin",
            "not_found",
            "not_retryable",
            "not_connected",
            "token_expired",
            "permissions_missing",
            "meta_action_required",
            *JSON_BODY_ERRORS,
            security=USER_OR_SCHEDULER,
            requestBody={"required": False, **_json("RetryBody")},
        ),
    },
    "/api/meta/deauthorize": {
        "post": _op(
            "deauthorize",
            "Meta: the person removed the app (signed_request)",
            OK,
            "bad_request",
            security=[],
            requestBody=_form("SignedRequestForm"),
        )
    },
    "/api/meta/data-deletion": {
        "post": _op(
            "requestDataDeletion",
            "Meta: erase the person's data (signed_request)",
            OK,
            "bad_request",
            security=[],
            requestBody=_form("SignedRequestForm"),
        )
    },
    "/api/meta/data-deletion/{code}": {
        "get": _op(
            "getDataDeletionStatus",
            "Status of a data deletion request (an HTML page for a browser)",
            DELETION_STATUS_OK,
            "not_found",
            security=[],
            parameters=_path_param("code"),
        )
    },
}

SCHEMAS = {
    "ConnectOut": schemas.ConnectOut,
    "ConnectedOut": schemas.ConnectedOut,
    "SelectionOut": schemas.SelectionOut,
    "PagesOut": schemas.PagesOut,
    "SelectPageBody": schemas.SelectPageBody,
    "StatusOut": schemas.StatusOut,
    "DisconnectOut": schemas.DisconnectOut,
    "ScheduleBody": ScheduleBody,
    "ScheduleOut": schemas.ScheduleOut,
    "PostOut": schemas.PostOut,
    "PostListOut": schemas.PostListOut,
    "CancelOut": schemas.CancelOut,
    "PostPatch": schemas.PostPatch,
    "RetryBody": RetryBody,
    "DeletionOut": schemas.DeletionOut,
    "DeletionStatusOut": schemas.DeletionStatusOut,
    "Error": schemas.ErrorOut,
    "EmptyBody": schemas.EmptyBody,
    "SignedRequestForm": schemas.SignedRequestForm,
    "DeauthorizeOut": schemas.DeauthorizeOut,
}
SCHEMA_NAMES = {schema: name for name, schema in SCHEMAS.items()}

DESCRIPTION = (
    "Connect a Facebook Page and its Instagram Business account; schedule posts to both. "
    "Errors: {error_code, message, action[, fields]} (fields: flat dotted keys, lists of messages). "
    "A method a path does not list answers 405 bad_request in that shape, with an Allow header "
    "(components/responses/MethodNotAllowed)."
)


# What ScheduleBody's own validators check, in the document's terms (DESIGN §4, §13.2).
SCHEDULE_BODY_BOUNDS: dict[str, dict[str, Any]] = {
    "publish_at": {
        "description": "ISO-8601 with a time zone; not more than 5 minutes in the past, at most a year ahead"
    },
    "caption": {
        "maxLength": MAX_CAPTION,
        "description": f"At most {MAX_HASHTAGS} #hashtags and {MAX_MENTIONS} @mentions; none for a story",
    },
    "media_url": {
        "format": "uri",
        "description": "An absolute https URL Meta can fetch: the short form of media holding one image "
        "(not together with media); instagram needs media",
    },
    "link": {"format": "uri", "description": "An absolute http(s) URL; Facebook only, format post only"},
    "targets": {"maxItems": len(TARGET_NAMES), "uniqueItems": True},
    "format": {"description": "post, reel (one video) or story (one image or video, no caption or comment)"},
    "media": {
        "description": f"1 to {MAX_MEDIA} items, not together with media_url. What each format and number "
        "of items publishes on each target, and what is refused, is DESIGN §13.2's table"
    },
    "first_comment": {
        "minLength": 1,
        "maxLength": MAX_CAPTION,
        "description": f"Posted on each target right after it is published; at most {MAX_HASHTAGS} #hashtags "
        f"and {MAX_MENTIONS} @mentions; not for a story",
    },
    "cover_url": {
        "format": "uri",
        "description": "A reel's cover image (absolute https); only where Instagram makes a reel",
    },
}
MEDIA_ITEM_BOUNDS: dict[str, dict[str, Any]] = {
    "url": {"format": "uri", "description": "An absolute https URL Meta can fetch"},
    "alt_text": {"description": "Images only (Instagram shows it)"},
}
BOUNDS: dict[str, dict[str, dict[str, Any]]] = {
    "ScheduleBody": SCHEDULE_BODY_BOUNDS,
    "PostPatch": {name: bounds for name, bounds in SCHEDULE_BODY_BOUNDS.items() if name != "publish_at"}
    | {"publish_at": {"description": "As in ScheduleBody (it cannot be removed)"}},
    "RetryBody": {
        "publish_at": {"description": "When to try again (default: now); not more than 5 minutes in the past"},
        "confirm_unconfirmed": {
            "description": "Also retry unconfirmed targets (they may be live already: the worker looks "
            "for each before sending it again)"
        },
    },
    "MediaItemBody": MEDIA_ITEM_BOUNDS,
}


def _view_answers(app: Flask) -> dict[tuple[str, str], str | dict[str, Any]]:
    """(OpenAPI path, method) -> the JSON schema of its 200 answer, from the views' @responds marks."""
    answers: dict[tuple[str, str], str | dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():
        marked = response_schemas(app.view_functions[rule.endpoint])
        if not marked:
            continue
        if len(marked) == 1:
            schema: str | dict[str, Any] = SCHEMA_NAMES[marked[0]]  # the marshmallow plugin makes it a $ref
        else:
            schema = {"oneOf": [{"$ref": f"#/components/schemas/{SCHEMA_NAMES[one]}"} for one in marked]}
        for method in rule.methods or ():
            answers[(openapi_path(rule.rule), method.lower())] = schema
    return answers


def openapi_path(rule: str) -> str:
    """A Flask rule (``/schedule/<job_id>``) as an OpenAPI path (``/schedule/{job_id}``)."""
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


def build_spec(app: Flask) -> dict[str, Any]:
    spec = APISpec(
        title="Resellio Social Connect",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": DESCRIPTION},
    )
    spec.components.security_scheme("sessionCookie", {"type": "apiKey", "in": "cookie", "name": "resellio_session"})
    spec.components.security_scheme("sessionBearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.security_scheme("schedulerBearer", {"type": "http", "scheme": "bearer"})
    for name, schema in SCHEMAS.items():
        spec.components.schema(name, schema=schema)
    spec.components.response(
        "MethodNotAllowed",
        {
            "description": "A method the path does not list: error_code bad_request",
            "headers": {
                "Allow": {"description": "The methods the path answers", "required": True, "schema": {"type": "string"}}
            },
            **_json("Error"),
        },
    )
    answers = _view_answers(app)
    for path, operations in PATHS.items():
        operations = copy.deepcopy(operations)
        parameters = operations.pop("parameters", None)
        for method, operation in operations.items():
            ok = operation["responses"]["200"]  # a fresh dict: operations may share one 200 answer
            content = {"application/json": {"schema": answers[(path, method)]}, **ok.get("content", {})}
            operation["responses"]["200"] = {**ok, "content": content}
        spec.path(path=path, parameters=parameters, operations=operations)
    document = spec.to_dict()
    for schema_name, properties in BOUNDS.items():
        for name, bounds in properties.items():
            document["components"]["schemas"][schema_name]["properties"][name].update(bounds)
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else operation:
                _absent_not_null(parameter["schema"])
    return document


def _absent_not_null(schema: dict[str, Any]) -> None:
    """A query parameter is absent or a string, never null: drop what ``load_default=None`` implies."""
    if "default" in schema and schema["default"] is None:
        del schema["default"]
        schema.pop("nullable", None)
        if "enum" in schema:
            schema["enum"] = [value for value in schema["enum"] if value is not None]


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(build_spec(current_app))
