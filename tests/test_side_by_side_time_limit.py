"""The job's time limit is raised asynchronously in the job's thread, at any bytecode of the run:
wherever it lands in ``side_by_side``, the job's thread goes on only once every helper has
ended, and what a helper learned is still kept (DESIGN §8, §13.4)."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, cast

import pytest
from rq.timeouts import JobTimeoutException
from sqlalchemy.orm import Session

from publish_worker.side_by_side import RunDatabase, RunStopped, side_by_side

GIVE_UP_SECONDS = 5


@pytest.fixture
def pool():
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-helper")
    yield pool
    pool.shutdown(wait=True)


class TimeLimitInSubmit:
    """A pool whose ``submit`` is interrupted by the time limit once the helper has started: the
    job's thread never learns the helper's future."""

    def __init__(self, pool: ThreadPoolExecutor, started: threading.Event):
        self.pool = pool
        self.started = started

    def submit(self, fn: Any) -> Future[None]:
        self.pool.submit(fn)
        assert self.started.wait(GIVE_UP_SECONDS)
        raise JobTimeoutException("the job's time limit")


def run_database() -> RunDatabase:
    return RunDatabase(cast(Session, object()))  # the steps here never reach the session itself


def test_a_time_limit_inside_submit_still_waits_for_the_helper_which_touches_nothing(pool):
    db = run_database()
    started, ended = threading.Event(), threading.Event()
    seen: list[str] = []

    def helper() -> None:
        started.set()
        threading.Event().wait(0.3)  # still at Meta when the job's thread is interrupted
        try:
            with db.use():
                seen.append("used the session")
        except RunStopped:
            seen.append("stopped")
        finally:
            ended.set()

    with pytest.raises(JobTimeoutException):
        side_by_side(
            db,
            [lambda: seen.append("job step ran"), helper],
            cast(ThreadPoolExecutor, TimeLimitInSubmit(pool, started)),
        )
    assert started.is_set() and ended.is_set()  # the job's thread went on only once the helper had ended
    assert seen == ["stopped"]


def test_a_run_lock_left_held_by_the_time_limit_is_given_back_so_a_helpers_result_is_kept(pool):
    db = run_database()
    held = threading.Event()
    kept: list[str] = []

    def job_step() -> None:
        # The time limit landing between the lock's acquisition and its ``try``: the lock stays held.
        db._lock.acquire()
        held.set()
        raise JobTimeoutException("the job's time limit")

    def helper() -> None:
        held.wait(GIVE_UP_SECONDS)
        with db.locked():  # what a step learned is kept even once the run has stopped
            kept.append("remote id")

    with pytest.raises(JobTimeoutException):
        side_by_side(db, [job_step, helper], pool)
    assert kept == ["remote id"]


def test_a_helper_still_at_work_is_waited_for_before_the_run_goes_on(pool):
    db = run_database()
    inside, leave = threading.Event(), threading.Event()

    def helper() -> None:
        with db.helping():
            inside.set()
            leave.wait(GIVE_UP_SECONDS)

    pool.submit(helper)
    assert inside.wait(GIVE_UP_SECONDS)
    waited = threading.Thread(target=db.wait_for_helpers)
    waited.start()
    waited.join(0.2)
    assert waited.is_alive()  # a helper is at work: the run does not go on
    leave.set()
    waited.join(GIVE_UP_SECONDS)
    assert not waited.is_alive()


def test_a_helper_starting_after_the_run_stopped_does_nothing(pool):
    db = run_database()
    db.stop(JobTimeoutException("the job's time limit"))
    ran: list[str] = []

    def helper() -> None:
        with db.helping():
            ran.append("step")

    with pytest.raises(RunStopped):
        pool.submit(helper).result(GIVE_UP_SECONDS)
    assert ran == []
    db.wait_for_helpers()  # and it is not counted as at work
