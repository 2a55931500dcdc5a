"""PagerDuty: services matched, teams, people, who is on call, incidents with timelines."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlmodel import col, select

from resilience_mcp import models as m
from resilience_mcp.connectors.documents import SyncReport
from resilience_mcp.connectors.http import ApiClient, RetryPolicy
from resilience_mcp.connectors.pagerduty import pagerduty_headers, sync_pagerduty
from resilience_mcp.errors import UpstreamError
from resilience_mcp.graph import build_graph
from resilience_mcp.graph.cards import owner_summary
from resilience_mcp.store import Store
from tests.connectors.fakes import FakeApi, Sleeps, failure
from tests.connectors.payloads import CATALOG, NOW, pagerduty_account
from tests.support import load_yaml

pytestmark = pytest.mark.anyio

TOKEN = "u+pdKeyZq7Wn3xYvB"


def client(api: FakeApi, sleeps: Sleeps | None = None) -> ApiClient:
    return ApiClient(
        "pagerduty",
        "https://api.pagerduty.com",
        headers=pagerduty_headers(TOKEN),
        secrets=[TOKEN],
        transport=api.transport,
        sleep=sleeps or Sleeps(),
        retry=RetryPolicy(retries=2),
    )


@pytest.fixture
async def catalog(store: Store) -> Store:
    await load_yaml(store, CATALOG, source="local")
    return store


async def sync(store: Store, api: FakeApi, sleeps: Sleeps | None = None) -> SyncReport:
    async with client(api, sleeps) as remote:
        return await sync_pagerduty(store, remote, now=NOW, page_size=2)


async def incident(store: Store, key: str) -> m.Incident | None:
    async with store.session() as session:
        return await session.get(m.Incident, key)


async def test_services_match_by_annotation_or_name_and_the_rest_are_reported(
    catalog: Store,
) -> None:
    api = FakeApi(pagerduty_account())

    report = await sync(catalog, api)

    assert report.unmatched == [
        "PagerDuty service 'Legacy Billing' (PSVC003)",
        "PagerDuty incident PINC02: its service 'Legacy Billing' is not in the catalog",
    ]
    assert report.fetched == {
        "services": 3,
        "teams": 2,
        "escalation_policies": 2,
        "oncalls": 4,
        "incidents": 2,
        "log_entries": 5,
    }
    sent = api.requests[0].headers
    assert sent["Authorization"] == f"Token token={TOKEN}"
    assert sent["Accept"] == "application/vnd.pagerduty+json;version=2"
    oncalls = [r for r in api.requests if r.url.path == "/oncalls"]
    assert [r.url.params["offset"] for r in oncalls] == ["0", "2"]
    assert oncalls[0].url.params.get_list("include[]") == ["users"]


async def test_teams_and_people_the_catalog_lacks_are_added_and_the_rest_kept(
    catalog: Store,
) -> None:
    await sync(catalog, FakeApi(pagerduty_account()))

    graph = await build_graph(catalog)
    sre = graph.teams["site-reliability"]
    assert (sre.source, sre.external_id, sre.title) == ("pagerduty", "PTEAM02", "Site Reliability")
    assert graph.teams["team-payments"].source == "local"
    assert "payments" not in graph.teams
    ana = graph.people["ana.lima"]
    assert (ana.source, ana.email) == ("pagerduty", "ana.lima@acme.example")
    assert graph.people["dev-raman"].source == "local"
    assert graph.person_teams["ana.lima"] == {"team-payments", "site-reliability"}


async def test_who_is_on_call_now_and_next_comes_from_pagerduty(catalog: Store) -> None:
    await sync(catalog, FakeApi(pagerduty_account()))
    graph = await build_graph(catalog)

    now = owner_summary(graph, "Service", "payments-api", NOW)
    next_week = owner_summary(graph, "Service", "payments-api", NOW + timedelta(days=6))

    assert [c.person.name for c in now.on_call] == ["dev-raman"]
    assert now.on_call[0].shift_end == NOW + timedelta(days=5)
    assert [c.person.name for c in next_week.on_call] == ["ana.lima"]
    assert now.on_call_source is not None
    assert now.on_call_source.source == "pagerduty"
    assert now.owner_source is not None
    assert now.owner_source.source == "local"
    sre = owner_summary(graph, "Team", "site-reliability", NOW)
    assert [c.person.name for c in sre.on_call] == ["ana.lima"]


async def test_incidents_come_with_times_severity_service_and_timeline(catalog: Store) -> None:
    await sync(catalog, FakeApi(pagerduty_account()))

    resolved = await incident(catalog, "PD-1042")
    opened = await incident(catalog, "PD-1043")

    assert resolved is not None
    assert opened is not None
    started = NOW - timedelta(days=3)
    assert (resolved.severity, resolved.status, resolved.title) == (
        "SEV1",
        "resolved",
        "Card payments failing",
    )
    assert resolved.acknowledged_at == started + timedelta(minutes=4)
    assert resolved.resolved_at == started + timedelta(minutes=40)
    assert (resolved.source, resolved.external_id) == ("pagerduty", "PINC01")
    assert (opened.severity, opened.status, opened.resolved_at) == ("SEV3", "investigating", None)
    async with catalog.session() as session:
        links = await session.execute(
            select(m.IncidentLink.target).where(col(m.IncidentLink.incident) == "PD-1042")
        )
        timeline = await session.execute(
            select(m.TimelineEntry)
            .where(col(m.TimelineEntry.incident) == "PD-1042")
            .order_by(col(m.TimelineEntry.at))
        )
        entries = list(timeline.scalars().all())
    assert list(links.scalars().all()) == ["payments-api"]
    assert [e.kind for e in entries] == ["trigger", "acknowledge", "annotate", "resolve"]
    assert entries[2].text == "Rolled back 2.14.0"
    assert entries[2].author == "Dev Raman"


async def test_a_429_is_waited_out_and_the_sync_completes(catalog: Store) -> None:
    api, sleeps = FakeApi(pagerduty_account()), Sleeps()
    api.fail("/incidents", failure(429, retry_after="5"))

    await sync(catalog, api, sleeps)

    assert sleeps.delays == [5.0]
    assert await incident(catalog, "PD-1042") is not None


async def test_when_pagerduty_keeps_failing_the_last_good_data_stays(
    catalog: Store, caplog: pytest.LogCaptureFixture
) -> None:
    api = FakeApi(pagerduty_account())
    await sync(catalog, api)
    version = await catalog.catalog_version()
    caplog.set_level(logging.DEBUG)

    api.listings["/oncalls"] = ("oncalls", [])
    api.fail("/log_entries", *[failure(500, body=f"error for {TOKEN}") for _ in range(3)])
    with pytest.raises(UpstreamError, match="answered 500") as caught:
        await sync(catalog, api)

    assert await catalog.catalog_version() == version
    graph = await build_graph(catalog)
    assert [c.person.name for c in owner_summary(graph, "Team", "team-payments", NOW).on_call] == [
        "dev-raman"
    ]
    assert TOKEN not in str(caught.value)
    assert all(TOKEN not in record.getMessage() for record in caplog.records)


async def test_rotations_pagerduty_dropped_are_pruned_and_incidents_stay(catalog: Store) -> None:
    api = FakeApi(pagerduty_account())
    await sync(catalog, api)

    key, oncalls = api.listings["/oncalls"]
    api.listings["/oncalls"] = (
        key,
        [o for o in oncalls if o["escalation_policy"]["id"] != "PEP002"],
    )
    api.listings["/incidents"] = ("incidents", [])
    report = await sync(catalog, api)

    assert report.load is not None
    assert report.load.pruned == {"OnCall": 1}
    graph = await build_graph(catalog)
    assert graph.team_rotations.get("site-reliability", []) == []
    assert await incident(catalog, "PD-1042") is not None


async def test_malformed_records_are_skipped_counted_and_the_rest_loads(catalog: Store) -> None:
    account = pagerduty_account()
    account["/incidents"][1].append({"id": "PBROKEN", "incident_number": 7, "status": "triggered"})
    account["/oncalls"][1].append({"user": None, "escalation_policy": {"id": "PEP001"}})
    account["/teams"][1].append({"id": "PNONAME", "type": "team"})
    api = FakeApi(account)

    report = await sync(catalog, api)

    assert len(report.skipped) == 3
    assert any("PBROKEN" in reason for reason in report.skipped)
    assert await incident(catalog, "PD-1042") is not None
    assert await incident(catalog, "PD-7") is None


@pytest.mark.parametrize(
    ("listing", "record", "problem"),
    [
        (
            "/services",
            {"id": "PX1", "name": 5, "type": "service"},
            "service PX1: name should be text, got 5",
        ),
        ("/teams", {"id": "PT9", "name": 7, "type": "team"}, "team PT9: name should be text"),
        ("/escalation_policies", "junk", "escalation policy (no id): it is not an object"),
        (
            "/escalation_policies",
            {"id": "PEP9", "name": "Broken", "teams": "PTEAM01"},
            "escalation policy PEP9: teams should be a list",
        ),
        ("/oncalls", "junk", "on-call entry (no id): it is not an object"),
        (
            "/oncalls",
            {"user": {"id": "PUSR09", "email": 12345}, "escalation_policy": {"id": "PEP001"}},
            "on-call entry (no id): user.email should be text",
        ),
        (
            "/incidents",
            {
                "id": "PI9",
                "incident_number": 9,
                "created_at": "2026-11-30T00:00:00Z",
                "service": "PSVC001",
            },
            "incident PI9: service should be an object",
        ),
        ("/log_entries", "garbage", "log entry (no id): it is not an object"),
        (
            "/log_entries",
            {"id": "LBAD", "incident": {"id": "PINC01"}, "created_at": "yesterday"},
            "log entry LBAD:",
        ),
    ],
)
async def test_a_record_of_the_wrong_shape_is_skipped_counted_and_logged(
    catalog: Store,
    caplog: pytest.LogCaptureFixture,
    listing: str,
    record: object,
    problem: str,
) -> None:
    account = pagerduty_account()
    account[listing][1].append(record)
    caplog.set_level(logging.WARNING)

    report = await sync(catalog, FakeApi(account))

    assert [problem in reason for reason in report.skipped] == [True], report.skipped
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("skipped a record" in w and problem in w for w in warnings)
    assert await incident(catalog, "PD-1042") is not None
    graph = await build_graph(catalog)
    assert "site-reliability" in graph.teams


async def test_a_second_identical_sync_changes_nothing(catalog: Store) -> None:
    api = FakeApi(pagerduty_account())
    await sync(catalog, api)
    version = await catalog.catalog_version()

    report = await sync(catalog, api)

    assert report.load is not None
    assert not report.load.changed
    assert await catalog.catalog_version() == version
