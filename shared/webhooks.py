"""Outcome events to Resellio (DESIGN §13.3): the outbox side.

An event is a ``webhook_events`` row added to the session of the change it reports, so it is
committed with that change or not at all. Once the transaction commits, a delivery job
(``publish_worker.webhooks.deliver_event``) is put on the queue; if that fails (Redis down,
the process dies in between) the worker's sweeper finds the event still pending and enqueues
it, so nothing committed is lost.

Whether events are recorded, and which Redis their jobs go to, belongs to the process's
:class:`~shared.services.Services`: :func:`bind` ties them to the services' database engine
(the web app does so in ``create_app``, the worker when its duties start), and the functions
here find them from the session's engine. Without ``RESELLIO_WEBHOOK_URL`` nothing is recorded.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from marshmallow import fields, post_dump, validate
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import String, cast, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import UnboundExecutionError
from sqlalchemy.orm import Session, scoped_session
from sqlalchemy.sql import ColumnElement

from shared.answers import PostOut, StatusOut
from shared.db import iso_z, utcnow
from shared.metrics import WEBHOOK_EVENTS
from shared.models import (
    CONNECTED,
    DISCONNECTED,
    EVENT_PENDING,
    FAILED,
    NEEDS_REAUTH,
    PARTIALLY_PUBLISHED,
    PUBLISHED,
    UNCONFIRMED,
    ScheduledPost,
    SocialConnection,
    WebhookEvent,
    new_id,
)
from shared.queue import DELIVER_EVENT, make_queue
from shared.services import Services
from shared.settings import Settings

log = logging.getLogger(__name__)

POST_PUBLISHED = "post.published"
POST_PARTIALLY_PUBLISHED = "post.partially_published"
POST_FAILED = "post.failed"
POST_UNCONFIRMED = "post.unconfirmed"
CONNECTION_CONNECTED = "connection.connected"
CONNECTION_NEEDS_REAUTH = "connection.needs_reauth"
CONNECTION_EXPIRING_SOON = "connection.expiring_soon"
CONNECTION_DISCONNECTED = "connection.disconnected"

# A post's outcome (DESIGN §8 step 7) → its event; other statuses are not outcomes.
POST_EVENTS = {
    PUBLISHED: POST_PUBLISHED,
    PARTIALLY_PUBLISHED: POST_PARTIALLY_PUBLISHED,
    FAILED: POST_FAILED,
    UNCONFIRMED: POST_UNCONFIRMED,
}
CONNECTION_EVENTS = (
    CONNECTION_CONNECTED,
    CONNECTION_NEEDS_REAUTH,
    CONNECTION_EXPIRING_SOON,
    CONNECTION_DISCONNECTED,
)
EVENT_TYPES = (*POST_EVENTS.values(), *CONNECTION_EVENTS)

# How long a failing event is retried before it is ``dead`` (a replay starts a new period).
RETRY_FOR = timedelta(days=3)
DELIVERY_JOB_TIMEOUT = 60
_PENDING_KEY = "webhook_events_to_enqueue"


class ConnectionEventOut(StatusOut):
    """A ``connection.*`` event's ``data``: the status answer's shape with the connection's own
    ``status`` (``disconnected`` too), its ``connection_id`` always, and ``user_id_resellio``."""

    status = fields.String(required=True, validate=validate.OneOf([CONNECTED, NEEDS_REAUTH, DISCONNECTED]))
    connection_id = fields.String(required=True, attribute="id")
    user_id_resellio = fields.String(required=True)

    @post_dump(pass_original=True)
    def presence(self, data: dict[str, Any], original: Any, **kwargs: Any) -> dict[str, Any]:
        """``error_code`` only while the seller must act; nothing expires on a disconnected connection."""
        data["scopes_granted"] = data.get("scopes_granted") or []
        if data["status"] == NEEDS_REAUTH:
            data["error_code"] = data.get("error_code") or "token_expired"
        else:
            data.pop("error_code", None)
        if data["status"] == DISCONNECTED:
            data["expiring_soon"] = False
        return data


@dataclass(frozen=True)
class Outbox:
    """Where a process's events go: its settings (the URL, the secret) and its Redis (the jobs)."""

    settings: Settings
    redis: Redis


