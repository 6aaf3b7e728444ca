"""Settings read once from the environment and validated (DESIGN §2).

Nothing here runs at import time: callers build a :class:`Settings` with
:func:`load_settings` when the app or the worker starts, so a production start
with a missing secret fails at once with the variable's name.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

from shared.validation import ip_literal

PROJECT_ROOT = Path(__file__).resolve().parent.parent

APP_ENVS = ("production", "demo", "test")

REQUIRED_SCOPES = (
    "pages_show_list",
    "pages_read_engagement",
    "pages_manage_posts",
    "instagram_basic",
    "instagram_content_publish",
)
DEFAULT_SCOPES = REQUIRED_SCOPES + ("business_management",)

# Only for demo and test: a fixed key and secrets so those modes run with no setup.
DEMO_ENCRYPTION_KEYS = "demo1:" + base64.b64encode(b"resellio-demo-key-not-for-prod!!").decode()
DEMO_SESSION_SECRET = "resellio-demo-session-secret-not-for-production"
DEMO_APP_ID = "sandbox-app-id"
DEMO_APP_SECRET = "sandbox-app-secret"


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    app_env: str
    database_url: str
    redis_url: str | None
    meta_app_id: str
    meta_app_secret: str = field(repr=False)
    meta_redirect_uri: str | None
    meta_graph_version: str
    meta_graph_url: str
    meta_dialog_url: str
    meta_scopes: tuple[str, ...]
    token_encryption_keys: tuple[tuple[str, bytes], ...] = field(repr=False)
    session_secret: str = field(repr=False)
    session_cookie: str
    scheduler_api_token: str | None = field(repr=False)
    dashboard_url: str
    cors_origins: tuple[str, ...]
    metrics_port: int
    # Where outcome events go (DESIGN §13.3; unset: no events recorded) and their Standard
    # Webhooks signing secret (``whsec_`` + base64 of >= 32 bytes), required with the URL.
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    # Meta's other API hosts (DESIGN §2): single Facebook videos, and the resumable upload
    # host of Facebook Reels and video stories. Point them at the sandbox with META_GRAPH_URL.
    meta_graph_video_url: str = "https://graph-video.facebook.com"
    meta_upload_url: str = "https://rupload.facebook.com"
    # The media pre-check (DESIGN §2, §13.2): "enforce" or "off"; hosts exempt from its
    # https/public rule (demo and test only; when set, no other host is ever fetched).
    media_precheck: str = "enforce"
    media_precheck_allow_hosts: tuple[str, ...] = ()
    # Timeouts and worker tuning: settings so tests can shorten them.
    graph_connect_timeout: float = 3.0
    graph_read_timeout: float = 10.0
    callback_budget_seconds: float = 25.0
    status_check_timeout: float = 3.0
    token_check_max_age_seconds: int = 600
    lease_seconds: int = 120
    sweep_interval_seconds: float = 30.0
    retry_base_seconds: float = 30.0
    retry_max_tries: int = 5
    ig_status_poll_seconds: float = 3.0
    ig_container_timeout_seconds: float = 600.0
    quota_defer_seconds: float = 3600.0
    max_runs: int = 20
    usage_slowdown_max_seconds: float = 2.0
    token_daily_check_seconds: int = 86400
    # Worker sizing (DESIGN §13.4): posts in flight per process, per Page / IG account, and
    # the worker's database pool (connections are held only while a step reads or commits).
    worker_concurrency: int = 128
    worker_page_concurrency: int = 16
    # All 20 kept open: an overflow connection is closed on its return, and a burst then opened
    # (and PostgreSQL forked a backend for) a connection every few posts.
    worker_db_pool_size: int = 20
    worker_db_max_overflow: int = 0

    @property
    def graph_base(self) -> str:
        """The versioned Graph API base, e.g. ``https://graph.facebook.com/v25.0``."""
        return f"{self.meta_graph_url.rstrip('/')}/{self.meta_graph_version}"

    @property
    def graph_video_base(self) -> str:
        """The versioned base of single Facebook videos, e.g. ``https://graph-video.facebook.com/v25.0``."""
        return f"{self.meta_graph_video_url.rstrip('/')}/{self.meta_graph_version}"

    @cached_property
    def meta_api_origins(self) -> frozenset[tuple[str, str]]:
        """(scheme, host[:port]) of every Meta host a token may be sent to."""
        return frozenset(
            (parts.scheme, parts.netloc)
            for parts in map(urlsplit, (self.meta_graph_url, self.meta_graph_video_url, self.meta_upload_url))
        )

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def normalize_database_url(url: str) -> str:
    """Fill in the installed PostgreSQL driver for the usual URL forms."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        # Relative SQLite paths would resolve differently per process (DESIGN §11).
        relative = url[len("sqlite:///") :]
        if relative and relative != ":memory:":
            return "sqlite:///" + str((PROJECT_ROOT / relative).resolve())
    return url


def parse_key_ring(value: str) -> tuple[tuple[str, bytes], ...]:
    """Parse ``kid:base64(32 bytes)`` entries, comma-separated; the first encrypts."""
    ring: list[tuple[str, bytes]] = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        kid, sep, encoded = entry.partition(":")
        if not sep or not kid:
            raise SettingsError("TOKEN_ENCRYPTION_KEYS: each entry must be 'kid:base64key'")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SettingsError(f"TOKEN_ENCRYPTION_KEYS: key '{kid}' is not valid base64") from exc
        if len(key) != 32:
            raise SettingsError(f"TOKEN_ENCRYPTION_KEYS: key '{kid}' must decode to 32 bytes")
        if any(existing == kid for existing, _ in ring):
            raise SettingsError(f"TOKEN_ENCRYPTION_KEYS: key id '{kid}' appears twice")
        ring.append((kid, key))
    if not ring:
        raise SettingsError("TOKEN_ENCRYPTION_KEYS: no key given")
    return tuple(ring)


MIN_SECRET_BYTES = 32
WEBHOOK_SECRET_PREFIX = "whsec_"
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def parse_origin(value: str) -> str:
    """A plain ``scheme://host[:port]`` origin, lower-cased; anything else is refused.

    ``*``, wildcard patterns, paths, queries, user names and ``null`` would widen
    who may call with the seller's cookie (flask-cors reads patterns as regexes).
    """
    origin = value.strip()
    if origin.endswith("/") and origin.count("/") == 3:
        origin = origin[:-1]
    problem = f"CORS_ORIGINS: {value!r} is not a plain scheme://host[:port] origin"
    if "*" in origin:
        raise SettingsError(problem + " (wildcards are refused)")
    parts = urlsplit(origin)
    try:
        port = parts.port
    except ValueError:
        raise SettingsError(problem) from None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not _plain_host(host, bracketed=parts.netloc.startswith("[")):
        raise SettingsError(problem)
    netloc = f"[{host}]" if ":" in host else host
    normalised = f"{parts.scheme}://{netloc}" + (f":{port}" if port is not None else "")
    if normalised != origin.lower():  # a path, query, user name, stray characters
        raise SettingsError(problem)
    return normalised


def _plain_host(host: str, *, bracketed: bool) -> bool:
    if bracketed:
        try:
            return ipaddress.ip_address(host).version == 6
        except ValueError:
            return False
    return all(_HOST_LABEL.match(label) for label in host.split("."))


def parse_webhook_secret(value: str) -> str:
    """``whsec_`` + strict base64 of at least 32 bytes (the library does not check it)."""
    name = "RESELLIO_WEBHOOK_SECRET"
    if not value.startswith(WEBHOOK_SECRET_PREFIX):
        raise SettingsError(f"{name} must start with {WEBHOOK_SECRET_PREFIX}")
    encoded = value[len(WEBHOOK_SECRET_PREFIX) :]
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(f"{name} must be {WEBHOOK_SECRET_PREFIX} followed by base64") from None
    if base64.b64encode(raw).decode() != encoded:
        raise SettingsError(f"{name} must be {WEBHOOK_SECRET_PREFIX} followed by canonical base64")
    if len(raw) < MIN_SECRET_BYTES:
        raise SettingsError(f"{name} must decode to at least {MIN_SECRET_BYTES} bytes")
    return value


def parse_webhook_url(value: str) -> str:
    """``RESELLIO_WEBHOOK_URL``: an absolute http(s) URL with a host and no user name or fragment.

    It is the operator's own setting, so a private address is allowed (Resellio often runs
    beside this service, DESIGN §13.3). Credentials do not belong in it: the signature is
    what tells the receiver the event is ours, and a URL ends up in logs.
    """
    name = "RESELLIO_WEBHOOK_URL"
    url = value.strip()
    parts = urlsplit(url)
    try:
        _ = parts.port  # a malformed port raises here
    except ValueError:
        raise SettingsError(f"{name} has a malformed port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{name} must be an absolute http(s) URL such as https://resellio.example/hooks/meta")
    if parts.username is not None or parts.password is not None:
        raise SettingsError(f"{name} must not carry a user name or password (the signature authenticates events)")
    if parts.fragment or any(ch.isspace() for ch in url):
        raise SettingsError(f"{name} must not have a fragment or spaces")
    return url


def _webhook(env: Mapping[str, str]) -> dict[str, Any]:
    """The events' URL and secret: the secret is validated whenever given, and required with the URL."""
    url = env.get("RESELLIO_WEBHOOK_URL", "").strip() or None
    secret = env.get("RESELLIO_WEBHOOK_SECRET", "").strip() or None
    if url is not None and secret is None:
        raise SettingsError("RESELLIO_WEBHOOK_SECRET is required when RESELLIO_WEBHOOK_URL is set")
    return {
        "webhook_url": parse_webhook_url(url) if url is not None else None,
        "webhook_secret": parse_webhook_secret(secret) if secret is not None else None,
    }


