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
    """Calls each function added at its time, on one daemon thread, unless it was cancelled first."""

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._due: list[tuple[float, int, Callable[[], None]]] = []  # a heap, by time
        self._pending: set[int] = set()
        self._keys = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, seconds: float, fire: Callable[[], None]) -> int:
        """``fire`` in ``seconds``; a key to cancel it with."""
        at = time.monotonic() + seconds
        with self._changed:
            key = next(self._keys)
            heapq.heappush(self._due, (at, key, fire))
            self._pending.add(key)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="job-time-limits", daemon=True)
                self._thread.start()
            elif self._due[0][1] == key:
                self._changed.notify()  # sooner than what the thread waits for
        return key

    def cancel(self, key: int) -> None:
        """It will not fire (if it has not already). Its entry goes when its time comes."""
        with self._changed:
            self._pending.discard(key)

    def pending(self) -> int:
        with self._changed:
            return len(self._pending)

    def _run(self) -> None:
        while True:
            with self._changed:
                while self._due and self._due[0][1] not in self._pending:
                    heapq.heappop(self._due)
                if not self._due:
                    self._changed.wait()
                    continue
                at, key, fire = self._due[0]
                left = at - time.monotonic()
                if left > 0:
                    self._changed.wait(left)
                    continue
                heapq.heappop(self._due)
                self._pending.discard(key)
                try:
                    fire()
                except Exception:  # noqa: BLE001 - one job's limit failing must not end everyone's
                    log.exception("a job's time limit could not be raised")


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
