"""Jobs' time limits on one thread for the process (DESIGN §13.4).

RQ's ``TimerDeathPenalty`` raises a job's ``JobTimeoutException`` in the job's thread when its
time is up, from a ``threading.Timer``: a new thread for every job, started and ended for a
post of a few milliseconds of CPU (about a tenth of a millisecond each, and in a burst hundreds
of threads more taking the interpreter's lock). :class:`SharedTimerDeathPenalty` raises it the
same way from one thread that keeps every job's deadline. A deadline cancelled (the job ended)
never fires: firing and cancelling take the same lock.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from rq.timeouts import TimerDeathPenalty

log = logging.getLogger(__name__)


class Deadlines:
    """Calls each function added at its time, on one daemon thread, unless it was cancelled first.

    ``add`` and ``cancel`` run in jobs' threads, where a time limit can land at any bytecode: they
    take a plain lock, acquired in C with nothing between it and the ``with`` that releases it
    (a ``Condition``'s ``__enter__`` is Python, where a limit landing just after the acquisition
    would leave the lock held, and every job's limit with it). Only the timer thread waits on
    the condition made of that lock. No limit can land while a job holds it: firing one takes it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._due: list[tuple[float, int, Callable[[], None]]] = []  # a heap, by time
        self._pending: set[int] = set()
        self._keys = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, seconds: float, fire: Callable[[], None]) -> int:
        """``fire`` in ``seconds``; a key to cancel it with."""
        at = time.monotonic() + seconds
        with self._lock:
            if self._thread is None:
                # Started before anything is added: if it cannot start, nothing is left pending
                # that no caller could cancel, and the next add tries again.
                thread = threading.Thread(target=self._run, name="job-time-limits", daemon=True)
                thread.start()
                self._thread = thread
            key = next(self._keys)
            if len(self._due) > 4 * len(self._pending) + 1024:
                # Cancelled entries wait for their time to be dropped: drop them now instead.
                self._due = [entry for entry in self._due if entry[1] in self._pending]
                heapq.heapify(self._due)
            heapq.heappush(self._due, (at, key, fire))
            self._pending.add(key)
            if self._due[0][1] == key:
                self._changed.notify()  # sooner than what the thread waits for
        return key

    def cancel(self, key: int) -> None:
        """It will not fire (if it has not already). Its entry goes when its time comes."""
        with self._lock:
            self._pending.discard(key)

    def pending(self, key: int) -> bool:
        with self._lock:
            return key in self._pending

    def _run(self) -> None:
        try:
            while True:
                failed = self._fire_due()
                if failed is not None:
                    log.error("a job's time limit could not be raised", exc_info=failed)
        finally:
            with self._lock:
                self._thread = None  # the next add starts another

    def _fire_due(self) -> Exception | None:
        """Wait for the next time to come, and fire what is due; a firing's failure is returned,
        to be logged once the lock is free (firing under it is what makes a cancel final)."""
        with self._changed:
            while self._due and self._due[0][1] not in self._pending:
                heapq.heappop(self._due)
            if not self._due:
                self._changed.wait()
                return None
            at, key, fire = self._due[0]
            left = at - time.monotonic()
            if left > 0:
                self._changed.wait(left)
                return None
            heapq.heappop(self._due)
            self._pending.discard(key)
            try:
                fire()
            except Exception as exc:  # noqa: BLE001 - one job's limit failing must not end everyone's
                return exc
            return None


JOB_DEADLINES = Deadlines()


class SharedTimerDeathPenalty(TimerDeathPenalty):
    """RQ's ``TimerDeathPenalty`` (the limit raised in the job's thread), timed by
    :data:`JOB_DEADLINES` instead of a thread of its own."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]  # unannotated in RQ 3.0
        self._deadline: int | None = None

    def setup_death_penalty(self) -> None:
        if self._timeout <= 0:
            return
        self._deadline = JOB_DEADLINES.add(self._timeout, self.handle_death_penalty)

    def cancel_death_penalty(self) -> None:
        if self._deadline is not None:
            JOB_DEADLINES.cancel(self._deadline)
            self._deadline = None
