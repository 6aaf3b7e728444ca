"""Who is calling (DESIGN §3): a Resellio user by session JWT, or the Resellio scheduler."""

from __future__ import annotations

import functools
import hmac
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

import jwt
from flask import g, request

from connect_service.extensions import services
from shared.errors import AppError

USER = "user"
SCHEDULER = "scheduler"


@dataclass(frozen=True)
class Caller:
    kind: str
    user_id: str | None
    via_cookie: bool

    @property
    def is_scheduler(self) -> bool:
        return self.kind == SCHEDULER


class VerifiedSessions:
    """Session JWTs already verified, remembered with their ``sub`` and ``exp``.

    The dashboard sends the same cookie on every call; verifying its HS256 signature and
    claims each time is most of the cost of a cheap answer. Only tokens that passed the full
    check are remembered (keyed by secret and token, so nobody without the secret can fill
    this), and a remembered one is refused from its ``exp`` on exactly as PyJWT would: the
    other time claims (``nbf``, ``iat``) were already in the past when it was verified.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], tuple[str, int]] = OrderedDict()

    def subject(self, token: str, secret: str) -> str:
        key = (secret, token)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is None:
            entry = _verify(token, secret)
            with self._lock:
                self._entries[key] = entry
                while len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
        subject, expires = entry
        if expires <= time.time():  # PyJWT: expired when exp <= now
            with self._lock:
                self._entries.pop(key, None)
            raise AppError("not_authenticated")
        return subject

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _verify(token: str, secret: str) -> tuple[str, int]:
    """The full check of a session JWT: its ``sub`` and ``exp``, or ``not_authenticated``."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.PyJWTError:
        raise AppError("not_authenticated") from None
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip() or not subject.isprintable() or len(subject) > 255:
        raise AppError("not_authenticated")
    return subject, int(claims["exp"])


verified_sessions = VerifiedSessions()


def decode_session(token: str, secret: str) -> str:
    """The ``sub`` of a valid HS256 session JWT; raises ``not_authenticated`` otherwise."""
    return verified_sessions.subject(token, secret)


def authenticate() -> Caller:
    """Identify the caller from the bearer header, else the session cookie."""
    settings = services().settings
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    if header:
        if scheme.lower() != "bearer" or not credential.strip():
            raise AppError("not_authenticated")
        credential = credential.strip()
        scheduler_token = settings.scheduler_api_token
        if scheduler_token and hmac.compare_digest(credential.encode(), scheduler_token.encode()):
            return Caller(SCHEDULER, None, via_cookie=False)
        return Caller(USER, decode_session(credential, settings.session_secret), via_cookie=False)
    cookie = request.cookies.get(settings.session_cookie)
    if not cookie:
        raise AppError("not_authenticated")
    return Caller(USER, decode_session(cookie, settings.session_secret), via_cookie=True)


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def allowed_origins() -> set[str]:
    own = _origin_of(request.host_url)
    return {o.lower() for o in services().settings.cors_origins} | ({own} if own else set())


def check_origin(caller: Caller) -> None:
    """State-changing cookie calls must come from this service or an allowed dashboard."""
    if not caller.via_cookie or request.method not in ("POST", "PUT", "PATCH", "DELETE"):
        return
    origin = request.headers.get("Origin")
    source = _origin_of(origin) if origin and origin != "null" else None
    if source is None and not origin:
        referer = request.headers.get("Referer")
        source = _origin_of(referer) if referer else None
    if source is None or source not in allowed_origins():
        raise AppError("forbidden_origin")


def require_caller(*, allow_scheduler: bool = False):
    """Decorator: authenticate, refuse the scheduler unless allowed, check the Origin."""

    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            caller = authenticate()
            if caller.is_scheduler and not allow_scheduler:
                raise AppError("forbidden")
            check_origin(caller)
            g.caller = caller
            return view(*args, **kwargs)

        return wrapped

    return decorator


require_user = require_caller()


def current_caller() -> Caller:
    return g.caller
