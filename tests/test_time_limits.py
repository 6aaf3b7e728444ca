"""Jobs' time limits (``publish_worker.time_limits``): raised in the job's own thread at its time,
never once the job has ended, from one thread for the whole process rather than one per job."""

from __future__ import annotations

import threading
import time

import pytest
from rq.timeouts import JobTimeoutException

from publish_worker.time_limits import JOB_DEADLINES, SharedTimerDeathPenalty


def _until_stopped(seconds: float) -> None:
    """Python work that the time limit can interrupt (as a job's would be), up to ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.01)


def test_a_job_past_its_time_limit_is_stopped_in_its_own_thread():
    with pytest.raises(JobTimeoutException, match=r"maximum timeout value \(0.2 seconds\)"):
        with SharedTimerDeathPenalty(0.2, JobTimeoutException, job_id="pub-x-1"):
            _until_stopped(10)


def test_a_job_that_ended_in_time_is_never_stopped_afterwards():
    with SharedTimerDeathPenalty(0.2, JobTimeoutException, job_id="pub-x-1"):
        pass
    _until_stopped(0.5)  # past the limit: nothing is raised here
    assert JOB_DEADLINES.pending() == 0


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
    inside = threading.Barrier(51)
    done = threading.Event()

    def job() -> None:
        with SharedTimerDeathPenalty(600, JobTimeoutException, job_id="pub-y-1"):
            inside.wait()
            done.wait(10)

    jobs = [threading.Thread(target=job) for _ in range(50)]
    before = threading.active_count()
    for thread in jobs:
        thread.start()
    inside.wait()
    try:
        timers = [thread for thread in threading.enumerate() if thread not in jobs]
        assert threading.active_count() - before <= 50 + 1  # the jobs, and at most the one timer thread
        assert sum(thread.name == "job-time-limits" for thread in timers) == 1
    finally:
        done.set()
        for thread in jobs:
            thread.join()
    assert JOB_DEADLINES.pending() == 0
