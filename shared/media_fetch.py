"""The safe fetcher of the media pre-check (DESIGN §13.2 "Pre-check", §13.5).

Groundwork: nothing calls it yet; a later change runs it from ``POST /schedule`` behind
``MEDIA_PRECHECK``. It reads the first bytes of a media URL the way Meta would fetch it,
without letting a seller's URL reach anything but the public internet:

- https only; the host must be a public name or address, and **every** address it
  resolves to must be public (``shared.validation.is_public_address`` unwraps IPv4
  carried in IPv6);
- the connection goes to the addresses that were checked, never to a second lookup
  (no DNS rebinding), while SNI and the certificate check use the host name;
- at most 3 redirects, each checked the same way;
- 5 s per URL in all, resolution included, as a wall-clock deadline;
- at most the first 256 KB read (``Range: bytes=0-262143``), the size taken from
  ``Content-Range`` / ``Content-Length``.

No proxy is ever used: the connection is made here with ``http.client`` on a socket
to the checked address (nothing reads ``HTTPS_PROXY`` and friends).

``allow_hosts`` (``MEDIA_PRECHECK_ALLOW_HOSTS``, demo and test only) names hosts exempt
from the https/public rule; while it is set no other host is ever contacted.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import certifi
import idna

from shared.validation import host_meta_cannot_reach, ip_literal, is_public_address

MAX_BYTES = 256 * 1024
MAX_REDIRECTS = 3
TIMEOUT_SECONDS = 5.0
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"  # kept as they are; spaces and the like are percent-encoded
# ASCII digits only, and no more than a 64-bit size: anything else is a size the server did not tell.
_CONTENT_RANGE = re.compile(r"bytes\s+[0-9]{1,19}-[0-9]{1,19}/([0-9]{1,19})", re.IGNORECASE)
_CONTENT_LENGTH = re.compile(r"[0-9]{1,19}")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
T = TypeVar("T")


class MediaUnreachable(Exception):
    """The media could not be fetched. ``reason`` is one of :data:`REASONS`; ``status`` the
    HTTP status when the server answered with an error."""

    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason if status is None else f"{reason} {status}")
        self.reason = reason
        self.status = status


REASONS = (
    "not_https",  # not an https URL (a redirect too)
    "not_public",  # a private, loopback, link-local, ... name or address (a redirect too)
    "not_allowed",  # MEDIA_PRECHECK_ALLOW_HOSTS is set and the host is not on it
    "dns",  # the name does not resolve
    "refused",  # no connection could be made, or it broke
    "tls",  # the certificate or the TLS handshake failed
    "timeout",  # the deadline passed
    "http",  # the server answered 4xx/5xx (or a 3xx that is no redirect)
    "redirects",  # more than MAX_REDIRECTS redirects, or one without a Location
    "bad_response",  # not readable HTTP
)


@dataclass(frozen=True)
class Hop:
    """One request: where it connects (``addresses``, all checked) and what it asks for."""

    scheme: str
    host: str  # the name for the Host header, SNI and the certificate
    port: int
    addresses: tuple[IPAddress, ...]
    target: str  # path and query
    headers: Mapping[str, str]


@dataclass
class Reply:
    """A transport's answer: the body is read lazily from ``chunks``; ``close`` ends the connection."""

    status: int
    headers: Mapping[str, str]  # lower-case names
    chunks: Iterable[bytes]
    close: Callable[[], None] = field(default=lambda: None)


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    status: int
    content_type: str | None
    total_size: int | None  # None when the server does not tell
    head: bytes  # the first bytes, at most MAX_BYTES


Resolver = Callable[[str, int], Sequence[IPAddress]]
Transport = Callable[[Hop, float], Reply]


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The addresses ``getaddrinfo`` gives for ``host`` (it has no timeout: :func:`fetch` holds one)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG)
    return [ipaddress.ip_address(str(info[4][0])) for info in infos]


def remaining(deadline: float) -> float:
    """Seconds left before ``deadline`` (``time.monotonic``); past it, ``MediaUnreachable("timeout")``."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise MediaUnreachable("timeout")
    return left


def _before(deadline: float, work: Callable[[], T]) -> T:
    """``work()`` in a daemon thread, given up at the deadline (for calls that cannot time out)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the caller
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="media-resolve", daemon=True)
    thread.start()
    thread.join(remaining(deadline))
    if thread.is_alive():
        raise MediaUnreachable("timeout")
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value


