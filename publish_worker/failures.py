"""What to do about a failed Graph call (DESIGN §8 step 6, §13.1), by numeric code and subcode.

Meta's error table lives in :mod:`shared.errors` (``graph_rule``); this turns an
exception into a :class:`Failure`: the catalogue code, the retry decision, and
whether the request may have been carried out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from shared.errors import BACKOFF, DEFER, NEVER, RECREATE, WAIT, graph_rule
from shared.graph import GraphError, GraphTransportError
from shared.settings import Settings

NO_RETRY = NEVER

# The connection itself is unusable: every pending target stops, the connection needs the seller.
CONNECTION_CODES = {"token_expired", "meta_action_required"}


@dataclass(frozen=True)
class Failure:
    error_code: str
    decision: str
    # The request may have been carried out by Meta: check before sending again.
    ambiguous: bool = False
    wait_seconds: float | None = None
    message: str = ""
    min_wait_seconds: float = 0.0
    # Tries on one Instagram container before a new one is made (0: no limit of its own).
    recreate_after: int = 0

    @property
    def retryable(self) -> bool:
        return self.decision != NO_RETRY


def classify(exc: Exception) -> Failure:
    """Turn a Graph exception into an error code and a retry decision."""
    if isinstance(exc, GraphTransportError):
        return Failure("meta_unavailable", BACKOFF, ambiguous=exc.sent, message=str(exc))
    if not isinstance(exc, GraphError):
        raise TypeError(f"not a Graph failure: {type(exc).__name__}")
    rule = graph_rule(exc.code, exc.subcode)
    if rule is None and exc.http_status == 429:
        rule = graph_rule(4)  # a bare 429 (no Graph error body) is throttling too
    if rule is None and (exc.http_status >= 500 or exc.is_transient):
        rule = graph_rule(1)
    if rule is None:
        return Failure("bad_request", NO_RETRY, message=exc.message)
    # Meta received the request and failed somewhere: it may have been carried out.
    ambiguous = rule.retry == BACKOFF
    wait = exc.retry_after_seconds if rule.retry == WAIT else None
    return Failure(
        rule.error_code,
        rule.retry,
        ambiguous=ambiguous,
        wait_seconds=wait,
        message=exc.message,
        min_wait_seconds=rule.min_wait_seconds,
        recreate_after=rule.recreate_after,
    )


def request_lifetime(settings: Settings) -> timedelta:
    """How long a request we sent may still be carried out by Meta after it left (both times are our clock's).

    An ambiguous request (its answer lost) is looked for only once this is over: before, Meta may
    still be doing it, so not finding it proves nothing and sending again could publish twice.
    """
    return timedelta(seconds=settings.graph_connect_timeout + settings.graph_read_timeout + 2)


def backoff_delay(tries: int, base_seconds: float, *, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with jitter: about base, 2×base, 4×base… (±50%)."""
    nominal = base_seconds * (2 ** max(0, tries - 1))
    jitter = rng.uniform(0.5, 1.5) if rng is not None else random.uniform(0.5, 1.5)
    return timedelta(seconds=nominal * jitter)


def retry_delay(failure: Failure, tries: int, settings: Settings) -> timedelta:
    if failure.decision == DEFER:
        # Until the window frees, when that time is known; else the configured wait.
        return timedelta(seconds=failure.wait_seconds or settings.quota_defer_seconds)
    if failure.decision == RECREATE:
        return timedelta(0)  # a fresh container can be made at once
    if failure.decision == WAIT and failure.wait_seconds:
        delay = timedelta(seconds=failure.wait_seconds) + backoff_delay(1, settings.retry_base_seconds / 10)
    else:
        delay = backoff_delay(tries, settings.retry_base_seconds)
    return max(delay, timedelta(seconds=failure.min_wait_seconds))
