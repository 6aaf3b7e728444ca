"""No token, secret or code in any log line or response body; none in plaintext at rest."""

from __future__ import annotations

import logging

import requests_mock
from sqlalchemy import text

from tests.conftest import APP_SECRET, SESSION_SECRET, same_origin, session_jwt
from tests.meta_mock import MetaMock, page
from tests.test_connect_flow import BROWSER, callback, start


def test_full_connect_flow_leaks_nothing(app, client, caplog, engine):
    caplog.set_level(logging.DEBUG)
    bodies: list[str] = []
    session_cookie = session_jwt("user-1")
    with requests_mock.Mocker() as m:
        meta = MetaMock(m, pages=[page(1), page(2, ig=False), page(3)])
        logging.getLogger("test.probe").info("probe with access_token=%s in a URL", meta.long_token)
        for response in (
            client.get("/api/meta/connect"),
            callback(client, start(client), meta.code),
            client.get("/api/meta/pages"),
            client.post("/api/meta/select-page", json={"page_id": meta.pages[0].id}, headers=same_origin()),
            client.get("/api/meta/status"),
            callback(client, start(client), meta.code, headers=BROWSER),
            client.post("/api/meta/select-page", json={"page_id": meta.pages[2].id}, headers=same_origin()),
            client.post("/api/meta/disconnect", headers=same_origin()),
        ):
            bodies.append(response.get_data(as_text=True) + str(response.headers))
        logging.getLogger("urllib3.connectionpool").debug(
            'https://graph.meta.test:443 "GET /v25.0/me/accounts?access_token=%s&fields=id HTTP/1.1" 200',
            meta.long_token,
        )
        secrets = meta.secrets + [APP_SECRET, SESSION_SECRET, session_cookie]

    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "probe with access_token=***" in logged  # the masking really ran
    for secret in secrets:
        assert secret not in logged, "a secret reached the logs"
        for body in bodies:
            assert secret not in body, "a secret reached a response"

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT page_access_token_enc, user_access_token_enc FROM social_connections"))
        stored = " ".join(str(v) for row in rows for v in row)
        audit = " ".join(str(v) for row in conn.execute(text("SELECT detail FROM audit_events")) for v in row)
    for secret in secrets:
        assert secret not in stored
        assert secret not in audit


def test_token_columns_never_hold_plaintext(client, engine):
    with requests_mock.Mocker() as m:
        meta = MetaMock(m)
        callback(client, start(client), meta.code)
    with engine.connect() as conn:
        page_enc, user_enc = conn.execute(
            text("SELECT page_access_token_enc, user_access_token_enc FROM social_connections")
        ).one()
    assert page_enc.startswith("v1:k2026a:") and user_enc.startswith("v1:k2026a:")
    assert meta.pages[0].token not in page_enc and meta.long_token not in user_enc


def test_masking_of_token_shapes():
    from shared.log import mask

    assert mask("GET /me?access_token=EAAabc123456789&fields=id") == "GET /me?access_token=***&fields=id"
    assert mask("client_secret=abcdef123456&code=AQDxyz987654321") == "client_secret=***&code=***"
    assert mask("Authorization: Bearer eyJhbGciOi.eyJzdWIi.sig") == "Authorization: Bearer ***"
    assert mask("token EAAGm0PX4ZCpsBAKZAZAbc1234567890 here") == "token *** here"
    assert mask("error_code=token_expired code=190") == "error_code=token_expired code=190"


def test_masking_skips_nothing_for_lines_without_anchors_and_keeps_longest_secret_whole():
    from shared.log import mask, register_secret

    register_secret("shortsecret")
    register_secret("shortsecret-and-longer")
    assert mask("plain line about post job_1") == "plain line about post job_1"
    assert mask("x shortsecret-and-longer y") == "x *** y"
    # IGNORECASE matches ſ as s: the quick check before the patterns must not let it through.
    assert "abcdefgh" not in mask("acceſs_token=abcdefgh")
    assert "abcdefgh" not in mask("STATE: abcdefgh")
