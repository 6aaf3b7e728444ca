"""The worker's fenced writes (DESIGN §8 step 1, §13.4): a run's results, its targets' and its
audit event are written only under its lease, all or nothing, and cheaply — on PostgreSQL one
statement, committed on its own when nothing else is in its transaction."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import pq
from rq import SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import event, select, text, update
from sqlalchemy.exc import DataError, OperationalError

from publish_worker import lease
from shared.audit import audit_row
from shared.db import make_engine, make_session_factory, utcnow
from shared.models import PUBLISHING, QUEUED, AuditEvent, PostTarget, ScheduledPost
from shared.pg_alone import driver_statement, execute_alone
from shared.queue import PublishJob, enqueue_publish, make_queue
from tests.factories import make_connection, make_post
from tests.worker_fixtures import reload


@pytest.fixture
def postgresql_only(database_url):
    """What only PostgreSQL does: one statement, its column limits, psycopg's transaction state."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only (conftest fell back to SQLite)")


@pytest.fixture
def alone_writes(monkeypatch):
    """The writes run straight on the driver (``shared.pg_alone``), counted."""
    calls: list[str] = []

    def counted(engine, statement, params):
        calls.append(params["fence_post_id"])
        return execute_alone(engine, statement, params)

    monkeypatch.setattr(lease, "execute_alone", counted)
    return calls


@pytest.fixture
def conn(db_session):
    return make_connection(db_session)


def _held(db_session, conn, owner: str):
    return make_post(
        db_session,
        conn,
        status=PUBLISHING,
        lease_owner=owner,
        lease_expires_at=utcnow() + timedelta(seconds=60),
    )


def _stored(engine, post_id: str) -> tuple[tuple, dict[str, tuple], list[str]]:
    """What another connection sees: the post's lease and status, each target's marker, status and
    error, and the audit events."""
    with make_session_factory(engine)() as other:
        post = reload(other, post_id)
        rows = other.scalars(select(PostTarget).where(PostTarget.post_id == post_id)).all()
        events = other.scalars(select(AuditEvent.event)).all()
        return (
            (post.status, post.lease_owner, post.lease_expires_at, post.attempts),
            {row.target: (row.sent_at, row.status, row.error_code) for row in rows},
            list(events),
        )


@pytest.mark.parametrize("in_a_transaction", [False, True], ids=["alone", "in-a-transaction"])
def test_a_run_that_lost_its_lease_writes_nothing_of_the_post_its_targets_or_its_audit_event(
    engine, db_session, conn, in_a_transaction
):
    post = _held(db_session, conn, owner="lease-of-another-run")
    before = _stored(engine, post.id)
    with make_session_factory(engine)() as session:
        mine = reload(session, post.id)
        session.commit()  # as a run does before its steps: nothing held
        if in_a_transaction:
            session.execute(select(1))  # a read first: the write joins its transaction
        fb, ig = mine.target("facebook"), mine.target("instagram")
        with pytest.raises(lease.LeaseLost):
            lease.record(
                session,
                mine,
                "lease-of-this-run",
                30,
                targets=[(fb, {"status": "published", "error_code": None}), (ig, {"sent_at": utcnow()})],
                audit=audit_row("post_published", connection_id=conn.id),
                commit=not in_a_transaction,
                status="published",
                attempts=3,
            )
        assert not session.in_transaction()  # nothing held after: no connection kept
    assert _stored(engine, post.id) == before


@pytest.mark.parametrize("alone", [True, False], ids=["alone", "in-a-transaction"])
def test_a_write_refused_in_part_writes_none_of_it(postgresql_only, engine, db_session, conn, alone, alone_writes):
    """One target's value the database refuses (too long for its column): neither the post's
    lease nor the other target is written either, whether the write was committed on its own
    (straight on the driver) or in the session's transaction. The refusal is SQLAlchemy's
    ``DataError`` either way, and the connection is fit for the next write."""
    post = _held(db_session, conn, owner="lease-mine")
    before = _stored(engine, post.id)
    with make_session_factory(engine)() as session:
        mine = reload(session, post.id)
        if alone:
            session.commit()
        fb, ig = mine.target("facebook"), mine.target("instagram")
        with pytest.raises(DataError):
            lease.record(
                session,
                mine,
                "lease-mine",
                300,
                targets=[(fb, {"sent_at": utcnow()}), (ig, {"error_code": "x" * 65})],
                audit=audit_row("post_failed", connection_id=conn.id),
                attempts=1,
            )
        assert _stored(engine, post.id) == before
        assert alone_writes == ([post.id] if alone else [])
        lease.record(session, mine, "lease-mine", 300, attempts=2)
    assert _stored(engine, post.id)[0][3] == 2


