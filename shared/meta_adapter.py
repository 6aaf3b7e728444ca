"""The worker's transport to Meta: each call on a kept-alive connection of Python's own
``http.client``, its answer read whole. requests' own ``HTTPAdapter`` (urllib3) still sends what
this path does not: through a proxy, with a client certificate, or an answer to be streamed.

Why: the worker makes five calls a post to the same two or three hosts, and its CPU a post is a
throughput target (DESIGN §13.4). Through urllib3 a call cost about 0.38 ms of one thread's CPU
(the pool lookup, its retry and timeout objects, the response wrapper) where this costs about
0.28 ms; in a burst of 1,000 posts it saved about a tenth of the workers' CPU a post.

What a caller sees is requests' own: a ``Response`` with the status, reason, headers (repeated
ones joined), encoding and the whole decoded body (gzip and deflate, which requests asks for),
and requests' exceptions; an answer in a coding it cannot undo is refused as broken. Those
raised before a byte of the request was written also say so (``NeverSent``): a refused or
timed-out connect, a failed TLS handshake or an unreadable CA bundle. Anything after that may
have reached Meta. No cookie is kept: the Graph client never sends one back.
"""

from __future__ import annotations

import http.client
import os
import ssl
import zlib
from types import NoneType
from typing import Any
from urllib.parse import SplitResult, urlsplit

import requests
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_encoding_from_headers, select_proxy
from urllib3.util import wait_for_read

Origin = tuple[str, str, int, Any]  # scheme, host, port, and for https the verify setting
# Meta's hosts are two or three; a session sent elsewhere too forgets its idle connections past this many.
MAX_ORIGINS = 16
# Idle connections kept per origin (urllib3's pool keeps as many); more are closed once answered.
MAX_IDLE = 10
DEFAULT_PORTS = {"http": 80, "https": 443}


class NeverSent(Exception):
    """Raised with requests' own exception when the request surely did not leave. It speaks of
    the one request this transport was handed: after a redirect followed by ``Session.send`` the
    first request did leave (the Graph client follows none)."""


class ConnectFailed(NeverSent, requests.ConnectionError):
    """The connection could not be made (refused, no route, no such host)."""


class ConnectTimedOut(NeverSent, requests.ConnectTimeout):
    """The connection, or its TLS handshake, took longer than the connect timeout."""


class HandshakeFailed(NeverSent, requests.exceptions.SSLError):
    """TLS refused: the certificate could not be verified, say."""


