"""The worker's psycopg cursor: a result's description made only when it is read.

SQLAlchemy asks for ``cursor.description`` after every statement, but reads it only the first
time a statement runs: from then on the result's layout is cached with the compiled statement,
and only ``description is None`` is looked at. psycopg makes a ``Column`` for every column at
each ask, a few microseconds each: about a quarter of a millisecond of CPU for a post's load
(the post, its targets and its connection: 71 columns), on every post.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

import psycopg
from psycopg.pq import ExecStatus

# Statuses whose results describe columns even when there are none (``SELECT ;``), as psycopg has it.
_TUPLES = (ExecStatus.TUPLES_OK, ExecStatus.SINGLE_TUPLE, ExecStatus.TUPLES_CHUNK)


class LazyDescriptionCursor(psycopg.Cursor[Any]):
    """``psycopg.Cursor``, whose ``description`` is the same columns, each made on first read."""

    @property
    def description(self) -> Sequence[psycopg.Column] | None:  # type: ignore[override]
        result = self.pgresult
        if result is None or not (result.nfields or result.status in _TUPLES):
            return None
        return _Columns(_ResultOf(self), result.nfields)


class _ResultOf:
    """What ``psycopg.Column`` reads of its cursor, kept as it was when the description was asked
    for: the cursor may have moved on to another result by the time a column is read."""

    __slots__ = ("pgresult", "_encoding", "adapters")

    def __init__(self, cursor: psycopg.Cursor[Any]):
        self.pgresult = cursor.pgresult
        self._encoding = cursor._encoding
        self.adapters = cursor.adapters


class _Columns(Sequence[psycopg.Column]):
    __slots__ = ("_source", "_count", "_columns")

    def __init__(self, source: _ResultOf, count: int):
        self._source = source
        self._count = count
        self._columns: list[psycopg.Column] | None = None

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> psycopg.Column: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[psycopg.Column]: ...

    def __getitem__(self, index: int | slice) -> psycopg.Column | Sequence[psycopg.Column]:
        if self._columns is None:
            source: Any = self._source
            self._columns = [psycopg.Column(source, position) for position in range(self._count)]
        return self._columns[index]
