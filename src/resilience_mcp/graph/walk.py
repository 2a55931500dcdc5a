"""Walks over the dependency graph: what a service needs, what needs it, and why.

Edges point from the dependent to what it depends on. Walking `down` from a service finds
what it needs; walking `up` finds what needs it, which is what fails when it fails.

A node is reached *hard* when a path of hard edges alone leads to it: walking up from a
failing service, those are the services that go down with it. A node reachable only along
paths with a soft edge somewhere is reached soft (degraded, not down). Each node keeps the
shortest path that explains it: among hard paths for a hard node, among all paths for a
soft one. Ties are broken by name, so the answer does not depend on the order in which the
catalog was loaded. Cycles are harmless: every node is visited once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Literal

import networkx as nx

from resilience_mcp.errors import InvalidInputError
from resilience_mcp.graph.cards import resolve_entity
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.graph.mermaid import dependency_flowchart
from resilience_mcp.models.common import PageInfo
from resilience_mcp.models.impact import (
    DependenciesAnswer,
    DependencyLink,
    DependencyNode,
    ExplanationAnswer,
)

__all__ = [
    "Direction",
    "EdgeIndex",
    "Walk",
    "edge_index",
    "explain_dependency",
    "find_cycles",
    "find_path",
    "get_dependencies",
    "walk_dependencies",
]

Direction = Literal["up", "down"]
# One neighbour and whether the edge to it is hard.
Neighbours = tuple[tuple[str, bool], ...]


@dataclass(frozen=True)
class EdgeIndex:
    """The dependency edges as sorted adjacency tuples, both ways, built once per graph."""

    down: dict[str, Neighbours]
    up: dict[str, Neighbours]

    def neighbours(self, direction: Direction) -> dict[str, Neighbours]:
        return self.down if direction == "down" else self.up


def edge_index(graph: CatalogGraph) -> EdgeIndex:
    """The graph's `EdgeIndex`, computed on first use and kept with the graph."""
    index = graph.derived.get("edge_index")
    if isinstance(index, EdgeIndex):
        return index
    deps = graph.dependencies
    down = {
        node: tuple(sorted((t, bool(d.get("hard", True))) for t, d in deps.succ[node].items()))
        for node in deps.nodes
    }
    up = {
        node: tuple(sorted((s, bool(d.get("hard", True))) for s, d in deps.pred[node].items()))
        for node in deps.nodes
    }
    index = EdgeIndex(down=down, up=up)
    graph.derived["edge_index"] = index
    return index


@dataclass
class Walk:
    """Everything a walk reached, each node with its depth and the parent it came from."""

    starts: tuple[str, ...]
    direction: Direction
    hard_depth: dict[str, int] = field(default_factory=dict)
    hard_parent: dict[str, str] = field(default_factory=dict)
    soft_depth: dict[str, int] = field(default_factory=dict)
    soft_parent: dict[str, str] = field(default_factory=dict)

    def reached(self) -> list[str]:
        """Every node reached except the starts."""
        starts = set(self.starts)
        return [n for n in (*self.hard_depth, *self.soft_depth) if n not in starts]

    def is_hard(self, name: str) -> bool:
        return name in self.hard_depth

    def depth(self, name: str) -> int:
        return self.hard_depth[name] if name in self.hard_depth else self.soft_depth[name]

    def path(self, name: str) -> list[str]:
        """From a start to `name`, along the walk's direction."""
        parents = self.hard_parent if name in self.hard_depth else self.soft_parent
        chain = [name]
        while chain[-1] in parents:
            chain.append(parents[chain[-1]])
        chain.reverse()
        return chain

    def ranked(self, tiers: Mapping[str, int]) -> list[str]:
        """Reached nodes nearest first, hard before soft, then most critical (by `tiers`,
        9 when not there), then name."""
        return sorted(
            self.reached(),
            key=lambda n: (self.depth(n), n not in self.hard_depth, tiers.get(n, 9), n),
        )