_outboxes: weakref.WeakKeyDictionary[Engine, Outbox] = weakref.WeakKeyDictionary()
_outboxes_lock = threading.Lock()


def bind(services: Services) -> None:
    """Record events for sessions on ``services.engine`` when the services' settings name a URL
    (else stop recording for it), and enqueue their delivery on the services' Redis."""
    with _outboxes_lock:
        if services.settings.webhook_url:
            _outboxes[services.engine] = Outbox(services.settings, services.redis)
        else:
            _outboxes.pop(services.engine, None)


def unbind(engine: Engine) -> None:
    with _outboxes_lock:
        _outboxes.pop(engine, None)


def outbox_for(session: Session) -> Outbox | None:
    """The outbox bound to the session's engine, or None: then no events are recorded."""
    try:
        bound = session.get_bind()
    except UnboundExecutionError:
        return None
    engine = bound.engine if isinstance(bound, Connection) else bound
    with _outboxes_lock:
        return _outboxes.get(engine)


def body_text(event_type: str, data: dict[str, Any], at: datetime) -> str:
    """The exact JSON sent, ``{"type", "timestamp", "data"}`` (stored as is, so every attempt
    and every replay signs and sends the same bytes)."""
    return json.dumps(
        {"type": event_type, "timestamp": iso_z(at), "data": data}, ensure_ascii=False, separators=(",", ":")
    )


def record(
    session: Session,
    event_type: str,
    data: dict[str, Any],
    *,
    connection_id: str | None = None,
    post_id: str | None = None,
    user_id: str | None = None,
    dedupe_key: str | None = None,
) -> WebhookEvent | None:
    """Add an event to the session's transaction (None when this process sends no events).

    Its delivery job is enqueued once the transaction commits; a rollback drops both.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    outbox = outbox_for(session)
    if outbox is None:
        return None
    now = utcnow()
    event_id = new_id("msg")
    event = WebhookEvent(
        id=event_id,
        type=event_type,
        body=body_text(event_type, data, now),
        connection_id=connection_id,
        post_id=post_id,
        user_id_resellio=user_id,
        dedupe_key=dedupe_key,
        status=EVENT_PENDING,
        attempts=0,
        next_attempt_at=now,
        retry_until=now + RETRY_FOR,
        enqueue_seq=1,
        rq_job_id=job_id(event_id, 1),
        created_at=now,
    )
    session.add(event)
    _enqueue_after_commit(session, outbox, event)
    return event


def post_event(session: Session, post: ScheduledPost) -> WebhookEvent | None:
    """The ``post.*`` event of the post's outcome, in the caller's transaction; ``data`` is the
    post exactly as ``GET /api/meta/schedule/<job_id>`` answers. Call it once the post's
    outcome status is set (``publish_worker/outcome.finish``); any other status records nothing."""
    event_type = POST_EVENTS.get(post.status)
    if event_type is None or outbox_for(session) is None:
        return None
    return record(
        session,
        event_type,
        PostOut().dump(post),
        connection_id=post.connection_id,
        post_id=post.id,
        user_id=post.user_id_resellio,
    )


def connection_event(
    session: Session, conn: SocialConnection, event_type: str, *, dedupe_key: str | None = None
) -> WebhookEvent | None:
    """A ``connection.*`` event about ``conn`` as it is now, in the caller's transaction."""
    if event_type not in CONNECTION_EVENTS:
        raise ValueError(f"not a connection event: {event_type!r}")
    if outbox_for(session) is None:
        return None  # no body to write either
    return record(
        session,
        event_type,
        ConnectionEventOut().dump(conn),
        connection_id=conn.id,
        user_id=conn.user_id_resellio,
        dedupe_key=dedupe_key,
    )


def expiry_key(conn: SocialConnection, expiry: datetime) -> str:
    """``connection.expiring_soon`` is sent once per connection per expiry date."""
    return f"{CONNECTION_EXPIRING_SOON}:{conn.id}:{iso_z(expiry)}"


