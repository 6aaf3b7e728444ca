"""The RQ job functions of queue ``meta-publish`` (DESIGN §8)."""
from __future__ import annotations

import logging

from publish_worker import lease
from publish_worker.context import get_context
from publish_worker.publishing import PublishRun
from shared.errors import AppError
from shared.log import log_context
from shared.models import ScheduledPost
from shared.scheduling import PostCaller, schedule_post

log = logging.getLogger(__name__)


def publish_post(post_id: str, lease: str | None = None, poll: bool = False) -> str:
    """Publish one post. A duplicate or late job (the post is not ours to take) does nothing.

    ``lease`` is carried by continuation jobs (retries, container status checks).
    Known failures are recorded on the post; an unexpected error raises.
    """
    return _publish(post_id, lease, poll)


def _publish(post_id: str, owner: str | None, poll: bool) -> str:
    ctx = get_context()
    with log_context(job_id=post_id), ctx.session() as session:
        if owner is None:
            owner = lease.new_owner()
            mine = lease.take(session, post_id, owner, ctx.settings.lease_seconds)
        else:
            mine = lease.resume(session, post_id, owner, ctx.settings.lease_seconds, count_attempt=not poll)
        if not mine:
            log.info("post not taken (already published, cancelled, not due, or another run holds it)")
            return "skipped"
        post = session.get(ScheduledPost, post_id)
        log_fields = {"connection_id": post.connection_id}
        with log_context(**log_fields):
            try:
                return PublishRun(ctx, session, post, owner, ctx.graph()).run()
            except lease.LeaseLost:
                session.rollback()
                log.warning("lease lost mid-run; another run carries on")
                return "lease_lost"


def publish_request(payload: dict) -> dict:
    """A post handed over on RQ by the Resellio scheduler: recorded and queued like any other.

    ``payload`` is the ``POST /api/meta/schedule`` body plus ``user_id_resellio``
    and a required ``idempotency_key``, so a duplicate delivery is harmless.
    Invalid input is a known failure: logged and answered, not raised.
    """
    ctx = get_context()
    body = dict(payload or {})
    user_id = body.pop("user_id_resellio", None)
    key = body.pop("idempotency_key", None)
    missing = {name: ["Missing data for required field."]
               for name, value in (("user_id_resellio", user_id), ("idempotency_key", key))
               if not isinstance(value, str) or not value.strip()}
    if missing:
        log.warning("publish_request refused: %s", ", ".join(missing))
        return {"ok": False, "error_code": "validation_error", "fields": missing}
    with ctx.session() as session:
        try:
            outcome = schedule_post(session, settings=ctx.settings, redis=ctx.redis, cipher=ctx.cipher,
                                    caller=PostCaller(user_id=user_id, via="rq"), payload=body,
                                    idempotency_key=key, graph=ctx.graph())
        except AppError as exc:
            log.warning("publish_request refused: %s", exc.error_code)
            return {"ok": False, "error_code": exc.error_code, "fields": exc.fields}
        return {"ok": True, "job_id": outcome.post.id, "created": outcome.created}
