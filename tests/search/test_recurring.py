"""find_recurring_incidents: shared root causes and services hit again and again."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import pytest

from resilience_mcp.catalog import DEMO_ANCHOR, load_catalog
from resilience_mcp.errors import InvalidInputError
from resilience_mcp.graph import build_graph
from resilience_mcp.search.recurring import find_recurring_incidents
from resilience_mcp.store import Store
from tests.support import shared_data

pytestmark = pytest.mark.anyio


async def test_a_repeat_that_names_its_first_occurrence_forms_a_root_cause_group(
    demo_store: Store,
) -> None:
    graph = await build_graph(demo_store)
    answer = await find_recurring_incidents(demo_store, graph, DEMO_ANCHOR)
    causes = [g for g in answer.groups if g.reason == "root cause"]

    assert [i.key for i in causes[0].incidents] == ["INC-2046", "INC-2031"]
    assert "INC-2046 names INC-2031" in causes[0].evidence
    assert causes[0].first_at < causes[0].last_at


async def test_services_hit_repeatedly_come_after_the_shared_causes(demo_store: Store) -> None:
    graph = await build_graph(demo_store)
    answer = await find_recurring_incidents(demo_store, graph, DEMO_ANCHOR, limit=50)
    reasons = [g.reason for g in answer.groups]

    assert reasons == sorted(reasons, key=lambda r: r == "service")
    checkout = next(g for g in answer.groups if g.label == "checkout")
    assert checkout.count >= 5


async def test_a_service_and_a_window_narrow_the_groups(demo_store: Store) -> None:
    graph = await build_graph(demo_store)
    answer = await find_recurring_incidents(
        demo_store, graph, DEMO_ANCHOR, service="payments-db", since="2026-11-01"
    )

    assert answer.groups == []
    assert answer.since == datetime(2026, 11, 1, tzinfo=UTC)


async def test_a_bad_since_is_refused(demo_store: Store) -> None:
    graph = await build_graph(demo_store)
    with pytest.raises(InvalidInputError, match="yesterday-ish"):
        await find_recurring_incidents(demo_store, graph, DEMO_ANCHOR, since="yesterday-ish")


async def test_the_dfds_recurring_postmortems_are_grouped(store: Store) -> None:
    raw = shared_data("dfds-postmortems", "raw")
    rows = shared_data("dfds-postmortems", "postmortems.jsonl").read_text().splitlines()
    await load_catalog(store, [raw])
    graph = await build_graph(store)

    answer = await find_recurring_incidents(store, graph, DEMO_ANCHOR, since="2019-01-01", limit=50)
    groups = [{i.key for i in g.incidents} for g in answer.groups if g.reason != "service"]
    same_title = [
        {r["postmortem_id"], *(o.removeprefix("dfds-") for o in r["same_title_as"])}
        for r in map(json.loads, rows)
        if r["same_title_as"]
    ]
    for expected in same_title:
        assert any(expected <= group for group in groups), expected


async def test_likeness_does_not_chain_one_cause_into_the_next() -> None:
    """Templated incidents (ten symptoms, ten causes, many services) are each like many
    others in part; linked pair by pair they would make one group of everything."""
    from benchmarks.synthetic import ANCHOR, generate, load_synthetic

    from resilience_mcp.search import recurring

    documents = list(generate("small", seed=1, incidents=300))
    told = {
        doc["metadata"]["name"]: (doc["metadata"]["title"].split(" on ")[0], doc["spec"]["trigger"])
        for doc in documents
        if doc["kind"] == "Incident"
    }
    store = await Store.open("sqlite+aiosqlite://")
    try:
        await load_synthetic(store, "small", seed=1, incidents=300)
        async with store.session() as session:
            incidents = await recurring._load(session, ANCHOR.replace(year=2020), None)
    finally:
        await store.close()

    groups = [members for _, _, _, members in recurring._cause_groups(incidents)]

    assert len(incidents) == len(told) == 300
    assert len(groups) >= 10
    for members in groups:
        assert len(members) <= len(incidents) // 4
        symptoms = Counter(told[i.key][0] for i in members)
        causes = Counter(told[i.key][1] for i in members)
        alike = max(symptoms.most_common(1)[0][1], causes.most_common(1)[0][1])
        assert alike >= 0.7 * len(members), (symptoms, causes)
