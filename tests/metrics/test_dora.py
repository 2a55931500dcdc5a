"""DORA's four keys on the hand-worked sample catalog, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from resilience_mcp.errors import InvalidInputError, NotFoundError
from resilience_mcp.graph import build_graph
from resilience_mcp.metrics.dora import get_dora_metrics
from resilience_mcp.models.metrics import DoraAnswer
from resilience_mcp.store import Store
from tests.metrics.sample import NOW, SINCE, load_sample

pytestmark = pytest.mark.anyio


async def dora(store: Store, **options: object) -> DoraAnswer:
    await load_sample(store)
    graph = await build_graph(store)
    options.setdefault("since", SINCE.isoformat())
    return await get_dora_metrics(store, graph, NOW, **options)  # type: ignore[arg-type]


async def test_a_service_gets_each_key_as_worked_out_by_hand(store: Store) -> None:
    answer = await dora(store, scope="service", name="svc-a")

    df = answer.deployment_frequency
    # d1-d5 and d8 shipped to production (d3 rolled back still shipped); d6 went to
    # staging and d7 failed. Days per week 3, 1, 0, 1: the median week has 1 day, but
    # three weeks of four had a deployment.
    assert (df.deployments, df.deploy_days, df.weeks) == (6, 5, 4)
    assert (df.bucket, df.band, df.per_week) == ("weekly", "high", 1.5)

    lead = answer.lead_time
    # 1440, 60, 60 and 120 minutes; d3 at zero and d8 below zero are dropped.
    assert (lead.pairs, lead.dropped, lead.median_minutes, lead.band) == (4, 2, 90.0, "elite")

    cfr = answer.change_failure_rate
    # d5 holds INC-1's root cause, INC-2 suspects d8, and d3 was rolled back.
    assert (cfr.failures, cfr.linked_to_incidents, cfr.rolled_back) == (3, 2, 1)
    assert (cfr.rate, cfr.band) == (0.5, "low")

    ttr = answer.time_to_restore
    # INC-1 counts from d5's deployment at 10:00 to its mitigation at 11:30; INC-2 is open.
    assert (ttr.median_minutes, ttr.restored, ttr.open, ttr.band) == (90.0, 1, 1, "high")

    fdr = answer.failed_deployment_recovery
    # d3 recovered when d4 shipped (120 min), d5 when INC-1 was mitigated (90); d8 has not.
    assert (fdr.median_minutes, fdr.recovered, fdr.unrecovered, fdr.band) == (105.0, 2, 1, "high")


async def test_the_organisation_adds_the_other_teams_work(store: Store) -> None:
    answer = await dora(store)

    assert answer.services == 3
    assert answer.deployment_frequency.deployments == 7
    assert answer.lead_time.median_minutes == 60.0  # d9's 30 minutes joins the four
    assert answer.change_failure_rate.failures == 3
    # INC-3 has no mitigation: its resolution, 30 minutes in, restores it.
    assert answer.time_to_restore.median_minutes == 60.0
    assert answer.time_to_restore.band == "high"


async def test_a_team_counts_the_services_of_its_sub_teams(store: Store) -> None:
    parent = await dora(store, scope="team", name="team-a")
    graph = await build_graph(store)
    child = await get_dora_metrics(
        store, graph, NOW, scope="team", name="team-b", since=SINCE.isoformat()
    )

    assert (parent.services, parent.deployment_frequency.deployments) == (2, 7)
    assert (child.services, child.deployment_frequency.deployments) == (1, 1)


async def test_a_window_without_deployments_has_no_figures_rather_than_zeroes(
    store: Store,
) -> None:
    answer = await dora(store, scope="service", name="svc-c")

    assert answer.deployment_frequency.deployments == 0
    assert answer.deployment_frequency.bucket is None
    assert answer.lead_time.median_minutes is None
    assert answer.change_failure_rate.rate is None
    assert answer.time_to_restore.median_minutes is None
    assert "no deployments in the window" in answer.text()


async def test_weekly_periods_split_the_window_and_add_up(store: Store) -> None:
    answer = await dora(store, scope="service", name="svc-a", group_by="week")

    assert [p.deployments for p in answer.periods] == [4, 1, 0, 1]
    assert [p.incidents for p in answer.periods] == [0, 1, 0, 1]
    assert answer.periods[1].time_to_restore_median_minutes == 90.0
    assert answer.periods_page is not None
    assert not answer.periods_page.truncated


async def test_periods_beyond_the_limit_keep_the_newest(store: Store) -> None:
    answer = await dora(store, scope="service", name="svc-a", group_by="week", limit=2)

    assert [p.start.day for p in answer.periods] == [16, 23]
    assert answer.periods_page is not None
    assert (answer.periods_page.total, answer.periods_page.truncated) == (4, True)


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"scope": "team"}, InvalidInputError, "needs a name"),
        ({"scope": "service", "name": "svc-zzz-unknown"}, NotFoundError, "svc-zzz-unknown"),
        ({"since": "last tuesday"}, InvalidInputError, "neither a date"),
        ({"since": "2026-03-05", "until": "2026-03-01"}, InvalidInputError, "at or after"),
    ],
)
async def test_bad_scopes_and_windows_are_refused_with_a_sentence(
    store: Store, options: dict[str, object], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        await dora(store, **options)
