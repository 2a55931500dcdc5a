"""aiosqlite with one thread hop a statement.

aiosqlite runs each call on the connection in a thread of its own, and SQLAlchemy's
adapter makes four such calls a statement (make a cursor, execute, fetch, close) and a
rollback or two as a session ends, each a hop between the event loop and that thread worth
about a tenth of a millisecond. A read of a catalog row costs far less than that, so the
hops were most of what a small answer cost.

`OneTripConnection` keeps aiosqlite's thread and queue but does a statement's work in one
call: the cursor is made, run, drained and closed in the thread, and what SQLAlchemy reads
afterwards (the rows, `description`, `rowcount`, `lastrowid`) is kept on a cursor that
needs no thread. A commit or rollback with no transaction open, which is every read on
SQLite in its default mode (a SELECT opens none), is skipped.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite

__all__ = ["OneTripConnection", "one_trip_dbapi"]


class _Ran(NamedTuple):
    """What a statement left, read in the connection's thread."""

    rows: list[Any]
    description: Any
    rowcount: int
    lastrowid: int | None


def _run(conn: sqlite3.Connection, sql: str, parameters: Any, many: bool) -> _Ran:
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return _Ran(rows, cursor.description, cursor.rowcount, cursor.lastrowid)
    finally:
        cursor.close()


class OneTripCursor:
    """A cursor whose statement runs, and is read to the end, in one call on the thread.

    It offers what SQLAlchemy's aiosqlite adapter uses of `aiosqlite.Cursor`.
    """

    arraysize = 1

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self._rows: deque[Any] = deque()
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> OneTripCursor:
        return await self._run(sql, parameters, many=False)

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> OneTripCursor:
        return await self._run(sql, parameters, many=True)

    async def _run(self, sql: str, parameters: Any, *, many: bool) -> OneTripCursor:
        connection = self._connection
        # aiosqlite's queue to its thread, as its own cursors use it (untyped there).
        ran: _Ran = await connection._execute(  # type: ignore[no-untyped-call]
            _run, connection._conn, sql, parameters, many
        )
        self._rows = deque(ran.rows)
        self.description = ran.description
        self.rowcount = ran.rowcount
        self.lastrowid = ran.lastrowid
        return self

    async def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = min(size or self.arraysize, len(self._rows))
        return [self._rows.popleft() for _ in range(count)]

    async def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    async def close(self) -> None:
        self._rows.clear()


class OneTripConnection(aiosqlite.Connection):
    """An aiosqlite connection whose statements each take one hop to its thread."""

    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    async def commit(self) -> None:
        if self._conn.in_transaction:
            await super().commit()

    async def rollback(self) -> None:
        if self._conn.in_transaction:
            await super().rollback()


def _connect(database: str, *, iter_chunk_size: int = 64, **kwargs: Any) -> OneTripConnection:
    """`aiosqlite.connect`, making a `OneTripConnection`."""

    def connector() -> sqlite3.Connection:
        opened: sqlite3.Connection = sqlite3.connect(database, **kwargs)
        return opened

    return OneTripConnection(connector, iter_chunk_size)


class _Driver:
    """The aiosqlite module as SQLAlchemy's adapter sees it, connecting with `_connect`."""

    def __init__(self) -> None:
        self.__dict__.update(vars(aiosqlite))
        self.connect = _connect


def one_trip_dbapi() -> Any:
    """The DB-API module to give `create_async_engine(module=...)` for SQLite."""
    dbapi = SQLiteDialect_aiosqlite.import_dbapi()
    setattr(dbapi, "aiosqlite", _Driver())  # noqa: B010 (typed as a module)
    return dbapi