MEDIA_PRECHECK_MODES = ("enforce", "off")


def parse_allow_host(value: str) -> str:
    """One ``MEDIA_PRECHECK_ALLOW_HOSTS`` entry: a bare host name or address, normalised
    (lower case, no trailing dot, addresses in their canonical form)."""
    host = value.strip().lower().rstrip(".")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    address = ip_literal(host)
    if address is not None:
        return str(address)
    if bracketed or not host or not _plain_host(host, bracketed=False):
        raise SettingsError(f"MEDIA_PRECHECK_ALLOW_HOSTS: {value!r} is not a plain host name or address")
    return host


def _media_precheck(env: Mapping[str, str], app_env: str, meta_graph_url: str) -> dict[str, Any]:
    """``MEDIA_PRECHECK`` (enforce in production and demo, off in test) and its allowed hosts
    (refused in production; the demo's default is the sandbox, i.e. META_GRAPH_URL's host)."""
    mode = env.get("MEDIA_PRECHECK", "").strip().lower() or ("off" if app_env == "test" else "enforce")
    if mode not in MEDIA_PRECHECK_MODES:
        raise SettingsError(f"MEDIA_PRECHECK must be one of {', '.join(MEDIA_PRECHECK_MODES)}")
    hosts = tuple(dict.fromkeys(parse_allow_host(h) for h in _split_csv(env.get("MEDIA_PRECHECK_ALLOW_HOSTS"))))
    if hosts and app_env == "production":
        raise SettingsError("MEDIA_PRECHECK_ALLOW_HOSTS is for demo and test only; production refuses it")
    if not hosts and app_env == "demo":
        hosts = (parse_allow_host(urlsplit(meta_graph_url).hostname or ""),)
    return {"media_precheck": mode, "media_precheck_allow_hosts": hosts}


