"""The SQLite driver: a statement takes one call to the connection's thread, and everything
SQLAlchemy reads of a cursor is there after it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from resilience_mcp.sqlite_driver import OneTripConnection
from resilience_mcp.store import Store

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}")
    async with opened.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def thread_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of each function sent to a connection's thread, from now on."""
    calls: list[str] = []
    send = OneTripConnection._execute

    async def counted(self: OneTripConnection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", type(fn).__name__))
        return await send(self, fn, *args, **kwargs)

    monkeypatch.setattr(OneTripConnection, "_execute", counted)
    return calls


async def names(store: Store) -> list[str]:
    async with store.engine.connect() as conn:
        return list((await conn.execute(text("SELECT name FROM item ORDER BY id"))).scalars())


async def test_a_read_session_sends_one_call_a_statement_and_no_rollback(
    store: Store, thread_calls: list[str]
) -> None:
    async with store.session() as session:
        first = (await session.execute(text("SELECT 1"))).scalar_one()
        second = (await session.execute(text("SELECT 2, 3"))).one()

    assert (first, tuple(second)) == (1, (2, 3))
    assert thread_calls == ["_run", "_run"]


async def test_a_write_reports_rowcount_and_lastrowid_and_commits(store: Store) -> None:
    async with store.engine.begin() as conn:
        inserted = await conn.execute(text("INSERT INTO item (name) VALUES ('a')"))
        many = await conn.execute(
            text("INSERT INTO item (name) VALUES (:name)"), [{"name": "b"}, {"name": "c"}]
        )
        updated = await conn.execute(text("UPDATE item SET name = name || '!' WHERE id > 1"))

    assert inserted.lastrowid == 1
    assert many.rowcount == 2
    assert updated.rowcount == 2
    assert await names(store) == ["a", "b!", "c!"]


async def test_a_failed_statement_raises_the_drivers_error_and_its_transaction_rolls_back(
    store: Store,
) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(text("INSERT INTO item (name) VALUES ('kept')"))

    async def insert_lost_then_kept_again() -> None:
        async with store.engine.begin() as conn:
            await conn.execute(text("INSERT INTO item (name) VALUES ('lost')"))
            await conn.execute(text("INSERT INTO item (name) VALUES ('kept')"))

    async def read_a_missing_table() -> None:
        async with store.engine.connect() as conn:
            await conn.execute(text("SELECT * FROM missing"))

    with pytest.raises(IntegrityError, match="UNIQUE"):
        await insert_lost_then_kept_again()
    with pytest.raises(OperationalError, match="no such table"):
        await read_a_missing_table()

    assert await names(store) == ["kept"]


async def test_rows_are_read_one_at_a_time_or_in_batches_as_asked(store: Store) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO item (name) VALUES (:name)"), [{"name": str(i)} for i in range(5)]
        )
    async with store.engine.connect() as conn:
        result = await conn.execute(text("SELECT name FROM item ORDER BY id"))
        one = result.fetchone()
        two = result.fetchmany(2)
        rest = result.fetchall()

    assert one is not None
    assert [one[0], *(r[0] for r in two), *(r[0] for r in rest)] == ["0", "1", "2", "3", "4"]
