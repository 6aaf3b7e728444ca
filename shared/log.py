"""Logging that never carries a token, secret or OAuth code (DESIGN §7).

Masking happens when a record is created, so every handler sees the masked text,
including handlers that third-party code or the test runner attach.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

MASK = "***"

_SECRET_PARAMS = (
    "access_token",
    "client_secret",
    "code",
    "fb_exchange_token",
    "input_token",
    "appsecret_proof",
    "signed_request",
    "state",
    "refresh_token",
    "password",
)
_PARAM_RE = re.compile(
    r"(?i)(?P<key>[\"']?\b(?:" + "|".join(_SECRET_PARAMS) + r")[\"']?\s*(?:=|:)\s*[\"']?)(?P<value>[^&\s\"',;)}]{6,})"
)
_AUTH_RE = re.compile(r"(?i)\b(?P<key>(?:Bearer|OAuth)\s+)(?P<value>[A-Za-z0-9._~+/=|-]{8,})")
# Meta user and page tokens start with EAA; app tokens are "app_id|secret".
_META_TOKEN_RE = re.compile(r"\bEAA[A-Za-z0-9_-]{16,}")
_APP_TOKEN_RE = re.compile(r"\b(\d{5,}|[A-Za-z0-9-]{6,})\|[A-Za-z0-9_-]{16,}")
_CIPHERTEXT_RE = re.compile(r"\bv1:[A-Za-z0-9_-]+:[A-Za-z0-9_-]{24,}")

_extra_secrets: set[str] = set()
# The registered secrets, longest first (a secret containing another is masked whole); kept sorted
# at registration, so masking a line never sorts.
_secrets_longest_first: tuple[str, ...] = ()
# Immutable default: every change makes a new mapping (set_log_context), never mutates this one.
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "social_connect_log_context", default=MappingProxyType({})
)


def set_log_context(**fields: Any) -> contextvars.Token[Mapping[str, Any]]:
    """Attach fields (request_id, job_id, connection_id…) to every record in this context."""
    return _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def reset_log_context(token: contextvars.Token[Mapping[str, Any]]) -> None:
    _context.reset(token)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    token = set_log_context(**fields)
    try:
        yield
    finally:
        reset_log_context(token)


def register_secret(value: str | None) -> None:
    """Mask this exact value everywhere (app secret, session secret, scheduler token…)."""
    global _secrets_longest_first
    if value and len(value) >= 6 and value not in _extra_secrets:
        _extra_secrets.add(value)
        _secrets_longest_first = tuple(sorted(_extra_secrets, key=len, reverse=True))


def _may_hold_secret(text: str) -> bool:
    """Whether any pattern below could match: most lines carry none of their anchors, so they skip the regexes."""
    if "EAA" in text or "|" in text or "v1:" in text:
        return True
    lowered = text.casefold()  # as the regexes' IGNORECASE matches (ſ is s)
    return "bearer" in lowered or "oauth" in lowered or any(name in lowered for name in _SECRET_PARAMS)


def mask(text: str) -> str:
    """Replace anything token-shaped in ``text``."""
    if not text:
        return text
    for secret in _secrets_longest_first:
        if secret in text:
            text = text.replace(secret, MASK)
    if not _may_hold_secret(text):
        return text
    text = _PARAM_RE.sub(lambda m: m.group("key") + MASK, text)
    text = _AUTH_RE.sub(lambda m: m.group("key") + MASK, text)
    text = _META_TOKEN_RE.sub(MASK, text)
    text = _APP_TOKEN_RE.sub(MASK, text)
    text = _CIPHERTEXT_RE.sub(MASK, text)
    return text


_base_factory = logging.getLogRecordFactory()


def _masking_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    record.log_context = _context.get()
    try:
        message = record.getMessage()
    except Exception:  # a broken format string must not break logging
        message = str(record.msg)
    record.msg = mask(message)
    record.args = None
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None
    if record.stack_info:
        record.stack_info = mask(record.stack_info)
    return record


class JsonFormatter(logging.Formatter):
    """One JSON object per line, carrying the context fields set with ``extra=``."""

    CONTEXT = ("request_id", "job_id", "connection_id", "user_id_resellio", "event")

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = getattr(record, "log_context", None) or {}
        for key in self.CONTEXT:
            value = getattr(record, key, None) or context.get(key)
            if value is not None:
                entry[key] = value
        if record.exc_text:
            entry["exception"] = record.exc_text
        return mask(json.dumps(entry, ensure_ascii=False, default=str))


def install_masking() -> None:
    """Mask every record from now on (idempotent)."""
    if logging.getLogRecordFactory() is not _masking_factory:
        logging.setLogRecordFactory(_masking_factory)


def configure_logging(level: str = "INFO", json_lines: bool = True) -> None:
    """Masking plus one stderr handler on the root logger (idempotent)."""
    install_masking()
    root = logging.getLogger()
    if not any(getattr(h, "_social_connect", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler._social_connect = True  # type: ignore[attr-defined]
        handler.setFormatter(
            JsonFormatter() if json_lines else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        root.addHandler(handler)
    root.setLevel(level)
    # urllib3 logs full URLs at DEBUG; masked anyway, but keep it quiet.
    logging.getLogger("urllib3").setLevel(logging.INFO)
