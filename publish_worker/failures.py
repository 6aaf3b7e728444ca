"""What to do about a failed Graph call (DESIGN §8 step 6), by numeric code and subcode."""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from shared.errors import MEDIA_SUBCODES, PUBLISHING_LIMIT_SUBCODE, THROTTLE_CODES, TOKEN_CODES, TRANSIENT_CODES
from shared.graph import GraphError, GraphTransportError

NO_RETRY = "no_retry"
WAIT = "wait"          # throttled: Meta's regain time, else backoff
BACKOFF = "backoff"    # 1, 2, 5xx, timeouts: exponential backoff with jitter
DEFER = "defer"        # daily Instagram quota used: until the window frees


@dataclass(frozen=True)
class Failure:
    error_code: str
    decision: str
    # The request may have been carried out by Meta: check before sending again.
    ambiguous: bool = False
    wait_seconds: float | None = None
    message: str = ""

    @property
    def retryable(self) -> bool:
        return self.decision != NO_RETRY


def classify(exc: Exception) -> Failure:
    """Turn a Graph exception into an error code and a retry decision."""
    if isinstance(exc, GraphTransportError):
        return Failure("meta_unavailable", BACKOFF, ambiguous=exc.sent, message=str(exc))
    if not isinstance(exc, GraphError):
        raise TypeError(f"not a Graph failure: {type(exc).__name__}")
    code, subcode = exc.code, exc.subcode
    message = exc.message
    if subcode == PUBLISHING_LIMIT_SUBCODE:
        return Failure("publishing_limit_reached", DEFER, message=message)
    if subcode in MEDIA_SUBCODES or code in (9004, 324) or (code is not None and 36000 <= code < 37000):
        return Failure("media_invalid", NO_RETRY, message=message)
    if code in TOKEN_CODES:
        return Failure("token_expired", NO_RETRY, message=message)
    if code == 10 or (code is not None and 200 <= code <= 299):
        return Failure("permissions_missing", NO_RETRY, message=message)
    if code in THROTTLE_CODES or exc.http_status == 429:
        return Failure("rate_limited", WAIT, wait_seconds=exc.retry_after_seconds, message=message)
    if code in TRANSIENT_CODES or exc.http_status >= 500 or exc.is_transient:
        # Meta received the request and failed somewhere: it may have been carried out.
        return Failure("meta_unavailable", BACKOFF, ambiguous=True, message=message)
    return Failure("bad_request", NO_RETRY, message=message)


def backoff_delay(tries: int, base_seconds: float, *, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with jitter: about base, 2×base, 4×base… (±50%)."""
    rng = rng or random
    nominal = base_seconds * (2 ** max(0, tries - 1))
    return timedelta(seconds=nominal * rng.uniform(0.5, 1.5))


def retry_delay(failure: Failure, tries: int, settings) -> timedelta:
    if failure.decision == DEFER:
        return timedelta(seconds=settings.quota_defer_seconds)
    if failure.decision == WAIT and failure.wait_seconds:
        return timedelta(seconds=failure.wait_seconds) + backoff_delay(1, settings.retry_base_seconds / 10)
    return backoff_delay(tries, settings.retry_base_seconds)
