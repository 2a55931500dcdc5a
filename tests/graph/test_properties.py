"""Properties of impact on random dependency graphs, checked against networkx.

Each example is a random graph of up to a dozen services with hard and soft dependencies
(cycles allowed). The walks are checked on graphs built in memory, a hundred examples
each; the load-order property goes through the loader and the store, where the order
could leak in. That test keeps one in-memory store per order for all its examples and
replaces the catalog in it each time (a pruning load).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilience_mcp import models as m
from resilience_mcp.catalog.files import Document
from resilience_mcp.catalog.loader import load_documents
from resilience_mcp.graph.catalog import CatalogGraph, build_graph
from resilience_mcp.graph.impact import find_impact
from resilience_mcp.graph.risk import count_dependents
from resilience_mcp.graph.walk import get_dependencies
from resilience_mcp.store import Store
from tests.graph.service_graphs import doc

Edge = tuple[int, int, bool]
IN_MEMORY = settings(max_examples=100, deadline=None)
# The store fixtures are meant to outlive examples: each one replaces the whole catalog.
THROUGH_THE_STORE = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    opened = await Store.open("sqlite+aiosqlite://")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def other_store() -> AsyncIterator[Store]:
    opened = await Store.open("sqlite+aiosqlite://")
    try:
        yield opened
    finally:
        await opened.close()


@st.composite
def graphs(draw: st.DrawFn) -> tuple[int, list[Edge], list[str]]:
    """A number of services, the edges between them, and some of them to start from."""
    size = draw(st.integers(min_value=2, max_value=12))
    node = st.integers(min_value=0, max_value=size - 1)
    edges = draw(st.lists(st.tuples(node, node, st.booleans()), max_size=size * 3))
    unique = {(a, b): hard for a, b, hard in edges if a != b}
    starts = draw(st.lists(node, min_size=1, max_size=3))
    return size, [(a, b, hard) for (a, b), hard in unique.items()], [f"s{i}" for i in starts]


def documents(size: int, edges: list[Edge]) -> list[dict[str, Any]]:
    deps: dict[int, list[dict[str, Any]]] = {i: [] for i in range(size)}
    for a, b, hard in edges:
        deps[a].append({"target": f"s{b}", "hard": hard})
    return [doc("Service", f"s{i}", {"dependencies": deps[i]}) for i in range(size)]


async def loaded(store: Store, bodies: list[dict[str, Any]]) -> CatalogGraph:
    """The catalog in `store` replaced by `bodies`, as a graph."""
    documents = [Document("random", i, body) for i, body in enumerate(bodies, 1)]
    await load_documents(store, documents, source="random", prune=True)
    return await build_graph(store)


def in_memory(size: int, edges: list[Edge]) -> CatalogGraph:
    """The graph a catalog with these services and dependencies would give."""
    graph = CatalogGraph(version=1)
    graph.services = {f"s{i}": m.Service(name=f"s{i}") for i in range(size)}
    graph.dependencies.add_nodes_from(graph.services)
    for a, b, hard in edges:
        graph.dependencies.add_edge(f"s{a}", f"s{b}", kind="sync", hard=hard, description=None)
    return graph


def reference(size: int, edges: list[Edge], *, hard_only: bool) -> nx.DiGraph:
    shape = nx.DiGraph()
    shape.add_nodes_from(f"s{i}" for i in range(size))
    shape.add_edges_from((f"s{a}", f"s{b}") for a, b, hard in edges if hard or not hard_only)
    return shape


def ancestors(shape: nx.DiGraph, starts: list[str]) -> set[str]:
    found = set(starts)
    for start in starts:
        found |= nx.ancestors(shape, start)
    return found


@IN_MEMORY
@given(graphs())
def test_services_down_are_exactly_the_transitive_dependents_over_hard_links(
    shape: tuple[int, list[Edge], list[str]],
) -> None:
    size, edges, starts = shape

    impact = find_impact(in_memory(size, edges), starts)

    assert set(impact.walk.hard_depth) == ancestors(reference(size, edges, hard_only=True), starts)


@IN_MEMORY
@given(graphs())
def test_soft_links_only_add_degraded_services(shape: tuple[int, list[Edge], list[str]]) -> None:
    size, edges, starts = shape
    hard_edges = [e for e in edges if e[2]]

    with_soft = find_impact(in_memory(size, edges), starts)
    without = find_impact(in_memory(size, hard_edges), starts)

    assert with_soft.walk.hard_depth == without.walk.hard_depth
    every = ancestors(reference(size, edges, hard_only=False), starts)
    assert set(with_soft.walk.soft_depth) == every - set(without.walk.hard_depth)


@THROUGH_THE_STORE
# A seed rather than st.randoms(): that one draws lazily, which the async runner forbids.
@given(graphs(), st.integers(min_value=0, max_value=2**32))
@pytest.mark.anyio
async def test_the_answer_does_not_depend_on_the_order_things_were_loaded(
    store: Store, other_store: Store, shape: tuple[int, list[Edge], list[str]], seed: int
) -> None:
    size, edges, _starts = shape
    rng = random.Random(seed)
    shuffled = list(edges)
    rng.shuffle(shuffled)
    bodies = documents(size, shuffled)
    rng.shuffle(bodies)

    first = await loaded(store, documents(size, edges))
    second = await loaded(other_store, bodies)

    for name in ("s0", f"s{size - 1}"):
        for direction in ("up", "down"):
            a = get_dependencies(first, name, direction, limit=100)
            b = get_dependencies(second, name, direction, limit=100)
            assert a == b
        impact_a, impact_b = find_impact(first, [name]), find_impact(second, [name])
        assert impact_a.ranked == impact_b.ranked
        assert [impact_a.walk.path(s) for s in impact_a.ranked] == [
            impact_b.walk.path(s) for s in impact_b.ranked
        ]


@IN_MEMORY
@given(graphs())
def test_dependent_counts_match_networkx_for_every_service(
    shape: tuple[int, list[Edge], list[str]],
) -> None:
    size, edges, _starts = shape

    counts = count_dependents(in_memory(size, edges))

    hard, every = reference(size, edges, hard_only=True), reference(size, edges, hard_only=False)
    for i in range(size):
        assert counts.hard[f"s{i}"] == len(nx.ancestors(hard, f"s{i}"))
        assert counts.every[f"s{i}"] == len(nx.ancestors(every, f"s{i}"))
