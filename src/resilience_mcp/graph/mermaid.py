"""Mermaid flowcharts of a walk, which agents and chat tools render as a diagram.

Arrows point from a service to what it depends on; a dashed arrow is a soft dependency.
Every dependency between two services in the chart is drawn, not only those the walk went
along: two failing services that depend on each other are linked. A chart holds at most
`max_nodes` services (the nearest first) and says how many it left out, so it stays
readable and small.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import TYPE_CHECKING

from resilience_mcp.graph.catalog import CatalogGraph

if TYPE_CHECKING:
    from resilience_mcp.graph.walk import Walk

__all__ = ["MAX_NODES", "dependency_flowchart", "impact_flowchart"]

MAX_NODES = 30

_IMPACT_STYLES = (
    "classDef failing fill:#f8d0d0,stroke:#b00020,stroke-width:2px",
    "classDef down fill:#fde2c4,stroke:#c25e00",
    "classDef degraded fill:#fff6c2,stroke:#a08900,stroke-dasharray:4 2",
)
_WALK_STYLES = (
    "classDef start fill:#d6e4ff,stroke:#1f4fbf,stroke-width:2px",
    "classDef soft stroke-dasharray:4 2",
)


def impact_flowchart(
    graph: CatalogGraph, walk: Walk, failing: Sequence[str], *, max_nodes: int = MAX_NODES
) -> str:
    """The failing services and what they take down or degrade."""
    failed = set(failing)

    def style(name: str) -> str:
        if name in failed:
            return "failing"
        return "down" if walk.is_hard(name) else "degraded"

    return _flowchart(graph, walk, style, _IMPACT_STYLES, max_nodes)


def dependency_flowchart(graph: CatalogGraph, walk: Walk, *, max_nodes: int = MAX_NODES) -> str:
    """A service and its dependencies (or dependents), soft-only ones dashed."""
    starts = set(walk.starts)

    def style(name: str) -> str:
        if name in starts:
            return "start"
        return "" if walk.is_hard(name) else "soft"

    return _flowchart(graph, walk, style, _WALK_STYLES, max_nodes)


def _flowchart(
    graph: CatalogGraph,
    walk: Walk,
    style: Callable[[str], str],
    styles: Sequence[str],
    max_nodes: int,
) -> str:
    ranked = walk.ranked(graph.tiers())
    chosen = list(walk.starts)
    for name in ranked:
        if len(chosen) >= max_nodes:
            break
        for step in walk.path(name):
            if step not in chosen:
                chosen.append(step)

    ids = {name: f"n{i}" for i, name in enumerate(chosen)}
    lines = ["flowchart LR", "%% arrows point from a service to what it depends on"]
    lines += [f'{ids[name]}["{name}"]' for name in chosen]
    lines += _edges(graph, walk, chosen, ids)
    left_out = len(walk.starts) + len(ranked) - len(chosen)
    if left_out > 0:
        lines.append(f'more["... and {left_out} more"]')
    lines += list(styles)
    for name in chosen:
        if kind := style(name):
            lines.append(f"class {ids[name]} {kind}")
    return "\n".join(lines)


def _edges(graph: CatalogGraph, walk: Walk, chosen: list[str], ids: dict[str, str]) -> list[str]:
    deps = graph.dependencies
    drawn: dict[tuple[str, str], None] = {}
    for name in chosen:
        path = walk.path(name)
        for a, b in pairwise(path):
            # Walking up, each step is needed by the next; walking down, it needs it.
            source, target = (b, a) if walk.direction == "up" else (a, b)
            drawn[(source, target)] = None
    # Then the links the walk did not go along: between the starts, or across branches.
    shown = set(chosen)
    for source in chosen:
        if source in deps:
            for target in sorted(set(deps.successors(source)) & shown):
                drawn.setdefault((source, target), None)
    lines = []
    for source, target in drawn:
        hard = bool(deps.edges[source, target].get("hard", True))
        arrow = "-->" if hard else "-.->"
        lines.append(f"{ids[source]} {arrow} {ids[target]}")
    return lines
