"""The worker's transport to Meta (``MetaAdapter``, on ``http.client``) against real servers on
127.0.0.1: the same answers and errors as requests' own adapter, connections kept and replaced
when the server closed them, failures before sending told apart, a proxy still honoured."""

from __future__ import annotations

import gzip
import ipaddress
import ssl
import threading
import time
import warnings
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.graph import GraphClient, GraphTransportError
from shared.meta_adapter import MAX_ORIGINS, ConnectFailed, ConnectTimedOut, MetaAdapter, NeverSent
from shared.services import environment_read_once, meta_session, thread_http_session
from tests.conftest import free_port
from tests.json_stand_in import JsonHandler, serve_in_thread, stop_serving


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.connections = 0
        self.request_lines: list[str] = []
        self.bodies: list[bytes] = []
        self.accept_encodings: list[str | None] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


JSON = b'{"id": "17841400000000000", "name": "caf\xc3\xa9"}'


class Handler(JsonHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Meta
    server: Server

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.server.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.do_GET()

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
        self.server.request_lines.append(self.requestline)
        self.send_response(200)
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", "20")  # what a GET would have had
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.request_lines.append(self.requestline)
        self.server.accept_encodings.append(self.headers.get("Accept-Encoding"))
        if self.path.startswith("/empty"):
            self.send_response(204)
            self.send_header("Content-Encoding", "gzip")
            self.end_headers()
            return
        if "/slow" in self.path:
            time.sleep(1.0)
        if self.path.startswith("/drop"):
            self.close_connection = True
            return  # closed without an answer
        data, headers = JSON, [("Content-Type", "application/json; charset=UTF-8")]
        if self.path.startswith("/gzip"):
            data, headers = gzip.compress(JSON), [*headers, ("Content-Encoding", "gzip")]
        elif self.path.startswith("/twice"):
            data, headers = gzip.compress(gzip.compress(JSON)), [*headers, ("Content-Encoding", "gzip, gzip")]
        elif self.path.startswith("/deflate"):
            data, headers = zlib.compress(JSON), [*headers, ("Content-Encoding", "deflate")]
        elif self.path.startswith("/brotli"):
            headers.append(("Content-Encoding", "br"))
        self.send_response(200)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("X-App-Usage", '{"call_count":3,"total_cputime":1,"total_time":2}')
        self.send_header("Set-Cookie", "fr=abc; Path=/")
        self.send_header("Set-Cookie", "sb=def; Path=/")
        if self.path.startswith("/chunked"):
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (data[:10], data[10:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(data)))
        if self.path.startswith("/close"):
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        # "/bye": the server closes the connection after answering, without saying so (an idle
        # connection Meta's side timed out).
        self.close_connection = self.path.startswith(("/bye", "/close"))


@pytest.fixture()
def server() -> Iterator[Server]:
    srv = Server()
    serve_in_thread(srv)
    yield srv
    stop_serving(srv)


def session_for(url: str) -> requests.Session:
    return environment_read_once(meta_session(), url)


def send(session: requests.Session, url: str, method: str = "GET", **kwargs: Any) -> requests.Response:
    prepared = requests.Request(method, url, headers={"Accept": "application/json"}, data=kwargs.pop("data", None))
    return session.send(
        session.prepare_request(prepared), timeout=kwargs.pop("timeout", (2, 5)), allow_redirects=False, **kwargs
    )


def stock_session(url: str) -> requests.Session:
    return environment_read_once(requests.Session(), url)


@pytest.mark.parametrize("path", ["/v25.0/17841400000000000?fields=id,name", "/gzip", "/twice", "/deflate", "/chunked"])
def test_answers_are_those_of_requests_own_adapter(server: Server, path: str) -> None:
    url = server.url + path
    stock = send(stock_session(url), url)
    lean = send(session_for(url), url)
    assert isinstance(lean.connection, MetaAdapter)
    assert (lean.status_code, lean.reason, lean.url, lean.encoding) == (
        stock.status_code,
        stock.reason,
        stock.url,
        stock.encoding,
    )
    assert lean.content == stock.content == JSON
    assert lean.json() == {"id": "17841400000000000", "name": "café"}
    assert dict(lean.headers) == {**dict(stock.headers), "Date": lean.headers["Date"]}
    assert lean.headers["x-app-usage"] == stock.headers["X-App-Usage"]
    assert lean.headers["set-cookie"] == "fr=abc; Path=/, sb=def; Path=/"  # repeated headers joined, as requests
    assert lean.request.url == url
    assert b"".join(lean.iter_content(8)) == JSON  # the body is requests' to hand out again
    lean.close()


def test_a_form_is_sent_as_requests_sends_it(server: Server) -> None:
    form = {"caption": "Diskon 50% & ongkir! 🎉", "image_url": "https://cdn.example.com/a.jpg"}
    send(stock_session(server.url), server.url + "/v25.0/1/media", "POST", data=form)
    send(session_for(server.url), server.url + "/v25.0/1/media", "POST", data=form)
    assert server.bodies[0] == server.bodies[1]
    assert server.request_lines == ["POST /v25.0/1/media HTTP/1.1"] * 2


@pytest.mark.parametrize(("method", "path"), [("GET", "/empty"), ("HEAD", "/v25.0/1")])
def test_an_answer_with_no_body_is_empty_whatever_its_coding(server: Server, method: str, path: str) -> None:
    stock = send(stock_session(server.url), server.url + path, method)
    lean = send(session_for(server.url), server.url + path, method)
    assert (lean.status_code, lean.content) == (stock.status_code, stock.content) == (stock.status_code, b"")


def test_without_accept_encoding_identity_is_asked_for_as_by_urllib3(server: Server) -> None:
    for session in (stock_session(server.url), session_for(server.url)):
        prepared = session.prepare_request(requests.Request("GET", server.url + "/v25.0/1"))
        del prepared.headers["Accept-Encoding"]
        assert session.send(prepared, timeout=(2, 5)).json()["id"] == "17841400000000000"
    assert server.accept_encodings == ["identity", "identity"]


def test_an_answer_in_a_coding_it_cannot_undo_is_refused_not_handed_over(server: Server) -> None:
    # Unlike requests, which would hand over the encoded bytes: the Graph client must see a broken
    # answer (perhaps sent), not an unreadable one it could take for Meta's refusal.
    with pytest.raises(requests.exceptions.ContentDecodingError) as raised:
        send(session_for(server.url), server.url + "/brotli")
    assert not isinstance(raised.value, NeverSent)


def test_one_connection_serves_many_calls_without_urllib3(server: Server) -> None:
    session = session_for(server.url)
    adapter = session.get_adapter(server.url)
    assert isinstance(adapter, MetaAdapter)
    for n in range(5):
        assert send(session, f"{server.url}/v25.0/{n}").status_code == 200
    assert server.connections == 1
    assert len(server.request_lines) == 5
    assert len(adapter.poolmanager.pools) == 0


@pytest.mark.parametrize("path", ["/bye", "/close"])
def test_a_connection_the_server_closed_is_replaced(server: Server, path: str) -> None:
    session = session_for(server.url)
    assert send(session, server.url + path).status_code == 200
    time.sleep(0.2)  # the server's close arrives
    assert send(session, server.url + "/v25.0/after").status_code == 200
    assert server.connections == 2
    assert server.request_lines == [f"GET {path} HTTP/1.1", "GET /v25.0/after HTTP/1.1"]


def test_no_proxy_alone_keeps_the_fast_path(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "proxy-exempt.example")
    session = session_for(server.url)
    assert session.proxies == {"no": "proxy-exempt.example"}
    adapter = session.get_adapter(server.url)
    for n in range(2):
        assert send(session, f"{server.url}/v25.0/{n}").status_code == 200
    assert isinstance(adapter, MetaAdapter) and len(adapter.poolmanager.pools) == 0
    assert server.connections == 1


def test_many_hosts_do_not_grow_the_idle_connections_without_bound() -> None:
    servers = [Server() for _ in range(MAX_ORIGINS + 2)]
    for srv in servers:
        serve_in_thread(srv)
    try:
        session = session_for(servers[0].url)
        for srv in servers:
            assert send(session, srv.url + "/v25.0/1").status_code == 200
        assert send(session, servers[0].url + "/v25.0/2").status_code == 200
        adapter = session.get_adapter(servers[0].url)
        assert isinstance(adapter, MetaAdapter)
        assert 0 < len(adapter._idle) <= MAX_ORIGINS
        adapter.close()
        assert adapter._idle == {}
    finally:
        for srv in servers:
            stop_serving(srv)


def test_a_proxy_takes_requests_own_path(server: Server) -> None:
    proxy = Server()
    serve_in_thread(proxy)
    try:
        session = session_for(server.url)
        assert send(session, server.url + "/v25.0/direct").status_code == 200
        session.proxies = {"http": proxy.url}
        assert send(session, server.url + "/v25.0/proxied").status_code == 200
    finally:
        stop_serving(proxy)
    assert proxy.request_lines == [f"GET {server.url}/v25.0/proxied HTTP/1.1"]
    assert server.request_lines == ["GET /v25.0/direct HTTP/1.1"]


def test_a_timeout_of_another_kind_takes_requests_own_path(server: Server) -> None:
    session = session_for(server.url)
    adapter = session.get_adapter(server.url)
    assert isinstance(adapter, MetaAdapter)
    assert send(session, server.url + "/v25.0/1", timeout=urllib3.Timeout(connect=2, read=5)).status_code == 200
    assert len(adapter.poolmanager.pools) == 1  # requests' own adapter sent it
    assert send(session, server.url + "/v25.0/2").status_code == 200
    assert len(adapter._idle) == 1


def test_timeouts_and_broken_connections_raise_requests_own_exceptions(server: Server) -> None:
    session = session_for(server.url)
    with pytest.raises(requests.ReadTimeout) as timed_out:
        send(session, server.url + "/slow", timeout=(2, 0.2))
    with pytest.raises(requests.ConnectionError) as dropped:
        send(session, server.url + "/drop")
    assert not isinstance(timed_out.value, NeverSent) and not isinstance(dropped.value, NeverSent)
    assert send(session, server.url + "/v25.0/after").status_code == 200


def test_a_failure_on_a_kept_connection_may_have_been_sent(server: Server) -> None:
    session = session_for(server.url)
    assert send(session, server.url + "/v25.0/1").status_code == 200
    with pytest.raises(requests.ConnectionError) as dropped:
        send(session, server.url + "/drop")
    assert server.connections == 1  # the request went out on the kept connection
    assert not isinstance(dropped.value, NeverSent)


def test_an_unreadable_ca_bundle_sends_nothing(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate")
    url = f"https://127.0.0.1:{free_port()}/v25.0/me"
    with pytest.raises(requests.exceptions.SSLError) as refused:
        send(session_for(url), url, verify=str(bundle))
    assert isinstance(refused.value, NeverSent)


def test_a_refused_connection_was_never_sent() -> None:
    url = f"http://127.0.0.1:{free_port()}/v25.0/1/photos"
    with pytest.raises(ConnectFailed):
        send(session_for(url), url, "POST", data={"caption": "x"})


def test_a_connect_that_times_out_was_never_sent(blackhole: int) -> None:
    url = f"http://127.0.0.1:{blackhole}/v25.0/1/photos"
    with pytest.raises(ConnectTimedOut) as raised:
        send(session_for(url), url, timeout=(0.3, 5))
    assert isinstance(raised.value, requests.ConnectTimeout)


def test_the_graph_client_tells_never_sent_from_perhaps_sent(settings: Any, server: Server) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    refused = GraphClient(settings.with_overrides(meta_graph_url=nobody), session=meta_session())
    with pytest.raises(GraphTransportError) as not_sent:
        refused.post("/1/photos", token="EAAB", data={"caption": "x"})
    graph = GraphClient(settings.with_overrides(meta_graph_url=server.url), session=meta_session(), timeout=(2, 0.2))
    with pytest.raises(GraphTransportError) as perhaps_sent:
        graph.post("/slow", token="EAAB", data={"caption": "x"})
    assert not_sent.value.sent is False
    assert perhaps_sent.value.sent is True


def test_the_workers_sessions_use_it_for_both_schemes() -> None:
    adapters: list[Any] = []

    def in_a_thread() -> None:
        session = thread_http_session("https://graph.facebook.com")
        adapters.extend([session.get_adapter("https://graph.facebook.com/v25.0/me"), session.get_adapter("http://x/")])

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert [type(a) for a in adapters] == [MetaAdapter, MetaAdapter]


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_tls_is_verified_per_setting_whatever_was_sent_before(tmp_path: Path) -> None:
    cert_path, key_path = self_signed(tmp_path)
    srv = Server()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    serve_in_thread(srv)
    url = f"https://127.0.0.1:{srv.server_address[1]}/v25.0/me"
    try:
        session = session_for(url)
        session.verify = True  # the system's CAs, which never signed this certificate
        with pytest.raises(requests.exceptions.SSLError) as refused:
            send(session, url)
        assert isinstance(refused.value, NeverSent)  # the handshake comes before any of the request
        assert send(session, url, verify=str(cert_path)).status_code == 200
        with pytest.raises(requests.exceptions.SSLError) as wrong_name:
            send(session, url.replace("127.0.0.1", "localhost"), verify=str(cert_path))
        assert isinstance(wrong_name.value, NeverSent)  # the certificate names 127.0.0.1 only
        with pytest.raises(requests.exceptions.SSLError):
            send(session, url)  # the connection verified against the test's CA is not reused
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an unverified connection's warning, if any
            assert send(session, url, verify=False).status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            send(session, url)  # nor the unverified one
        assert send(session, url, verify=str(cert_path)).status_code == 200
    finally:
        stop_serving(srv)
