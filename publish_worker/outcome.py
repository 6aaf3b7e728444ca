"""The end of a post's publishing (DESIGN §8 step 7): outcome, audit event, metrics, lease released."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from publish_worker import lease
from shared.audit import record_event
from shared.db import utcnow
from shared.errors import message_for
from shared.metrics import ERRORS, LATENESS, PUBLISHES, START_LATENESS
from shared.models import FAILED, PARTIALLY_PUBLISHED, PUBLISHED, UNCONFIRMED, ScheduledPost
from shared.settings import Settings

log = logging.getLogger(__name__)

LABELS = {"fb": "Facebook", "ig": "Instagram"}
UNCONFIRMED_MESSAGE = (
    "status posting belum bisa dipastikan. Periksa dulu apakah postingan sudah tayang sebelum memposting ulang."
)


def with_detail(message: str | None, prefix: str, detail: str) -> str | None:
    """Keep Meta's own words about a failed target (one ``Label: text`` line per target)
    until the outcome is written; ``explain`` adds them to the seller's message."""
    detail = " ".join(detail.split())[:500]
    if not detail:
        return message
    lines = [line for line in (message or "").splitlines() if not line.startswith(f"{LABELS[prefix]}: ")]
    return "\n".join([*lines, f"{LABELS[prefix]}: {detail}"])


def kept_details(message: str | None) -> dict[str, str]:
    """The details ``with_detail`` kept, by target prefix."""
    out = {}
    for line in (message or "").splitlines():
        for prefix, label in LABELS.items():
            if line.startswith(f"{label}: "):
                out[prefix] = line[len(label) + 2 :]
    return out


def target_results(post: ScheduledPost) -> dict[str, tuple[str, str | None]]:
    results = {}
    if post.wants("facebook"):
        results["fb"] = (post.fb_status, post.fb_error_code)
    if post.wants("instagram"):
        results["ig"] = (post.ig_status, post.ig_error_code)
    return results


def decide(results: dict[str, tuple[str, str | None]]) -> str:
    statuses = [status for status, _ in results.values()]
    if UNCONFIRMED in statuses:
        return UNCONFIRMED
    if all(status == PUBLISHED for status in statuses):
        return PUBLISHED
    if PUBLISHED in statuses:
        return PARTIALLY_PUBLISHED
    return FAILED


def explain(
    results: dict[str, tuple[str, str | None]], details: dict[str, str] | None = None
) -> tuple[str | None, str | None]:
    """The post's error code (first failing target) and a message the seller can read,
    with Meta's own words where it gave any (``details``, by target prefix)."""
    details = details or {}
    codes, parts = [], []
    for prefix, (status, error_code) in results.items():
        if status == UNCONFIRMED:
            codes.append(error_code or "meta_unavailable")
            parts.append(f"{LABELS[prefix]}: {UNCONFIRMED_MESSAGE}")
        elif status == FAILED:
            codes.append(error_code or "internal_error")
            part = f"{LABELS[prefix]}: {message_for(error_code or 'internal_error')}"
            if details.get(prefix):
                part += f" Meta: {details[prefix]}"
            parts.append(part)
    return (codes[0] if codes else None), (" ".join(parts) or None)


def finish(session: Session, post: ScheduledPost, owner: str, settings: Settings) -> str:
    """Record the outcome, release the lease, and say so in the audit log and metrics."""
    results = target_results(post)
    outcome = decide(results)
    error_code, error_message = explain(results, kept_details(post.error_message))
    now = utcnow()
    lease.record(
        session,
        post,
        owner,
        settings.lease_seconds,
        status=outcome,
        error_code=error_code,
        error_message=error_message,
        finished_at=now,
        lease_owner=None,
        lease_expires_at=None,
        next_attempt_at=None,
    )
    record_event(
        session,
        "post_published" if outcome == PUBLISHED else "post_failed",
        user_id=post.user_id_resellio,
        connection_id=post.connection_id,
        error_code=error_code,
        detail={
            "job_id": post.id,
            "outcome": outcome,
            "targets": {LABELS[p].lower(): s for p, (s, _) in results.items()},
            "facebook_post_id": post.fb_post_id,
            "instagram_media_id": post.ig_media_id,
        },
    )
    session.commit()
    for prefix, (status, code) in results.items():
        PUBLISHES.labels(target=LABELS[prefix].lower(), result=status).inc()
        if code and status != PUBLISHED:
            ERRORS.labels(error_code=code).inc()
    if post.started_at:
        START_LATENESS.observe(max(0.0, (post.started_at - post.publish_at).total_seconds()))
    if outcome == PUBLISHED:
        live_at = max(t for t in (post.fb_published_at, post.ig_published_at) if t is not None)
        LATENESS.observe(max(0.0, (live_at - post.publish_at).total_seconds()))
    log.info("post %s: %s", outcome, error_code or "ok", extra={"job_id": post.id, "connection_id": post.connection_id})
    return outcome
