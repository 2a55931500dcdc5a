"""Catalog-wide answers are served again only while the store is unchanged."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from mcp import Client

from resilience_mcp import models as m
from resilience_mcp.catalog import DEMO_ANCHOR
from resilience_mcp.server import build_server
from resilience_mcp.server.state import AnswerCache
from resilience_mcp.store import Store, VersionWatch
from tests.support import demo_config

pytestmark = pytest.mark.anyio

START = DEMO_ANCHOR
TOOL = "get_dora_metrics"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class Counted:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        return self.calls


async def write_something(store: Store) -> None:
    async with store.transaction():
        pass


async def test_an_answer_is_kept_until_the_store_changes(store: Store) -> None:
    cache = AnswerCache(VersionWatch(store), timedelta(minutes=1), Clock())
    compute = Counted()

    assert [await cache.get(TOOL, ("k",), compute), await cache.get(TOOL, ("k",), compute)] == [
        1,
        1,
    ]
    assert await cache.get(TOOL, ("other",), compute) == 2

    await write_something(store)
    assert await cache.get(TOOL, ("k",), compute) == 3


async def test_an_answer_is_kept_no_longer_than_its_ttl(store: Store) -> None:
    clock = Clock()
    cache = AnswerCache(VersionWatch(store), timedelta(minutes=1), clock)
    compute = Counted()

    await cache.get(TOOL, ("k",), compute)
    clock.now += timedelta(seconds=59)
    assert await cache.get(TOOL, ("k",), compute) == 1
    clock.now += timedelta(seconds=1)
    assert await cache.get(TOOL, ("k",), compute) == 2


async def test_a_ttl_of_zero_computes_every_answer(store: Store) -> None:
    cache = AnswerCache(VersionWatch(store), timedelta(0), Clock())
    compute = Counted()

    assert [await cache.get(TOOL, ("k",), compute) for _ in range(3)] == [1, 2, 3]


async def test_callers_asking_at_once_share_one_computation(store: Store) -> None:
    cache = AnswerCache(VersionWatch(store), timedelta(minutes=1), Clock())
    release = asyncio.Event()
    calls = 0

    async def slow() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return calls

    waiting = [asyncio.create_task(cache.get(TOOL, ("k",), slow)) for _ in range(5)]
    await asyncio.sleep(0.05)
    release.set()

    assert await asyncio.gather(*waiting) == [1] * 5
    assert calls == 1


async def test_the_oldest_answers_go_first_when_the_cache_is_full(store: Store) -> None:
    cache = AnswerCache(VersionWatch(store), timedelta(minutes=1), Clock(), size=2)
    compute = Counted()

    await cache.get(TOOL, ("a",), compute)
    await cache.get(TOOL, ("b",), compute)
    await cache.get(TOOL, ("a",), compute)
    await cache.get(TOOL, ("c",), compute)

    assert await cache.get(TOOL, ("a",), compute) == 1
    assert await cache.get(TOOL, ("b",), compute) == 4


async def call(client: Client, tool: str, /, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


def checkout_count(answer: dict[str, Any]) -> int:
    return next(g["count"] for g in answer["groups"] if g["label"] == "checkout")


async def test_a_write_through_this_server_shows_in_the_next_answer(demo_db: str) -> None:
    server = build_server(demo_config(demo_db, enable_writes=True, toolsets=("all",)))
    async with Client(server) as client:
        before = checkout_count(await call(client, "find_recurring_incidents", limit=50))
        await call(
            client,
            "declare_incident",
            title="Checkout times out again",
            severity="SEV3",
            services=["checkout"],
        )
        after = checkout_count(await call(client, "find_recurring_incidents", limit=50))

    assert after == before + 1


async def test_a_write_through_another_replica_shows_once_the_versions_are_read_again(
    demo_db: str, demo_store: Store
) -> None:
    max_age = 0.05
    server = build_server(demo_config(demo_db, toolsets=("all",), version_max_age_seconds=max_age))
    async with Client(server) as client:
        first = await call(client, "get_dora_metrics")
        assert await call(client, "get_dora_metrics") == first
        async with demo_store.transaction() as session:
            session.add(
                m.Deployment(
                    name="deploy-from-elsewhere",
                    service="checkout",
                    environment="prod-eu",
                    version="9.9.9",
                    status="success",
                    deploy_time=START - timedelta(hours=1),
                )
            )
        await asyncio.sleep(max_age)
        again = await call(client, "get_dora_metrics")

    deployments = [first["deployment_frequency"], again["deployment_frequency"]]
    assert deployments[1]["deployments"] == deployments[0]["deployments"] + 1


async def test_a_tool_not_listed_as_keeping_answers_is_refused(store: Store) -> None:
    cache = AnswerCache(VersionWatch(store), timedelta(minutes=1), Clock())

    with pytest.raises(ValueError, match="KEPT_ANSWERS"):
        await cache.get("get_owner", ("payments-api",), Counted())
