"""The synthetic catalogs of benchmarks/ load as they are, repeat, and walk like real ones."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from benchmarks.synthetic import SIZES, generate, load_synthetic

from resilience_mcp.graph.catalog import build_graph
from resilience_mcp.graph.impact import find_impact, service_owner
from resilience_mcp.graph.risk import find_risks
from resilience_mcp.store import Store

pytestmark = pytest.mark.anyio


def test_the_same_seed_gives_the_same_documents_and_another_seed_others() -> None:
    def dump(seed: int) -> str:
        return json.dumps(list(generate("small", seed=seed, deployments=50, incidents=20)))

    assert dump(4) == dump(4)
    assert dump(4) != dump(5)


def test_asking_for_history_leaves_the_catalog_as_it_was() -> None:
    plain = list(generate("small", seed=2))
    with_history = list(generate("small", seed=2, deployments=30, incidents=10))

    assert with_history[: len(plain)] == plain
    kinds = Counter(doc["kind"] for doc in with_history[len(plain) :])
    assert kinds == {"Deployment": 30, "Incident": 10}


@pytest.mark.parametrize("size", ["small", "medium", "large"])
def test_each_size_has_the_counts_it_promises(size: str) -> None:
    kinds = Counter(doc["kind"] for doc in generate(size))

    wanted = SIZES[size]
    assert (kinds["Service"], kinds["Feature"], kinds["FeatureFlag"], kinds["Customer"]) == (
        wanted.services,
        wanted.features,
        wanted.flags,
        wanted.customers,
    )


async def test_the_small_catalog_loads_with_history_and_has_every_kind_of_risk() -> None:
    store = await Store.open("sqlite+aiosqlite://")
    try:
        report = await load_synthetic(store, "small", seed=1, deployments=200, incidents=50)
        graph = await build_graph(store)
    finally:
        await store.close()

    assert report.created["Service"] == 100
    assert report.created["Incident"] == 50
    assert find_risks(graph, "cycles").page.total >= 2
    assert find_risks(graph, "unowned").page.total >= 1
    assert all(service_owner(graph, s) for s in graph.services if not s.startswith("legacy-"))
    # A data store at the bottom takes down at least the services that call it directly.
    store_name = next(s for s in graph.services if s.rsplit("-", 2)[-2] == "db")
    impact = find_impact(graph, [store_name])
    callers = {a for a, _, hard in graph.dependencies.in_edges(store_name, data="hard") if hard}
    assert callers <= set(impact.walk.hard_depth)
