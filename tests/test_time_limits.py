"""Jobs' time limits (``publish_worker.time_limits``): raised in the job's own thread at its time,
never once the job has ended, from one thread for the whole process rather than one per job."""

from __future__ import annotations

import sys
import threading
import time
from functools import partial

import pytest
from rq.timeouts import JobTimeoutException

from publish_worker.time_limits import JOB_DEADLINES, Deadlines, SharedTimerDeathPenalty


def _until_stopped(seconds: float) -> None:
    """Python work that the time limit can interrupt (as a job's would be), up to ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.01)


def test_a_job_past_its_time_limit_is_stopped_in_its_own_thread():
    with pytest.raises(JobTimeoutException):
        with SharedTimerDeathPenalty(0.2, JobTimeoutException, job_id="pub-x-1"):
            _until_stopped(10)


def test_a_job_that_ended_in_time_is_never_stopped_afterwards():
    penalty = SharedTimerDeathPenalty(0.2, JobTimeoutException, job_id="pub-x-1")
    with penalty:
        key = penalty._deadline
    _until_stopped(0.5)  # past the limit: nothing is raised here
    assert key is not None and not JOB_DEADLINES.pending(key)


def test_a_shorter_limit_set_after_a_longer_one_still_comes_at_its_time():
    caught: list[BaseException] = []

    def job(limit: float) -> None:
        try:
            with SharedTimerDeathPenalty(limit, JobTimeoutException, job_id=f"pub-{limit}-1"):
                _until_stopped(3)
        except JobTimeoutException as exc:
            caught.append(exc)

    slow = threading.Thread(target=job, args=(60,))
    slow.start()
    time.sleep(0.1)  # the long limit is the one the timer thread waits for
    started = time.monotonic()
    job(0.2)
    assert caught and time.monotonic() - started < 2.5  # stopped long before its own work's end
    slow.join()
    assert len(caught) == 1  # the long one ended in time


def test_many_jobs_at_once_are_timed_by_one_thread():
    """RQ's own ``TimerDeathPenalty`` starts a thread per job: 50 jobs, 50 more threads."""
    inside = threading.Barrier(51, timeout=30)
    done = threading.Event()

    def job() -> None:
        with SharedTimerDeathPenalty(600, JobTimeoutException, job_id="pub-y-1"):
            inside.wait()
            done.wait(10)

    jobs = [threading.Thread(target=job) for _ in range(50)]
    before = set(threading.enumerate())
    for thread in jobs:
        thread.start()
    inside.wait()
    try:
        started = set(threading.enumerate()) - before - set(jobs)
        assert len(started) <= 1  # at most the timer thread, if no job before had started it
        assert all(thread.name == "job-time-limits" for thread in started)
    finally:
        done.set()
        for thread in jobs:
            thread.join()


class TimeLimit(Exception):
    """A job's time limit, landing where the test puts it."""


def _limit_lands_at(step: int, call) -> bool:
    """Run ``call`` with a time limit landing at its ``step``-th place where CPython looks for one
    (an asynchronous exception is raised as a function starts, or as a call into Python or C code
    returns), in whatever code it runs, the standard library's included; False if it landed."""
    count = 0

    def land(_frame, event, _arg):
        nonlocal count
        if event in ("call", "return", "c_return"):
            count += 1
            if count == step:
                raise TimeLimit()

    measuring = sys.getprofile()
    sys.setprofile(land)
    try:
        call()
        return True
    except TimeLimit:
        return False
    finally:
        sys.setprofile(measuring)


@pytest.mark.parametrize("where", ["setting a limit", "cancelling one"])
def test_a_time_limit_landing_anywhere_while_limits_are_set_or_cancelled_leaves_them_working(where):
    """A job's own limit can land while it sets or cancels its limit (it fires as the job ends):
    wherever it lands on the way in or out (once inside, none can: firing takes the lock), the
    lock every job's limit needs is free again after, and limits still fire."""
    deadlines = Deadlines()
    deadlines.cancel(deadlines.add(600, lambda: None))  # the timer thread is running
    step = 1
    while True:
        key = deadlines.add(600, lambda: None)
        if where == "setting a limit":
            ran_through = _limit_lands_at(step, partial(deadlines.add, 600, lambda: None))
        else:
            ran_through = _limit_lands_at(step, partial(deadlines.cancel, key))
        assert deadlines._lock.acquire(timeout=5), f"the lock was left held (step {step})"
        deadlines._lock.release()
        if ran_through:
            break
        step += 1
    assert step > 2  # it did land inside, more than once
    fired = threading.Event()
    deadlines.add(0.05, fired.set)
    assert fired.wait(5)


def test_a_timer_thread_that_cannot_start_leaves_no_limit_behind(monkeypatch):
    """Out of threads, setting a limit fails (the job fails); it must not fire later, into
    whatever job its thread runs by then, once another limit has started the timer thread."""
    deadlines = Deadlines()
    stray, fired = threading.Event(), threading.Event()

    def cannot_start(_thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", cannot_start)
    with pytest.raises(RuntimeError):
        deadlines.add(0.05, stray.set)
    monkeypatch.undo()
    deadlines.add(0.1, fired.set)
    assert fired.wait(5)
    assert not stray.is_set()
