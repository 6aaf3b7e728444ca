"""Request parsing: JSON bodies and query strings through marshmallow schemas."""

from __future__ import annotations

from typing import Any

from flask import request
from marshmallow import EXCLUDE, Schema, ValidationError

from shared.errors import AppError
from shared.validation import flatten_errors, loads_strict


def load_or_422(schema: Schema, data: Any, **kwargs) -> dict:
    try:
        return schema.load(data, **kwargs)
    except ValidationError as exc:
        raise AppError("validation_error", fields=flatten_errors(exc.messages)) from None


def json_body_raw(*, allow_empty: bool = False) -> dict:
    """The request's JSON object, not yet validated."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if allow_empty:
            return {}
        raise AppError("bad_request", detail="a JSON body is required")
    if not request.is_json:
        raise AppError("bad_request", http_status=415, detail="Content-Type must be application/json")
    try:
        payload = loads_strict(raw)
    except ValueError:
        # Malformed, or well-formed but pathological (deep, NaN, 1e999999, lone surrogates).
        raise AppError("bad_request", detail="malformed JSON") from None
    if not isinstance(payload, dict):
        raise AppError("bad_request", detail="the body must be a JSON object")
    return payload


def json_body(schema: Schema, *, allow_empty: bool = False) -> dict:
    """The request's JSON object validated by ``schema`` (unknown keys refused)."""
    return load_or_422(schema, json_body_raw(allow_empty=allow_empty))


def query_args(schema: Schema) -> dict:
    """Query string validated by ``schema``; unknown parameters are ignored."""
    return load_or_422(schema, request.args.to_dict(), unknown=EXCLUDE)