def _check_secret_length(name: str, value: str | None) -> None:
    if value is not None and len(value.encode()) < MIN_SECRET_BYTES:
        raise SettingsError(f"{name} must be at least {MIN_SECRET_BYTES} bytes in production")


def _meta_base(env: Mapping[str, str], name: str, default: str) -> str:
    """A Meta API base URL (``META_GRAPH_URL`` and its sibling hosts): http(s), a host, no
    user name, query or fragment; the trailing slash dropped. Page tokens are sent there."""
    value = (env.get(name, "").strip() or default).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.query or parts.fragment:
        raise SettingsError(f"{name} must be an http(s) base URL such as {default}")
    try:
        _ = parts.port  # a malformed port raises here
    except ValueError:
        raise SettingsError(f"{name} must be an http(s) base URL such as {default}") from None
    return value


def _split_csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a whole number") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number") from exc
    if value <= 0:
        raise SettingsError(f"{name} must be positive")
    return value


# Worker tuning read from the environment (tests and benchmarks shorten these).
TUNING: dict[str, tuple[str, Callable[[float], float]]] = {
    "lease_seconds": ("PUBLISH_LEASE_SECONDS", int),
    "sweep_interval_seconds": ("SWEEP_INTERVAL_SECONDS", float),
    "retry_base_seconds": ("RETRY_BASE_SECONDS", float),
    "retry_max_tries": ("RETRY_MAX_TRIES", int),
    "ig_status_poll_seconds": ("IG_STATUS_POLL_SECONDS", float),
    "quota_defer_seconds": ("QUOTA_DEFER_SECONDS", float),
    "usage_slowdown_max_seconds": ("USAGE_SLOWDOWN_MAX_SECONDS", float),
    "graph_read_timeout": ("GRAPH_READ_TIMEOUT_SECONDS", float),
}

# Worker sizing read from the environment: attribute -> (variable, lowest, highest).
MAX_WORKER_CONCURRENCY = 256
WORKER_SIZING: dict[str, tuple[str, int, int]] = {
    "worker_concurrency": ("WORKER_CONCURRENCY", 1, MAX_WORKER_CONCURRENCY),
    "worker_page_concurrency": ("WORKER_PAGE_CONCURRENCY", 5, MAX_WORKER_CONCURRENCY),
    "worker_db_pool_size": ("WORKER_DB_POOL_SIZE", 1, 50),
    "worker_db_max_overflow": ("WORKER_DB_MAX_OVERFLOW", 0, 50),
}
# Read as WORKER_CONCURRENCY when that is unset (deprecated: it once counted RQ worker threads).
DEPRECATED_CONCURRENCY = "WORKER_THREADS"


