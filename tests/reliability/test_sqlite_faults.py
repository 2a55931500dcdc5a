"""SQLite faults: the file locked by another process, and a disk that fills up.

A write against a lock waits for the busy timeout (set short here with `?timeout=` in the
URL), then fails with a message that says what happened; reads go on, since WAL lets
readers past a writer. A full disk fails the load whole. Afterwards the store is unchanged,
passes the integrity check and takes the same write again.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from mcp import Client
from mcp.types import TextContent
from sqlalchemy import event

from resilience_mcp.catalog import load_catalog
from resilience_mcp.cli import main
from resilience_mcp.doctor import check_store
from resilience_mcp.errors import StoreError
from resilience_mcp.server import build_server
from resilience_mcp.store import Store
from tests.reliability.generate import write_catalog
from tests.reliability.snapshot import snapshot
from tests.support import demo_config

pytestmark = pytest.mark.anyio

# Seconds a write waits for the lock in these tests.
BUSY_TIMEOUT = 0.3
# Bound on anything that could hang: a wait for the lock holder, a call, a load.
LIMIT = 60

# Holds an exclusive write lock on the database until its standard input closes.
LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
conn.execute("UPDATE catalog_state SET changed_at = changed_at")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite+aiosqlite:///").split("?", 1)[0]


@asynccontextmanager
async def locked_by_another_process(path: str) -> AsyncIterator[Process]:
    """Another process holds the write lock of the database at `path` while the block runs."""
    process = await anyio.open_process([sys.executable, "-c", LOCK_HOLDER, path])
    assert process.stdout is not None
    assert process.stdin is not None
    try:
        with anyio.fail_after(LIMIT):
            said = b""
            while b"locked\n" not in said:
                said += await process.stdout.receive()
        yield process
    finally:
        await process.stdin.aclose()
        with anyio.fail_after(LIMIT):
            await process.wait()


def text_of(result: Any) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, TextContent))


def team_file(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(f"apiVersion: resilience/v1\nkind: Team\nmetadata: {{name: {name}}}\n")
    return path


async def doctor_errors(store: Store) -> list[str]:
    report = await check_store(store, now=datetime.now(UTC))
    return [finding.message for finding in report.errors]


@pytest.mark.slow
async def test_a_load_waits_out_the_busy_timeout_on_a_lock_then_fails_clearly(
    demo_db: str, tmp_path: Path
) -> None:
    store = await Store.open(f"{demo_db}?timeout={BUSY_TIMEOUT}")
    try:
        before = await snapshot(store)
        version = await store.catalog_version()

        async with locked_by_another_process(sqlite_path(demo_db)):
            with anyio.fail_after(LIMIT):
                assert await store.catalog_version() == version
                started = time.monotonic()
                with pytest.raises(StoreError, match="locked by another writer"):
                    await load_catalog(store, [team_file(tmp_path / "new", "team-late")])
                waited = time.monotonic() - started

        # The error came only once the busy timeout had run out (a lower bound: how much
        # longer it took depends on the machine).
        assert waited >= BUSY_TIMEOUT
        assert await snapshot(store) == before
        report = await load_catalog(store, [team_file(tmp_path / "new", "team-late")])
        assert report.created == {"Team": 1}
        assert await doctor_errors(store) == []
    finally:
        await store.close()


@pytest.mark.slow
async def test_a_write_tool_on_a_locked_database_answers_an_error_and_reads_answer_on(
    demo_db: str,
) -> None:
    url = f"{demo_db}?timeout={BUSY_TIMEOUT}"
    config = demo_config(url, toolsets=("all",), enable_writes=True)
    declare = {"title": "Checkout is down", "severity": "SEV2", "services": ["checkout"]}

    async with Client(build_server(config)) as client:
        async with locked_by_another_process(sqlite_path(demo_db)):
            with anyio.fail_after(LIMIT):
                read = await client.call_tool("get_service", {"name": "checkout"})
                started = time.monotonic()
                refused = await client.call_tool("declare_incident", declare)
                waited = time.monotonic() - started
        with anyio.fail_after(LIMIT):
            accepted = await client.call_tool("declare_incident", declare)

    assert not read.is_error
    assert refused.is_error
    assert "locked by another writer" in text_of(refused)
    assert waited >= BUSY_TIMEOUT
    assert not accepted.is_error, text_of(accepted)


def limit_pages(store: Store, pages: int) -> Callable[[Any, Any], None]:
    """Cap the database file at `pages` pages on every new connection, as a full disk would."""

    def cap(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA max_page_count={pages}")
        cursor.close()

    event.listen(store.engine.sync_engine, "connect", cap)
    return cap


async def page_count(store: Store) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.exec_driver_sql("PRAGMA page_count")).scalar_one())


async def test_a_load_that_fills_the_disk_fails_whole_and_the_store_stays_usable(
    demo_db: str, tmp_path: Path
) -> None:
    folder = tmp_path / "big"
    expected = write_catalog(folder, services=300)
    store = await Store.open(demo_db)
    try:
        before = await snapshot(store)
        cap = limit_pages(store, await page_count(store) + 8)
        # Connections opened from now on carry the cap.
        await store.engine.dispose()

        with pytest.raises(StoreError, match="disk holding the database is full"):
            await load_catalog(store, [folder])

        assert await snapshot(store) == before
        assert await doctor_errors(store) == []
        event.remove(store.engine.sync_engine, "connect", cap)
        await store.engine.dispose()
        report = await load_catalog(store, [folder])
        assert sum(report.created.values()) == sum(expected.values())
    finally:
        await store.close()


@pytest.mark.slow
def test_the_load_command_on_a_locked_database_prints_the_reason_and_exits_one(
    demo_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = sqlite_path(demo_db)
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert holder.stdin is not None
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline() == b"locked\n"
        url = f"sqlite:///{path}?timeout={BUSY_TIMEOUT}"
        started = time.monotonic()
        code = main(["-q", "load", str(team_file(tmp_path / "new", "team-late")), "--db", url])
        waited = time.monotonic() - started
    finally:
        holder.stdin.close()
        holder.stdout.close()
        holder.wait(timeout=LIMIT)

    err = capsys.readouterr().err
    assert code == 1
    assert "error: The database is locked by another writer" in err
    assert waited >= BUSY_TIMEOUT
    assert "Traceback" not in err