def walk_dependencies(
    graph: CatalogGraph,
    starts: Iterable[str],
    direction: Direction,
    *,
    max_depth: int | None = None,
    include_soft: bool = True,
    allowed: Callable[[str], bool] | None = None,
) -> Walk:
    """Walk from `starts` up (dependents) or down (dependencies) to `max_depth` hops.

    `allowed` keeps the walk off nodes it returns False for (for example, services that do
    not run in the environment asked about); the starts are always kept.
    """
    begin = tuple(dict.fromkeys(s for s in starts if s in graph.dependencies))
    walk = Walk(starts=begin, direction=direction)
    adjacency = edge_index(graph).neighbours(direction)
    walk.hard_depth, walk.hard_parent = _breadth_first(
        adjacency, begin, max_depth, hard_only=True, allowed=allowed
    )
    if include_soft:
        depth, parent = _breadth_first(
            adjacency, begin, max_depth, hard_only=False, allowed=allowed
        )
        for node, hops in depth.items():
            if node not in walk.hard_depth:
                walk.soft_depth[node] = hops
        walk.soft_parent = parent
    return walk


def _breadth_first(
    adjacency: dict[str, Neighbours],
    starts: tuple[str, ...],
    max_depth: int | None,
    *,
    hard_only: bool,
    allowed: Callable[[str], bool] | None,
) -> tuple[dict[str, int], dict[str, str]]:
    depth = dict.fromkeys(starts, 0)
    parent: dict[str, str] = {}
    frontier = sorted(starts)
    hops = 0
    while frontier and (max_depth is None or hops < max_depth):
        hops += 1
        found: list[str] = []
        for node in frontier:
            for other, hard in adjacency.get(node, ()):
                if other in depth or (hard_only and not hard):
                    continue
                if allowed is not None and not allowed(other):
                    continue
                depth[other] = hops
                parent[other] = node
                found.append(other)
        # Sorting each level makes the first parent found the same whatever the load order.
        frontier = sorted(found)
    return depth, parent


def find_path(
    graph: CatalogGraph, source: str, target: str, *, hard_only: bool = False
) -> list[str] | None:
    """The shortest chain by which `source` depends on `target`, or None."""
    if source not in graph.dependencies or target not in graph.dependencies:
        return None
    adjacency = edge_index(graph).down
    depth, parent = _breadth_first(adjacency, (source,), None, hard_only=hard_only, allowed=None)
    if target not in depth:
        return None
    chain = [target]
    while chain[-1] in parent:
        chain.append(parent[chain[-1]])
    chain.reverse()
    return chain


# Cycles


def find_cycles(graph: CatalogGraph) -> list[tuple[list[str], list[str], bool]]:
    """Each group of services that depend on each other in a loop: its members, one
    shortest cycle in it, and whether that cycle is hard all round. Hard loops first."""
    cached = graph.derived.get("cycles")
    if isinstance(cached, list):
        return cached
    found = []
    for component in nx.strongly_connected_components(graph.dependencies):
        if len(component) < 2:
            continue
        members = sorted(component)
        hard = _hard_loop(graph, members)
        cycle = hard or _cycle_through(graph, members[0], component, hard_only=False)
        found.append((members, cycle, hard is not None))
    found.sort(key=lambda item: (not item[2], -len(item[0]), item[0]))
    graph.derived["cycles"] = found
    return found


def _hard_loop(graph: CatalogGraph, members: list[str]) -> list[str] | None:
    """A loop of hard links among `members`, if there is one."""
    hard = nx.DiGraph()
    hard.add_nodes_from(members)
    hard.add_edges_from(
        (a, b) for a, b, d in graph.dependencies.subgraph(members).edges(data=True) if d["hard"]
    )
    loops = [sorted(c) for c in nx.strongly_connected_components(hard) if len(c) > 1]
    if not loops:
        return None
    first = min(loops)
    return _cycle_through(graph, first[0], set(first), hard_only=True)


