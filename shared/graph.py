"""A small Graph API client (DESIGN §7): timeouts, appsecret_proof, paging, errors.

Tokens go in the ``Authorization`` header, never the URL; every call made with a
user or page token carries ``appsecret_proof``. Tokens are only ever sent to Meta's
configured hosts: ``META_GRAPH_URL``, ``META_GRAPH_VIDEO_URL`` and ``META_UPLOAD_URL``. Meta's error body becomes a
:class:`GraphError` carrying ``code``, ``error_subcode`` and ``fbtrace_id``;
transport failures become :class:`GraphTransportError`, which says whether the
request may have reached Meta (an ambiguous failure) or certainly did not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypedDict, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from shared.errors import THROTTLE_CODES, classify_graph_error
from shared.meta_adapter import NeverSent
from shared.settings import Settings

log = logging.getLogger(__name__)

# Called after every Graph call with (endpoint label, seconds, outcome).
GraphObserver = Callable[[str, float, str], None]
# A JSON object as Meta sends it, or as a call's parameters.
JSONObject = dict[str, Any]


class Usage(TypedDict, total=False):
    """``X-App-Usage`` and ``X-Business-Use-Case-Usage`` in one summary."""

    max_percent: float  # the highest percentage of any limit
    regain_seconds: float  # Meta's longest ``estimated_time_to_regain_access``, in seconds
    app: JSONObject
    business: JSONObject


class GraphError(Exception):
    """Meta answered with an error body (or a non-JSON error status)."""

    def __init__(
        self,
        *,
        http_status: int,
        code: int | None,
        subcode: int | None = None,
        message: str = "",
        error_type: str | None = None,
        fbtrace_id: str | None = None,
        usage: Usage | None = None,
        is_transient: bool = False,
        user_title: str | None = None,
    ):
        super().__init__(f"Graph error http={http_status} code={code} subcode={subcode} fbtrace_id={fbtrace_id}")
        self.http_status = http_status
        self.code = code
        self.subcode = subcode
        self.message = message
        self.error_type = error_type
        self.fbtrace_id = fbtrace_id
        self.usage: Usage = usage or Usage()
        self.is_transient = is_transient
        # Meta's ``error_user_title`` (e.g. "Video already published"), for the few answers
        # that carry no distinguishing number.
        self.user_title = user_title

    @property
    def error_code(self) -> str:
        return classify_graph_error(self.code, self.subcode, self.http_status)

    @property
    def retry_after_seconds(self) -> float | None:
        """Meta's ``estimated_time_to_regain_access`` (minutes) as seconds, if given."""
        regain = self.usage.get("regain_seconds")
        if regain:
            return float(regain)
        return None

    @property
    def is_throttle(self) -> bool:
        return self.code in THROTTLE_CODES


class GraphTransportError(Exception):
    """No usable answer from Meta. ``sent`` is False only when the request surely never left."""

    error_code = "meta_unavailable"

    def __init__(self, reason: str, *, sent: bool):
        super().__init__(reason)
        self.sent = sent


def appsecret_proof(token: str, app_secret: str) -> str:
    return hmac.new(app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()


def parse_usage(headers: Mapping[str, str]) -> Usage:
    """Read ``X-App-Usage`` and ``X-Business-Use-Case-Usage`` into one summary."""
    usage = Usage(max_percent=0, regain_seconds=0)
    try:
        app = json.loads(headers.get("X-App-Usage") or "{}")
        business = json.loads(headers.get("X-Business-Use-Case-Usage") or "{}")
    except ValueError:
        return usage
    percents: list[float] = [v for v in app.values() if isinstance(v, (int, float))] if isinstance(app, dict) else []
    regain: float = 0
    if isinstance(business, dict):
        for entries in business.values():
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, dict):
                    continue
                for name in ("call_count", "total_cputime", "total_time"):
                    value = entry.get(name)
                    if isinstance(value, (int, float)):
                        percents.append(value)
                minutes = entry.get("estimated_time_to_regain_access")
                if isinstance(minutes, (int, float)):
                    regain = max(regain, minutes * 60)
    usage["app"] = app if isinstance(app, dict) else {}
    usage["business"] = business if isinstance(business, dict) else {}
    usage["max_percent"] = max(percents, default=0)
    usage["regain_seconds"] = regain
    return usage


def _was_sent(exc: requests.ConnectionError) -> bool:
    """A refused or timed-out connect never reached Meta; anything else may have."""
    if isinstance(exc, (requests.ConnectTimeout, NeverSent)):
        return False
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return not isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _endpoint_label(path: str) -> str:
    """A low-cardinality label for metrics: ids become ``{id}``."""
    parts = [p for p in urlsplit(path).path.split("/") if p]
    if parts and parts[0].startswith("v") and parts[0][1:2].isdigit():
        parts = parts[1:]
    return "/" + "/".join("{id}" if p.replace("_", "").isdigit() else p for p in parts)


