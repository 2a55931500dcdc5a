"""Answers say where a synced owner or on-call came from, its id there, how fresh it is, and
when it is stale."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from mcp import Client
from mcp.types import TextContent
from sqlalchemy import update
from sqlmodel import col

from resilience_mcp import models as m
from resilience_mcp.connectors.backstage import sync_backstage
from resilience_mcp.connectors.flags import sync_flagd
from resilience_mcp.connectors.http import ApiClient
from resilience_mcp.connectors.pagerduty import sync_pagerduty
from resilience_mcp.server import build_server
from resilience_mcp.server.state import ServerConfig
from resilience_mcp.store import Store
from tests.connectors.fakes import FakeApi, Sleeps
from tests.connectors.payloads import CATALOG, NOW, backstage_catalog, pagerduty_account
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
        result = await client.call_tool("get_owner", {"name": name, "detail": "full"})
    assert not result.is_error
    assert result.structured_content is not None
    text = "\n".join(b.text for b in result.content if isinstance(b, TextContent))
    return text, result.structured_content["owner"]


async def test_an_owner_and_on_call_from_pagerduty_say_so_and_how_fresh(
    synced: Store, db_url: str
) -> None:
    await synced_ago(synced, timedelta(minutes=4))

    text, summary = await owner(db_url, "site-reliability")

    assert "owner from PagerDuty (PTEAM02), synced 4 minutes ago" in text
    assert "on-call from PagerDuty (PSCH02), synced 4 minutes ago" in text
    assert summary["owner_source"]["source"] == "pagerduty"
    assert summary["owner_source"]["external_id"] == "PTEAM02"
    assert summary["owner_source"]["age_seconds"] == 240
    assert summary["owner_source"]["stale"] is False
    assert summary["on_call_source"]["external_id"] == "PSCH02"


async def test_a_hand_written_owner_has_no_sync_note_but_its_on_call_does(
    synced: Store, db_url: str
) -> None:
    await synced_ago(synced, timedelta(hours=3))

    text, summary = await owner(db_url, "payments-api")

    assert "owner from" not in text
    assert "on-call from PagerDuty (PSCH01), synced 3 hours ago" in text
    assert summary["owner_source"]["source"] == "local"
    assert summary["owner_source"]["external_id"] is None
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


async def test_a_service_from_backstage_shows_its_uid_on_its_card_and_owner(
    store: Store, db_url: str
) -> None:
    api = FakeApi({"/api/catalog/entities": ("items", backstage_catalog())})
    remote = ApiClient("backstage", "https://backstage.acme.example", transport=api.transport)
    async with remote:
        await sync_backstage(store, remote)
    config = ServerConfig(db_url=db_url, clock=fixed_clock(NOW))

    async with Client(build_server(config)) as client:
        result = await client.call_tool("get_service", {"name": "payments-api", "detail": "full"})

    assert result.structured_content is not None
    card = result.structured_content
    assert card["provenance"]["source"] == "backstage"
    assert card["provenance"]["external_id"] == "uid-component-payments-api"
    assert card["owner"]["owner_source"]["external_id"] == "uid-component-payments-api"
    text = "\n".join(b.text for b in result.content if isinstance(b, TextContent))
    assert "owner from Backstage (uid-component-payments-api), synced" in text


async def incident(db_url: str, key: str, **options: Any) -> tuple[str, dict[str, Any]]:
    config = ServerConfig(db_url=db_url, clock=fixed_clock(NOW), **options)
    async with Client(build_server(config)) as client:
        result = await client.call_tool("get_incident", {"key": key, "detail": "full"})
    assert not result.is_error
    assert result.structured_content is not None
    return "\n".join(b.text for b in result.content if isinstance(b, TextContent)), (
        result.structured_content
    )


@pytest.mark.parametrize(("allowed_hours", "stale"), [(None, False), (1, True)])
async def test_an_incident_from_pagerduty_says_so_with_its_id_and_how_fresh(
    synced: Store, db_url: str, allowed_hours: float | None, stale: bool
) -> None:
    async with synced.transaction() as session:
        await session.execute(
            update(m.Incident)
            .where(col(m.Incident.source) == "pagerduty")
            .values(synced_at=NOW - timedelta(hours=3))
        )

    text, record = await incident(db_url, "PD-1042", stale_after_hours=allowed_hours)

    assert record["external_id"] == "PINC01"
    assert record["source"]["source"] == "pagerduty"
    assert record["source"]["age_seconds"] == 3 * 3600
    assert record["source"]["stale"] is stale
    note = "record from PagerDuty (PINC01), synced 3 hours ago" + (" (stale)" if stale else "")
    assert text.splitlines()[1] == note


async def test_a_hand_written_incident_has_no_sync_note(synced: Store, db_url: str) -> None:
    await load_yaml(
        synced,
        "apiVersion: resilience/v1\nkind: Incident\nmetadata: {name: INC-0001}\n"
        "spec: {severity: SEV3, status: resolved, startedAt: '2026-11-01T10:00:00Z'}\n",
        source="local",
    )

    text, record = await incident(db_url, "INC-0001")

    assert record["source"]["source"] == "local"
    assert record["external_id"] is None
    assert "synced" not in text


FLAG_CATALOG = """\
apiVersion: resilience/v1
kind: Environment
metadata: {name: production}
---
apiVersion: resilience/v1
kind: Environment
metadata: {name: staging}
spec: {type: staging}
---
apiVersion: resilience/v1
kind: Environment
metadata: {name: production-acme}
spec: {type: production, parent: production, tenant: acme}
---
apiVersion: resilience/v1
kind: FeatureFlag
metadata: {name: paymentFailure}
spec:
  purpose: kill-switch
  states: [{environment: staging, enabled: true}]
