"""A post's targets side by side (DESIGN §13.4): one target's step on the job's thread, the
others' on a shared pool of helper threads, all at Meta at once, one database session.

A SQLAlchemy session is not thread-safe, so the run's session is shared by a plan:

- every use of it while a helper may be running goes through :meth:`RunDatabase.use` (one
  run-level lock: a marker's commit, a result's write, a lookup query, the release of the
  database connection before each Graph call), and HTTP happens outside it;
- loaded objects stay loaded (``expire_on_commit=False``), so reading them never touches the
  session; only a rollback expires them, and a rollback inside the lock (a lost lease) stops
  the run;
- the job's thread uses the session outside the lock only once every helper has finished:
  :func:`side_by_side` returns (or raises) only then, and a helper counts itself on the run
  (:meth:`RunDatabase.helping`) so that a run ending by another path can wait for it too.

The job's time limit is an exception RQ raises asynchronously in the job's thread, at any
bytecode: wherever it lands, the run is stopped before the job's thread waits for its helpers,
and a run lock it interrupted on its way in is given back (:meth:`RunDatabase.drop_lock`).

A run holds at most one database connection (the session's), and none while it waits for a
helper. A failure inside the database on any thread (a lost lease, a database error) or any
failure on the job's thread (its time limit) stops the run: every other thread stops at its
next database use or Graph call (:class:`RunStopped`), so at most one call already at Meta
finishes after it, and the job's thread ends once they have. A request behind a sent marker
never leaves after a lost lease in any case: the marker's write is fenced by the lease.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy.orm import Session

from publish_worker.pacing import WAIT_SLICE_SECONDS, release_connection

log = logging.getLogger(__name__)


class RunStopped(Exception):
    """Another thread of the run failed (or the job is ending): this one stops where it is."""


class RunDatabase:
    """The run's session, used by its threads one at a time."""

    def __init__(self, session: Session):
        self.session = session
        self._lock = threading.RLock()
        # The first failure of any of the run's threads (set without the lock: a thread that
        # leaked it to an asynchronous exception must not keep the others waiting).
        self.stopped: BaseException | None = None
        self._helpers = 0
        self._helpers_changed = threading.Condition(threading.Lock())

    @contextmanager
    def use(self) -> Iterator[Session]:
        """The session, to this thread alone; an exception inside stops the run."""
        with self.locked():
            self._check()
            try:
                yield self.session
            except BaseException as exc:
                self.stop(exc)
                raise

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The run's bookkeeping (results waiting for the next write) to this thread alone; unlike
        :meth:`use`, open even once the run has stopped: what a step learned is still kept."""
        while not self._lock.acquire(timeout=WAIT_SLICE_SECONDS):
            self._check()
        try:
            yield
        finally:
            self._lock.release()

    def release(self) -> None:
        """Give the database connection back (before a Graph call): nothing is held while Meta answers."""
        with self.use() as session:
            release_connection(session)

    def stop(self, exc: BaseException) -> None:
        if self.stopped is None:
            self.stopped = exc

    @contextmanager
    def helping(self) -> Iterator[None]:
        """A helper thread at work for the run (counted before it looks at whether the run stopped)."""
        with self._helpers_changed:
            self._helpers += 1
        try:
            self._check()
            yield
        finally:
            with self._helpers_changed:
                self._helpers -= 1
                self._helpers_changed.notify_all()

    def wait_for_helpers(self) -> None:
        """Return once no helper is at work (a stopped run's helpers stop at their next step;
        a helper's database statement has no time bound of its own, its Graph calls do). Waits
        in slices, where an asynchronous exception can land: the wait goes on after it, and it
        is raised at the end."""
        late: BaseException | None = None
        while True:
            try:
                with self._helpers_changed:
                    if self._helpers_changed.wait_for(lambda: self._helpers == 0, WAIT_SLICE_SECONDS):
                        break
            except BaseException as exc:  # noqa: BLE001 - raised once the helpers have ended
                self.stop(exc)
                late = late or exc
        if late is not None:
            raise late

    def drop_lock(self) -> None:
        """Give back the run lock if this thread still holds it: an asynchronous exception that
        lands between the lock's acquisition and its ``try`` leaves it held, and the helpers
        would wait for it until they stop, their results unrecorded."""
        while self.holds_lock():
            self._lock.release()

    def holds_lock(self) -> bool:
        """This thread holds the run lock (RLock's own record of its holder, which
        ``threading.Condition`` reads too)."""
        return bool(cast(Any, self._lock)._is_owned())

    def _check(self) -> None:
        if self.stopped is not None:
            raise RunStopped("the run stopped") from None


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def helper_pool(size: int) -> ThreadPoolExecutor:
    """The process's helper threads (made as needed, up to ``size``: one per post in flight)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, size), thread_name_prefix="publish-target")
        return _pool


def side_by_side(db: RunDatabase, steps: Sequence[Callable[[], None]], pool: ThreadPoolExecutor) -> None:
    """Run ``steps[0]`` on this thread and the others on ``pool``, at once; return when all are done.

    A failure on this thread (the job is ending: its time limit, say) or in the database on
    any thread stops the others at their next database use or Graph call; a helper's own
    failure elsewhere (a bug, an unreadable answer) lets the others finish their step. The
    first failure is raised once every step has ended. The wait is taken in slices, where an
    asynchronous exception (the job's time limit) can land.
    """

    def helper(step: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            with db.helping():
                step()

        return run

    if db.holds_lock():
        # A helper would wait for it until the run stopped; and drop_lock below must never take
        # a hold that an enclosing ``with`` gives back.
        raise RuntimeError("side_by_side called under the run lock")
    futures: list[Future[None]] = []
    try:
        try:
            for step in steps[1:]:
                futures.append(pool.submit(helper(step)))
            steps[0]()
            db.release()  # no connection held while waiting for the others
        except BaseException as exc:  # noqa: BLE001 - raised below, once the helpers have ended
            _stopping(db, exc)
        for future in futures:
            _join(future, db)
    except BaseException as exc:  # noqa: BLE001 - the time limit landing in the lines above
        _stopping(db, exc)
        for future in futures:
            _join(future, db)
    db.wait_for_helpers()  # also one whose future a time limit inside ``submit`` left unknown
    if db.stopped is not None:
        raise db.stopped
    for future in futures:
        failure = future.exception()
        if failure is not None:
            raise failure


def _join(future: Future[None], db: RunDatabase) -> None:
    while not future.done():
        try:
            future.exception(timeout=WAIT_SLICE_SECONDS)  # waits; the helper's failure is read later
        except FutureTimeout:
            continue
        except CancelledError:
            return
        except BaseException as exc:  # noqa: BLE001 - e.g. the job's time limit: stop, still wait
            _stopping(db, exc)
            future.cancel()  # a helper not started yet never starts


def _stopping(db: RunDatabase, exc: BaseException) -> None:
    """Stop the run (first: a log line is where a time limit could land too) and give back a run
    lock the exception left held."""
    db.stop(exc)
    db.drop_lock()
    log.warning("run stopping (%s): its other targets stop at their next step", type(exc).__name__)