@pytest.mark.parametrize("alone", [True, False], ids=["alone", "in-a-transaction"])
def test_a_write_under_the_lease_lands_whole_with_its_audit_event(engine, db_session, conn, alone, alone_writes):
    """Every value as SQLAlchemy writes it, alone (straight on the driver) or in a transaction: times
    in UTC, the audit event's detail as JSON."""
    post = _held(db_session, conn, owner="lease-mine")
    sent = utcnow()
    with make_session_factory(engine)() as session:
        mine = reload(session, post.id)
        if alone:
            session.commit()
        fb, ig = mine.target("facebook"), mine.target("instagram")
        lease.record(
            session,
            mine,
            "lease-mine",
            300,
            targets=[(fb, {"sent_at": sent}), (ig, {"status": "failed", "error_code": "media_invalid"})],
            audit=audit_row(
                "post_failed", connection_id=conn.id, error_code="media_invalid", detail={"targets": ["instagram"]}
            ),
            attempts=1,
        )
        assert mine.attempts == 1 and fb.sent_at == sent and ig.error_code == "media_invalid"  # loaded too
        assert alone_writes == ([post.id] if alone and engine.dialect.name == "postgresql" else [])
    (status, owner, expires, attempts), targets, events = _stored(engine, post.id)
    assert (status, owner, attempts) == (PUBLISHING, "lease-mine", 1)
    assert expires > utcnow() + timedelta(seconds=200)  # the lease was extended with the write
    assert targets["facebook"] == (sent, "pending", None)
    assert targets["instagram"] == (None, "failed", "media_invalid")
    assert events == ["post_failed"]
    with make_session_factory(engine)() as other:
        assert other.scalars(select(AuditEvent.detail)).one() == {"targets": ["instagram"]}
    with make_session_factory(engine)() as other:
        assert reload(other, post.id).updated_at > post.updated_at  # stamped, as an UPDATE of its own is


class RoundTrips:
    """Round trips to PostgreSQL through an engine's connections opened from now on, as libpq's own
    trace of the protocol shows them: each ends with the server's ``ReadyForQuery``. Every statement
    counts, SQLAlchemy's or the driver's, and so does each ``BEGIN``, ``COMMIT`` and ``ROLLBACK``."""

    def __init__(self, engine, folder):
        self._engine = engine
        self._folder = folder
        self._traced: list[tuple[psycopg.Connection, Path]] = []
        self._lock = threading.Lock()
        engine.dispose()  # its pooled connections were opened untraced
        event.listen(engine, "connect", self.opened)

    def opened(self, dbapi_connection, _record) -> None:
        with self._lock:
            path = self._folder / f"connection-{len(self._traced)}.trace"
            self._traced.append((dbapi_connection, path))
        with path.open("w") as trace:
            # libpq keeps its own stream on the descriptor it is given (a copy: this one closes).
            dbapi_connection.pgconn.trace(os.dup(trace.fileno()))
        dbapi_connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)

    def count(self) -> int:
        event.remove(self._engine, "connect", self.opened)
        total = 0
        for dbapi_connection, path in self._traced:
            assert not dbapi_connection.closed, "a traced connection was closed: its trace may be cut short"
            dbapi_connection.pgconn.untrace()  # flushes what libpq buffered
            total += path.read_text().count("\tReadyForQuery\t")
        return total


