"""200 answers through the schemas that document them (DESIGN §4; one source for both).

``@responds(StatusOut)`` on a view names the schema(s) of its 200 answer; the OpenAPI
document (``connect_service/openapi.py``) reads that mark, and :func:`answer` refuses to
dump with a schema the view does not name, so the document and the answers cannot drift.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, current_app, jsonify, request
from marshmallow import Schema

View = TypeVar("View", bound=Callable[..., Any])

RESPONSE_SCHEMAS = "response_schemas"


def responds(*schemas: type[Schema]) -> Callable[[View], View]:
    """Mark a view with the schema(s) its 200 answer is dumped with (several: one of them)."""

    def mark(view: View) -> View:
        setattr(view, RESPONSE_SCHEMAS, schemas)
        return view

    return mark


def response_schemas(view: Callable[..., Any]) -> tuple[type[Schema], ...]:
    return getattr(view, RESPONSE_SCHEMAS, ())


@functools.cache
def schema_instance(schema: type[Schema]) -> Schema:
    """One instance per schema class, shared by every answer: building one costs more than the
    dump itself, and dumping keeps no state on the instance."""
    return schema()


def dump(schema: type[Schema], value: Any) -> dict[str, Any]:
    """``value`` (a model object or a dict) as ``schema`` writes it; the view must name ``schema``."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or schema not in response_schemas(view):
        raise LookupError(f"{request.endpoint} does not document {schema.__name__} as its answer")
    dumped: dict[str, Any] = schema_instance(schema).dump(value)
    return dumped


def answer(schema: type[Schema], value: Any) -> Response:
    """A 200 JSON answer: ``value`` dumped by ``schema``."""
    return jsonify(dump(schema, value))
