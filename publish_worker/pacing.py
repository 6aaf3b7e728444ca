"""Many posts in flight without crowding (DESIGN §13.4): per-Page / per-account caps, and no
database connection held while Meta is called.

Every wait here is taken in short slices: a job's time limit (``time_limits``, an
exception raised asynchronously in the job's thread) can only land between slices, never
inside a blocking call, so a job waiting for its Page's turn is still stopped on time.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from shared.graph import GraphClient
from shared.models import ScheduledPost, SocialConnection

# Long enough that a burst's hundred-odd posts waiting on one Page do not keep waking up
# (each wake-up takes the GIL from a post at work), short beside any job's time limit.
WAIT_SLICE_SECONDS = 0.5


class _Post:
    """A post in flight on some accounts: the key of its entry in ``PageSlots._holders``."""

    __slots__ = ("__weakref__",)


class _Taken(frozenset[str]):
    """The accounts a post in flight holds, and the thread that took them (one store counts both)."""

    __slots__ = ("thread",)
    thread: int


class PageSlots:
    """How many posts of this process are in flight on each Facebook Page and Instagram account.

    A post waiting for its turn waits on the account that is full; a post leaving an account
    wakes one post waiting on it (not every waiting post of the process).

    A job's time limit is raised asynchronously, at any bytecode: a post is counted by a single
    store into ``_holders`` (one entry per post in flight: its accounts) and uncounted by a
    single pop, so wherever the limit lands while a post takes its turn, the post is counted on
    all its accounts or on none (counting account by account, it could stay counted on some).
    Should it land as the post gives its turn back, before the pop, the worker gives the turn
    back once the job has ended and no limit can land any more (``release_left_by``); failing
    that, the entry goes with the post's ``hold`` (its key is a weak reference to the hold's
    token), which a reference cycle through the job's exception can keep until the garbage
    collector's next pass. Posts waiting on its accounts see the room at their next look,
    within ``WAIT_SLICE_SECONDS``.
    """

    def __init__(self) -> None:
        # Reentrant for its ownership: were a job's time limit to land as a waiting post takes
        # the lock back, a plain lock would let that post release another thread's hold.
        self._lock = threading.RLock()
        self._holders: dict[weakref.ref[_Post], _Taken] = {}
        self._turns: dict[str, threading.Condition] = {}  # posts waiting on a full account

    def in_flight(self, account: str) -> int:
        with self._lock:
            return self._count(account)

    @contextmanager
    def hold(self, accounts: Collection[str], limit: int, *, before_wait: Callable[[], None]) -> Iterator[None]:
        """Wait until every one of ``accounts`` has fewer than ``limit`` posts in flight, then
        count this one on all of them until the block ends. All or none are taken at once,
        so two posts sharing accounts never hold one each and wait for the other.
        ``before_wait`` (giving the database connection back) is called, outside the lock, only
        if the post has to wait."""
        post = _Post()  # referenced by this frame alone: it lives as long as the hold
        key, wanted = weakref.ref(post, self._forget), _Taken(accounts)
        wanted.thread = threading.get_ident()
        try:
            with self._lock:
                if self._full(wanted, limit) is None:
                    self._holders[key] = wanted
            if key not in self._holders:
                before_wait()
                with self._lock:
                    while (full := self._full(wanted, limit)) is not None:
                        turn = self._turns.setdefault(full, threading.Condition(self._lock))
                        turn.wait(WAIT_SLICE_SECONDS)
                    self._holders[key] = wanted
            yield
        finally:
            with self._lock:
                if self._holders.pop(key, None) is not None:
                    self._wake(wanted)

    def release_left_by(self, thread: int) -> None:
        """Give back every turn a job on ``thread`` left taken: called once that job has ended."""
        with self._lock:
            left = [(key, taken) for key, taken in list(self._holders.items()) if taken.thread == thread]
            for key, taken in left:
                if self._holders.pop(key, None) is not None:
                    self._wake(taken)

    def _forget(self, key: weakref.ref[_Post]) -> None:
        """A hold's token is gone with its job: its entry, if the job never gave it back, goes too."""
        with suppress(TypeError):  # a dead reference never hashed was never stored
            self._holders.pop(key, None)

    def _count(self, account: str) -> int:
        # A snapshot in one call: an entry forgotten meanwhile (on any thread) cannot disturb it.
        return sum(1 for accounts in list(self._holders.values()) if account in accounts)

    def _full(self, accounts: frozenset[str], limit: int) -> str | None:
        return next((account for account in accounts if self._count(account) >= limit), None)

    def _wake(self, accounts: frozenset[str]) -> None:
        """A post left ``accounts``: one post waiting on each gets its turn (all of them, and the
        account's turn is forgotten, once nothing is in flight there)."""
        for account in accounts:
            turn = self._turns.get(account)
            if turn is None:
                continue
            if self._count(account):
                turn.notify()
            else:
                turn.notify_all()
                del self._turns[account]


PAGE_SLOTS = PageSlots()


_ACCOUNTS_OF = (
    select(SocialConnection.facebook_page_id, SocialConnection.instagram_business_account_id)
    .join(ScheduledPost, ScheduledPost.connection_id == SocialConnection.id)
    .where(ScheduledPost.id == bindparam("post_id"))
)


def accounts_of(session: Session, post_id: str) -> set[str]:
    """The Page and Instagram account a post goes to (none for an unknown post). The session keeps
    its connection (and any transaction it is in): the caller gives it back (``release_connection``)
    before any wait."""
    row = session.connection().execute(_ACCOUNTS_OF, {"post_id": post_id}).first()
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
    """A run's Graph client: before each call to Meta the run gives its database connection
    back (a call may take seconds; the pool is far smaller than the posts in flight).
    ``before_call`` does it (``RunDatabase.release``, which also stops a thread whose run has
    stopped before its call leaves)."""

    def __init__(self, *args: Any, before_call: Callable[[], None], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.before_call = before_call

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self.before_call()
        return super().request(*args, **kwargs)