def test_a_post_to_both_targets_makes_five_round_trips_to_postgresql(
    postgresql_only, worker_ctx, graph, conn, db_session, tmp_path
):
    """Reading the post's Page, taking the lease and reading the post (one statement), then one
    statement for each target's sent marker and one for the outcome with its audit event, none in a
    transaction. Each round trip is worker CPU in a burst (DESIGN §13.4): there were 19 before the
    fenced writes became one statement, and 8 before the take and the read did."""
    with worker_ctx.session() as session:
        session.execute(select(1))  # the engine's first-use queries done
    post = make_post(db_session, conn)
    with worker_ctx.session() as session:
        job_id = enqueue_publish(session, worker_ctx, post.id)  # the post's own job, as in production
    trips = RoundTrips(worker_ctx.engine, tmp_path)
    worker = SimpleWorker(
        [make_queue(worker_ctx.redis)], connection=worker_ctx.redis, serializer=JSONSerializer, job_class=PublishJob
    )
    worker.work(burst=True)
    assert Job.fetch(job_id, connection=worker_ctx.redis, serializer=JSONSerializer).return_value() == "published"
    calls = sorted(request.path.rsplit("/", 1)[1] for request in graph.m.request_history)
    assert calls == ["container-1", "content_publishing_limit", "media", "media_publish", "photos"]  # the whole run
    assert trips.count() == 5


def test_a_connection_left_in_autocommit_goes_back_to_the_pool_out_of_it(
    postgresql_only, database_url, db_session, conn
):
    """Should the job's time limit land while SQLAlchemy switches a connection into autocommit for
    a write, before it notes to switch it back, the pool still hands the connection out
    transactional: a later rollback undoes what its transaction wrote."""
    post = make_post(db_session, conn)
    engine = make_engine(database_url)  # its pool holds one connection: the one used below
    try:
        raw = engine.raw_connection()
        raw.driver_connection.autocommit = True  # as such a time limit leaves it
        raw.close()
        with engine.connect() as connection:
            assert connection.connection.driver_connection.autocommit is False
            connection.execute(update(ScheduledPost).where(ScheduledPost.id == post.id).values(caption="not kept"))
            connection.rollback()
    finally:
        engine.dispose()
    assert reload(db_session, post.id).caption == post.caption


def _waiting_for_a_lock(engine, statement_start: str, never: str) -> int:
    """The server process of a statement (beginning ``statement_start``) once it waits for a row
    lock; the test fails with ``never`` if none does within five seconds."""
    waiting = text("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE :start || '%'")
    for _ in range(500):
        with engine.connect() as watcher:
            pid = watcher.execute(waiting, {"start": statement_start}).scalar()
        if pid is not None:
            return int(pid)
        time.sleep(0.01)
    pytest.fail(never)


def test_a_write_alone_whose_connection_the_server_ends_fails_as_sqlalchemy_says_and_the_next_lands(
    postgresql_only, database_url, engine, db_session, conn
):
    """The server ends the connection while a write runs alone on the driver (an administrator, a
    restart): the run sees SQLAlchemy's ``OperationalError``, as from any statement, nothing is
    written, and the next write gets a working connection from the pool."""
    post = _held(db_session, conn, owner="lease-mine")
    before = _stored(engine, post.id)
    worker_engine = make_engine(database_url, pool_size=1, max_overflow=0, ping_on_checkout=False)
    failures: list[BaseException] = []
    try:
        with engine.connect() as locker, make_session_factory(worker_engine)() as session:
            mine = reload(session, post.id)
            session.commit()
            locker.execute(select(ScheduledPost.id).where(ScheduledPost.id == post.id).with_for_update())

            def write() -> None:
                try:
                    lease.record(session, mine, "lease-mine", 300, attempts=1)
                except Exception as exc:  # noqa: BLE001 - read below
                    failures.append(exc)

            writer = threading.Thread(target=write)
            writer.start()
            try:
                pid = _waiting_for_a_lock(engine, "WITH fenced", "the write never waited for the row")
                with engine.connect() as admin:
                    admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            finally:
                locker.rollback()
                writer.join(timeout=30)
            assert len(failures) == 1 and isinstance(failures[0], OperationalError)
            assert _stored(engine, post.id) == before
            lease.record(session, mine, "lease-mine", 300, attempts=2)
    finally:
        worker_engine.dispose()
    assert _stored(engine, post.id)[0][3] == 2


