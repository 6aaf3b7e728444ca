"""Settings: read once, validated, failing fast on a missing production secret."""

from __future__ import annotations

import base64

import pytest

from shared.settings import PROJECT_ROOT, SettingsError, load_settings, normalize_database_url
from tests.conftest import KEY_A

PRODUCTION = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgres://u:p@db:5432/sc",
    "REDIS_URL": "redis://redis:6379/0",
    "META_APP_ID": "1",
    "META_APP_SECRET": "s" * 32,
    "META_REDIRECT_URI": "https://connect.example/api/meta/callback",
    "TOKEN_ENCRYPTION_KEYS": KEY_A,
    "RESELLIO_SESSION_SECRET": "x" * 40,
}


def test_a_complete_production_environment_loads():
    settings = load_settings(PRODUCTION)
    assert settings.database_url == "postgresql+psycopg://u:p@db:5432/sc"
    assert settings.meta_graph_version == "v25.0"
    assert settings.graph_base == "https://graph.facebook.com/v25.0"
    assert settings.session_cookie == "resellio_session"
    assert settings.metrics_port == 9100
    assert settings.scheduler_api_token is None


@pytest.mark.parametrize(
    "name",
    [
        "DATABASE_URL",
        "REDIS_URL",
        "META_APP_ID",
        "META_APP_SECRET",
        "META_REDIRECT_URI",
        "TOKEN_ENCRYPTION_KEYS",
        "RESELLIO_SESSION_SECRET",
    ],
)
def test_production_fails_fast_naming_the_missing_variable(name):
    env = {k: v for k, v in PRODUCTION.items() if k != name}
    with pytest.raises(SettingsError, match=name):
        load_settings(env)


def test_app_creation_fails_on_a_missing_secret():
    from connect_service import create_app

    env = {k: v for k, v in PRODUCTION.items() if k != "RESELLIO_SESSION_SECRET"}
    with pytest.raises(SettingsError, match="RESELLIO_SESSION_SECRET"):
        create_app({"ENV": env})


@pytest.mark.parametrize(
    "value, message",
    [
        ("nokey", "kid:base64key"),
        ("a:not-base64!!", "not valid base64"),
        ("a:c2hvcnQ=", "32 bytes"),
        (f"{KEY_A},{KEY_A}", "appears twice"),
    ],
)
def test_bad_key_rings_are_refused(value, message):
    with pytest.raises(SettingsError, match=message):
        load_settings({**PRODUCTION, "TOKEN_ENCRYPTION_KEYS": value})


def test_demo_defaults_need_nothing():
    settings = load_settings({"APP_ENV": "demo"})
    assert settings.database_url == "sqlite:///" + str(PROJECT_ROOT / "var" / "social_connect.db")
    assert settings.redis_url is None


def test_required_scopes_cannot_be_dropped():
    with pytest.raises(SettingsError, match="instagram_content_publish"):
        load_settings({**PRODUCTION, "META_SCOPES": "pages_show_list,pages_manage_posts"})


def test_bad_app_env_and_numbers():
    with pytest.raises(SettingsError, match="APP_ENV"):
        load_settings({"APP_ENV": "staging"})
    with pytest.raises(SettingsError, match="METRICS_PORT"):
        load_settings({**PRODUCTION, "METRICS_PORT": "ninety"})


def test_database_url_forms():
    assert normalize_database_url("postgresql://a@b/c") == "postgresql+psycopg://a@b/c"
    assert normalize_database_url("postgresql+psycopg://a@b/c") == "postgresql+psycopg://a@b/c"
    assert normalize_database_url("sqlite:///var/x.db") == "sqlite:///" + str(PROJECT_ROOT / "var" / "x.db")
    assert normalize_database_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