class GraphClient:
    """Calls the Graph API at ``settings.graph_base``."""

    def __init__(
        self,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] | None = None,
        deadline: float | None = None,
        observer: GraphObserver | None = None,
    ):
        self.settings = settings
        self.session = session or requests.Session()
        self.timeout = timeout or (settings.graph_connect_timeout, settings.graph_read_timeout)
        self.deadline = deadline
        self.observer = observer
        self.last_usage: Usage = {}
        base = urlsplit(settings.meta_graph_url)
        self._origin = (base.scheme, base.netloc)
        # Absolute URLs are followed only to these (paging.next only to the Graph host).
        self._origins = settings.meta_api_origins
        # The session's own headers (User-Agent, Accept-Encoding…), merged once rather than per call.
        self._base_headers: dict[str, str | bytes] = {**self.session.headers, "Accept": "application/json"}

    @property
    def app_token(self) -> str:
        return f"{self.settings.meta_app_id}|{self.settings.meta_app_secret}"

    def get(self, path: str, *, token: str | None = None, params: JSONObject | None = None) -> Any:
        return self.request("GET", path, token=token, params=params)

    def post(self, path: str, *, token: str | None = None, data: JSONObject | None = None) -> Any:
        return self.request("POST", path, token=token, data=data)

    def delete(self, path: str, *, token: str | None = None, params: JSONObject | None = None) -> Any:
        return self.request("DELETE", path, token=token, params=params)

    def upload(self, url: str, *, token: str, headers: Mapping[str, str]) -> Any:
        """A POST to Meta's upload host (``META_UPLOAD_URL``): ``Authorization: OAuth <token>``,
        the upload's own headers (``file_url``), ``appsecret_proof`` in the query (no body)."""
        return self.request("POST", url, token=token, headers=headers, auth_scheme="OAuth", proof_in_query=True)

    def paginate(
        self, path: str, *, token: str | None, params: JSONObject | None = None, max_pages: int = 50
    ) -> Iterator[JSONObject]:
        """Yield every item of a list edge, following ``paging.next`` on Meta's host only."""
        url = path
        page_params = params
        for _ in range(max_pages):
            body = self.request("GET", url, token=token, params=page_params)
            yield from body.get("data", [])
            next_url = (body.get("paging") or {}).get("next")
            if not next_url:
                return
            split = urlsplit(next_url)
            if (split.scheme, split.netloc) != self._origin:
                log.warning("graph paging.next points off the Graph host; stopped following it")
                return
            url, page_params = next_url, None
        log.warning("graph paging stopped after %d pages", max_pages)

    def debug_token(self, input_token: str) -> JSONObject:
        """``GET /debug_token`` with the app token; returns its ``data`` object."""
        body = self.request(
            "GET", "/debug_token", token=self.app_token, params={"input_token": input_token}, proof=False
        )
        data: JSONObject = body.get("data") or {}
        return data

    # -- internals --

    def _url_and_params(self, path: str, params: JSONObject | None) -> tuple[str, JSONObject]:
        if path.startswith("http://") or path.startswith("https://"):
            split = urlsplit(path)
            if (split.scheme, split.netloc) not in self._origins:
                raise ValueError("refusing to send a token to a host other than Meta's configured hosts")
            # paging.next carries the token in its query: drop it, it goes in the header.
            query = {
                k: v
                for k, v in parse_qsl(split.query, keep_blank_values=True)
                if k not in ("access_token", "appsecret_proof")
            }
            query.update(params or {})
            return f"{split.scheme}://{split.netloc}{split.path}", query
        if "?" in path or "#" in path:
            raise ValueError("a Graph path takes its parameters in params, not in the path")
        return f"{self.settings.graph_base}/{path.lstrip('/')}", dict(params or {})

    def current_timeout(self) -> tuple[float, float]:
        if self.deadline is None:
            return self.timeout
        remaining = self.deadline - time.monotonic()
        if remaining < 0.5:
            raise GraphTransportError("time budget for Meta calls used up", sent=False)
        return (min(self.timeout[0], remaining), min(self.timeout[1], remaining))

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        params: JSONObject | None = None,
        data: JSONObject | None = None,
        proof: bool = True,
        headers: Mapping[str, str] | None = None,
        auth_scheme: str = "Bearer",
        proof_in_query: bool = False,
    ) -> Any:
        url, query = self._url_and_params(path, params)
        body = dict(data or {}) if method == "POST" else None
        sent_headers = {**self._base_headers, **(headers or {})}
        if token:
            sent_headers["Authorization"] = f"{auth_scheme} {token}"
            if proof:
                target = body if body is not None and not proof_in_query else query
                target["appsecret_proof"] = appsecret_proof(token, self.settings.meta_app_secret)
        label = _endpoint_label(url)
        started = time.monotonic()
        outcome = "error"
        try:
            try:
                prepared = _prepare(method, url, query, body, sent_headers)
            except requests.exceptions.InvalidHeader:
                outcome = "invalid_request"  # a value with a line break, say: refused before sending
                raise GraphTransportError(f"{method} {label}: a header could not be sent", sent=False) from None
            try:
                resp = self._send(prepared)
            except requests.Timeout as exc:
                sent = not isinstance(exc, requests.ConnectTimeout)
                outcome = "timeout"
                raise GraphTransportError(f"{method} {label}: timed out", sent=sent) from None
            except requests.ConnectionError as exc:
                outcome = "connection_error"
                raise GraphTransportError(f"{method} {label}: connection failed", sent=_was_sent(exc)) from None
            except requests.RequestException as exc:
                # A broken or truncated answer (an answer's malformed header too): the request did leave.
                outcome = "broken_response"
                raise GraphTransportError(f"{method} {label}: {type(exc).__name__}", sent=True) from None
            self.last_usage = parse_usage(resp.headers)
            result = self._parse(resp)
            outcome = "ok"
            return result
        finally:
            elapsed = time.monotonic() - started
            log.debug("graph %s %s -> %s in %.3fs", method, label, outcome, elapsed)
            if self.observer:
                self.observer(label, elapsed, outcome)

    def _send(self, prepared: requests.PreparedRequest) -> requests.Response:
        """``session.request`` without its per-call merging: no cookies are kept for Meta, the
        session's headers are merged once (``_base_headers``), and the environment is read only
        by a session that trusts it (the worker's reads it once, see ``services.thread_http_session``)."""
        timeout = self.current_timeout()
        if not self.session.trust_env:
            return self.session.send(prepared, timeout=timeout, allow_redirects=False)
        environment = self.session.merge_environment_settings(prepared.url, {}, None, None, None)
        return self.session.send(prepared, timeout=timeout, allow_redirects=False, **environment)

    def _parse(self, resp: requests.Response) -> Any:
        try:
            payload = resp.json()
        except ValueError:
            payload = None
        if resp.status_code < 400 and payload is not None and not (isinstance(payload, dict) and "error" in payload):
            return payload
        raise error_from_response(resp, payload, self.last_usage)


