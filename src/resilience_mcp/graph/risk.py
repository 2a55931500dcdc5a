"""Structural risk: the services whose loss would hurt most, cycles, and services nobody owns.

Counting every service's transitive dependents one walk at a time costs a walk per service.
Instead the graph is condensed into its strongly connected components (a cycle becomes one
node), and each component's set of dependents is built as a bitset from those of the
components that depend on it, in topological order: one pass over the edges. The counts
are kept with the graph, so only the first question after a catalog change pays for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import networkx as nx

from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.graph.impact import service_owner
from resilience_mcp.graph.walk import edge_index, find_cycles, walk_dependencies
from resilience_mcp.models.common import PageInfo
from resilience_mcp.models.impact import RiskAnswer, RiskItem

__all__ = [
    "RISK_KINDS",
    "DependentCounts",
    "RiskKind",
    "count_dependents",
    "find_risks",
]

RiskKind = Literal["single_points_of_failure", "most_dependents", "cycles", "unowned"]
RISK_KINDS: tuple[RiskKind, ...] = (
    "single_points_of_failure",
    "most_dependents",
    "cycles",
    "unowned",
)


@dataclass(frozen=True)
class DependentCounts:
    """For each service, how many services fail with it (hard) and how many need it at all."""

    hard: dict[str, int]
    every: dict[str, int]


def count_dependents(graph: CatalogGraph) -> DependentCounts:
    """Transitive dependent counts for every service, computed once per graph."""
    cached = graph.derived.get("dependent_counts")
    if isinstance(cached, DependentCounts):
        return cached
    deps = graph.dependencies
    hard = nx.subgraph_view(deps, filter_edge=lambda a, b: deps.edges[a, b]["hard"])
    counts = DependentCounts(
        hard=_ancestor_counts(graph, hard, hard_only=True),
        every=_ancestor_counts(graph, deps, hard_only=False),
    )
    graph.derived["dependent_counts"] = counts
    return counts


def _ancestor_counts(graph: CatalogGraph, shape: nx.DiGraph, *, hard_only: bool) -> dict[str, int]:
    """How many services can reach each service along the edges of `shape`."""
    members = [sorted(c) for c in nx.strongly_connected_components(shape)]
    component = {node: i for i, group in enumerate(members) for node in group}
    bit = {node: 1 << i for i, node in enumerate(graph.dependencies.nodes)}
    bits = [sum(bit[n] for n in group) for group in members]

    # The components as a DAG: who depends on whom, and how many each waits for.
    needs: list[set[int]] = [set() for _ in members]
    needed_by: list[set[int]] = [set() for _ in members]
    for source, targets in edge_index(graph).down.items():
        for target, hard in targets:
            a, b = component[source], component[target]
            if a != b and (hard or not hard_only):
                needs[a].add(b)
                needed_by[b].add(a)

    # Topological order, dependents first: a component's dependents are all set by then.
    waiting = [len(parents) for parents in needed_by]
    ready = [c for c, n in enumerate(waiting) if n == 0]
    above = [0] * len(members)
    while ready:
        c = ready.pop()
        for child in needs[c]:
            above[child] |= above[c] | bits[c]
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)

    # The other members of a cycle depend on each one of them too.
    return {
        node: above[c].bit_count() + len(group) - 1
        for c, group in enumerate(members)
        for node in group
    }


def find_risks(
    graph: CatalogGraph, kind: RiskKind, *, limit: int = 10, offset: int = 0
) -> RiskAnswer:
    """The catalog's structural risks of one kind, worst first."""
    if kind == "cycles":
        cycles = find_cycles(graph)
        page = cycles[offset : offset + limit]
        items = [_cycle_item(graph, members, cycle, hard) for members, cycle, hard in page]
        return RiskAnswer(kind=kind, items=items, page=PageInfo.of(len(cycles), len(items), offset))

    counts = count_dependents(graph)
    # The ranking and the cut-off counts are the graph's alone: kept with it, like counts.
    rankings: dict[RiskKind, list[str]] = graph.derived.setdefault("risk_rankings", {})
    ranked = rankings.get(kind)
    if ranked is None:
        ranked = rankings[kind] = _ranked(graph, kind, counts)
    page_names = ranked[offset : offset + limit]
    items = [_service_item(graph, kind, name, counts) for name in page_names]
    return RiskAnswer(kind=kind, items=items, page=PageInfo.of(len(ranked), len(items), offset))


def _ranked(graph: CatalogGraph, kind: RiskKind, counts: DependentCounts) -> list[str]:
    names = list(graph.services)
    tiers = graph.tiers()
    if kind == "single_points_of_failure":
        names = [n for n in names if counts.hard.get(n, 0) > 0]
        return sorted(names, key=lambda n: (-counts.hard[n], -counts.every[n], tiers[n], n))
    if kind == "most_dependents":
        names = [n for n in names if counts.every.get(n, 0) > 0]
        return sorted(names, key=lambda n: (-counts.every[n], -counts.hard[n], tiers[n], n))
    unowned = [n for n in names if service_owner(graph, n) is None]
    return sorted(unowned, key=lambda n: (tiers[n], -counts.every.get(n, 0), n))


def _service_item(
    graph: CatalogGraph, kind: RiskKind, name: str, counts: DependentCounts
) -> RiskItem:
    svc = graph.services[name]
    hard, every = counts.hard.get(name, 0), counts.every.get(name, 0)
    item = RiskItem(
        services=[name],
        tier=svc.tier,
        owner=service_owner(graph, name),
        hard_dependents=hard,
        dependents=every,
        detail="",
    )
    tier = f" (tier {svc.tier})" if svc.tier else ""
    if kind == "single_points_of_failure":
        item.features, item.customers = _cut_off(graph, name)
        item.detail = (
            f"{name}{tier}: takes down {hard} service(s), {item.features} feature(s), "
            f"{item.customers} customer(s); {every} need it in all"
        )
    elif kind == "most_dependents":
        item.detail = f"{name}{tier}: {every} service(s) need it, {hard} through hard links only"
    else:
        item.detail = (
            f"{name}{tier}: no owner, neither its own nor from a system or domain; "
            f"{every} service(s) need it"
        )
    return item


def _cut_off(graph: CatalogGraph, name: str) -> tuple[int, int]:
    """Features that go down with a service, and the customers entitled to them."""
    known: dict[str, tuple[int, int]] = graph.derived.setdefault("cut_off", {})
    found = known.get(name)
    if found is None:
        found = known[name] = _count_cut_off(graph, name)
    return found


def _count_cut_off(graph: CatalogGraph, name: str) -> tuple[int, int]:
    walk = walk_dependencies(graph, [name], "up", include_soft=False)
    features: set[str] = set()
    for service in walk.hard_depth:
        features.update(graph.service_features.get(service, ()))
    customers: set[str] = set()
    for feature in features:
        customers.update(graph.feature_customers.get(feature, ()))
    return len(features), len(customers)


def _cycle_item(graph: CatalogGraph, members: list[str], cycle: list[str], hard: bool) -> RiskItem:
    owners = sorted({o for o in (service_owner(graph, s) for s in members) if o})
    strength = "hard all round" if hard else "with a soft link"
    return RiskItem(
        services=members,
        owner=", ".join(owners) or None,
        cycle=cycle,
        hard_cycle=hard,
        detail=f"{len(members)} services in a loop, {strength}: {' -> '.join(cycle)}",
    )
