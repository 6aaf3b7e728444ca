"""The Graph client: proofs, token placement, errors, usage headers, transport failures."""

from __future__ import annotations

import json

import pytest
import requests
import requests_mock

from shared.graph import GraphClient, GraphError, GraphTransportError, appsecret_proof
from shared.services import meta_session
from tests.conftest import APP_SECRET

BASE = "https://graph.meta.test/v25.0"


@pytest.fixture
def graph(settings):
    return GraphClient(settings)


def test_token_in_header_and_proof_in_query_or_body(graph):
    with requests_mock.Mocker() as m:
        m.get(f"{BASE}/me", json={"id": "1"})
        m.post(f"{BASE}/1/feed", json={"id": "1_2"})
        graph.get("/me", token="EAAusertoken", params={"fields": "id"})
        graph.post("/1/feed", token="EAApagetoken", data={"message": "hi"})
        get, post = m.request_history
    assert get.headers["Authorization"] == "Bearer EAAusertoken"
    assert get.qs["appsecret_proof"] == [appsecret_proof("EAAusertoken", APP_SECRET)]
    assert "access_token" not in get.url
    assert "appsecret_proof=" + appsecret_proof("EAApagetoken", APP_SECRET) in post.text
    assert "EAApagetoken" not in post.url and "EAApagetoken" not in post.text


def test_meta_error_body_is_parsed(graph):
    usage = {
        "1": [
            {
                "type": "pages",
                "call_count": 97,
                "total_cputime": 10,
                "total_time": 12,
                "estimated_time_to_regain_access": 5,
            }
        ]
    }
    with requests_mock.Mocker() as m:
        m.post(
            f"{BASE}/1/photos",
            status_code=400,
            headers={"X-Business-Use-Case-Usage": json.dumps(usage), "X-App-Usage": json.dumps({"call_count": 40})},
            json={
                "error": {
                    "message": "Page request limit reached",
                    "type": "OAuthException",
                    "code": 32,
                    "error_subcode": 2018238,
                    "fbtrace_id": "AbCdEf",
                }
            },
        )
        with pytest.raises(GraphError) as caught:
            graph.post("/1/photos", token="EAApagetoken", data={})
    error = caught.value
    assert (error.code, error.subcode, error.fbtrace_id, error.http_status) == (32, 2018238, "AbCdEf", 400)
    assert error.error_code == "rate_limited" and error.is_throttle
    assert error.retry_after_seconds == 300
    assert graph.last_usage["max_percent"] == 97


@pytest.mark.parametrize(
    "code, subcode, expected",
    [
        (190, 463, "token_expired"),
        (102, None, "token_expired"),
        (10, None, "permissions_missing"),
        (200, None, "permissions_missing"),
        (4, None, "rate_limited"),
        (80002, None, "rate_limited"),
        (9, 2207042, "publishing_limit_reached"),
        (9004, 2207052, "media_invalid"),
        (36003, None, "media_invalid"),
        (100, 2207026, "media_invalid"),
        (1, None, "meta_unavailable"),
        (2, None, "meta_unavailable"),
    ],
)
def test_error_classification_by_number(code, subcode, expected):
    error = GraphError(http_status=400, code=code, subcode=subcode)
    assert error.error_code == expected


def test_transport_failures_say_whether_the_request_may_have_left(graph):
    with requests_mock.Mocker() as m:
        m.post(f"{BASE}/1/photos", exc=requests.exceptions.ConnectTimeout)
        with pytest.raises(GraphTransportError) as not_sent:
            graph.post("/1/photos", token="EAAx", data={})
        m.post(f"{BASE}/1/photos", exc=requests.exceptions.ReadTimeout)
        with pytest.raises(GraphTransportError) as sent:
            graph.post("/1/photos", token="EAAx", data={})
    assert not_sent.value.sent is False
    assert sent.value.sent is True


def test_refused_connection_was_not_sent(settings):
    graph = GraphClient(settings.with_overrides(meta_graph_url="http://127.0.0.1:9"))
    with pytest.raises(GraphTransportError) as caught:
        graph.get("/me", token="EAAx")
    assert caught.value.sent is False


