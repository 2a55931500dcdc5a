"""Answers say where a synced owner or on-call came from, its id there, how fresh it is, and
when it is stale."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from mcp import Client
from mcp.types import TextContent
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from resilience_mcp import models as m
from resilience_mcp.catalog.files import Document
from resilience_mcp.connectors.backstage import sync_backstage
from resilience_mcp.connectors.documents import SyncReport, catalog_document, load_synced
from resilience_mcp.connectors.flags import sync_flagd
from resilience_mcp.connectors.http import ApiClient, RetryPolicy
from resilience_mcp.connectors.pagerduty import sync_pagerduty
from resilience_mcp.doctor import Finding, check_store
from resilience_mcp.errors import UpstreamError
from resilience_mcp.graph import GraphCache
from resilience_mcp.graph.cards import owner_summary
from resilience_mcp.graph.provenance import last_confirmed
from resilience_mcp.server import build_server
from resilience_mcp.server.state import ServerConfig
from resilience_mcp.store import Store
from tests.connectors.fakes import FakeApi, Sleeps, failure
from tests.connectors.payloads import CATALOG, NOW, backstage_catalog, pagerduty_account
from tests.support import fixed_clock, load_yaml

pytestmark = pytest.mark.anyio


async def sync_pagerduty_at(store: Store, at: datetime, api: FakeApi | None = None) -> SyncReport:
    api = api or FakeApi(pagerduty_account())
    async with ApiClient(
        "pagerduty",
        "https://api.pagerduty.com",
        transport=api.transport,
        sleep=Sleeps(),
        retry=RetryPolicy(retries=1),
    ) as remote:
        return await sync_pagerduty(store, remote, now=at)


@pytest.fixture
async def synced(store: Store) -> Store:
    """The catalog from files, then PagerDuty synced, its facts confirmed at a set time."""
    await load_yaml(store, CATALOG, source="local")
    await sync_pagerduty_at(store, NOW)
    return store


async def synced_ago(store: Store, age: timedelta) -> None:
    async with store.transaction() as session:
        for table in (m.Team, m.Person, m.OnCallRotation):
            await session.execute(
                update(table).where(col(table.source) == "pagerduty").values(synced_at=NOW - age)
            )


async def owner(
    db_url: str, name: str, at: datetime = NOW, **options: Any
) -> tuple[str, dict[str, Any]]:
    config = ServerConfig(db_url=db_url, clock=fixed_clock(at), **options)
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
    assert "external_id" not in summary["owner_source"]
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


async def incident(
    db_url: str, key: str, at: datetime = NOW, **options: Any
) -> tuple[str, dict[str, Any]]:
    config = ServerConfig(db_url=db_url, clock=fixed_clock(at), **options)
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
    assert "external_id" not in record
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
    await sync_flags_at(store, NOW)


async def sync_flags_at(store: Store, at: datetime) -> SyncReport:
    api = FakeApi(documents={"/flags.json": FLAGD})
    async with ApiClient("flagd", "http://flagd.acme.example", transport=api.transport) as remote:
        return await sync_flagd(store, remote, environment="production", now=at, path="/flags.json")


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
    assert "source" not in states["staging"], "staging's state was written by hand"
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


# Syncs that find nothing changed

# A week and a day after the first sync: past the default stale age.
LATER = NOW + timedelta(days=8)


async def versions(store: Store) -> tuple[int, int, int]:
    return (await store.graph_version(), await store.catalog_version(), await store.flag_version())


async def confirmations(store: Store) -> list[tuple[str, str, datetime, datetime]]:
    async with store.session() as session:
        rows = (await session.execute(select(m.SourceConfirmation))).scalars().all()
    return sorted((r.source, r.kind, r.held_since, r.confirmed_at) for r in rows)


async def stale_findings(store: Store, at: datetime) -> list[Finding]:
    report = await check_store(store, now=at, stale_after=timedelta(days=1))
    return [f for c in report.checks if c.name == "freshness" for f in c.findings]


async def test_a_sync_that_changes_nothing_confirms_its_facts_and_moves_no_version(
    synced: Store, db_url: str
) -> None:
    before = await versions(synced)

    report = await sync_pagerduty_at(synced, LATER)

    assert report.load is not None
    assert (report.load.changed, report.load.unchanged) == (False, 6)
    assert await versions(synced) == before
    text, summary = await owner(db_url, "site-reliability", LATER + timedelta(minutes=4))
    assert "owner from PagerDuty (PTEAM02), synced 4 minutes ago" in text
    assert "on-call from PagerDuty (PSCH02), synced 4 minutes ago" in text
    assert summary["owner_source"]["stale"] is False
    assert summary["on_call_source"]["stale"] is False
    record_text, _ = await incident(db_url, "PD-1042", at=LATER + timedelta(hours=3))
    assert "record from PagerDuty (PINC01), synced 3 hours ago" in record_text
    assert await stale_findings(synced, LATER + timedelta(hours=1)) == []


async def test_a_running_server_shows_the_confirmation_without_rebuilding_its_graph(
    synced: Store,
) -> None:
    cache = GraphCache(synced)
    before = await cache.get()

    await sync_pagerduty_at(synced, LATER)
    after = await cache.get()

    assert after.teams is before.teams, "the graph was not rebuilt"
    summary = owner_summary(after, "Team", "site-reliability", LATER)
    assert summary.owner_source is not None
    assert summary.owner_source.synced_at == LATER
    assert summary.on_call_source is not None
    assert summary.on_call_source.synced_at == LATER
    assert await cache.get() is after


async def test_what_a_source_no_longer_sends_is_not_confirmed_by_its_syncs(
    store: Store,
) -> None:
    everything = backstage_catalog()
    without_user = [e for e in everything if e["kind"] != "User"]
    await sync_backstage_at(store, everything, NOW)

    await sync_backstage_at(store, without_user, LATER)
    cache = GraphCache(store)
    graph = await cache.get()
    before = await versions(store)
    await sync_backstage_at(store, without_user, LATER + timedelta(days=1))
    graph = await cache.get()

    assert await versions(store) == before, "the same set again rewrites nothing"
    assert last_confirmed(graph.people["dev.raman"], graph.confirmations) == NOW
    assert last_confirmed(graph.teams["payments"], graph.confirmations) == LATER + timedelta(days=1)
    [finding] = await stale_findings(store, LATER + timedelta(days=1, hours=1))
    assert "1 entities from source 'backstage'" in finding.message
    assert finding.examples == ("1 Person",)


async def sync_backstage_at(store: Store, entities: list[dict[str, Any]], at: datetime) -> None:
    api = FakeApi({"/api/catalog/entities": ("items", entities)})
    remote = ApiClient("backstage", "https://backstage.acme.example", transport=api.transport)
    async with remote:
        await sync_backstage(store, remote, prune=False, now=at)


async def test_a_sync_that_fails_while_fetching_confirms_nothing(
    synced: Store, db_url: str
) -> None:
    await synced_ago(synced, timedelta(days=8))
    before = (await versions(synced), await confirmations(synced))
    api = FakeApi(pagerduty_account())
    api.fail("/log_entries", *[failure(500) for _ in range(2)])

    with pytest.raises(UpstreamError):
        await sync_pagerduty_at(synced, NOW, api)

    assert (await versions(synced), await confirmations(synced)) == before
    text, _ = await owner(db_url, "site-reliability")
    assert "owner from PagerDuty (PTEAM02), synced 8 days ago (stale)" in text


async def test_a_sync_that_fails_inside_its_load_writes_and_confirms_nothing(
    synced: Store,
) -> None:
    before = (await versions(synced), await confirmations(synced))
    renamed = catalog_document(
        "pagerduty", 1, "Team", "site-reliability", {}, title="Renamed", external_id="PTEAM02"
    )

    async def fail(loaded: Sequence[Document], session: AsyncSession) -> None:
        raise RuntimeError("the connection dropped")

    with pytest.raises(RuntimeError, match="connection dropped"):
        await load_synced(
            synced,
            [renamed],
            SyncReport("pagerduty", "pagerduty"),
            prune=False,
            now=LATER,
            confirm=fail,
        )

    assert (await versions(synced), await confirmations(synced)) == before
    graph = await GraphCache(synced).get()
    assert graph.teams["site-reliability"].title != "Renamed"
    assert last_confirmed(graph.teams["site-reliability"], graph.confirmations) == NOW


async def test_a_flagd_sync_that_changes_nothing_refreshes_its_states_and_moves_no_version(
    store: Store, db_url: str
) -> None:
    await sync_flags(store)
    before = await versions(store)

    report = await sync_flags_at(store, LATER)

    assert report.load is not None
    assert not report.load.changed
    assert await versions(store) == before
    text, flag = await flags(db_url, 8 * 24 + 2, {}, None)
    states = {s["environment"]: s for s in flag["states"]}
    assert states["production"]["source"]["age_seconds"] == 2 * 3600
    assert states["production"]["source"]["stale"] is False
    assert "production: on (state from flagd, synced 2 hours ago)" in text
    assert await stale_findings(store, LATER + timedelta(hours=2)) == []
