"""The media pre-check's safe fetcher (DESIGN §13.2 "Pre-check", §13.5 ``ipaddress``).

No test here resolves an outside name or sends traffic beyond 127.0.0.0/8: the resolver is
injected, the transport is either a fake that records where it would connect, or the
real pinned transport talking to a server on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.media_fetch import MAX_BYTES, Hop, MediaUnreachable, PinnedTransport, Reply, fetch, total_size
from tests.conftest import free_port

PUBLIC = "93.184.215.14"  # a public address; only ever handed to fake or patched connections
PUBLIC_2 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


def resolver(answers: dict[str, list[str]], calls: list[str] | None = None) -> Callable[[str, int], list]:
    def resolve(host: str, port: int) -> list:
        if calls is not None:
            calls.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [ipaddress.ip_address(a) for a in answers[host]]

    return resolve


def reply(status: int = 200, headers: dict[str, str] | None = None, body: bytes = b"data") -> Reply:
    return Reply(status, {k.lower(): v for k, v in (headers or {}).items()}, [body] if body else [])


class FakeTransport:
    """Records each hop (where the fetcher would connect) and answers from ``routes``."""

    def __init__(self, routes: dict[str, Callable[[], Reply] | Reply]):
        self.routes = routes
        self.hops: list[Hop] = []
        self.closed = 0

    def __call__(self, hop: Hop, deadline: float) -> Reply:
        self.hops.append(hop)
        route = self.routes[f"{hop.host}{hop.target}"]
        answer = route() if callable(route) else route
        closing = answer.close

        def close() -> None:
            self.closed += 1
            closing()

        answer.close = close
        return answer


def test_a_public_host_is_fetched_from_the_address_that_was_checked():
    transport = FakeTransport({"cdn.example.com/p/a.jpg?v=2": reply(200, {"Content-Length": "5120"}, b"\xff\xd8")})
    fetched = fetch(
        "https://CDN.example.com./p/a.jpg?v=2", resolver=resolver({"cdn.example.com": [PUBLIC]}), transport=transport
    )
    assert (fetched.status, fetched.total_size, fetched.head) == (200, 5120, b"\xff\xd8")
    (hop,) = transport.hops
    assert hop.addresses == (ipaddress.ip_address(PUBLIC),)
    assert (hop.scheme, hop.host, hop.port, hop.target) == ("https", "cdn.example.com", 443, "/p/a.jpg?v=2")
    assert hop.headers["Range"] == "bytes=0-262143"
    assert transport.closed == 1


@pytest.mark.parametrize(
    "answer",
    [
        "10.1.2.3",
        "192.168.0.10",
        "172.16.5.4",
        "100.64.0.1",  # carrier-grade NAT
        "127.0.0.1",
        "0.0.0.0",
        "169.254.169.254",  # cloud metadata
        "192.0.0.170",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.0.0.1",
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
        "::127.0.0.1",  # IPv4-compatible
        "fec0::1",  # site-local (deprecated, still routed in some networks; ipaddress calls it global)
    ],
)
def test_a_name_resolving_to_a_non_public_address_is_refused_unfetched(answer):
    transport = FakeTransport({})
    with pytest.raises(MediaUnreachable) as refused:
        fetch("https://cdn.example.com/a.jpg", resolver=resolver({"cdn.example.com": [answer]}), transport=transport)
    assert refused.value.reason == "not_public"
    assert transport.hops == []


def test_every_resolved_address_must_be_public_not_just_the_first():
    transport = FakeTransport({})
    answers = {"cdn.example.com": [PUBLIC, PUBLIC_2, "10.0.0.7"]}
    with pytest.raises(MediaUnreachable, match="not_public"):
        fetch("https://cdn.example.com/a.jpg", resolver=resolver(answers), transport=transport)
    assert transport.hops == []


@pytest.mark.parametrize(
    "url",
    [
        "https://127.1/a.jpg",
        "https://0x7f.1/a.jpg",
        "https://2130706433/a.jpg",
        "https://[::ffff:127.0.0.1]/a.jpg",
        "https://[64:ff9b::a9fe:a9fe]/latest/meta-data",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost./a.jpg",
        "https://metadata.google.internal/a.jpg",
        "https://127.0.0.\uff11/a.jpg",  # full-width digit: 127.0.0.1 after UTS #46
    ],
)
def test_literal_private_hosts_are_refused_without_a_lookup(url):
    calls: list[str] = []
    transport = FakeTransport({})
    with pytest.raises(MediaUnreachable, match="not_public"):
        fetch(url, resolver=resolver({}, calls), transport=transport)
    assert calls == [] and transport.hops == []


@pytest.mark.parametrize("url", ["http://cdn.example.com/a.jpg", "ftp://cdn.example.com/a.jpg", "cdn.example.com/a"])
def test_only_https_is_fetched(url):
    with pytest.raises(MediaUnreachable, match="not_https"):
        fetch(url, resolver=resolver({"cdn.example.com": [PUBLIC]}), transport=FakeTransport({}))


def test_a_dns_answer_that_changes_after_the_check_is_not_used():
    """DNS rebinding: public when checked, 127.0.0.1 on any later lookup. The connection
    goes to the checked address and no second lookup is made."""
    answers = iter([[PUBLIC], ["127.0.0.1"], ["127.0.0.1"]])
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list:
        calls.append(host)
        return [ipaddress.ip_address(a) for a in next(answers)]

    transport = FakeTransport({"cdn.example.com/a.jpg": reply()})
    fetch("https://cdn.example.com/a.jpg", resolver=rebinding, transport=transport)
    assert calls == ["cdn.example.com"]
    assert [hop.addresses for hop in transport.hops] == [(ipaddress.ip_address(PUBLIC),)]


def test_the_real_transport_connects_to_the_checked_address_and_never_resolves_again(monkeypatch):
    """The pinned connection itself: the only socket opened goes to the checked address
    (patched here, so nothing leaves the machine), and getaddrinfo is never called."""
    opened: list[tuple[str, int]] = []

    def create_connection(address, timeout=None, *args, **kwargs):
        opened.append(address)
        raise ConnectionRefusedError("patched: no traffic in tests")

    def no_lookup(*args, **kwargs):
        raise AssertionError(f"a second lookup was made: {args}")

    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    answers = iter([[PUBLIC, PUBLIC_2], ["127.0.0.1"]])

    def rebinding(host: str, port: int) -> list:
        return [ipaddress.ip_address(a) for a in next(answers)]

    with pytest.raises(MediaUnreachable, match="refused"):
        fetch("https://cdn.example.com:8443/a.jpg", resolver=rebinding, transport=PinnedTransport())
    assert opened == [(PUBLIC, 8443), (PUBLIC_2, 8443)]


@pytest.mark.parametrize(
    "location, answers, reason",
    [
        ("https://internal.example.com/a.jpg", {"internal.example.com": ["10.0.0.5"]}, "not_public"),
        ("https://rebind.example.com/a.jpg", {"rebind.example.com": ["::ffff:192.168.1.1"]}, "not_public"),
        ("https://127.0.0.1/a.jpg", {}, "not_public"),
        ("https://[::1]:8443/a.jpg", {}, "not_public"),
        ("http://cdn.example.com/a.jpg", {}, "not_https"),
        ("file:///etc/passwd", {}, "not_https"),
    ],
)
def test_redirects_are_checked_like_the_first_url(location, answers, reason):
    transport = FakeTransport({"cdn.example.com/a.jpg": reply(302, {"Location": location}, b"")})
    with pytest.raises(MediaUnreachable) as refused:
        fetch(
            "https://cdn.example.com/a.jpg",
            resolver=resolver({"cdn.example.com": [PUBLIC], **answers}),
            transport=transport,
        )
    assert refused.value.reason == reason
    assert len(transport.hops) == 1  # the redirect target was never contacted
    assert transport.closed == 1


def test_a_relative_redirect_is_followed_and_resolved_again():
    calls: list[str] = []
    transport = FakeTransport(
        {
            "cdn.example.com/a.jpg": reply(301, {"Location": "/b.jpg"}, b""),
            "cdn.example.com/b.jpg": reply(200, {}, b"image"),
        }
    )
    fetched = fetch(
        "https://cdn.example.com/a.jpg", resolver=resolver({"cdn.example.com": [PUBLIC]}, calls), transport=transport
    )
    assert (fetched.url, fetched.head) == ("https://cdn.example.com/b.jpg", b"image")
    assert calls == ["cdn.example.com", "cdn.example.com"]


def _chain(length: int) -> dict[str, Reply]:
    routes: dict[str, Reply] = {
        f"cdn.example.com/{n}": reply(307, {"Location": f"https://cdn.example.com/{n + 1}"}, b"") for n in range(length)
    }
    routes[f"cdn.example.com/{length}"] = reply(200, {}, b"image")
    return routes


def test_three_redirects_are_followed_a_fourth_is_refused():
    answers = resolver({"cdn.example.com": [PUBLIC]})
    three = FakeTransport(_chain(3))
    assert fetch("https://cdn.example.com/0", resolver=answers, transport=three).head == b"image"
    assert len(three.hops) == 4
    four = FakeTransport(_chain(4))
    with pytest.raises(MediaUnreachable, match="redirects"):
        fetch("https://cdn.example.com/0", resolver=answers, transport=four)
    assert len(four.hops) == 4  # the fifth URL was never requested


def test_a_redirect_without_location_is_refused():
    transport = FakeTransport({"cdn.example.com/a.jpg": reply(302, {}, b"")})
    with pytest.raises(MediaUnreachable, match="redirects"):
        fetch("https://cdn.example.com/a.jpg", resolver=resolver({"cdn.example.com": [PUBLIC]}), transport=transport)


def test_at_most_256_kb_is_read_of_a_10_mb_body():
    pulled: list[int] = []

    def ten_megabytes() -> Iterator[bytes]:
        for _ in range(160):
            pulled.append(1)
            yield b"\x00" * 65536

    transport = FakeTransport(
        {"cdn.example.com/big.jpg": lambda: Reply(200, {"content-length": "10485760"}, ten_megabytes())}
    )
    fetched = fetch(
        "https://cdn.example.com/big.jpg", resolver=resolver({"cdn.example.com": [PUBLIC]}), transport=transport
    )
    assert len(fetched.head) == MAX_BYTES == 262144
    assert len(pulled) == 4  # 4 × 64 KB, then the fetcher stopped pulling
    assert fetched.total_size == 10485760
    assert transport.closed == 1


def test_one_oversized_chunk_is_cut_at_256_kb():
    transport = FakeTransport({"cdn.example.com/big.jpg": reply(200, {}, b"\x01" * (10 * 1024 * 1024))})
    fetched = fetch(
        "https://cdn.example.com/big.jpg", resolver=resolver({"cdn.example.com": [PUBLIC]}), transport=transport
    )
    assert len(fetched.head) == MAX_BYTES


def test_a_slow_resolver_runs_into_the_deadline():
    def slow(host: str, port: int) -> list:
        time.sleep(2)
        return [ipaddress.ip_address(PUBLIC)]

    transport = FakeTransport({})
    started = time.monotonic()
    with pytest.raises(MediaUnreachable, match="timeout"):
        fetch("https://cdn.example.com/a.jpg", resolver=slow, transport=transport, timeout=0.2)
    assert time.monotonic() - started < 1.0
    assert transport.hops == []


def test_the_deadline_covers_every_hop_in_all():
    """Each lookup is quick, but three of them take longer than the one deadline."""

    def sluggish(host: str, port: int) -> list:
        time.sleep(0.15)
        return [ipaddress.ip_address(PUBLIC)]

    with pytest.raises(MediaUnreachable, match="timeout"):
        fetch("https://cdn.example.com/0", resolver=sluggish, transport=FakeTransport(_chain(3)), timeout=0.4)


@pytest.mark.parametrize("failure", [socket.gaierror(socket.EAI_NONAME, "unknown"), UnicodeError("label too long")])
def test_a_name_that_does_not_resolve_is_a_dns_failure(failure):
    def failing(host: str, port: int) -> list:
        raise failure

    with pytest.raises(MediaUnreachable, match="dns"):
        fetch("https://nowhere.example.com/a.jpg", resolver=failing, transport=FakeTransport({}))
    with pytest.raises(MediaUnreachable, match="dns"):
        fetch("https://empty.example.com/a.jpg", resolver=lambda h, p: [], transport=FakeTransport({}))


@pytest.mark.parametrize("status", [403, 404, 410, 500, 503, 304])
def test_error_statuses_are_unreachable_with_the_status(status):
    transport = FakeTransport({"cdn.example.com/a.jpg": reply(status, {}, b"")})
    with pytest.raises(MediaUnreachable) as refused:
        fetch("https://cdn.example.com/a.jpg", resolver=resolver({"cdn.example.com": [PUBLIC]}), transport=transport)
    assert (refused.value.reason, refused.value.status, str(refused.value)) == ("http", status, f"http {status}")


@pytest.mark.parametrize(
    "status, headers, size",
    [
        (206, {"content-range": "bytes 0-262143/10485760", "content-length": "262144"}, 10485760),
        (206, {"content-range": "Bytes 0-99/100"}, 100),
        (206, {"content-range": "bytes 0-262143/*"}, None),  # the server does not tell
        (206, {"content-range": "bytes */10485760"}, None),
        (206, {"content-range": "nonsense"}, None),
        (206, {"content-length": "262144"}, None),  # a part's length is not the file's
        (200, {"content-length": "9437184"}, 9437184),  # the Range was ignored: the whole file
        (200, {"content-length": "-1"}, None),
        (200, {}, None),
    ],
)
def test_the_size_comes_from_content_range_or_content_length(status, headers, size):
    assert total_size(status, headers) == size


# --- Demo and test: MEDIA_PRECHECK_ALLOW_HOSTS ---


def test_allowed_hosts_skip_the_https_and_public_rule_and_nothing_else_is_contacted():
    calls: list[str] = []
    transport = FakeTransport(
        {
            "127.0.0.1/media/a.jpg": reply(200, {}, b"sandbox"),
            "127.0.0.1/media/out": reply(302, {"Location": "https://cdn.example.com/a.jpg"}, b""),
        }
    )
    allow = {"127.0.0.1"}
    fetched = fetch(
        "http://127.0.0.1:8001/media/a.jpg", allow_hosts=allow, resolver=resolver({}, calls), transport=transport
    )
    assert fetched.head == b"sandbox" and transport.hops[0].scheme == "http"
    with pytest.raises(MediaUnreachable, match="not_allowed"):
        fetch("https://cdn.example.com/a.jpg", allow_hosts=allow, resolver=resolver({}, calls), transport=transport)
    with pytest.raises(MediaUnreachable, match="not_allowed"):
        fetch("http://127.0.0.1:8001/media/out", allow_hosts=allow, resolver=resolver({}, calls), transport=transport)
    assert calls == [] and len(transport.hops) == 2


# --- The real pinned transport against servers on 127.0.0.1 ---

MEDIA_HOST = "media.resellio.test"  # made up; the injected resolver maps it to 127.0.0.1


def certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (its own trust anchor in the tests)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class LocalServer:
    """A tiny HTTP(S) server on 127.0.0.1; ``respond(sock, request_text)`` writes the answer."""

    def __init__(self, respond: Callable[[socket.socket, str], None], cert: tuple[Path, Path] | None = None):
        self.respond = respond
        self.context: ssl.SSLContext | None = None
        self.sni: list[str | None] = []
        self.requests: list[str] = []
        self.done = threading.Event()
        if cert is not None:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(*cert)
            self.context.sni_callback = lambda sock, name, ctx: self.sni.append(name)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            with conn:
                sock = self.context.wrap_socket(conn, server_side=True) if self.context else conn
                data = b""
                while b"\r\n\r\n" not in data:
                    piece = sock.recv(4096)
                    if not piece:
                        return
                    data += piece
                self.requests.append(data.decode("latin-1"))
                self.respond(sock, data.decode("latin-1"))
        except OSError:
            pass
        finally:
            self.done.set()

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self.listener.close()


@pytest.fixture
def servers():
    started: list[LocalServer] = []

    def start(respond, cert=None) -> LocalServer:
        started.append(LocalServer(respond, cert))
        return started[-1]

    yield start
    for server in started:
        server.close()


def partial_content(body: bytes) -> Callable[[socket.socket, str], None]:
    def respond(sock: socket.socket, request: str) -> None:
        head = body[:MAX_BYTES]
        sock.sendall(
            b"HTTP/1.1 206 Partial Content\r\nContent-Type: image/jpeg\r\n"
            + f"Content-Range: bytes 0-{len(head) - 1}/{len(body)}\r\nContent-Length: {len(head)}\r\n\r\n".encode()
            + head
        )

    return respond


def pinned(cert: Path) -> PinnedTransport:
    return PinnedTransport(ssl.create_default_context(cafile=str(cert)))


def to_loopback(host: str, port: int) -> list:
    return [ipaddress.ip_address("127.0.0.1")] if host == MEDIA_HOST else []


def loopback_counts_as_public(address) -> bool:
    """Test-only swap of the public-address check, so the real TLS path runs on 127.0.0.1."""
    return address == ipaddress.ip_address("127.0.0.1")


def test_pinned_https_keeps_sni_and_the_certificate_check_for_the_host_name(tmp_path, servers):
    cert = certificate(tmp_path, MEDIA_HOST)
    body = bytes(range(256)) * 2048  # 512 KB
    server = servers(partial_content(body), cert)
    fetched = fetch(
        f"https://{MEDIA_HOST}:{server.port}/photos/1.jpg",
        resolver=to_loopback,
        is_public=loopback_counts_as_public,
        transport=pinned(cert[0]),
    )
    assert fetched.head == body[:MAX_BYTES]
    assert (fetched.status, fetched.total_size, fetched.content_type) == (206, len(body), "image/jpeg")
    assert server.sni == [MEDIA_HOST]
    request = server.requests[0]
    assert request.startswith("GET /photos/1.jpg HTTP/1.1\r\n")
    assert f"Host: {MEDIA_HOST}:{server.port}\r\n" in request
    assert "Range: bytes=0-262143\r\n" in request


def test_a_certificate_for_another_name_is_refused(tmp_path, servers):
    other = certificate(tmp_path, "other.resellio.test")
    server = servers(partial_content(b"x" * 100), other)
    with pytest.raises(MediaUnreachable, match="tls"):
        fetch(
            f"https://{MEDIA_HOST}:{server.port}/a.jpg",
            resolver=to_loopback,
            is_public=loopback_counts_as_public,
            transport=pinned(other[0]),
        )
    assert server.requests == []


def test_without_the_test_only_swap_loopback_is_never_contacted(tmp_path, servers):
    cert = certificate(tmp_path, MEDIA_HOST)
    server = servers(partial_content(b"x" * 100), cert)
    with pytest.raises(MediaUnreachable, match="not_public"):
        fetch(f"https://{MEDIA_HOST}:{server.port}/a.jpg", resolver=to_loopback, transport=pinned(cert[0]))
    assert server.sni == [] and server.requests == []


def test_a_server_sending_10_mb_is_cut_off_after_256_kb(tmp_path, servers):
    cert = certificate(tmp_path, MEDIA_HOST)
    sent: list[int] = []

    def ten_megabytes(sock: socket.socket, request: str) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n")
        sent.append(0)
        for _ in range(160):
            sock.sendall(b"\xab" * 65536)
            sent[0] += 65536

    server = servers(ten_megabytes, cert)
    fetched = fetch(
        f"https://{MEDIA_HOST}:{server.port}/big.jpg",
        resolver=to_loopback,
        is_public=loopback_counts_as_public,
        transport=pinned(cert[0]),
    )
    assert fetched.head == b"\xab" * MAX_BYTES
    assert fetched.total_size == 10485760
    assert server.done.wait(5)
    assert sent[0] < 10485760  # the connection was closed, not drained


def test_a_server_dripping_its_answer_is_cut_at_the_deadline(tmp_path, servers):
    """A byte every 50 ms never trips a per-read timeout; the wall-clock deadline still holds."""
    cert = certificate(tmp_path, MEDIA_HOST)

    def drip(sock: socket.socket, request: str) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
            sock.sendall(bytes([byte]))
            time.sleep(0.05)

    server = servers(drip, cert)
    started = time.monotonic()
    with pytest.raises(MediaUnreachable, match="timeout"):
        fetch(
            f"https://{MEDIA_HOST}:{server.port}/slow.jpg",
            resolver=to_loopback,
            is_public=loopback_counts_as_public,
            transport=pinned(cert[0]),
            timeout=0.6,
        )
    assert time.monotonic() - started < 1.5


def test_a_refused_connection_is_unreachable():
    port = free_port()
    with pytest.raises(MediaUnreachable, match="refused"):
        fetch(
            f"https://{MEDIA_HOST}:{port}/a.jpg",
            resolver=to_loopback,
            is_public=loopback_counts_as_public,
            transport=PinnedTransport(),
        )


def test_the_demo_fetches_plain_http_from_an_allowed_sandbox_host(servers):
    """MEDIA_PRECHECK_ALLOW_HOSTS (demo/test): the sandbox on 127.0.0.1 over plain http."""
    server = servers(partial_content(b"GIF89a" + b"\x00" * 100))
    fetched = fetch(f"http://127.0.0.1:{server.port}/media/a.gif", allow_hosts={"127.0.0.1"})
    assert fetched.head.startswith(b"GIF89a") and fetched.total_size == 106
    assert f"Host: 127.0.0.1:{server.port}\r\n" in server.requests[0]


def test_proxies_from_the_environment_are_never_used(tmp_path, servers, monkeypatch):
    """HTTPS_PROXY and friends would send the request (and its checks) elsewhere."""
    proxy = servers(lambda sock, request: sock.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"))
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    cert = certificate(tmp_path, MEDIA_HOST)
    server = servers(partial_content(b"\xff\xd8" * 10), cert)
    fetched = fetch(
        f"https://{MEDIA_HOST}:{server.port}/a.jpg",
        resolver=to_loopback,
        is_public=loopback_counts_as_public,
        transport=pinned(cert[0]),
    )
    plain = servers(partial_content(b"GIF89a"))
    assert fetch(f"http://127.0.0.1:{plain.port}/a.gif", allow_hosts={"127.0.0.1"}).head == b"GIF89a"
    assert fetched.head == b"\xff\xd8" * 10
    assert proxy.requests == [] and len(server.requests) == 1


def test_a_name_with_many_silent_addresses_still_gets_one_deadline(blackhole: int) -> None:
    # Each address used to get the whole timeout again: six silent ones took six deadlines.
    addresses = [ipaddress.ip_address("127.0.0.1")] * 6
    started = time.monotonic()
    with pytest.raises(MediaUnreachable) as refused:
        fetch(
            f"https://media.example.com:{blackhole}/a.jpg",
            timeout=1.0,
            resolver=lambda host, port: addresses,
            transport=PinnedTransport(),
            is_public=lambda address: True,  # loopback stands in for a public address here
        )
    assert refused.value.reason == "timeout"
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    "headers",
    [
        {"content-length": "\u00b2"},  # str.isdigit() says yes, int() says no
        {"content-length": "9" * 5000},  # beyond int()'s digit limit
        {"content-length": "10" * 12},  # beyond any real file
    ],
)
def test_a_size_header_that_is_no_plain_number_is_a_size_not_told(headers: dict[str, str]) -> None:
    fetched = fetch(
        "https://cdn.example.com/a.jpg",
        resolver=lambda host, port: [ipaddress.ip_address("93.184.216.34")],
        transport=lambda hop, deadline: Reply(200, headers, iter([b"\xff\xd8\xff"])),
    )
    assert fetched.total_size is None


def test_a_content_range_total_that_is_no_plain_number_is_a_size_not_told() -> None:
    headers = {"content-range": f"bytes 0-2/{'9' * 5000}"}
    fetched = fetch(
        "https://cdn.example.com/a.jpg",
        resolver=lambda host, port: [ipaddress.ip_address("93.184.216.34")],
        transport=lambda hop, deadline: Reply(206, headers, iter([b"\xff\xd8\xff"])),
    )
    assert fetched.total_size is None