@pytest.mark.parametrize(
    "value",
    [
        "*",
        "https://*.resellio.id",
        "https://dashboard.resellio.id,*",
        "null",
        "https://dashboard.resellio.id/app",
        "https://dashboard.resellio.id?x=1",
        "https://user@dashboard.resellio.id",
        "ftp://dashboard.resellio.id",
        "dashboard.resellio.id",
        "https://dashboard.resellio.id:99999",
        r"https://dashboard\.resellio\.id",
        "https://(dashboard|evil).resellio.id",
    ],
)
def test_cors_origins_refuses_wildcards_and_anything_but_plain_origins(value):
    with pytest.raises(SettingsError, match="CORS_ORIGINS"):
        load_settings({**PRODUCTION, "CORS_ORIGINS": value})


def test_app_start_fails_on_a_wildcard_cors_origin():
    from connect_service import create_app

    with pytest.raises(SettingsError, match="CORS_ORIGINS"):
        create_app({"ENV": {**PRODUCTION, "CORS_ORIGINS": "*"}})


def test_plain_cors_origins_are_kept_normalised():
    settings = load_settings({**PRODUCTION, "CORS_ORIGINS": "https://Dashboard.Resellio.id/, http://127.0.0.1:3000"})
    assert settings.cors_origins == ("https://dashboard.resellio.id", "http://127.0.0.1:3000")


@pytest.mark.parametrize("name", ["RESELLIO_SESSION_SECRET", "SCHEDULER_API_TOKEN"])
def test_production_refuses_secrets_shorter_than_32_bytes(name):
    with pytest.raises(SettingsError, match=name):
        load_settings({**PRODUCTION, name: "s" * 31})
    assert load_settings({**PRODUCTION, name: "s" * 32})
    assert load_settings({**PRODUCTION, "APP_ENV": "test", name: "short"})  # tests may use short ones


WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"w" * 32).decode()


def test_webhook_secret_is_optional_and_kept():
    assert load_settings(PRODUCTION).webhook_secret is None
    assert load_settings({**PRODUCTION, "RESELLIO_WEBHOOK_SECRET": WEBHOOK_SECRET}).webhook_secret == WEBHOOK_SECRET


@pytest.mark.parametrize("app_env", ["production", "test", "demo"])
@pytest.mark.parametrize(
    "value",
    [
        base64.b64encode(b"w" * 32).decode(),  # no whsec_ prefix
        "whsec_" + base64.b64encode(b"w" * 31).decode(),  # 31 bytes
        "whsec_not base64!",
        "whsec_" + base64.b64encode(b"w" * 32).decode().rstrip("="),  # padding dropped: not strict base64
        "whsec_" + base64.urlsafe_b64encode(b"\xfb" * 33).decode(),  # the URL-safe alphabet
    ],
)
def test_malformed_webhook_secrets_are_refused_in_every_env(app_env, value):
    with pytest.raises(SettingsError, match="RESELLIO_WEBHOOK_SECRET"):
        load_settings({**PRODUCTION, "APP_ENV": app_env, "RESELLIO_WEBHOOK_SECRET": value})


def test_webhook_url_is_optional_and_needs_the_secret():
    assert load_settings(PRODUCTION).webhook_url is None
    with pytest.raises(SettingsError, match="RESELLIO_WEBHOOK_SECRET is required"):
        load_settings({**PRODUCTION, "RESELLIO_WEBHOOK_URL": "https://resellio.example/hooks/meta"})
    # The operator's own receiver may be on a private network, over plain http (DESIGN §13.3).
    for url in ("https://resellio.example/hooks/meta?source=social", "http://10.0.0.7:3000/api/hooks"):
        given = {**PRODUCTION, "RESELLIO_WEBHOOK_URL": url, "RESELLIO_WEBHOOK_SECRET": WEBHOOK_SECRET}
        assert load_settings(given).webhook_url == url


