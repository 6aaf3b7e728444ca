"""Fuzzing (DESIGN §13.1): every operation of ``GET /api/meta/openapi.json``, driven by schemathesis
against the real app, answers no 5xx while the Meta stand-in is healthy, and only the statuses,
content types, shapes and headers (405 with ``Allow``) the document gives.

The app talks to an in-process Meta sandbox on 127.0.0.1; the seller is connected through the real
OAuth flow first, so authenticated operations get past 401 and ``POST /schedule`` reaches
``debug_token``. Positive and negative data, a bounded number of examples, a fixed seed.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from sqlalchemy import update

from meta_sandbox import serve_in_thread
from shared.models import SocialConnection
from shared.settings import DEFAULT_SCOPES, load_settings
from tests.conftest import SCHEDULER_TOKEN, make_test_env, session_jwt

pytestmark = pytest.mark.slow  # a couple of minutes of generated requests

SANDBOX_APP_ID = "sandbox-app-id"
SANDBOX_APP_SECRET = "sandbox-app-secret"
SELLER = "fuzz-seller"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    unsupported_method,
    allow_header_conformance,
    negative_data_rejection,
]
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# One moment for the whole run, so a replayed example sends the same body.
PUBLISH_AT = (datetime.now(UTC) + timedelta(hours=6)).replace(microsecond=0).isoformat()
FUZZ_CONFIG = {
    "seed": 20260207,
    "generation": {"mode": "all", "with-security-parameters": False, "allow-x00": True},
    "phases": {"examples": {"enabled": False}},
}
# 50 examples per operation keeps the run near half a minute; FUZZ_MAX_EXAMPLES=400 for a longer hunt.
FUZZ_SETTINGS = hypothesis_settings(
    max_examples=int(os.environ.get("FUZZ_MAX_EXAMPLES", "50")),
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def loopback_only(monkeypatch):
    """Nothing the fuzzer generates (media URLs, links) may make the app reach beyond 127.0.0.0/8."""
    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        if host not in LOOPBACK:
            raise AssertionError(f"the fuzz run tried to resolve {host!r}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@pytest.fixture(scope="module")
def sandbox():
    """A healthy Meta stand-in on 127.0.0.1 (scenario ``one_page``)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("APP_ENV", "test")
        server = serve_in_thread(
            "127.0.0.1",
            0,
            {
                "APP_ENV": "test",
                "SANDBOX_SCENARIO": "one_page",
                "SANDBOX_APP_ID": SANDBOX_APP_ID,
                "SANDBOX_APP_SECRET": SANDBOX_APP_SECRET,
            },
        )
    yield server
    server.stop()


@pytest.fixture
def settings(database_url, redis_url, sandbox):
    """The app of the fuzz run speaks to the sandbox as its Meta."""
    return load_settings(
        make_test_env(
            database_url,
            redis_url,
            META_APP_ID=SANDBOX_APP_ID,
            META_APP_SECRET=SANDBOX_APP_SECRET,
            META_GRAPH_URL=sandbox.url,
            META_DIALOG_URL=sandbox.url,
            MEDIA_PRECHECK="off",
        )
    )


def seller_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {session_jwt(SELLER)}", "Accept": "application/json"}


def connect_seller(app, sandbox) -> dict:
    """The real connect flow against the sandbox: dialog URL, consent, callback. Returns the callback's body."""
    client = app.test_client()
    oauth_url = client.get("/api/meta/connect", headers=seller_headers()).json["oauth_url"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(oauth_url).query).items()}
    answer = requests.post(
        oauth_url.split("?")[0],
        allow_redirects=False,
        timeout=5,
        data={
            "client_id": query["client_id"],
            "redirect_uri": query["redirect_uri"],
            "state": query["state"],
            "scope": query["scope"],
            "action": "continue",
            "pages": list(sandbox.world.pages),
            "permissions": list(DEFAULT_SCOPES),
        },
    )
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    answer = client.get(f"/api/meta/callback?{back.query}", headers=seller_headers())
    assert answer.status_code == 200, answer.json
    return answer.json


@pytest.fixture
def fuzzed_app(app, sandbox, loopback_only):
    """The app under test, with ``fuzz-seller`` connected to the sandbox's Page.

    The token was last checked long ago, so the status and scheduling calls ask the sandbox's ``debug_token``.
    """
    from connect_service.extensions import db

    connected = connect_seller(app, sandbox)
    assert connected["connected"] is True, connected
    connection_id = connected["connection_id"]
    with app.app_context():
        db.session.execute(
            update(SocialConnection)
            .where(SocialConnection.id == connection_id)
            .values(token_last_checked_at=datetime.now(UTC) - timedelta(hours=1))
        )
        db.session.commit()
    return app


