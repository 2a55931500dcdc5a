"""PostgreSQL going away under a serving store.

Two ways. On the machine's shared server, which is never restarted, the server side of our
own connections is killed with `pg_terminate_backend`, picked out by the
`application_name` the store under test sets. And a private, throwaway cluster
(`private_postgres.py`) is really stopped and started again while a server is serving.
A call in flight then fails with a message that says the connection was lost, a call while
the database is down with one that says it cannot connect, a load in flight writes
nothing, and the calls after it is back succeed on fresh connections (the pool pings
before it hands a connection out), with no restart of our server.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from resilience_mcp.catalog import load_catalog
from resilience_mcp.errors import StoreError
from resilience_mcp.server import ServerConfig, build_server
from resilience_mcp.store import Store
from tests.reliability.generate import write_catalog
from tests.reliability.private_postgres import PrivatePostgres, private_postgres, unavailable_reason
from tests.reliability.snapshot import snapshot
from tests.support import BACKENDS, PG_URL, load_yaml

pytestmark = pytest.mark.anyio

LIMIT = 60
BASE = """\
apiVersion: resilience/v1
kind: Team
metadata: {name: team-payments}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: payments-api}
spec: {owner: team-payments}
"""


@pytest.fixture(params=[b for b in BACKENDS if b.id == "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """These tests run on PostgreSQL only."""
    return str(request.param)


@pytest.fixture
def app_name() -> str:
    return f"rmcp-fault-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def url(db_url: str, app_name: str) -> str:
    """The test's schema, holding a small catalog, reached by connections named `app_name`."""
    named = f"{db_url}&application_name={app_name}"
    store = await Store.open(named)
    try:
        await load_yaml(store, BASE)
    finally:
        await store.close()
    return named


@pytest.fixture
async def admin() -> AsyncIterator[AsyncEngine]:
    """A connection of the test's own, which nothing kills."""
    engine = create_async_engine(PG_URL)
    try:
        yield engine
    finally:
        await engine.dispose()


async def terminate(admin: AsyncEngine, app_name: str) -> int:
    """Kill the server side of every connection named `app_name`; how many there were."""
    async with admin.connect() as conn:
        killed = await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND application_name = :name"
            ),
            {"name": app_name},
        )
        return len(killed.all())


