"""The Instagram target: containers, then ``media_publish`` (DESIGN §8, §13.2)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from publish_worker.failures import Failure, classify
from publish_worker.targets.base import GRAPH_FAILURES, TargetPublisher
from shared.db import utcnow
from shared.errors import DEFER, NOT_READY_SUBCODE, RECREATE, message_for
from shared.graph import GraphError, GraphTransportError
from shared.models import FAILED, UNCONFIRMED
from shared.targets import INSTAGRAM

# Without ``config.quota_total`` in content_publishing_limit, assume 50 per 24 h: erring low only defers.
QUOTA_FALLBACK = 50

# A fresh container: the next try makes a new one.
NO_CONTAINER = {"container_id": None, "container_at": None, "sent_at": None}


class InstagramPublisher(TargetPublisher):
    spec = INSTAGRAM

    def failed(self, failure: Failure, *, step_values: dict[str, Any] | None = None) -> None:
        values = dict(step_values or {})
        if failure.decision == RECREATE:
            # The container expired or Meta cannot use it: the next try makes a new one.
            values.update(NO_CONTAINER)
        super().failed(failure, step_values=values)

    def publish(self) -> None:
        row = self.row
        if not row.container_id:
            if not self.quota_left():
                return
            try:
                container_id = self.create_container()
            except GRAPH_FAILURES as exc:
                # A container nobody publishes is harmless: creating it again is safe.
                self.failed(classify(exc))
                return
            self.save_attempt(container_id=container_id, container_at=utcnow(), not_before=None)
        try:
            container = self.graph.get(
                f"/{row.container_id}", token=self.token, params={"fields": "status_code,status"}
            )
        except GRAPH_FAILURES as exc:
            if row.sent_at is not None:
                self.save(status=UNCONFIRMED, error_code="meta_unavailable")
            else:
                self.failed(classify(exc))
            return
        status = container.get("status_code")
        if status == "PUBLISHED":
            self.published(row.remote_id)
        elif status == "FINISHED":
            self.publish_container()
        elif status == "EXPIRED":
            # Too old to publish (24 h): the next run makes a fresh container.
            self.save(**NO_CONTAINER, not_before=None)
        elif status == "ERROR":
            # Meta's own words (e.g. "Error: ... (2207004)") tell the seller what to fix.
            self.save(
                status=FAILED, error_code="media_invalid", error_message=with_meta_words("media_invalid", container)
            )
        else:
            self.wait_for_container()

    def create_container(self) -> str:
        item = self.media[0]
        data = {"image_url": item.url, "caption": self.post.caption}
        body = self.graph.post(f"/{self.conn.instagram_business_account_id}/media", token=self.token, data=data)
        return str(body["id"])

    def wait_for_container(self) -> None:
        started = self.row.container_at or utcnow()
        if utcnow() - started > timedelta(seconds=self.settings.ig_container_timeout_seconds):
            self.save(status=FAILED, error_code="media_invalid", error_message=message_for("media_invalid"))
            return
        self.save(not_before=utcnow() + timedelta(seconds=self.settings.ig_status_poll_seconds), sent_at=None)

    def quota_left(self) -> bool:
        ig_id = self.conn.instagram_business_account_id
        try:
            body = self.graph.get(
                f"/{ig_id}/content_publishing_limit", token=self.token, params={"fields": "quota_usage,config"}
            )
        except GRAPH_FAILURES as exc:
            failure = classify(exc)
            if failure.retryable:
                return True  # media_publish enforces the limit anyway
            self.failed(failure)
            return False
        entry = (body.get("data") or [{}])[0]
        used = entry.get("quota_usage") or 0
        total = (entry.get("config") or {}).get("quota_total") or QUOTA_FALLBACK
        if used >= total:
            self.failed(Failure("publishing_limit_reached", DEFER))
            return False
        return True

    def publish_container(self) -> None:
        self.save_attempt(sent_at=utcnow())
        try:
            body = self.graph.post(
                f"/{self.conn.instagram_business_account_id}/media_publish",
                token=self.token,
                data={"creation_id": self.row.container_id},
            )
        except GraphError as exc:
            if exc.subcode == NOT_READY_SUBCODE:
                self.wait_for_container()
                return
            self.failed(classify(exc))
            return
        except GraphTransportError as exc:
            self.failed(classify(exc))
            return
        self.published(str(body["id"]))

    def is_our_comment(self, item: dict[str, Any]) -> bool:
        author = item.get("from") or {}
        return str(author.get("id") or "") == str(self.conn.instagram_business_account_id) or (
            bool(self.conn.instagram_username) and item.get("username") == self.conn.instagram_username
        )


def with_meta_words(error_code: str, container: dict[str, Any]) -> str:
    """The catalogue's message, and Meta's own words about a container when it gave any."""
    words = " ".join(str(container.get("status") or "").split())[:500]
    return f"{message_for(error_code)} Meta: {words}" if words else message_for(error_code)