"""
FLAGD = {
    "flags": {
        "paymentFailure": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "on",
        }
    }
}


async def flags(
    db_url: str, hours_later: float, arguments: dict[str, Any], allowed_hours: float | None
) -> tuple[str, dict[str, Any]]:
    config = ServerConfig(
        db_url=db_url,
        clock=fixed_clock(NOW + timedelta(hours=hours_later)),
        stale_after_hours=allowed_hours,
    )
    async with Client(build_server(config)) as client:
        result = await client.call_tool("list_feature_flags", {**arguments, "detail": "full"})
    assert not result.is_error
    assert result.structured_content is not None
    text = "\n".join(b.text for b in result.content if isinstance(b, TextContent))
    return text, result.structured_content["flags"][0]


async def sync_flags(store: Store) -> None:
    await load_yaml(store, FLAG_CATALOG, source="local")
    api = FakeApi(documents={"/flags.json": FLAGD})
    async with ApiClient("flagd", "http://flagd.acme.example", transport=api.transport) as remote:
        await sync_flagd(store, remote, environment="production", now=NOW, path="/flags.json")


@pytest.mark.parametrize(("allowed_hours", "stale"), [(None, False), (1, True)])
async def test_a_flag_state_synced_from_flagd_says_so_and_how_fresh(
    store: Store, db_url: str, allowed_hours: float | None, stale: bool
) -> None:
    await sync_flags(store)

    text, flag = await flags(db_url, 2, {}, allowed_hours)

    states = {s["environment"]: s for s in flag["states"]}
    assert states["production"]["source"]["source"] == "flagd"
    assert states["production"]["source"]["age_seconds"] == 2 * 3600
    assert states["production"]["source"]["stale"] is stale
    assert states["staging"]["source"] is None, "staging's state was written by hand"
    note = "production: on (state from flagd, synced 2 hours ago"
    assert note + (" (stale))" if stale else ")") in text
    assert "staging: on (state from" not in text


async def test_a_tenant_cell_following_a_synced_state_shows_where_it_came_from(
    store: Store, db_url: str
) -> None:
    await sync_flags(store)

    text, flag = await flags(db_url, 0, {"environment": "acme"}, None)

    [cell] = [s for s in flag["states"] if s["environment"] == "production-acme"]
    assert cell["inherited_from"] == "production"
    assert cell["source"]["source"] == "flagd"
    assert "(from production) (state from flagd, synced just now)" in text
