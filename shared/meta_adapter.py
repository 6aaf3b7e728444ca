"""The worker's transport to Meta: requests' own ``HTTPAdapter`` without the per-call work its
calls to Meta do not need. Sending, timeouts, retries and the translation of urllib3's errors
into requests' exceptions are requests' own.

Per call, the stock adapter works out which urllib3 pool the URL belongs to (parsing the URL,
building the pool's key, a locked lookup in the pool manager), checks the CA bundle's path on
disk, and copies the answer's cookies into a jar of the response's own. The worker calls the
same two or three Meta hosts thousands of times a minute, with no proxy or client certificate,
and never reads an answer's cookies: about a quarter of requests' CPU a call.
"""

from __future__ import annotations

from typing import Any, cast

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers, select_proxy
from urllib3.connectionpool import HTTPConnectionPool

PoolKey = tuple[str, Any]
# Meta's hosts are two or three; a session sent elsewhere too forgets them all past this many.
MAX_POOLS = 16


class MetaAdapter(HTTPAdapter):
    """Remembers the pool of each ``scheme://host`` and certificate setting it has sent to. A
    request through a proxy or with a client certificate takes requests' own path."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._pools: dict[PoolKey, HTTPConnectionPool] = {}
        # Looked up, never iterated: a session shared by two threads cannot trip over a change.
        self._verified: set[HTTPConnectionPool] = set()

    def get_connection_with_tls_context(
        self, request: PreparedRequest, verify: Any, proxies: Any = None, cert: Any = None
    ) -> HTTPConnectionPool:
        key = self._pool_key(request, verify, proxies, cert)
        remembered = self._pools.get(key) if key else None
        # urllib3 2 leaves open a pool its manager forgets to make room; a closed one is replaced.
        if remembered is not None and remembered.pool is not None:
            return remembered
        if remembered is not None:
            self._verified.discard(remembered)
        pool = cast(HTTPConnectionPool, super().get_connection_with_tls_context(request, verify, proxies, cert))
        if key:
            super().cert_verify(pool, str(request.url), verify, cert)  # type: ignore[no-untyped-call]
            if len(self._pools) >= MAX_POOLS:
                self._pools.clear()
                self._verified.clear()
            self._verified.add(pool)
            self._pools[key] = pool
        return pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        if conn in self._verified:
            return  # set when the pool was first remembered, for this very setting
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]

    def build_response(self, req: PreparedRequest, resp: Any) -> Response:
        """requests' response, without copying Meta's cookies into a jar of the response's own
        (the session's own jar still gets them, from ``Session.send``)."""
        response = Response()
        response.status_code = resp.status
        response.headers = CaseInsensitiveDict(resp.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = resp
        response.reason = resp.reason
        response.url = req.url.decode("utf-8") if isinstance(req.url, bytes) else str(req.url)
        response.request = req
        response.connection = self
        return response

    def close(self) -> None:
        self._pools.clear()
        self._verified.clear()
        super().close()

    @staticmethod
    def _pool_key(request: PreparedRequest, verify: Any, proxies: Any, cert: Any) -> PoolKey | None:
        url = str(request.url)
        if cert or not isinstance(verify, (bool, str)) or (proxies and select_proxy(url, proxies)):
            return None  # NO_PROXY alone ({"no": ...}) names no proxy for the URL: the fast path stays
        scheme, sep, rest = url.partition("://")
        if not sep:
            return None
        netloc = rest.split("/", 1)[0].split("?", 1)[0]
        return (f"{scheme.lower()}://{netloc.lower()}", verify)