@pytest.fixture
def selecting_app(app, sandbox, loopback_only):
    """The app under test, with ``fuzz-seller`` in the middle of a multi-page connect."""
    requests.post(f"{sandbox.url}/_sandbox/reset", json={"scenario": "several_pages"}, timeout=5).raise_for_status()
    try:
        assert connect_seller(app, sandbox)["requires_page_selection"] is True
        yield app
    finally:
        requests.post(f"{sandbox.url}/_sandbox/reset", json={"scenario": "one_page"}, timeout=5).raise_for_status()


def _document_app():
    """The app as CI builds it, loaded only to serve ``/api/meta/openapi.json`` at collection time.

    (``schemathesis.pytest.from_fixture`` would load it from the fixture, but it sets
    ``Function._nodeid``, which pytest 9.2 no longer has.) The requests themselves go to ``fuzzed_app``.
    """
    from connect_service import create_app
    from social_connect_demo import embedded_redis

    return create_app({"ENV": make_test_env("sqlite://", None), "REDIS": embedded_redis(), "TESTING": True})


schema = schemathesis.openapi.from_wsgi(
    "/api/meta/openapi.json", _document_app(), config=schemathesis.Config.from_dict(FUZZ_CONFIG)
)


def _plausible_time(case) -> None:
    """``publish_at`` has bounds relative to now, which no schema can state: a positive case gets a time
    that passes them, so valid posts reach ``debug_token``, the database and the queue."""
    if (
        case.method == "POST"
        and case.path == "/api/meta/schedule"
        and isinstance(case.body, dict)
        and "publish_at" in case.body
        and case.meta
        and case.meta.generation.mode is GenerationMode.POSITIVE
    ):
        case.body["publish_at"] = PUBLISH_AT


def _fuzz(case, app, headers) -> None:
    _plausible_time(case)
    case.call_and_validate(app=app, headers=headers, checks=CHECKS)


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_as_a_signed_in_seller(case, fuzzed_app):
    _fuzz(case, fuzzed_app, seller_headers())


@schema.include(path_regex=r"^/api/meta/schedule").parametrize()
@FUZZ_SETTINGS
def test_schedule_api_as_the_scheduler(case, fuzzed_app):
    _fuzz(case, fuzzed_app, {"Authorization": f"Bearer {SCHEDULER_TOKEN}", "Accept": "application/json"})


@schema.include(path_regex=r"^/api/meta/(pages|select-page)$").parametrize()
@FUZZ_SETTINGS
def test_page_selection_with_pages_pending(case, selecting_app):
    _fuzz(case, selecting_app, seller_headers())


def test_schedule_read_and_cancel_workflow(fuzzed_app, sandbox):
    """Stateful: posts created by POST /schedule are read and cancelled through the document's links."""
    base = schema.include(path_regex=r"^/api/meta/schedule").as_state_machine()
    calls: list[tuple[str, int]] = []
    token_checks_before = sandbox.world.calls.get("debug_token", 0)

    class Workflow(base):
        def before_call(self, case):
            if case.operation.label == "POST /api/meta/schedule":
                # This pass is about what happens to a stored post: create one that passes validation.
                caption = case.body.get("caption") if isinstance(case.body, dict) else None
                case.body = {
                    "publish_at": PUBLISH_AT,
                    "targets": ["facebook"],
                    "caption": caption if isinstance(caption, str) and caption.strip() else "Promo",
                }
                # A key replayed with another body is a 409 by design: keep each run's steps reproducible.
                case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "idempotency-key"}

        def get_call_kwargs(self, case):
            return {"app": fuzzed_app, "headers": seller_headers()}

        def after_call(self, response, case):
            calls.append((case.operation.label, response.status_code))

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    Workflow.run(settings=hypothesis_settings(FUZZ_SETTINGS, max_examples=20, stateful_step_count=6))
    reached = {label for label, status in calls if status == 200}
    assert {
        "POST /api/meta/schedule",
        "GET /api/meta/schedule/{job_id}",
        "DELETE /api/meta/schedule/{job_id}",
    } <= reached
    assert sandbox.world.calls.get("debug_token", 0) > token_checks_before  # the stored token was checked
