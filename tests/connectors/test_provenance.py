"""Answers say where a synced owner or on-call came from, how fresh it is, and when stale."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from mcp import Client
from mcp.types import TextContent
from sqlalchemy import update
from sqlmodel import col

from resilience_mcp import models as m
from resilience_mcp.connectors.http import ApiClient
from resilience_mcp.connectors.pagerduty import sync_pagerduty
from resilience_mcp.server import build_server
from resilience_mcp.server.state import ServerConfig
from resilience_mcp.store import Store
from tests.connectors.fakes import FakeApi, Sleeps
from tests.connectors.payloads import CATALOG, NOW, pagerduty_account
from tests.support import fixed_clock, load_yaml

pytestmark = pytest.mark.anyio


@pytest.fixture
async def synced(store: Store) -> Store:
    """The catalog from files, then PagerDuty synced, its facts confirmed at a set time."""
    await load_yaml(store, CATALOG, source="local")
    api = FakeApi(pagerduty_account())
    async with ApiClient(
        "pagerduty", "https://api.pagerduty.com", transport=api.transport, sleep=Sleeps()
    ) as remote:
        await sync_pagerduty(store, remote, now=NOW)
    return store


async def synced_ago(store: Store, age: timedelta) -> None:
    async with store.transaction() as session:
        for table in (m.Team, m.Person, m.OnCallRotation):
            await session.execute(
                update(table).where(col(table.source) == "pagerduty").values(synced_at=NOW - age)
            )


async def owner(db_url: str, name: str, **options: Any) -> tuple[str, dict[str, Any]]:
    config = ServerConfig(db_url=db_url, clock=fixed_clock(NOW), **options)
    async with Client(build_server(config)) as client:
        result = await client.call_tool("get_owner", {"name": name})
    assert not result.is_error
    assert result.structured_content is not None
    text = "\n".join(b.text for b in result.content if isinstance(b, TextContent))
    return text, result.structured_content["owner"]


async def test_an_owner_and_on_call_from_pagerduty_say_so_and_how_fresh(
    synced: Store, db_url: str
) -> None:
    await synced_ago(synced, timedelta(minutes=4))

    text, summary = await owner(db_url, "site-reliability")

    assert "owner from PagerDuty, synced 4 minutes ago" in text
    assert "on-call from PagerDuty, synced 4 minutes ago" in text
    assert summary["owner_source"]["source"] == "pagerduty"
    assert summary["owner_source"]["age_seconds"] == 240
    assert summary["owner_source"]["stale"] is False


async def test_a_hand_written_owner_has_no_sync_note_but_its_on_call_does(
    synced: Store, db_url: str
) -> None:
    await synced_ago(synced, timedelta(hours=3))

    text, summary = await owner(db_url, "payments-api")

    assert "owner from" not in text
    assert "on-call from PagerDuty, synced 3 hours ago" in text
    assert summary["owner_source"]["source"] == "local"
    assert summary["on_call"][0]["person"]["name"] == "dev-raman"


@pytest.mark.parametrize(("allowed_hours", "stale"), [(24 * 7, True), (24 * 30, False)])
async def test_facts_synced_longer_ago_than_allowed_are_flagged_stale(
    synced: Store, db_url: str, allowed_hours: float, stale: bool
) -> None:
    await synced_ago(synced, timedelta(days=8))

    text, summary = await owner(db_url, "site-reliability", stale_after_hours=allowed_hours)

    assert summary["owner_source"]["stale"] is stale
    assert summary["on_call_source"]["stale"] is stale
    assert ("synced 8 days ago (stale)" in text) is stale
