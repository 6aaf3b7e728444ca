"""The end of a post's publishing (DESIGN §8 step 7): outcome, audit event, outcome event
(§13.3), metrics, lease released."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from publish_worker import lease
from shared import webhooks
from shared.audit import audit_row
from shared.db import utcnow
from shared.metrics import ERRORS, LATENESS, PUBLISHES, START_LATENESS
from shared.models import FAILED, PARTIALLY_PUBLISHED, PUBLISHED, SKIPPED, UNCONFIRMED, PostTarget, ScheduledPost
from shared.settings import Settings
from shared.targets import TARGETS, spec, target_message

log = logging.getLogger(__name__)


def wanted(post: ScheduledPost) -> list[PostTarget]:
    """The post's targets that are not skipped, in publishing order (the first failing one names the error)."""
    rows = (post.target(target.name) for target in TARGETS)
    return [row for row in rows if row is not None and row.status != SKIPPED and post.wants(row.target)]


def decide(statuses: list[str]) -> str:
    if UNCONFIRMED in statuses:
        return UNCONFIRMED
    if all(status == PUBLISHED for status in statuses):
        return PUBLISHED
    if PUBLISHED in statuses:
        return PARTIALLY_PUBLISHED
    return FAILED


def explain(rows: list[PostTarget]) -> tuple[str | None, str | None]:
    """The post's error code (first failing target) and one ``Label: message`` part per failing target."""
    codes, parts = [], []
    for row in rows:
        message = target_message(row.status, row.error_code, row.error_message)
        if message is None:
            continue
        codes.append(row.error_code or ("meta_unavailable" if row.status == UNCONFIRMED else "internal_error"))
        parts.append(f"{spec(row.target).label}: {message}")
    return (codes[0] if codes else None), (" ".join(parts) or None)


def finish(
    session: Session,
    post: ScheduledPost,
    owner: str,
    settings: Settings,
    *,
    targets: Iterable[tuple[PostTarget, dict[str, Any]]] = (),
    **values: Any,
) -> str:
    """Record the outcome (with the run's results still to write: ``targets``, the post's
    ``values``), release the lease, and say so in the audit log and metrics — one commit."""
    targets = list(targets)
    for row, row_values in targets:
        lease.refresh(row, row_values)  # the outcome is decided on them
    rows = wanted(post)
    outcome = decide([row.status for row in rows])
    error_code, error_message = explain(rows)
    audit = audit_row(
        "post_published" if outcome == PUBLISHED else "post_failed",
        user_id=post.user_id_resellio,
        connection_id=post.connection_id,
        error_code=error_code,
        detail={
            "job_id": post.id,
            "outcome": outcome,
            "targets": {row.target: row.status for row in rows},
            # Every target's id key, None for one the post does not want (as before post_targets).
            **{f"{row.target}_{spec(row.target).remote_id_key}": row.remote_id for row in post.target_rows},
        },
    )
    # Resellio hears of the outcome from the outbox, written in the outcome's own transaction; with
    # no outbox the outcome and its audit event are one statement, committed on their own.
    events = webhooks.outbox_for(session) is not None
    lease.record(
        session,
        post,
        owner,
        settings.lease_seconds,
        targets=targets,
        commit=not events,
        audit=audit,
        **values,
        status=outcome,
        error_code=error_code,
        error_message=error_message,
        finished_at=utcnow(),
        lease_owner=None,
        lease_expires_at=None,
        next_attempt_at=None,
    )
    if events:
        webhooks.post_event(session, post)
        session.commit()
    for row in rows:
        PUBLISHES.labels(target=row.target, result=row.status).inc()
        if row.error_code and row.status != PUBLISHED:
            ERRORS.labels(error_code=row.error_code).inc()
    if post.started_at:
        START_LATENESS.observe(max(0.0, (post.started_at - post.publish_at).total_seconds()))
    if outcome == PUBLISHED:
        live_at = max(row.published_at for row in rows if row.published_at is not None)
        LATENESS.observe(max(0.0, (live_at - post.publish_at).total_seconds()))
    log.info("post %s: %s", outcome, error_code or "ok", extra={"job_id": post.id, "connection_id": post.connection_id})
    return outcome
