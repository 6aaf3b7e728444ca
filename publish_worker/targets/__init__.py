"""One publisher per target (DESIGN §13.2): the run iterates them in ``shared.targets.TARGETS`` order."""

from __future__ import annotations

from publish_worker.targets.base import TargetPublisher
from publish_worker.targets.facebook import FacebookPublisher
from publish_worker.targets.instagram import InstagramPublisher

PUBLISHERS: dict[str, type[TargetPublisher]] = {
    FacebookPublisher.spec.name: FacebookPublisher,
    InstagramPublisher.spec.name: InstagramPublisher,
}

__all__ = ["PUBLISHERS", "TargetPublisher"]