class MetaAdapter(HTTPAdapter):
    """requests' transport for the worker's calls to Meta (see the module's note)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # No lock: the worker's sessions are a thread's own, and should one be shared, a list's
        # pop and append and a dict's swap are atomic (a lock a job's time limit interrupted
        # could be left taken, and the thread's next call would wait on it for ever).
        self._idle: dict[Origin, list[http.client.HTTPConnection]] = {}
        self._contexts: dict[Any, ssl.SSLContext] = {}

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> Response:
        url = str(request.url)
        parts = urlsplit(url)
        origin = None if stream or cert else _origin(url, parts, verify, proxies)
        # A body or timeout of another kind (a file, urllib3's Timeout) takes requests' own path too.
        plain = isinstance(request.body, (str, bytes, NoneType)) and isinstance(timeout, (tuple, float, int, NoneType))
        if origin is None or not plain:
            return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
        connect_timeout, read_timeout = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        conn = self._take_idle(origin) or self._connect(origin, connect_timeout, request)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            response = self._exchange(conn, request, target, read_timeout)
        except BaseException:
            conn.close()
            raise
        self._give_back(origin, conn)
        return response

    def close(self) -> None:
        idle, self._idle = self._idle, {}
        _close_all(idle)
        super().close()

    def _take_idle(self, origin: Origin) -> http.client.HTTPConnection | None:
        """The newest idle connection to ``origin`` still open at the other end."""
        conns = self._idle.get(origin)
        while conns:
            try:
                conn = conns.pop()
            except IndexError:
                return None  # taken meanwhile by another thread sharing the session
            # Readable while idle: closed by the server (or sending what nobody asked for).
            if conn.sock is not None and not wait_for_read(conn.sock, timeout=0.0):
                return conn
            conn.close()
        return None

    def _give_back(self, origin: Origin, conn: http.client.HTTPConnection) -> None:
        if conn.sock is None:
            return  # the answer closed it (Connection: close)
        conns = self._idle.get(origin)
        if conns is None:
            if len(self._idle) >= MAX_ORIGINS:
                forgotten, self._idle = self._idle, {}
                _close_all(forgotten)
            conns = self._idle.setdefault(origin, [])
        if len(conns) < MAX_IDLE:
            conns.append(conn)
        else:
            conn.close()

    def _connect(self, origin: Origin, timeout: float | None, request: PreparedRequest) -> http.client.HTTPConnection:
        scheme, host, port, verify = origin
        conn: http.client.HTTPConnection
        if scheme == "https":
            try:
                context = self._context(verify)
            except (ssl.SSLError, OSError) as exc:  # a CA bundle missing or unreadable: nothing sent
                raise HandshakeFailed(exc, request=request) from exc
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.connect()
        except TimeoutError as exc:
            conn.close()
            raise ConnectTimedOut(exc, request=request) from exc
        except ssl.SSLError as exc:
            conn.close()
            raise HandshakeFailed(exc, request=request) from exc
        except OSError as exc:
            conn.close()
            raise ConnectFailed(exc, request=request) from exc
        except BaseException:  # a job's time limit: the socket is not left to the garbage collector
            conn.close()
            raise
        return conn

    def _context(self, verify: Any) -> ssl.SSLContext:
        """One TLS context per verify setting: True (certifi's CAs, as requests), a CA file or
        directory, or False (no verification)."""
        context = self._contexts.get(verify)
        if context is not None:
            return context
        if verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            cafile = DEFAULT_CA_BUNDLE_PATH if verify is True else str(verify)
            if not os.path.exists(cafile):
                raise OSError(f"Could not find a suitable TLS CA certificate bundle, invalid path: {cafile}")
            if os.path.isdir(cafile):
                context = ssl.create_default_context(capath=cafile)
            else:
                context = ssl.create_default_context(cafile=cafile)
        self._contexts[verify] = context
        return context

    def _exchange(
        self, conn: http.client.HTTPConnection, request: PreparedRequest, target: str, read_timeout: float | None
    ) -> Response:
        """Send the request to ``target`` (its path and query) and read its whole answer, with
        requests' exceptions for what fails."""
        assert conn.sock is not None
        body = request.body.encode("utf-8") if isinstance(request.body, str) else request.body
        try:
            conn.sock.settimeout(read_timeout)
            conn.putrequest(
                str(request.method),
                target,
                skip_host="Host" in request.headers,
                skip_accept_encoding="Accept-Encoding" in request.headers,  # else "identity", as urllib3
            )
            for name, value in request.headers.items():
                conn.putheader(name, value)
            conn.endheaders(body)
            answer = conn.getresponse()
            content = answer.read()
        except TimeoutError as exc:
            raise requests.ReadTimeout(exc, request=request) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise requests.ConnectionError(exc, request=request) from exc
        headers = answer.msg.get_all("Content-Length") or []
        lengths = {value.strip() for header in headers for value in header.split(",")}
        if len(lengths) > 1 or not all(value.isdigit() for value in lengths):
            # Which length is right cannot be known: the answer (to a request that left) is broken.
            raise requests.exceptions.InvalidHeader(f"bad Content-Length: {sorted(lengths)}", request=request)
        return _response(request, answer, _decoded(content, answer.getheader("Content-Encoding"), request), self)


def _close_all(idle: dict[Origin, list[http.client.HTTPConnection]]) -> None:
    for conns in idle.values():
        for conn in conns:
            conn.close()


def _origin(url: str, parts: SplitResult, verify: Any, proxies: Any) -> Origin | None:
    """Where to connect for ``url`` (``parts``: split once, by ``send``); None when this transport
    does not send it (a proxy, an unknown scheme, a verify setting neither a flag nor a path)."""
    if not isinstance(verify, (bool, str)) or (proxies and select_proxy(url, proxies)):
        return None  # NO_PROXY alone ({"no": ...}) names no proxy for the URL
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        return None  # requests' own path reports the bad port
    return (scheme, parts.hostname, port, verify if scheme == "https" else None)


def _decoded(content: bytes, encoding: str | None, request: PreparedRequest) -> bytes:
    """The body as sent before the server compressed it (requests asks for gzip and deflate),
    codings undone last first. An empty body (a 204, an answer to HEAD) is empty whatever the
    header says. A coding it cannot undo is refused, where requests would hand over the encoded
    bytes: an answer the Graph client cannot read must count as broken (perhaps sent), not as
    Meta's refusal."""
    if not content:
        return content
    for coding in reversed([c.strip().lower() for c in (encoding or "").split(",")]):
        try:
            if coding in ("identity", ""):
                continue
            if coding in ("gzip", "x-gzip"):
                content = zlib.decompress(content, 16 + zlib.MAX_WBITS)
            elif coding == "deflate":
                try:
                    content = zlib.decompress(content)
                except zlib.error:
                    content = zlib.decompress(content, -zlib.MAX_WBITS)  # raw deflate, as some servers send
            else:
                raise requests.exceptions.ContentDecodingError(
                    f"unsupported Content-Encoding: {coding}", request=request
                )
        except zlib.error as exc:
            raise requests.exceptions.ContentDecodingError(exc, request=request) from exc
    return content


def _response(
    request: PreparedRequest, answer: http.client.HTTPResponse, content: bytes, adapter: MetaAdapter
) -> Response:
    response = Response()
    response.status_code = answer.status
    response.reason = answer.reason
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    for name, value in answer.getheaders():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value  # repeated: joined
    response.headers = headers
    response.encoding = get_encoding_from_headers(headers)
    response.url = str(request.url)
    response.request = request
    response.connection = adapter
    response._content = content
    response._content_consumed = True  # type: ignore[attr-defined]  # requests reads the body from here on
    return response
