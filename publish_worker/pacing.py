"""Many posts in flight without crowding (DESIGN §13.4): per-Page / per-account caps, and no
database connection held while Meta is called.

Every wait here is taken in short slices: a job's time limit (``TimerDeathPenalty``, an
exception raised asynchronously in the job's thread) can only land between slices, never
inside a blocking call, so a job waiting for its Page's turn is still stopped on time.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.graph import GraphClient
from shared.models import ScheduledPost, SocialConnection

WAIT_SLICE_SECONDS = 0.1


class PageSlots:
    """How many posts of this process are in flight on each Facebook Page and Instagram account."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._in_flight: dict[str, int] = {}

    def in_flight(self, account: str) -> int:
        with self._changed:
            return self._in_flight.get(account, 0)

    @contextmanager
    def hold(self, accounts: Collection[str], limit: int) -> Iterator[None]:
        """Wait until every one of ``accounts`` has fewer than ``limit`` posts in flight, then
        count this one on all of them until the block ends. All or none are taken at once,
        so two posts sharing accounts never hold one each and wait for the other."""
        taken = False
        try:
            with self._changed:
                while any(self._in_flight.get(account, 0) >= limit for account in accounts):
                    self._changed.wait(WAIT_SLICE_SECONDS)
                for account in accounts:
                    self._in_flight[account] = self._in_flight.get(account, 0) + 1
                taken = True
            yield
        finally:
            if taken:
                with self._changed:
                    for account in accounts:
                        left = self._in_flight[account] - 1
                        if left:
                            self._in_flight[account] = left
                        else:
                            del self._in_flight[account]
                    self._changed.notify_all()


PAGE_SLOTS = PageSlots()


def accounts_of(session: Session, post_id: str) -> set[str]:
    """The Page and Instagram account a post goes to (none for an unknown post)."""
    row = session.execute(
        select(SocialConnection.facebook_page_id, SocialConnection.instagram_business_account_id)
        .join(ScheduledPost, ScheduledPost.connection_id == SocialConnection.id)
        .where(ScheduledPost.id == post_id)
    ).first()
    release_connection(session)
    if row is None:
        return set()
    page_id, ig_id = row
    return {name for name in (page_id and f"page:{page_id}", ig_id and f"ig:{ig_id}") if name}


def release_connection(session: Session) -> None:
    """End the session's reading transaction, so its database connection goes back to the pool.

    Loaded objects keep their values (the factory's ``expire_on_commit=False``). A session holding
    changes not yet written is left as it is: those are written by the step, under the lease.
    """
    if session.in_transaction() and not (session.new or session.dirty or session.deleted):
        session.commit()


class RunGraphClient(GraphClient):
    """A run's Graph client: before each call to Meta the run's session gives its database
    connection back (a call may take seconds; the pool is far smaller than the posts in flight)."""

    def __init__(self, *args: Any, db_session: Session, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.db_session = db_session

    def request(self, *args: Any, **kwargs: Any) -> Any:
        release_connection(self.db_session)
        return super().request(*args, **kwargs)
