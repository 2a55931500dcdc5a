"""Structural risks on Online Boutique and the demo catalog, and the Mermaid charts."""

from __future__ import annotations

import pytest

from resilience_mcp.graph.catalog import CatalogGraph, build_graph
from resilience_mcp.graph.mermaid import dependency_flowchart, impact_flowchart
from resilience_mcp.graph.risk import count_dependents, find_risks
from resilience_mcp.graph.walk import walk_dependencies
from resilience_mcp.store import Store
from tests.graph.service_graphs import boutique_documents, doc, load

pytestmark = pytest.mark.anyio


@pytest.fixture
async def boutique() -> CatalogGraph:
    store = await Store.open("sqlite+aiosqlite://")
    try:
        return await load(store, boutique_documents())
    finally:
        await store.close()


@pytest.fixture
async def demo(demo_store: Store) -> CatalogGraph:
    return await build_graph(demo_store)


async def test_the_product_catalog_and_the_cart_store_take_down_the_most(
    boutique: CatalogGraph,
) -> None:
    answer = find_risks(boutique, "single_points_of_failure", limit=2)

    assert [item.services for item in answer.items] == [["productcatalogservice"], ["redis-cart"]]
    assert [item.hard_dependents for item in answer.items] == [4, 4]
    assert answer.page.next_cursor == "2"


async def test_every_boutique_service_but_the_load_generator_is_needed_by_someone(
    boutique: CatalogGraph,
) -> None:
    counts = count_dependents(boutique)

    assert [name for name, n in counts.every.items() if n == 0] == ["loadgenerator"]
    assert counts.every["frontend"] == 1


async def test_the_event_bus_is_the_demos_worst_single_point_of_failure(
    demo: CatalogGraph,
) -> None:
    answer = find_risks(demo, "single_points_of_failure", limit=1)

    top = answer.items[0]
    assert top.services == ["event-bus"]
    assert (top.hard_dependents, top.dependents) == (11, 22)
    assert top.features == 9
    assert top.customers == len(demo.customers)
    assert "takes down 11 service(s)" in answer.text()


async def test_the_demos_one_cycle_is_pricing_and_promotions_with_a_soft_link(
    demo: CatalogGraph,
) -> None:
    answer = find_risks(demo, "cycles")

    assert [item.cycle for item in answer.items] == [["pricing", "promotions", "pricing"]]
    assert answer.items[0].hard_cycle is False


async def test_the_demos_unowned_service_is_reviews(demo: CatalogGraph) -> None:
    answer = find_risks(demo, "unowned")

    assert [item.services for item in answer.items] == [["reviews-service"]]
    assert answer.items[0].owner is None


async def test_a_cycle_with_no_soft_link_is_listed_first_as_hard() -> None:
    store = await Store.open("sqlite+aiosqlite://")
    try:
        graph = await load(
            store,
            [
                doc("Service", "a", {"dependencies": [{"target": "b", "hard": False}]}),
                doc("Service", "b", {"dependsOn": ["a"]}),
                doc("Service", "c", {"dependsOn": ["d"]}),
                doc("Service", "d", {"dependsOn": ["c"]}),
            ],
        )
    finally:
        await store.close()

    answer = find_risks(graph, "cycles")

    assert [(item.cycle, item.hard_cycle) for item in answer.items] == [
        (["c", "d", "c"], True),
        (["a", "b", "a"], False),
    ]


async def test_a_flowchart_keeps_to_its_size_and_says_what_it_left_out(
    demo: CatalogGraph,
) -> None:
    walk = walk_dependencies(demo, ["event-bus"], "up")

    chart = impact_flowchart(demo, walk, ["event-bus"], max_nodes=5)

    nodes = [line for line in chart.splitlines() if line.startswith("n") and '["' in line]
    assert len(nodes) == 5
    assert f'more["... and {len(walk.reached()) + 1 - 5} more"]' in chart
    assert "class n0 failing" in chart


async def test_a_flowchart_dashes_soft_links_and_points_at_what_is_depended_on(
    boutique: CatalogGraph, demo: CatalogGraph
) -> None:
    down = dependency_flowchart(boutique, walk_dependencies(boutique, ["checkoutservice"], "down"))
    soft = impact_flowchart(demo, walk_dependencies(demo, ["promotions"], "up"), ["promotions"])

    assert 'n0["checkoutservice"]' in down
    assert "n0 --> " in down
    assert "-.->" in soft