class _PinnedConnection(http.client.HTTPConnection):
    """HTTP(S) to the hop's checked addresses only; TLS verifies the certificate for ``hop.host``."""

    def __init__(self, hop: Hop, context: ssl.SSLContext | None, deadline: float):
        super().__init__(hop.host, hop.port, timeout=remaining(deadline))
        self.hop, self.context, self.deadline = hop, context, deadline
        self._cut_event = threading.Event()
        if context is not None:
            self.default_port = 443  # the Host header leaves out the default port
        self._lock = threading.Lock()
        self._spare: socket.socket | None = None  # a second handle on the socket, for cut()
        self._cut = False

    def connect(self) -> None:
        sock = _connect_any(self.hop.addresses, self.hop.port, self.deadline, self._cut_event)
        with self._lock:
            if self._cut:
                sock.close()
                raise TimeoutError("deadline passed while connecting")
            self._spare = sock.dup()
        self.sock = sock
        if self.context is not None:
            self.sock = self.context.wrap_socket(sock, server_hostname=self.hop.host)

    def cut(self) -> None:
        """Shut the socket down from another thread: whatever blocks on it returns at once."""
        with self._lock:
            self._cut = True
            self._cut_event.set()
            if self._spare is not None:
                try:
                    self._spare.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        super().close()
        with self._lock:
            if self._spare is not None:
                self._spare.close()
                self._spare = None


# A name with many addresses that all stay silent must not multiply the deadline.
MAX_ADDRESSES_TRIED = 3


def _connect_any(addresses: Sequence[IPAddress], port: int, deadline: float, cut: threading.Event) -> socket.socket:
    """A connection to the first checked address that answers, all within the one deadline."""
    error: OSError = OSError("no address")
    for address in addresses[:MAX_ADDRESSES_TRIED]:
        if cut.is_set():
            break
        try:
            return socket.create_connection((str(address), port), remaining(deadline))
        except MediaUnreachable:
            raise TimeoutError("deadline passed while connecting") from None
        except OSError as exc:
            error = exc
    raise error


class PinnedTransport:
    """The real transport: a connection to the hop's checked addresses, cut at the deadline."""

    def __init__(self, context: ssl.SSLContext | None = None):
        self.context = context or ssl.create_default_context(cafile=certifi.where())

    def __call__(self, hop: Hop, deadline: float) -> Reply:
        connection = _PinnedConnection(hop, self.context if hop.scheme == "https" else None, deadline)
        # A server that drips its handshake or headers byte by byte beats per-read timeouts:
        # the watchdog holds the wall-clock deadline.
        watchdog = threading.Timer(remaining(deadline), connection.cut)
        watchdog.daemon = True
        watchdog.start()

        def close() -> None:
            watchdog.cancel()
            connection.close()

        try:
            connection.request("GET", hop.target, headers=dict(hop.headers))
            response = connection.getresponse()
        except BaseException:
            close()
            raise
        headers: dict[str, str] = {}
        for name, value in response.getheaders():
            headers.setdefault(name.lower(), value)
        return Reply(response.status, headers, _body(response), close)


def _body(response: http.client.HTTPResponse) -> Iterator[bytes]:
    while chunk := response.read1(_CHUNK):
        yield chunk


@functools.cache
def default_transport() -> PinnedTransport:
    """One :class:`PinnedTransport` per process (its context loads the CA bundle once)."""
    return PinnedTransport()


def normal_host(host: str) -> str:
    """The host as it is resolved and named in TLS: lower case, IDNA (UTS #46), no trailing dot,
    an address in its canonical form."""
    host = host.strip().lower()
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError:
            raise MediaUnreachable("not_public") from None
    host = host.rstrip(".")
    literal = ip_literal(host)  # 127.1, 0x7f.1, ... as the address they name
    return str(literal) if literal is not None else host


