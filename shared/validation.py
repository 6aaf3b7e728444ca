"""marshmallow error messages in the API's flat shape."""
from __future__ import annotations

from typing import Any


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as flat dotted keys: ``{"targets.0": ["..."]}``."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            flat.update(flatten_errors(value, f"{prefix}{key}."))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        flat[prefix.rstrip(".")] = list(messages)
    elif isinstance(messages, list):
        for index, value in enumerate(messages):
            flat.update(flatten_errors(value, f"{prefix}{index}."))
    else:
        flat[prefix.rstrip(".")] = [str(messages)]
    return flat
