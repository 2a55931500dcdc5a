"""Dependency walks, paths and cycles, on Online Boutique and on small hand-made graphs."""

from __future__ import annotations

from typing import Any

import pytest

from resilience_mcp.errors import InvalidInputError, NotFoundError
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.graph.walk import (
    explain_dependency,
    find_cycles,
    find_path,
    get_dependencies,
    walk_dependencies,
)
from resilience_mcp.store import Store
from tests.graph.service_graphs import boutique_documents, doc, load

pytestmark = pytest.mark.anyio


async def graph_of(bodies: list[dict[str, Any]]) -> CatalogGraph:
    store = await Store.open("sqlite+aiosqlite://")
    try:
        return await load(store, bodies)
    finally:
        await store.close()


def service(name: str, *deps: tuple[str, bool]) -> dict[str, Any]:
    return doc("Service", name, {"dependencies": [{"target": t, "hard": h} for t, h in deps]})


@pytest.fixture
async def boutique() -> CatalogGraph:
    return await graph_of(boutique_documents())


@pytest.fixture
async def loop() -> CatalogGraph:
    """a -> b -> c -> a, all hard; d needs a softly; e needs d."""
    return await graph_of(
        [
            service("a", ("b", True)),
            service("b", ("c", True)),
            service("c", ("a", True)),
            service("d", ("a", False)),
            service("e", ("d", True)),
        ]
    )


async def test_the_product_catalog_is_needed_by_frontend_recommendations_checkout_and_load(
    boutique: CatalogGraph,
) -> None:
    walk = walk_dependencies(boutique, ["productcatalogservice"], "up")

    depths = {name: walk.depth(name) for name in walk.reached()}
    assert depths == {
        "frontend": 1,
        "recommendationservice": 1,
        "checkoutservice": 1,
        "loadgenerator": 2,
    }
    assert all(walk.is_hard(name) for name in depths)
    assert walk.path("loadgenerator") == ["productcatalogservice", "frontend", "loadgenerator"]


@pytest.mark.parametrize("callee", ["paymentservice", "emailservice"])
async def test_payment_and_email_are_reached_only_through_checkout(
    boutique: CatalogGraph, callee: str
) -> None:
    down = walk_dependencies(boutique, ["frontend"], "down")
    up = walk_dependencies(boutique, [callee], "up")

    assert down.path(callee) == ["frontend", "checkoutservice", callee]
    assert set(up.reached()) == {"checkoutservice", "frontend", "loadgenerator"}
    assert all("checkoutservice" in up.path(name) for name in up.reached())


async def test_a_depth_limit_stops_the_walk_after_that_many_hops(boutique: CatalogGraph) -> None:
    walk = walk_dependencies(boutique, ["frontend"], "down", max_depth=1)

    assert sorted(walk.reached()) == [
        "adservice",
        "cartservice",
        "checkoutservice",
        "currencyservice",
        "productcatalogservice",
        "recommendationservice",
        "shippingservice",
        "shoppingassistantservice",
    ]


async def test_a_walk_around_a_cycle_visits_each_service_once(loop: CatalogGraph) -> None:
    walk = walk_dependencies(loop, ["a"], "up")

    assert sorted(walk.reached()) == ["b", "c", "d", "e"]
    assert walk.path("b") == ["a", "c", "b"]
    assert (walk.is_hard("b"), walk.is_hard("d"), walk.is_hard("e")) == (True, False, False)
    assert walk.path("e") == ["a", "d", "e"]


async def test_a_soft_link_anywhere_on_the_only_path_makes_a_service_degraded_not_down(
    loop: CatalogGraph,
) -> None:
    hard_only = walk_dependencies(loop, ["a"], "up", include_soft=False)

    assert sorted(hard_only.reached()) == ["b", "c"]


async def test_cycles_are_found_with_one_shortest_loop_and_its_strength(
    loop: CatalogGraph,
) -> None:
    assert find_cycles(loop) == [(["a", "b", "c"], ["a", "b", "c", "a"], True)]


async def test_a_hard_path_is_preferred_over_a_shorter_soft_one() -> None:
    graph = await graph_of(
        [service("x", ("y", False), ("z", True)), service("z", ("y", True)), service("y")]
    )

    explained = explain_dependency(graph, "x", "y")

    assert find_path(graph, "x", "y") == ["x", "y"]
    assert explained.depends
    assert explained.hard
    assert [(lk.source, lk.target, lk.hard) for lk in explained.links] == [
        ("x", "z", True),
        ("z", "y", True),
    ]


async def test_explaining_a_dependency_the_wrong_way_round_gives_the_reverse_chain(
    boutique: CatalogGraph,
) -> None:
    explained = explain_dependency(boutique, "paymentservice", "frontend")

    assert not explained.depends
    assert explained.reverse
    assert [lk.source for lk in explained.links] == ["frontend", "checkoutservice"]
    assert "the reverse: frontend -> checkoutservice -> paymentservice" in explained.text()


async def test_services_that_are_not_connected_say_so(boutique: CatalogGraph) -> None:
    explained = explain_dependency(boutique, "adservice", "redis-cart")

    assert (explained.depends, explained.reverse, explained.links) == (False, False, [])


async def test_the_dependencies_answer_pages_nearest_first_with_the_kind_of_each_link(
    boutique: CatalogGraph,
) -> None:
    first = get_dependencies(boutique, "Frontend", "down", limit=8)
    rest = get_dependencies(boutique, "frontend", "down", limit=8, offset=8)

    assert [n.depth for n in first.nodes] == [1] * 8
    assert first.page.total == 11
    assert first.page.next_cursor == "8"
    assert {n.name: n.kind for n in rest.nodes} == {
        "emailservice": "sync",
        "paymentservice": "sync",
        "redis-cart": "data",
    }
    assert rest.nodes[2].path == ["frontend", "cartservice", "redis-cart"]


async def test_the_dependencies_answer_lists_the_cycles_a_service_is_in(
    loop: CatalogGraph,
) -> None:
    answer = get_dependencies(loop, "b", "down", diagram=True)

    assert answer.cycles == [["a", "b", "c", "a"]]
    assert answer.hard == 2
    assert answer.soft == 0
    assert answer.diagram is not None
    assert 'n0["b"]' in answer.diagram


async def test_an_unknown_service_is_refused_by_name(boutique: CatalogGraph) -> None:
    with pytest.raises(NotFoundError, match="No service is named 'warehouse'"):
        get_dependencies(boutique, "warehouse", "down")


async def test_explaining_a_service_against_itself_is_refused(boutique: CatalogGraph) -> None:
    with pytest.raises(InvalidInputError, match="name two different services"):
        explain_dependency(boutique, "frontend", "Frontend")
