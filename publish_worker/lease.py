"""The per-post lease (DESIGN §8 step 1): one run at a time, and a late or duplicate job is a no-op."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Dialect,
    Engine,
    Select,
    Table,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased, contains_eager
from sqlalchemy.orm.attributes import set_committed_value

from shared.audit import insert_row, log_event
from shared.db import affected_rows, utcnow
from shared.models import PUBLISHING, QUEUED, AuditEvent, PostTarget, ScheduledPost, SocialConnection
from shared.pg_alone import DriverStatement, driver_statement, execute_alone

# A job may start this much before publish_at (clock skew between hosts).
EARLY_TOLERANCE = timedelta(seconds=2)


class LeaseLost(Exception):
    """Another run owns the post now; this one must stop without writing."""


def new_owner() -> str:
    return "lease-" + secrets.token_hex(12)


_POSTS = cast(Table, ScheduledPost.__table__)
_TARGETS = cast(Table, PostTarget.__table__)
_AUDIT = cast(Table, AuditEvent.__table__)
_TIME = _POSTS.c.lease_expires_at.type

# The lease statements, built once: each call only binds its values (the compiled SQL is cached
# per statement and set of columns, so building them anew per call was pure overhead). They run
# on the session's connection (in its transaction) rather than through ``Session.execute``,
# whose ORM machinery these plain UPDATEs do not need: several a post, most of their CPU.
_TAKE = (
    update(_POSTS)
    .where(
        _POSTS.c.id == bindparam("post_id"),
        or_(
            and_(_POSTS.c.status == QUEUED, _POSTS.c.publish_at <= bindparam("due_by", type_=_TIME)),
            and_(_POSTS.c.status == PUBLISHING, _POSTS.c.lease_expires_at < bindparam("now", type_=_TIME)),
        ),
    )
    .values(
        status=PUBLISHING,
        lease_owner=bindparam("owner"),
        lease_expires_at=bindparam("expires", type_=_TIME),
        takes=_POSTS.c.takes + 1,
        started_at=func.coalesce(_POSTS.c.started_at, bindparam("started", type_=_TIME)),
        next_attempt_at=None,
    )
)
# The same, for a job that is one of the post's (``pub-<post id>-<n>``): only while the post still
# names it, so a job an edit or a retry has replaced does nothing (checked in this one statement
# rather than by a query of its own before it).
_TAKE_AS_JOB = _TAKE.where(or_(_POSTS.c.rq_job_id.is_(None), _POSTS.c.rq_job_id == bindparam("job_id")))
_RESUME = (
    update(_POSTS)
    .where(
        _POSTS.c.id == bindparam("post_id"),
        _POSTS.c.status == PUBLISHING,
        _POSTS.c.lease_owner == bindparam("carried"),
    )
    .values(lease_owner=bindparam("owner"), lease_expires_at=bindparam("expires", type_=_TIME), next_attempt_at=None)
)
# The values to write are the execution's other parameters (their names are the columns').
_RECORD_POST = update(_POSTS).where(
    _POSTS.c.id == bindparam("fence_post_id"),
    _POSTS.c.lease_owner == bindparam("fence_owner"),
    _POSTS.c.status == PUBLISHING,
)
_POST_STAMPS = {column.name: cast(Any, column.onupdate).arg for column in _POSTS.c if column.onupdate is not None}
_RECORD_TARGET = update(_TARGETS).where(
    _TARGETS.c.post_id == bindparam("fence_post_id"), _TARGETS.c.target == bindparam("fence_target")
)


def take(session: Session, post_id: str, owner: str, lease_seconds: float, *, job_id: str | None = None) -> bool:
    """Atomically move a due ``queued`` post (or one whose lease expired) to ``publishing``.

    With ``job_id`` (the post's own ``pub-<post id>-<n>``), only while the post still names that
    job (or none): a superseded job takes nothing. The caller commits (the row stays locked until
    then, so no other run can take it meanwhile)."""
    values = _take_values(post_id, owner, lease_seconds)
    if job_id is None:
        result = session.connection().execute(_TAKE, values)
    else:
        result = session.connection().execute(_TAKE_AS_JOB, {**values, "job_id": job_id})
    return affected_rows(result) == 1


# A job's take, reading the post it took with its targets and connection in the one statement
# (PostgreSQL: the UPDATE is a CTE, its RETURNING the post as taken; the objects already in the
# session are overwritten with it). Each row of the answer is the post, one of its targets and its
# connection; none when the post was not taken.
_TAKE_AS_JOB_AND_LOAD = (
    select(taken := aliased(ScheduledPost, _TAKE_AS_JOB.returning(*_POSTS.c).cte("taken")), SocialConnection)
    .outerjoin(taken.target_rows)
    .outerjoin(SocialConnection, SocialConnection.id == taken.connection_id)
    .options(contains_eager(taken.target_rows))
    .execution_options(populate_existing=True)
)


def take_and_load(
    session: Session, post_id: str, owner: str, lease_seconds: float, *, job_id: str
) -> tuple[ScheduledPost, SocialConnection | None] | None:
    """PostgreSQL: :func:`take` for the post's own job ``job_id`` and the read of the post taken (its
    target rows loaded, and its connection) in one statement; ``None`` when the post was not taken.
    Outside a transaction the statement runs alone in autocommit: one round trip, where a take and
    a read in a transaction were four.

    The targets and the connection are read as of the statement's start, the post as taken (its row
    re-checked as last committed). A transaction that changes the post's row with its targets or
    its connection must therefore leave the post untakeable by the job it found: every one does
    (the worker's writes hold the lease or end it, an edit, a retry or the sweeper gives the post a
    new job, a cancel or a disconnect cancels it). One that leaves the post's row alone (Meta's data
    deletion) is as if it ran just after the take, as before. Without a job, the take and the read
    stay two statements in one transaction (:func:`take`).

    As after any committed take, a failure before the run starts (the job's time limit landing
    while the answer is read, say) leaves the post held until its lease expires; the sweeper then
    queues it again."""
    statements_alone(session)
    values = {**_take_values(post_id, owner, lease_seconds), "job_id": job_id}
    row = session.execute(_TAKE_AS_JOB_AND_LOAD, values).unique().first()
    return (row[0], row[1]) if row is not None else None


def statements_alone(session: Session) -> None:
    """The session's next statements each commit on their own (autocommit) until it gives its
    connection back, unless it already holds a transaction (whose statements stay in it)."""
    if not session.in_transaction():
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def _take_values(post_id: str, owner: str, lease_seconds: float) -> dict[str, Any]:
    now = utcnow()
    return {
        "post_id": post_id,
        "due_by": now + EARLY_TOLERANCE,
        "now": now,
        "owner": owner,
        "expires": now + timedelta(seconds=lease_seconds),
        "started": now,
    }


def resume(session: Session, post_id: str, owner: str, new_owner: str, lease_seconds: float) -> bool:
    """A continuation job carrying the lease takes it over under a fresh owner token.

    Rotating the token fences duplicate deliveries of the same continuation: only
    the first one finds ``owner`` still there. The caller commits, as for :func:`take`.
    """
    result = session.connection().execute(
        _RESUME,
        {
            "post_id": post_id,
            "carried": owner,
            "owner": new_owner,
            "expires": utcnow() + timedelta(seconds=lease_seconds),
        },
    )
    return affected_rows(result) == 1


def record(
    session: Session,
    post: ScheduledPost,
    owner: str,
    lease_seconds: float,
    *,
    targets: Iterable[tuple[PostTarget, dict[str, Any]]] = (),
    commit: bool = True,
    audit: dict[str, Any] | None = None,
    **values: Any,
) -> None:
    """Write step results only while holding the lease (and extend it); commit at once.

    Each of ``targets``' values goes to its row, and ``audit`` (an ``audit_events`` row,
    ``shared.audit.audit_row``) is inserted, only with the fenced UPDATE of the post: a run that
    lost the lease writes nothing. The loaded objects are brought up to date without being marked
    dirty, so nothing is ever written outside these statements. With ``commit=False`` the caller
    commits (adding its own rows to the same transaction).

    On PostgreSQL all of it is one statement (:func:`_fenced_write`), and a write committed at once
    that is all its transaction holds runs as that statement alone, with no ``BEGIN`` or
    ``COMMIT`` round trip (a statement is atomic on its own), straight on the driver: no session or
    connection machinery for three of a post's writes.
    """
    # One write a target (its values merged): a statement may not update a row twice.
    by_target: dict[str, tuple[PostTarget, dict[str, Any]]] = {}
    for row, row_values in targets:
        if row_values:
            by_target[row.target] = (row, {**by_target.get(row.target, (row, {}))[1], **row_values})
    writes = list(by_target.values())
    values.setdefault("lease_expires_at", utcnow() + timedelta(seconds=lease_seconds))
    try:
        if session.get_bind().dialect.name == "postgresql":
            held = _fenced_write(session, commit, post.id, owner, values, writes, audit)
        else:
            held = _fenced_writes(session.connection(), post.id, owner, values, writes, audit)
    except BaseException:
        # Nothing was written; the connection goes back (out of autocommit, if the write was in it).
        session.rollback()
        raise
    if not held:
        post_id = post.id  # read before the rollback expires it (reading it after would query)
        session.rollback()
        raise LeaseLost(post_id)
    if commit:
        session.commit()
    if audit is not None:
        log_event(audit)
    refresh(post, values)
    for row, row_values in writes:
        refresh(row, row_values)


# A fenced write's shape: the post's columns, each target's, the audit row's.
_Shape = tuple[tuple[str, ...], tuple[tuple[str, ...], ...], tuple[str, ...]]


def _alone(session: Session, commit: bool) -> bool:
    """Whether a write to be committed at once is all its transaction would hold (the session holds
    no transaction, nor anything its commit would flush)."""
    return commit and not session.in_transaction() and not (session.new or session.dirty or session.deleted)


def _fenced_write(
    session: Session,
    commit: bool,
    post_id: str,
    owner: str,
    values: dict[str, Any],
    writes: list[tuple[PostTarget, Any]],
    audit: dict[str, Any] | None,
) -> bool:
    """PostgreSQL: the fenced UPDATE of the post, its targets' UPDATEs and the audit row's INSERT
    in one statement, each joined to the post's (data-modifying CTEs): no lease, no write at all.
    A write that is all its transaction holds runs alone, straight on the driver (``shared.pg_alone``)."""
    # What SQLAlchemy stamps on an UPDATE of its own (``onupdate``) is stamped here: not inside a CTE.
    values = {**{name: stamp(None) for name, stamp in _POST_STAMPS.items()}, **values}
    shape = (tuple(values), tuple(tuple(row_values) for _row, row_values in writes), tuple(audit or ()))
    # Every name is prefixed: SQLAlchemy would add an UPDATE's unnamed columns that a parameter names.
    params = {"fence_post_id": post_id, "fence_owner": owner, **{f"p_{key}": value for key, value in values.items()}}
    for index, (row, row_values) in enumerate(writes):
        params[f"fence_t{index}"] = row.target
        params.update({f"t{index}_{key}": value for key, value in row_values.items()})
    params.update({f"a_{key}": value for key, value in (audit or {}).items()})
    engine = session.get_bind()
    if isinstance(engine, Engine) and _alone(session, commit):
        counted = execute_alone(engine, _driver_statement(engine.dialect, shape), params)
        return counted is not None and bool(counted[0])
    return bool(session.connection().execute(_fenced_statement(*shape), params).scalar_one())


@lru_cache(maxsize=256)
def _driver_statement(dialect: Dialect, shape: _Shape) -> DriverStatement:
    return driver_statement(_fenced_statement(*shape), dialect)


@lru_cache(maxsize=256)
def _fenced_statement(
    post_keys: tuple[str, ...], targets_keys: tuple[tuple[str, ...], ...], audit_keys: tuple[str, ...]
) -> Select[Any]:
    fenced = (
        _RECORD_POST.values({key: bindparam(f"p_{key}", type_=_POSTS.c[key].type) for key in post_keys})
        .returning(_POSTS.c.id)
        .cte("fenced")
    )
    statement = select(func.count()).select_from(fenced)
    for index, keys in enumerate(targets_keys):
        written = (
            update(_TARGETS)
            .where(_TARGETS.c.post_id == fenced.c.id, _TARGETS.c.target == bindparam(f"fence_t{index}"))
            .values({key: bindparam(f"t{index}_{key}", type_=_TARGETS.c[key].type) for key in keys})
            .returning(_TARGETS.c.post_id)
            .cte(f"t{index}")
        )
        statement = statement.add_cte(written)
    if audit_keys:
        row = select(*(bindparam(f"a_{key}", type_=_AUDIT.c[key].type) for key in audit_keys)).select_from(fenced)
        statement = statement.add_cte(insert(_AUDIT).from_select(list(audit_keys), row).cte("audit"))
    return statement


def _fenced_writes(
    connection: Connection,
    post_id: str,
    owner: str,
    values: dict[str, Any],
    writes: list[tuple[PostTarget, Any]],
    audit: dict[str, Any] | None,
) -> bool:
    """Elsewhere (SQLite): the fenced UPDATE of the post, then each target's, in the caller's transaction."""
    result = connection.execute(_RECORD_POST, {"fence_post_id": post_id, "fence_owner": owner, **values})
    if affected_rows(result) != 1:
        return False
    for row, row_values in writes:
        connection.execute(_RECORD_TARGET, {"fence_post_id": post_id, "fence_target": row.target, **row_values})
    if audit is not None:
        insert_row(connection, audit)
    return True


def refresh(loaded: ScheduledPost | PostTarget, values: dict[str, Any]) -> None:
    """Bring a loaded object up to date with values written (or about to be) without marking it dirty."""
    for key, value in values.items():
        set_committed_value(loaded, key, value)


def hold_until(
    session: Session,
    post: ScheduledPost,
    owner: str,
    lease_seconds: float,
    at: datetime,
    *,
    targets: Iterable[tuple[PostTarget, dict[str, Any]]] = (),
    **values: Any,
) -> None:
    """Keep the lease through a wait (a retry or a status poll), and past it by one lease."""
    record(
        session,
        post,
        owner,
        lease_seconds,
        targets=targets,
        **values,
        next_attempt_at=at,
        lease_expires_at=at + timedelta(seconds=lease_seconds),
    )