async def wait_until_blocked(admin: AsyncEngine, app_name: str) -> None:
    """Poll until a connection named `app_name` waits for a lock."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE application_name = :name AND wait_event_type = 'Lock'"
    )
    with anyio.fail_after(LIMIT):
        while True:
            async with admin.connect() as conn:
                if (await conn.execute(query, {"name": app_name})).scalar_one():
                    return
            await anyio.sleep(0.02)


async def lock(conn: AsyncConnection, url: str, table: str, mode: str) -> None:
    schema = make_url(url).query["search_path"]
    await conn.execute(text(f'LOCK TABLE "{schema}".{table} IN {mode} MODE'))


def text_of(result: CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, TextContent))


async def test_connections_killed_between_calls_are_replaced_without_an_error(
    url: str, app_name: str, admin: AsyncEngine
) -> None:
    async with Client(build_server(ServerConfig(db_url=url, toolsets=("all",)))) as client:
        first = await client.call_tool("get_service", {"name": "payments-api"})
        killed = await terminate(admin, app_name)
        after = [await client.call_tool("get_service", {"name": "payments-api"}) for _ in "abc"]

    assert killed >= 1
    assert not first.is_error
    assert [result.is_error for result in after] == [False, False, False]


async def test_a_call_in_flight_when_the_server_goes_fails_cleanly_and_the_next_succeeds(
    url: str, app_name: str, admin: AsyncEngine
) -> None:
    results: list[CallToolResult] = []
    # Read the versions on every call, so that the call in flight waits on the lock below.
    config = ServerConfig(db_url=url, toolsets=("all",), version_max_age_seconds=0)
    async with Client(build_server(config)) as client:
        await client.call_tool("get_service", {"name": "payments-api"})

        async def call() -> None:
            results.append(await client.call_tool("get_service", {"name": "payments-api"}))

        async with admin.connect() as blocker:
            # The call reads the catalog version first: it waits on this lock, in flight.
            await lock(blocker, url, "catalog_state", "ACCESS EXCLUSIVE")
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(call)
                await wait_until_blocked(admin, app_name)
                assert await terminate(admin, app_name) >= 1
                await blocker.rollback()
        with anyio.fail_after(LIMIT):
            results.append(await client.call_tool("get_service", {"name": "payments-api"}))

    in_flight, next_call = results
    assert in_flight.is_error
    assert "connection to the database was lost" in text_of(in_flight)
    assert "failed unexpectedly" not in text_of(in_flight)
    assert not next_call.is_error, text_of(next_call)


async def test_a_load_in_flight_when_the_server_goes_writes_nothing_and_can_run_again(
    url: str, app_name: str, admin: AsyncEngine, tmp_path: Path
) -> None:
    folder = tmp_path / "catalog"
    expected = write_catalog(folder, services=60)
    store = await Store.open(url)
    try:
        before = await snapshot(store)
        failure: list[BaseException] = []

        async def load() -> None:
            try:
                await load_catalog(store, [folder])
            except StoreError as exc:
                failure.append(exc)

        async with admin.connect() as blocker:
            # Reads pass this lock; the load's first write to services waits on it, after
            # it has written teams and people in the same transaction.
            await lock(blocker, url, "service", "EXCLUSIVE")
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(load)
                await wait_until_blocked(admin, app_name)
                await terminate(admin, app_name)
                await blocker.rollback()

        assert len(failure) == 1
        assert "connection to the database was lost" in str(failure[0])
        assert await snapshot(store) == before
        report = await load_catalog(store, [folder])
        assert sum(report.created.values()) == sum(expected.values())
    finally:
        await store.close()


# A real restart, on a cluster of the test's own


@pytest.fixture
def cluster() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL cluster this test may stop and start; deleted afterwards."""
    reason = unavailable_reason()
    if PG_URL == "off":
        reason = "PostgreSQL tests are off (RESILIENCE_MCP_TEST_PG=off)"
    if reason is not None:
        if os.environ.get("RESILIENCE_MCP_TEST_PG_REQUIRED") == "1":
            pytest.fail(f"PostgreSQL is required for this run, but {reason}.")
        pytest.skip(f"cannot make a private PostgreSQL cluster: {reason}")
    with private_postgres() as made:
        yield made
    assert not made.folder.exists(), "the private cluster's folder was left behind"


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    with anyio.fail_after(LIMIT):
        return await client.call_tool(tool, arguments)


@pytest.mark.slow
@pytest.mark.postgres
async def test_a_restart_of_postgres_fails_calls_cleanly_and_later_calls_need_no_restart(
    cluster: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"rmcp-restart-{uuid.uuid4().hex[:10]}"
    url = f"{cluster.url}?application_name={name}"
    store = await Store.open(url)
    try:
        await load_yaml(store, BASE)
    finally:
        await store.close()
    # Read the versions on every call, so that the call in flight waits on the lock below.
    config = ServerConfig(
        db_url=url, toolsets=("all",), enable_writes=True, version_max_age_seconds=0
    )
    read = ("get_service", {"name": "payments-api"})
    declare = (
        "declare_incident",
        {"title": "Payments down", "severity": "SEV2", "services": ["payments-api"]},
    )
    in_flight: list[CallToolResult] = []
    admin = create_async_engine(cluster.url)

    async with Client(build_server(config)) as client:
        before = await call(client, *read)

        async def held() -> None:
            in_flight.append(await call(client, *read))

        blocker = await admin.connect()
        try:
            # The call reads the catalog version first: it waits on this lock, in flight,
            # until the server goes down under it.
            await blocker.execute(text("LOCK TABLE catalog_state IN ACCESS EXCLUSIVE MODE"))
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(held)
                await wait_until_blocked(admin, name)
                await cluster.stop()
        finally:
            # Its server side is gone: dropped, not rolled back.
            await blocker.invalidate()
            await blocker.close()
            await admin.dispose()
        while_down = [await call(client, *read), await call(client, *declare)]

        await cluster.start()
        after = [await call(client, *read), await call(client, *declare), await call(client, *read)]

    assert not before.is_error, text_of(before)
    (cut,) = in_flight
    assert cut.is_error
    assert "connection to the database was lost" in text_of(cut)
    for result in while_down:
        assert result.is_error
        assert "Cannot connect to the database server" in text_of(result)
        assert "retry in a moment" in text_of(result)
    for result in [cut, *while_down]:
        assert "failed unexpectedly" not in text_of(result)
    assert [result.is_error for result in after] == [False, False, False], [
        text_of(r) for r in after
    ]
    # Every failure was answered, not crashed on: nothing logged a traceback.
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