def _hop(
    url: str,
    deadline: float,
    allow_hosts: Collection[str],
    resolver: Resolver,
    is_public: Callable[[IPAddress], bool],
) -> Hop:
    """The request for ``url``, or ``MediaUnreachable`` when it may not be made."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = normal_host(parts.hostname or "")
    allowed = host in allow_hosts
    if allow_hosts and not allowed:
        raise MediaUnreachable("not_allowed")  # nothing but the listed hosts is ever contacted
    if scheme != "https" and not (allowed and scheme == "http"):
        raise MediaUnreachable("not_https")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise MediaUnreachable("not_https") from None
    if not host or (not allowed and host_meta_cannot_reach(host)):
        raise MediaUnreachable("not_public")
    literal = ip_literal(host)
    if literal is not None:
        addresses: tuple[IPAddress, ...] = (literal,)
    else:
        try:
            addresses = tuple(_before(deadline, lambda: resolver(host, port)))
        except (OSError, UnicodeError, ValueError):  # socket.gaierror, a label too long, ...
            raise MediaUnreachable("dns") from None
    if not addresses:
        raise MediaUnreachable("dns")
    if not allowed and not all(is_public(address) for address in addresses):
        raise MediaUnreachable("not_public")
    target = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), safe=_URL_SAFE)
    headers = {
        "Range": f"bytes=0-{MAX_BYTES - 1}",
        "Accept-Encoding": "identity",
        "Accept": "*/*",
        "User-Agent": "ResellioSocialConnect-MediaCheck/1.0",
        "Connection": "close",
    }
    return Hop(scheme, host, port, addresses, target, headers)


def total_size(status: int, headers: Mapping[str, str]) -> int | None:
    """The whole file's size: the total of ``Content-Range`` (206), else ``Content-Length`` (200)."""
    if status == 206:
        found = _CONTENT_RANGE.fullmatch(headers.get("content-range", "").strip())
        return int(found.group(1)) if found else None
    length = headers.get("content-length", "").strip()
    return int(length) if _CONTENT_LENGTH.fullmatch(length) else None


def _why(exc: BaseException, deadline: float) -> MediaUnreachable:
    if time.monotonic() >= deadline or isinstance(exc, TimeoutError):
        return MediaUnreachable("timeout")
    if isinstance(exc, ssl.SSLError):
        return MediaUnreachable("tls")
    if isinstance(exc, http.client.HTTPException):
        return MediaUnreachable("bad_response")
    return MediaUnreachable("refused")


def fetch(
    url: str,
    *,
    allow_hosts: Collection[str] = (),
    timeout: float = TIMEOUT_SECONDS,
    resolver: Resolver = system_resolver,
    transport: Transport | None = None,
    is_public: Callable[[IPAddress], bool] = is_public_address,
) -> Fetched:
    """The first bytes of ``url`` and what the server says about it, or ``MediaUnreachable``.

    ``resolver``, ``transport`` and ``is_public`` are for tests; ``allow_hosts`` is
    ``MEDIA_PRECHECK_ALLOW_HOSTS`` (normalised host names).
    """
    deadline = time.monotonic() + timeout
    transport = transport or default_transport()
    for _ in range(MAX_REDIRECTS + 1):
        hop = _hop(url, deadline, allow_hosts, resolver, is_public)
        try:
            reply = transport(hop, deadline)
        except MediaUnreachable:
            raise
        except Exception as exc:
            raise _why(exc, deadline) from None
        try:
            remaining(deadline)  # an answer cut short at the deadline is no answer
            if reply.status in REDIRECT_STATUSES:
                location = reply.headers.get("location")
                if not location:
                    raise MediaUnreachable("redirects")
                url = urljoin(url, location.strip())
                continue
            if not 200 <= reply.status < 300:
                raise MediaUnreachable("http", reply.status)
            head = _read_head(reply.chunks, deadline)
        except MediaUnreachable:
            raise
        except Exception as exc:
            raise _why(exc, deadline) from None
        finally:
            reply.close()
        try:
            size = total_size(reply.status, reply.headers)
        except Exception:  # noqa: BLE001 - whatever a server's headers are, they are its problem, not a 500
            raise MediaUnreachable("bad_response") from None
        return Fetched(url, reply.status, reply.headers.get("content-type"), size, head)
    raise MediaUnreachable("redirects")


def _read_head(chunks: Iterable[bytes], deadline: float) -> bytes:
    """At most MAX_BYTES of the body, whatever the server sends; the deadline holds between chunks."""
    head = bytearray()
    for chunk in chunks:
        head += chunk[: MAX_BYTES - len(head)]
        if len(head) >= MAX_BYTES:
            break
        remaining(deadline)
    remaining(deadline)  # the body may have ended because the deadline cut the connection
    return bytes(head)