def test_a_statement_whose_values_sqlalchemy_works_out_at_execution_is_refused_by_the_driver_path(engine):
    """A Python-side ``onupdate`` (``updated_at``) is stamped by SQLAlchemy at each execution: on the
    driver it would silently be left out, so such a statement is refused when compiled."""
    stamped = update(ScheduledPost).where(ScheduledPost.id == "x").values(caption="y")
    with pytest.raises(ValueError, match="cannot run on the driver"):
        driver_statement(stamped, engine.dialect)
    assert driver_statement(stamped.values(updated_at=utcnow()), engine.dialect).sql.startswith("UPDATE")


def test_a_take_reads_the_post_as_taken_with_its_targets_and_connection_in_one_statement(
    postgresql_only, engine, db_session, conn
):
    """The run sees the post as the take left it (its lease, its count of takes), its targets and its
    connection, from the one statement; a post not due is neither taken nor read."""
    post = make_post(db_session, conn)
    later = make_post(db_session, conn, publish_in=3600)
    with make_session_factory(engine)() as session:
        assert lease.take_and_load(session, later.id, "lease-mine", 60, job_id=f"pub-{later.id}-1") is None
        session.rollback()
        before = utcnow()
        taken = lease.take_and_load(session, post.id, "lease-mine", 60, job_id=f"pub-{post.id}-1")
        assert taken is not None
        # Committed by the statement itself (alone, in autocommit): another connection sees the take.
        assert _stored(engine, post.id)[0][:2] == (PUBLISHING, "lease-mine")
        mine, connection = taken
        assert (mine.status, mine.lease_owner, mine.takes) == (PUBLISHING, "lease-mine", post.takes + 1)
        assert mine.started_at >= before and mine.updated_at >= before
        assert mine.lease_expires_at > before + timedelta(seconds=50)
        assert sorted(row.target for row in mine.target_rows) == ["facebook", "instagram"]
        assert connection is not None and connection.id == conn.id
        session.commit()
    assert _stored(engine, later.id)[0][:2] == (later.status, None)


def test_a_post_without_target_rows_is_still_read_when_taken(postgresql_only, engine, db_session, conn):
    """A take that found its post reads it even with no target rows to join (the outcome then
    fails it): a take read as "not taken" would leave the post held by no run."""
    post = make_post(db_session, conn)
    db_session.query(PostTarget).filter(PostTarget.post_id == post.id).delete()
    db_session.commit()
    with make_session_factory(engine)() as session:
        taken = lease.take_and_load(session, post.id, "lease-mine", 60, job_id=f"pub-{post.id}-1")
        assert taken is not None and taken[0].id == post.id and taken[0].target_rows == []
        session.commit()


def test_a_job_an_edit_superseded_while_its_take_waited_takes_nothing(postgresql_only, engine, db_session, conn):
    """The take reads the targets as of its statement's start. An edit that held the post's row
    while the take waited commits new targets and a new job for the post: the waiting job, re-checking
    the post's row, finds itself superseded and takes nothing (it never runs on the old targets)."""
    post = make_post(db_session, conn)
    db_session.execute(update(ScheduledPost).where(ScheduledPost.id == post.id).values(rq_job_id=f"pub-{post.id}-1"))
    db_session.commit()
    results: list[object] = []
    with engine.connect() as editor, make_session_factory(engine)() as session:
        editor.execute(
            update(ScheduledPost).where(ScheduledPost.id == post.id).values(rq_job_id=f"pub-{post.id}-2", caption="new")
        )
        editor.execute(update(PostTarget).where(PostTarget.post_id == post.id).values(status="skipped"))

        def take() -> None:
            results.append(lease.take_and_load(session, post.id, "lease-old-job", 60, job_id=f"pub-{post.id}-1"))

        taker = threading.Thread(target=take)
        taker.start()
        try:
            _waiting_for_a_lock(engine, "WITH taken", "the take never waited for the edit")
        finally:
            editor.commit()
            taker.join(timeout=30)
        session.rollback()
    assert results == [None]
    assert _stored(engine, post.id)[0][:2] == (QUEUED, None)
