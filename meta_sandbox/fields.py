"""The Graph ``fields`` parameter: ``id,name,instagram_business_account{id,username}``.

Modifiers such as ``.limit(5)`` are accepted and ignored.
"""

from __future__ import annotations

from .errors import GraphError, nonexisting_field

Fields = dict  # name -> Fields | None


def _syntax(spec: str) -> GraphError:
    return GraphError(f"(#100) Syntax error in fields parameter: {spec!r}", 100)


def parse_fields(spec: str | None) -> Fields | None:
    """Parse a fields expression into ``{name: sub-fields or None}``; None if empty."""
    if spec is None or not spec.strip():
        return None
    fields, pos = _parse(spec, 0, 0)
    if pos != len(spec):
        raise _syntax(spec)
    return fields


def _parse(s: str, i: int, depth: int) -> tuple[Fields, int]:
    out: Fields = {}
    name = ""
    last = None  # the field a following "{...}" or ".modifier" belongs to

    def flush():
        nonlocal name, last
        if name:
            out[name] = None
            last = name
            name = ""

    while i < len(s):
        c = s[i]
        if c == ",":
            flush()
            last = None
            i += 1
        elif c == "{":
            flush()
            if last is None:
                raise _syntax(s)
            out[last], i = _parse(s, i + 1, depth + 1)
        elif c == "}":
            if depth == 0:
                raise _syntax(s)
            flush()
            return out, i + 1
        elif c == ".":
            flush()
            if last is None:
                raise _syntax(s)
            i += 1
            while i < len(s) and (s[i].isalnum() or s[i] == "_"):
                i += 1
            if i < len(s) and s[i] == "(":
                close = s.find(")", i)
                if close < 0:
                    raise _syntax(s)
                i = close + 1
        elif c.isspace():
            i += 1
        elif c.isalnum() or c == "_":
            name += c
            i += 1
        else:
            raise _syntax(s)
    if depth:
        raise _syntax(s)
    flush()
    return out, i


def select(
    obj: dict,
    fields: Fields | None,
    default: tuple[str, ...],
    node_type: str,
    allowed: set[str] | None = None,
    always_id: bool = True,
) -> dict:
    """Keep the requested keys of ``obj`` (absent values stay absent, like Meta).

    ``obj`` values may be callables taking the sub-fields (for expansions).
    Unknown names raise code 100 "Tried accessing nonexisting field". Like
    Meta, a node's ``id`` is always returned.
    """
    wanted = fields if fields is not None else {name: None for name in default}
    if always_id and "id" in obj and "id" not in wanted:
        wanted = {"id": None, **wanted}
    allowed = allowed if allowed is not None else set(obj)
    out = {}
    for name, sub in wanted.items():
        if name not in allowed:
            raise nonexisting_field(name, node_type)
        value = obj.get(name)
        if callable(value):
            value = value(sub)
        if value is not None:
            out[name] = value
    return out
