"""``GET /api/meta/openapi.json``: OpenAPI 3 of the API, generated from the marshmallow schemas."""
from __future__ import annotations

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, jsonify

from connect_service import schemas
from shared.errors import CATALOGUE
from shared.post_schema import ScheduleBody

bp = Blueprint("openapi", __name__, url_prefix="/api/meta")

USER = [{"sessionCookie": []}, {"sessionBearer": []}]
USER_OR_SCHEDULER = USER + [{"schedulerBearer": []}]


def _json(schema: str) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _answer(schema: str, description: str = "OK") -> dict:
    return {"description": description, **_json(schema)}


def _errors(*codes: str) -> dict:
    """One response per HTTP status, listing the error codes it may carry."""
    by_status: dict[int, list[str]] = {}
    for code in codes + ("internal_error",):
        by_status.setdefault(CATALOGUE[code].http_status, []).append(code)
    return {str(status): _answer("Error", "error_code: " + ", ".join(names)) for status, names in by_status.items()}


def _op(summary: str, ok: dict, *errors: str, security=USER, **extra) -> dict:
    return {"summary": summary, "security": security, "responses": {"200": ok, **_errors(*errors)}, **extra}


PATHS: dict[str, dict] = {
    "/api/meta/connect": {"get": _op(
        "Start OAuth: a single-use state and Meta's dialog URL (302 with ?redirect=1)", _answer("ConnectOut"),
        "not_authenticated", "forbidden",
        parameters=[{"name": "redirect", "in": "query", "schema": {"type": "boolean"}}])},
    "/api/meta/callback": {"get": _op(
        "Meta's redirect back; JSON for API callers, 302 to DASHBOARD_URL for browsers",
        {"description": "Connected, or a page selection is needed",
         "content": {"application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/ConnectedOut"},
                                                                {"$ref": "#/components/schemas/SelectionOut"}]}}}},
        "not_authenticated", "invalid_state", "permissions_missing", "not_admin_page",
        "instagram_not_connected_to_page", "meta_unavailable", "validation_error",
        parameters=[{"name": n, "in": "query", "schema": {"type": "string"}}
                    for n in ("code", "state", "error", "error_reason")])},
    "/api/meta/pages": {"get": _op("The pending page selection", _answer("PagesOut"), "not_authenticated",
                                   "selection_expired")},
    "/api/meta/select-page": {"post": _op(
        "Finish a multi-page connect", _answer("ConnectedOut"), "not_authenticated", "forbidden_origin",
        "selection_expired", "page_not_found", "instagram_not_connected_to_page", "validation_error",
        "bad_request", requestBody={"required": True, **_json("SelectPageBody")})},
    "/api/meta/status": {"get": _op("The seller's connection", _answer("StatusOut"), "not_authenticated")},
    "/api/meta/disconnect": {"post": _op("Revoke, wipe tokens, keep the row; idempotent", _answer("DisconnectOut"),
                                         "not_authenticated", "forbidden_origin")},
    "/api/meta/schedule": {
        "post": _op("Store a post and queue it for publish_at", _answer("ScheduleOut"), "not_authenticated",
                    "validation_error", "not_found", "not_connected", "token_expired", "permissions_missing",
                    "idempotency_conflict", "bad_request", security=USER_OR_SCHEDULER,
                    parameters=[{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
                    requestBody={"required": True, **_json("ScheduleBody")}),
        "get": _op("The caller's posts, newest first", _answer("PostListOut"), "not_authenticated",
                   "validation_error", security=USER_OR_SCHEDULER,
                   parameters=[{"name": n, "in": "query", "schema": {"type": t}}
                               for n, t in (("status", "string"), ("limit", "integer"), ("cursor", "string"),
                                            ("connection_id", "string"))]),
    },
    "/api/meta/schedule/{job_id}": {
        "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "get": _op("One post with its per-target outcome", _answer("PostOut"), "not_authenticated", "not_found",
                   security=USER_OR_SCHEDULER),
        "delete": _op("Cancel a post that has not started publishing", _answer("CancelOut"), "not_authenticated",
                      "not_found", "not_cancellable", security=USER_OR_SCHEDULER),
    },
    "/api/meta/deauthorize": {"post": _op("Meta: the person removed the app (signed_request)",
                                          {"description": "Handled"}, "bad_request", security=[])},
    "/api/meta/data-deletion": {"post": _op("Meta: erase the person's data (signed_request)",
                                            _answer("DeletionOut"), "bad_request", security=[])},
    "/api/meta/data-deletion/{code}": {"get": _op(
        "Status of a data deletion request", _answer("DeletionStatusOut"), "not_found", security=[],
        parameters=[{"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}])},
}

SCHEMAS = {
    "ConnectOut": schemas.ConnectOut, "ConnectedOut": schemas.ConnectedOut, "SelectionOut": schemas.SelectionOut,
    "PagesOut": schemas.PagesOut, "SelectPageBody": schemas.SelectPageBody, "StatusOut": schemas.StatusOut,
    "DisconnectOut": schemas.DisconnectOut, "ScheduleBody": ScheduleBody, "ScheduleOut": schemas.ScheduleOut,
    "PostOut": schemas.PostOut, "PostListOut": schemas.PostListOut, "CancelOut": schemas.CancelOut,
    "DeletionOut": schemas.DeletionOut, "DeletionStatusOut": schemas.DeletionStatusOut, "Error": schemas.ErrorOut,
}


def build_spec() -> dict:
    spec = APISpec(title="Resellio Social Connect", version="1.0.0", openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()],
                   info={"description": "Connect a Facebook Page and its Instagram Business account; schedule "
                                        "posts to both. Errors: {error_code, message, action[, fields]}."})
    spec.components.security_scheme("sessionCookie", {"type": "apiKey", "in": "cookie", "name": "resellio_session"})
    spec.components.security_scheme("sessionBearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.security_scheme("schedulerBearer", {"type": "http", "scheme": "bearer"})
    for name, schema in SCHEMAS.items():
        spec.components.schema(name, schema=schema)
    for path, operations in PATHS.items():
        operations = dict(operations)
        spec.path(path=path, parameters=operations.pop("parameters", None), operations=operations)
    return spec.to_dict()


@bp.get("/openapi.json")
def openapi():
    return jsonify(build_spec())
