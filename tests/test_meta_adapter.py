"""The worker's transport to Meta (``MetaAdapter``) against a real HTTP server on 127.0.0.1:
the same answers and errors as requests' own adapter, connections kept, a proxy still
honoured, a bounded memory of pools."""

from __future__ import annotations

import ipaddress
import ssl
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.meta_adapter import MAX_POOLS, MetaAdapter
from shared.services import environment_read_once, meta_session, thread_http_session
from tests.json_stand_in import JsonHandler, serve_in_thread, stop_serving


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.connections = 0
        self.request_lines: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(JsonHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Meta
    server: Server

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.request_lines.append(self.requestline)
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        if self.path.startswith("/drop"):
            self.close_connection = True
            return  # closed without an answer
        data = b'{"id": "17841400000000000", "name": "caf\xc3\xa9"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-App-Usage", '{"call_count":3,"total_cputime":1,"total_time":2}')
        self.send_header("Set-Cookie", "fr=abc; Path=/")
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def server() -> Iterator[Server]:
    srv = Server()
    serve_in_thread(srv)
    yield srv
    stop_serving(srv)


def session_for(url: str) -> requests.Session:
    return environment_read_once(meta_session(), url)


def send(session: requests.Session, url: str, **kwargs: Any) -> requests.Response:
    prepared = requests.Request("GET", url, headers={"Accept": "application/json"}).prepare()
    return session.send(prepared, timeout=kwargs.pop("timeout", (2, 5)), allow_redirects=False, **kwargs)


def test_answers_are_those_of_requests_own_adapter(server: Server) -> None:
    url = server.url + "/v25.0/17841400000000000?fields=id,name"
    stock = send(environment_read_once(requests.Session(), url), url)
    lean_session = session_for(url)
    lean = send(lean_session, url)
    assert isinstance(lean.connection, MetaAdapter)
    assert (lean.status_code, lean.reason, lean.url, lean.encoding) == (
        stock.status_code,
        stock.reason,
        stock.url,
        stock.encoding,
    )
    assert lean.json() == stock.json() == {"id": "17841400000000000", "name": "café"}
    assert dict(lean.headers) == {**dict(stock.headers), "Date": lean.headers["Date"]}
    assert lean.headers["x-app-usage"] == stock.headers["X-App-Usage"]
    assert lean.request.url == url
    # Meta's cookies are never sent back (GraphClient prepares its own requests); the session's jar
    # keeps them, as requests' own session does.
    assert lean_session.cookies.get("fr") == "abc"


def test_one_connection_and_one_pool_lookup_serve_many_calls(server: Server) -> None:
    session = session_for(server.url)
    adapter = session.get_adapter(server.url)
    assert isinstance(adapter, MetaAdapter)
    lookups = []
    real_lookup = adapter.poolmanager.connection_from_host

    def counted(*args: Any, **kwargs: Any) -> Any:
        lookups.append(args)
        return real_lookup(*args, **kwargs)

    adapter.poolmanager.connection_from_host = counted  # type: ignore[method-assign]
    for n in range(5):
        assert send(session, f"{server.url}/v25.0/{n}").status_code == 200
    assert server.connections == 1
    assert len(server.request_lines) == 5
    assert len(lookups) == 1  # requests' own adapter looks the pool up on every call


def test_a_closed_pool_is_replaced(server: Server) -> None:
    session = session_for(server.url)
    adapter = session.get_adapter(server.url)
    assert isinstance(adapter, MetaAdapter)
    assert send(session, server.url + "/v25.0/1").status_code == 200
    prepared = requests.Request("GET", server.url).prepare()
    adapter.get_connection_with_tls_context(prepared, session.verify).close()
    adapter.poolmanager.clear()  # as urllib3 1 did, closing the pools it dropped
    assert send(session, server.url + "/v25.0/2").status_code == 200
    assert server.connections == 2


def test_no_proxy_alone_keeps_the_remembered_pool(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "proxy-exempt.example")
    session = session_for(server.url)
    assert session.proxies == {"no": "proxy-exempt.example"}
    adapter = session.get_adapter(server.url)
    for n in range(2):
        assert send(session, f"{server.url}/v25.0/{n}").status_code == 200
    assert isinstance(adapter, MetaAdapter) and len(adapter._pools) == 1


def test_many_hosts_do_not_grow_the_remembered_pools_without_bound() -> None:
    servers = [Server() for _ in range(MAX_POOLS + 2)]
    for srv in servers:
        serve_in_thread(srv)
    try:
        session = session_for(servers[0].url)
        for srv in servers:
            assert send(session, srv.url + "/v25.0/1").status_code == 200
        assert send(session, servers[0].url + "/v25.0/2").status_code == 200
        adapter = session.get_adapter(servers[0].url)
        assert isinstance(adapter, MetaAdapter)
        assert 0 < len(adapter._pools) <= MAX_POOLS
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


def test_timeouts_and_broken_connections_raise_requests_own_exceptions(server: Server) -> None:
    session = session_for(server.url)
    with pytest.raises(requests.ReadTimeout):
        send(session, server.url + "/slow", timeout=(2, 0.2))
    with pytest.raises(requests.ConnectionError):
        send(session, server.url + "/drop")
    assert send(session, server.url + "/v25.0/after").status_code == 200


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
        with pytest.raises(requests.exceptions.SSLError):
            send(session, url)
        assert send(session, url, verify=str(cert_path)).status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            send(session, url)  # the pool verified against the test's CA is not reused
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # urllib3's InsecureRequestWarning
            assert send(session, url, verify=False).status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            send(session, url)  # nor the unverified one
        assert send(session, url, verify=str(cert_path)).status_code == 200
    finally:
        stop_serving(srv)