def _worker_sizing(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for attr, (name, lowest, highest) in WORKER_SIZING.items():
        if attr == "worker_concurrency" and env.get(name) in (None, "") and env.get(DEPRECATED_CONCURRENCY):
            name = DEPRECATED_CONCURRENCY
        if env.get(name) in (None, ""):
            continue
        value = _int(env, name, 0)
        if not lowest <= value <= highest:
            raise SettingsError(f"{name} must be a whole number from {lowest} to {highest}")
        values[attr] = value
    return values


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read and validate every setting; raise :class:`SettingsError` naming the variable."""
    env: dict[str, str]
    if environ is None:
        # A .env file is a development convenience; the real environment wins.
        merged = {**dotenv_values(PROJECT_ROOT / ".env"), **os.environ}
        env = {k: v for k, v in merged.items() if v is not None}
    else:
        env = dict(environ)
    app_env = env.get("APP_ENV", "production").strip() or "production"
    if app_env not in APP_ENVS:
        raise SettingsError(f"APP_ENV must be one of {', '.join(APP_ENVS)}")
    production = app_env == "production"

    def required(name: str, dev_default: str | None = None) -> str:
        value = env.get(name, "").strip()
        if value:
            return value
        if production or dev_default is None:
            raise SettingsError(f"{name} is required but not set")
        return dev_default

    database_url = env.get("DATABASE_URL", "").strip()
    if not database_url:
        if production:
            raise SettingsError("DATABASE_URL is required but not set")
        database_url = "sqlite:///" + str(PROJECT_ROOT / "var" / "social_connect.db")
    redis_url = env.get("REDIS_URL", "").strip() or None
    if production and not redis_url:
        raise SettingsError("REDIS_URL is required but not set")

    scopes = _split_csv(env.get("META_SCOPES")) or DEFAULT_SCOPES
    missing_scopes = [s for s in REQUIRED_SCOPES if s not in scopes]
    if missing_scopes:
        raise SettingsError(f"META_SCOPES must include {', '.join(missing_scopes)}")

    metrics_port = _int(env, "METRICS_PORT", 9100)
    settings = Settings(
        app_env=app_env,
        database_url=normalize_database_url(database_url),
        redis_url=redis_url,
        meta_app_id=required("META_APP_ID", DEMO_APP_ID),
        meta_app_secret=required("META_APP_SECRET", DEMO_APP_SECRET),
        meta_redirect_uri=env.get("META_REDIRECT_URI", "").strip() or None,
        meta_graph_version=env.get("META_GRAPH_VERSION", "").strip() or "v25.0",
        meta_graph_url=_meta_base(env, "META_GRAPH_URL", "https://graph.facebook.com"),
        meta_graph_video_url=_meta_base(env, "META_GRAPH_VIDEO_URL", "https://graph-video.facebook.com"),
        meta_upload_url=_meta_base(env, "META_UPLOAD_URL", "https://rupload.facebook.com"),
        meta_dialog_url=(env.get("META_DIALOG_URL", "").strip() or "https://www.facebook.com").rstrip("/"),
        meta_scopes=scopes,
        token_encryption_keys=parse_key_ring(required("TOKEN_ENCRYPTION_KEYS", DEMO_ENCRYPTION_KEYS)),
        session_secret=required("RESELLIO_SESSION_SECRET", DEMO_SESSION_SECRET),
        session_cookie=env.get("RESELLIO_SESSION_COOKIE", "").strip() or "resellio_session",
        scheduler_api_token=env.get("SCHEDULER_API_TOKEN", "").strip() or None,
        dashboard_url=env.get("DASHBOARD_URL", "").strip() or "/",
        cors_origins=tuple(parse_origin(o) for o in _split_csv(env.get("CORS_ORIGINS"))),
        metrics_port=metrics_port,
        **_webhook(env),
    )
    tuning: dict[str, Any] = {}
    for attr, (name, cast) in TUNING.items():
        if env.get(name) not in (None, ""):
            tuning[attr] = cast(_float(env, name, 1.0))
    settings = replace(
        settings, **tuning, **_worker_sizing(env), **_media_precheck(env, app_env, settings.meta_graph_url)
    )
    if production:
        _check_secret_length("RESELLIO_SESSION_SECRET", settings.session_secret)
        _check_secret_length("SCHEDULER_API_TOKEN", settings.scheduler_api_token)
        # RESELLIO_WEBHOOK_SECRET must decode to >= 32 bytes in every environment (above).
    if production and not settings.meta_redirect_uri:
        raise SettingsError("META_REDIRECT_URI is required but not set")
    if not settings.meta_graph_version.startswith("v"):
        raise SettingsError("META_GRAPH_VERSION must look like v25.0")
    return replace(settings, **overrides) if overrides else settings
