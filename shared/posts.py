"""Post lifecycle helpers shared by the connect service and the worker."""

from __future__ import annotations

import logging

from redis import Redis
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.models import CANCELLED, QUEUED, ScheduledPost

log = logging.getLogger(__name__)

CANCEL_MESSAGES = {
    "user_disconnected": "Dibatalkan karena koneksi Facebook & Instagram diputus.",
    "replaced_by_other_page": "Dibatalkan karena akun terhubung ke Page Facebook lain.",
    "deauthorized": "Dibatalkan karena izin aplikasi dicabut di Facebook.",
    "data_deletion": "Dibatalkan karena permintaan penghapusan data.",
}


def cancel_pending_posts(session: Session, connection_id: str, reason: str) -> list[str]:
    """Cancel the connection's posts that have not started publishing; returns their ids."""
    ids = list(
        session.scalars(
            select(ScheduledPost.id).where(ScheduledPost.connection_id == connection_id, ScheduledPost.status == QUEUED)
        )
    )
    if ids:
        session.execute(
            update(ScheduledPost)
            .where(ScheduledPost.id.in_(ids), ScheduledPost.status == QUEUED)
            .values(
                status=CANCELLED, error_code="not_connected", error_message=CANCEL_MESSAGES.get(reason, "Dibatalkan.")
            )
        )
    return ids


def cancel_rq_job(redis: Redis, job_id: str | None) -> None:
    """Best effort: a cancelled post's job would be a no-op anyway."""
    if not job_id:
        return
    try:
        Job.fetch(job_id, connection=redis, serializer=JSONSerializer).cancel()
    except (NoSuchJobError, RedisError, ValueError) as exc:
        log.debug("rq job %s not cancelled: %s", job_id, type(exc).__name__)
