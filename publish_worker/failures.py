"""What to do about a failed Graph call (DESIGN §8 step 6), by numeric code and subcode."""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from shared.errors import TRANSIENT_CODES
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


# What to do about each catalogue code (shared.errors.classify_graph_error decides the code).
DECISIONS = {
    "publishing_limit_reached": DEFER,
    "media_invalid": NO_RETRY,
    "token_expired": NO_RETRY,
    "permissions_missing": NO_RETRY,
    "rate_limited": WAIT,
}


def classify(exc: Exception) -> Failure:
    """Turn a Graph exception into an error code and a retry decision."""
    if isinstance(exc, GraphTransportError):
        return Failure("meta_unavailable", BACKOFF, ambiguous=exc.sent, message=str(exc))
    if not isinstance(exc, GraphError):
        raise TypeError(f"not a Graph failure: {type(exc).__name__}")
    error_code = exc.error_code
    if error_code == "meta_unavailable" and exc.http_status == 429:
        error_code = "rate_limited"  # a bare 429 (no Graph error body) is throttling too
    if error_code in DECISIONS:
        return Failure(error_code, DECISIONS[error_code], message=exc.message,
                       wait_seconds=exc.retry_after_seconds if error_code == "rate_limited" else None)
    if exc.code in TRANSIENT_CODES or exc.http_status >= 500 or exc.is_transient:
        # Meta received the request and failed somewhere: it may have been carried out.
        return Failure("meta_unavailable", BACKOFF, ambiguous=True, message=exc.message)
    return Failure("bad_request", NO_RETRY, message=exc.message)


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