@pytest.mark.parametrize(
    "url",
    [
        "resellio.example/hooks",  # not absolute
        "ftp://resellio.example/hooks",
        "https:///hooks",  # no host
        "https://user:pass@resellio.example/hooks",  # credentials end up in logs
        "https://resellio.example:99999/hooks",
        "https://resellio.example/hooks#frag",
        "https://resellio.example/ho oks",
    ],
)
def test_malformed_webhook_urls_are_refused(url):
    with pytest.raises(SettingsError, match="RESELLIO_WEBHOOK_URL"):
        load_settings({**PRODUCTION, "RESELLIO_WEBHOOK_URL": url, "RESELLIO_WEBHOOK_SECRET": WEBHOOK_SECRET})


# --- The media pre-check (DESIGN §2, §13.2); settings only, the service does not use them yet ---


def test_media_precheck_enforces_in_production_and_demo_and_is_off_in_test():
    assert load_settings(PRODUCTION).media_precheck == "enforce"
    assert load_settings({"APP_ENV": "demo"}).media_precheck == "enforce"
    assert load_settings({**PRODUCTION, "APP_ENV": "test"}).media_precheck == "off"
    assert load_settings({**PRODUCTION, "MEDIA_PRECHECK": "off"}).media_precheck == "off"
    assert load_settings({**PRODUCTION, "APP_ENV": "test", "MEDIA_PRECHECK": " Enforce "}).media_precheck == "enforce"


@pytest.mark.parametrize("value", ["on", "true", "1", "warn"])
def test_media_precheck_takes_enforce_or_off_only(value):
    with pytest.raises(SettingsError, match="MEDIA_PRECHECK must be one of enforce, off"):
        load_settings({**PRODUCTION, "MEDIA_PRECHECK": value})


def test_production_refuses_media_precheck_allow_hosts():
    assert load_settings(PRODUCTION).media_precheck_allow_hosts == ()
    with pytest.raises(SettingsError, match="MEDIA_PRECHECK_ALLOW_HOSTS .*production refuses it"):
        load_settings({**PRODUCTION, "MEDIA_PRECHECK_ALLOW_HOSTS": "127.0.0.1"})
    assert load_settings({**PRODUCTION, "MEDIA_PRECHECK_ALLOW_HOSTS": " "}).media_precheck_allow_hosts == ()


def test_the_demo_allows_its_sandbox_host_by_default():
    demo = load_settings({"APP_ENV": "demo", "META_GRAPH_URL": "http://127.0.0.1:8001"})
    assert demo.media_precheck_allow_hosts == ("127.0.0.1",)
    given = load_settings({"APP_ENV": "demo", "MEDIA_PRECHECK_ALLOW_HOSTS": "sandbox.local"})
    assert given.media_precheck_allow_hosts == ("sandbox.local",)
    assert load_settings({**PRODUCTION, "APP_ENV": "test"}).media_precheck_allow_hosts == ()


def test_allowed_hosts_are_normalised():
    env = {**PRODUCTION, "APP_ENV": "test", "MEDIA_PRECHECK_ALLOW_HOSTS": "Sandbox.Local., [::1], 127.1, 127.0.0.1"}
    assert load_settings(env).media_precheck_allow_hosts == ("sandbox.local", "::1", "127.0.0.1")


@pytest.mark.parametrize("value", ["http://127.0.0.1", "127.0.0.1:8001", "*.example.com", "a/b", "[sandbox]", "x_y"])
def test_allowed_hosts_must_be_bare_host_names_or_addresses(value):
    with pytest.raises(SettingsError, match="MEDIA_PRECHECK_ALLOW_HOSTS"):
        load_settings({**PRODUCTION, "APP_ENV": "test", "MEDIA_PRECHECK_ALLOW_HOSTS": value})


def test_the_settings_repr_names_no_secret():
    # An error reporter that captures local variables would otherwise send the key ring out.
    settings = load_settings({**PRODUCTION, "SCHEDULER_API_TOKEN": "scheduler-token-of-at-least-32-bytes!"})
    text = repr(settings)
    for secret in (settings.meta_app_secret, settings.session_secret, settings.scheduler_api_token):
        assert secret and secret not in text
    assert settings.token_encryption_keys[0][1] not in text.encode()
    assert repr(settings.token_encryption_keys[0][1]) not in text