def _cycle_through(
    graph: CatalogGraph, start: str, inside: set[str], *, hard_only: bool
) -> list[str]:
    """The shortest loop from `start` back to it within `inside` (a strongly connected set,
    so there is one), found breadth first."""
    down = edge_index(graph).down
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        found: list[str] = []
        for node in frontier:
            for other, hard in down.get(node, ()):
                if other not in inside or (hard_only and not hard):
                    continue
                if other == start:
                    chain = [node]
                    while chain[-1] != start:
                        chain.append(parent[chain[-1]])
                    return [*reversed(chain), start]
                if other not in parent:
                    parent[other] = node
                    found.append(other)
        frontier = found
    return [start]


# Answers


def get_dependencies(
    graph: CatalogGraph,
    name: str,
    direction: Direction = "down",
    *,
    depth: int | None = None,
    include_soft: bool = True,
    limit: int = 25,
    offset: int = 0,
    diagram: bool = False,
) -> DependenciesAnswer:
    """What a service depends on (`down`) or what depends on it (`up`), to `depth` hops."""
    resolved = resolve_entity(graph, name, ("Service",))
    walk = walk_dependencies(
        graph, [resolved.name], direction, max_depth=depth, include_soft=include_soft
    )
    ranked = walk.ranked(graph.tiers())
    page = ranked[offset : offset + limit]
    cycles = [cycle for members, cycle, _ in find_cycles(graph) if resolved.name in members]
    return DependenciesAnswer(
        service=resolved.name,
        corrected_from=resolved.corrected_from,
        direction=direction,
        depth=depth,
        include_soft=include_soft,
        nodes=[_node(graph, walk, n) for n in page],
        page=PageInfo.of(len(ranked), len(page), offset),
        hard=len(walk.hard_depth) - len(walk.starts),
        soft=len(walk.soft_depth),
        cycles=cycles[:5],
        diagram=dependency_flowchart(graph, walk) if diagram else None,
    )


def _node(graph: CatalogGraph, walk: Walk, name: str) -> DependencyNode:
    path = walk.path(name)
    before = path[-2]
    source, target = (name, before) if walk.direction == "up" else (before, name)
    svc = graph.services.get(name)
    return DependencyNode(
        name=name,
        depth=walk.depth(name),
        hard=walk.is_hard(name),
        path=path,
        kind=str(graph.dependencies.edges[source, target].get("kind", "sync")),
        tier=svc.tier if svc else None,
        type=svc.type if svc else None,
    )


def explain_dependency(graph: CatalogGraph, source: str, target: str) -> ExplanationAnswer:
    """How `source` depends on `target`: the chain of links, hard ones preferred."""
    a = resolve_entity(graph, source, ("Service",))
    b = resolve_entity(graph, target, ("Service",))
    if a.name == b.name:
        raise InvalidInputError(
            f"{source!r} and {target!r} are both {a.name}; name two different services."
        )
    notes = [
        f"{asked!r} was taken for {found.name}."
        for asked, found in ((source, a), (target, b))
        if found.corrected_from
    ]
    hard = find_path(graph, a.name, b.name, hard_only=True)
    path = hard or find_path(graph, a.name, b.name)
    if path is not None:
        return ExplanationAnswer(
            source=a.name,
            target=b.name,
            depends=True,
            hard=hard is not None,
            links=_links(graph, path),
            notes=notes,
        )
    back = find_path(graph, b.name, a.name, hard_only=True) or find_path(graph, b.name, a.name)
    return ExplanationAnswer(
        source=a.name,
        target=b.name,
        depends=False,
        hard=False,
        links=_links(graph, back) if back else [],
        reverse=back is not None,
        notes=notes,
    )


def _links(graph: CatalogGraph, path: list[str]) -> list[DependencyLink]:
    links = []
    for source, target in pairwise(path):
        data = graph.dependencies.edges[source, target]
        links.append(
            DependencyLink(
                source=source,
                target=target,
                kind=str(data.get("kind", "sync")),
                hard=bool(data.get("hard", True)),
                description=data.get("description"),
            )
        )
    return links