def _encode(data: JSONObject) -> str:
    """Params and form bodies as requests encodes them (``None`` values left out, a sequence's
    values repeated), without its checks of the data against typing protocols, which Python 3.11
    makes slow: about a tenth of a millisecond a post."""
    pairs: list[tuple[str, Any]] = []
    for name, values in data.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            values = [values]
        pairs.extend((name, value) for value in values if value is not None)
    return urlencode(pairs, doseq=True)


FORM = "application/x-www-form-urlencoded"


def _prepare(
    method: str, url: str, query: JSONObject, body: JSONObject | None, headers: Mapping[str, str | bytes]
) -> requests.PreparedRequest:
    """What ``PreparedRequest.prepare`` makes of this client's requests, without its per-call work
    that they do not need (parsing and re-quoting a URL this client built, IDNA, cookies, auth,
    hooks): it took a twelfth of the worker's CPU. ``url`` is one this client built for Meta's hosts
    (a Graph path made of Meta's ids, or a URL rebuilt from its parts): no fragment, no query."""
    prepared = requests.PreparedRequest()
    prepared.method = method
    encoded = _encode(query) if query else ""
    prepared.url = f"{url}?{encoded}" if encoded else url
    prepared.headers = CaseInsensitiveDict(cast(Mapping[str, str], headers))
    for header in prepared.headers.items():
        check_header_validity(header)  # a token with a line break must not smuggle a header
    if body:  # an empty form (an upload's POST) is no body at all, as requests has it
        prepared.body = _encode(body)
        prepared.headers.setdefault("Content-Type", FORM)
    prepared.prepare_content_length(prepared.body)
    return prepared


def error_from_response(resp: requests.Response, payload: Any, usage: Usage | None = None) -> GraphError:
    """Meta's error body (``{"error": {...}}``) as a :class:`GraphError`."""
    error = payload.get("error") if isinstance(payload, dict) else None
    debug = payload.get("debug_info") if isinstance(payload, dict) else None
    if not isinstance(error, dict) and isinstance(debug, dict):
        # The upload host's shape: {"debug_info": {"retriable", "type", "message"}}.
        error = {
            "message": debug.get("message") or "",
            "type": debug.get("type"),
            "is_transient": debug.get("retriable"),
        }
    if not isinstance(error, dict):
        error = {}
    return GraphError(
        http_status=resp.status_code,
        code=as_int(error.get("code")),
        subcode=as_int(error.get("error_subcode")),
        message=str(error.get("message", ""))[:500],
        error_type=error.get("type"),
        fbtrace_id=error.get("fbtrace_id") or resp.headers.get("x-fb-trace-id"),
        usage=usage if usage is not None else parse_usage(resp.headers),
        is_transient=bool(error.get("is_transient")),
        user_title=str(error["error_user_title"])[:200] if error.get("error_user_title") else None,
    )


def as_int(value: Any) -> int | None:
    """Meta's numeric codes, sometimes sent as strings; None when absent or not a number."""
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