def test_paging_strips_the_token_from_next_and_stays_on_host(graph):
    with requests_mock.Mocker() as m:
        m.get(
            f"{BASE}/me/accounts",
            [
                {
                    "json": {
                        "data": [{"id": "1"}],
                        "paging": {"next": f"{BASE}/me/accounts?access_token=EAAuser&after=a"},
                    }
                },
                {"json": {"data": [{"id": "2"}], "paging": {"next": "https://other.test/v25.0/me/accounts?after=b"}}},
            ],
        )
        items = list(graph.paginate("/me/accounts", token="EAAuser", params={"fields": "id"}))
        second = m.request_history[1]
    assert [i["id"] for i in items] == ["1", "2"]
    assert "access_token" not in second.url and second.qs["after"] == ["a"]
    assert second.qs["appsecret_proof"] == [appsecret_proof("EAAuser", APP_SECRET)]
    assert len(m.request_history) == 2


def test_deadline_bounds_every_call(settings):
    import time

    graph = GraphClient(settings, deadline=time.monotonic() - 1)
    with pytest.raises(GraphTransportError) as caught:
        graph.get("/me", token="EAAx")
    assert caught.value.sent is False


@pytest.mark.parametrize(
    ("method", "url", "query", "body"),
    [
        ("GET", "https://graph.facebook.com/v25.0/me/accounts", {"fields": "id,name,access_token", "limit": 100}, None),
        ("GET", "https://graph.facebook.com/v25.0/debug_token", {}, None),
        ("POST", "https://graph.facebook.com/v25.0/1/photos", {}, {"caption": "Diskon 50% & ongkir! 🎉", "n": 3}),
        ("POST", "https://graph.facebook.com/v25.0/1/media", {}, {"alt_text": None, "published": False}),
        # An upload: a POST with no form (``request`` passes an empty one), the proof in its query.
        ("POST", "https://rupload.facebook.com/video-upload/v25.0/9", {"appsecret_proof": "ab"}, {}),
        ("DELETE", "https://graph.facebook.com/v25.0/1_2", {"x": ["a", "b"]}, None),
        ("GET", "https://graph.facebook.com/v25.0/1/comments", {"after": None}, None),
    ],
)
def test_a_request_is_sent_exactly_as_requests_would_prepare_it(method, url, query, body):
    from shared.graph import _prepare

    headers = {"User-Agent": "x", "Accept": "application/json", "Authorization": "Bearer EAAB"}
    ours = _prepare(method, url, query, body, headers)
    theirs = requests.PreparedRequest()
    theirs.prepare(method=method, url=url, headers=dict(headers), data=body, params=query or None)
    assert (ours.method, ours.url, dict(ours.headers), ours.body) == (
        theirs.method,
        theirs.url,
        dict(theirs.headers),
        theirs.body,
    )


def test_a_token_with_a_line_break_is_never_sent_as_a_header(graph):
    with requests_mock.Mocker() as mocker:
        mocker.get(requests_mock.ANY, json={"id": "1"})
        with pytest.raises(GraphTransportError) as raised:
            graph.get("/me", token="EAAB\r\nX-Injected: 1")
        assert mocker.call_count == 0
    assert raised.value.sent is False  # surely not at Meta: nothing to look for before a retry


@pytest.mark.parametrize("transport", ["requests", "worker"])
def test_a_malformed_answer_to_a_request_that_left_is_reported_as_sent(settings, transport):
    """An answer with conflicting Content-Length headers after the POST has reached Meta is
    refused (by urllib3, and by the worker's own transport): that failure is ambiguous (looked up
    before any second send), never "not sent"."""
    import socket
    import threading

    received: list[bytes] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer_badly() -> None:
        conn, _ = server.accept()
        with conn:
            data = b""
            while b"hi" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            received.append(data)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 22, 23\r\n\r\n" + b"{}" * 11)

    thread = threading.Thread(target=answer_badly, daemon=True)
    thread.start()
    port = server.getsockname()[1]
    session = requests.Session() if transport == "requests" else meta_session()
    session.trust_env = False  # straight to the socket, whatever proxy the environment names
    graph = GraphClient(settings.with_overrides(meta_graph_url=f"http://127.0.0.1:{port}"), session=session)
    try:
        with pytest.raises(GraphTransportError) as raised:
            graph.post("/1/feed", token="EAAB", data={"message": "hi"})
    finally:
        thread.join(5)
        server.close()
    assert received and b"message=hi" in received[0]  # the post reached "Meta"
    assert "InvalidHeader" in str(raised.value) and raised.value.sent is True


def test_a_graph_path_carrying_its_own_query_is_refused_before_anything_is_sent(graph):
    # Its query would be sent beside the client's own (appsecret_proof), or a fragment would drop it.
    with requests_mock.Mocker() as mocker:
        mocker.get(requests_mock.ANY, json={"id": "1"})
        for path in ("/1?fields=id", "/1#x"):
            with pytest.raises(ValueError):
                graph.get(path, token="EAAB")
        assert mocker.call_count == 0