def already_recorded(session: Session, dedupe_key: str) -> bool:
    return session.scalar(select(WebhookEvent.id).where(WebhookEvent.dedupe_key == dedupe_key)) is not None


# --- the delivery jobs ---


def job_id(event_id: str, seq: int) -> str:
    """``hook-<event id>-<n>``: a new RQ job id for every enqueue (RQ reschedules a reused one)."""
    return f"hook-{event_id}-{seq}"


def _enqueue_after_commit(session: Session | scoped_session[Session], outbox: Outbox, event: WebhookEvent) -> None:
    """Remember the event on this very session (Flask-SQLAlchemy hands out a scoped proxy, whose
    listeners would apply to every session of its class) until its transaction ends."""
    actual = session() if isinstance(session, scoped_session) else session
    pending: list[tuple[Outbox, str, str, str]] | None = actual.info.get(_PENDING_KEY)
    if pending is None:
        pending = actual.info[_PENDING_KEY] = []
        sa_event.listen(actual, "after_commit", _after_commit)
        sa_event.listen(actual, "after_rollback", _after_rollback)
    pending.append((outbox, event.id, event.type, job_id(event.id, event.enqueue_seq)))


def _after_commit(session: Session) -> None:
    pending = session.info.get(_PENDING_KEY) or []
    session.info[_PENDING_KEY] = []
    for outbox, event_id, event_type, rq_job_id in pending:
        WEBHOOK_EVENTS.labels(type=event_type).inc()
        enqueue(outbox.redis, event_id, rq_job_id)


def _after_rollback(session: Session) -> None:
    session.info[_PENDING_KEY] = []


def enqueue(redis: Redis, event_id: str, rq_job_id: str, *, at: datetime | None = None) -> bool:
    """Put ``deliver_event(event_id)`` on the queue (at ``at``). A Redis failure is logged and
    swallowed: the event is committed, and the sweeper enqueues any due event without a live job."""
    queue = make_queue(redis)
    options: dict[str, Any] = dict(
        job_id=rq_job_id,
        job_timeout=DELIVERY_JOB_TIMEOUT,
        result_ttl=600,
        failure_ttl=7 * 86400,
        description=f"webhook {event_id}",
    )
    try:
        if at is None or at <= utcnow():
            queue.enqueue(DELIVER_EVENT, args=(event_id,), **options)
        else:
            queue.enqueue_at(at, DELIVER_EVENT, args=(event_id,), **options)
    except RedisError as exc:
        log.warning("webhook enqueue failed (%s); the sweeper will enqueue it", type(exc).__name__)
        return False
    return True


def reserve_job(session: Session, event_id: str, *conditions: ColumnElement[bool], **values: Any) -> str | None:
    """Give the event a fresh RQ job id (and ``values``) and commit; the caller then enqueues it.
    None when the event does not meet ``conditions`` (nothing is changed then)."""
    following = WebhookEvent.enqueue_seq + 1
    rq_job_id = session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.id == event_id, *conditions)
        .values(enqueue_seq=following, rq_job_id="hook-" + WebhookEvent.id + "-" + cast(following, String), **values)
        .returning(WebhookEvent.rq_job_id)
    ).scalar_one_or_none()
    session.commit()
    return None if rq_job_id is None else str(rq_job_id)


def replay(session: Session, redis: Redis, since: datetime, *, now: datetime | None = None) -> int:
    """Send again every event created at or after ``since``, whatever became of it: each is
    pending again, with the same id and body and three fresh days of retries (DESIGN §13.3)."""
    now = now or utcnow()
    ids = list(
        session.scalars(
            select(WebhookEvent.id).where(WebhookEvent.created_at >= since).order_by(WebhookEvent.created_at)
        )
    )
    for event_id in ids:
        rq_job_id = reserve_job(
            session,
            event_id,
            status=EVENT_PENDING,
            attempts=0,
            next_attempt_at=now,
            retry_until=now + RETRY_FOR,
            delivered_at=None,
        )
        if rq_job_id is not None:
            enqueue(redis, event_id, rq_job_id)
    return len(ids)
