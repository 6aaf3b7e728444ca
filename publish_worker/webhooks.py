"""Delivering outcome events to Resellio (DESIGN §13.3): the RQ job and one attempt.

Each attempt claims the event (so two jobs for one event never send it twice at once),
signs the stored body with the Standard Webhooks scheme (``standardwebhooks``): the
``webhook-id`` is the event's id and never changes, ``webhook-timestamp`` is the time of
this attempt and the signature is made afresh for it, since receivers refuse timestamps
older than five minutes. A 2xx answer within 10 s is delivered; anything else is retried
after 5 s, 30 s, 2 min, 10 min, 1 h, then every 6 h, until three days have passed: then
the event is ``dead`` (``social-connect webhooks replay`` sends it again).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests
from sqlalchemy import update
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from publish_worker.context import get_context
from shared.db import utcnow
from shared.log import log_context
from shared.metrics import WEBHOOK_DELIVERIES
from shared.models import EVENT_DEAD, EVENT_DELIVERED, EVENT_PENDING, WebhookEvent
from shared.services import Services
from shared.webhooks import DELIVERY_JOB_TIMEOUT, enqueue, reserve_job

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10.0
# After each failed attempt (the first, the second, ...): then every 6 hours.
BACKOFF = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
)
LATER = timedelta(hours=6)
# While an attempt runs its event is not due: longer than the job may run (its RQ timeout), so
# an event due again with its job still "started" belongs to a worker that is gone.
CLAIM = timedelta(seconds=DELIVERY_JOB_TIMEOUT + 30)
# An enqueue_at job may start a moment before its time (clocks of different hosts).
EARLY_TOLERANCE = timedelta(seconds=2)
USER_AGENT = "resellio-social-connect-webhooks/1"


def backoff(failures: int) -> timedelta:
    """The wait after the ``failures``-th failed attempt in a row (1-based)."""
    return BACKOFF[failures - 1] if 0 < failures <= len(BACKOFF) else LATER


@dataclass(frozen=True)
class Answer:
    """What one attempt got: an HTTP status, or the name of what went wrong (never a body or a secret)."""

    status: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def signed_headers(secret: str, event_id: str, body: str, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for sending ``body`` (its UTF-8 bytes) at ``at``.

    ``standardwebhooks`` reads the datetime's fields as UTC whatever its zone (DESIGN §13.5),
    so it gets a UTC datetime on a whole second: the one the timestamp header names.
    """
    seconds = math.floor(at.timestamp())
    signature = Webhook(secret).sign(event_id, datetime.fromtimestamp(seconds, tz=UTC), body)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(seconds),
        "webhook-signature": signature,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


def send(url: str, headers: dict[str, str], body: str) -> Answer:
    """POST the body; no redirect is followed, no proxy from the environment is used."""
    with requests.Session() as http:
        http.trust_env = False
        try:
            response = http.post(
                url,
                data=body.encode("utf-8"),
                headers=headers,
                timeout=(TIMEOUT_SECONDS, TIMEOUT_SECONDS),
                allow_redirects=False,
                stream=True,  # the answer's body is never read
            )
        except requests.RequestException as exc:
            return Answer(None, type(exc).__name__)
        response.close()
    if 300 <= response.status_code < 400:
        return Answer(response.status_code, "redirect not followed")
    return Answer(response.status_code, None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}")


@dataclass(frozen=True)
class Claimed:
    """An event taken for one attempt: what sending and recording it need."""

    id: str
    type: str
    body: str
    attempts: int
    retry_until: datetime


def _claim(session: Session, event_id: str, now: datetime) -> Claimed | None:
    """Take the event for one attempt if it is pending and due; commit at once, so no database
    connection is held while the receiver answers."""
    row = session.execute(
        update(WebhookEvent)
        .where(
            WebhookEvent.id == event_id,
            WebhookEvent.status == EVENT_PENDING,
            WebhookEvent.next_attempt_at <= now + EARLY_TOLERANCE,
        )
        .values(attempts=WebhookEvent.attempts + 1, next_attempt_at=now + CLAIM)
        .returning(
            WebhookEvent.id, WebhookEvent.type, WebhookEvent.body, WebhookEvent.attempts, WebhookEvent.retry_until
        )
    ).first()
    session.commit()
    return None if row is None else Claimed(*row)


def attempt(ctx: Services, event_id: str, *, now: datetime | None = None) -> str:
    """One delivery attempt: ``delivered``, ``retry``, ``dead``, or ``skipped`` (not pending or
    not due: delivered already, another run holds it, a duplicate job). ``now`` is for tests."""
    settings = ctx.settings
    if not settings.webhook_url or not settings.webhook_secret:
        log.info("webhook %s not sent: RESELLIO_WEBHOOK_URL is not set here", event_id)
        return "skipped"
    started = now or utcnow()
    with ctx.session() as session:
        event = _claim(session, event_id, started)
        if event is None:
            return "skipped"
        headers = signed_headers(settings.webhook_secret, event.id, event.body, started)
        answer = send(settings.webhook_url, headers, event.body)
        done = now or utcnow()
        # Only this attempt's outcome: a later run (after a very long attempt) may have taken over.
        fenced = (WebhookEvent.status == EVENT_PENDING, WebhookEvent.attempts == event.attempts)
        result: str
        at: datetime | None = None
        values: dict[str, object]
        if answer.delivered:
            result = "delivered"
            values = dict(status=EVENT_DELIVERED, delivered_at=done, next_attempt_at=None)
        elif started >= event.retry_until:
            result = "dead"
            values = dict(status=EVENT_DEAD, next_attempt_at=None)
        else:
            result = "retry"
            at = min(done + backoff(event.attempts), event.retry_until)
            values = dict(next_attempt_at=at)
        values.update(last_status=answer.status, last_error=answer.error)
        if at is None:
            session.execute(update(WebhookEvent).where(WebhookEvent.id == event.id, *fenced).values(**values))
            session.commit()
        else:
            rq_job_id = reserve_job(session, event.id, *fenced, **values)
            if rq_job_id is not None:
                enqueue(ctx.redis, event.id, rq_job_id, at=at)
    WEBHOOK_DELIVERIES.labels(type=event.type, result=result).inc()
    log.info(
        "webhook %s %s: attempt %d, %s", event.type, result, event.attempts, answer.error or f"HTTP {answer.status}"
    )
    return result


def deliver_event(event_id: str) -> str:
    """The RQ job (``shared.queue.DELIVER_EVENT``): one attempt at delivering the event."""
    with log_context(webhook_id=event_id):
        return attempt(get_context(), event_id)
