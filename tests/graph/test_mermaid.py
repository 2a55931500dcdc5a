"""Mermaid flowcharts: every link between the services drawn, failing ones included."""

from __future__ import annotations

import re

import pytest

from resilience_mcp.graph.catalog import CatalogGraph, build_graph
from resilience_mcp.graph.mermaid import impact_flowchart
from resilience_mcp.graph.walk import walk_dependencies
from resilience_mcp.store import Store
from tests.support import load_yaml

pytestmark = pytest.mark.anyio

# checkout needs payments-api and web needs both; payments-api reads klarna softly.
SHOP = """
apiVersion: resilience/v1
kind: Service
metadata: {name: web}
spec: {dependsOn: [checkout, payments-api]}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: checkout}
spec: {dependsOn: [payments-api]}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: payments-api}
spec: {dependencies: [{target: klarna, hard: false}]}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: klarna}
"""


def links(chart: str) -> set[str]:
    """The chart's arrows as `source -> target` (`~>` for soft), by service name."""
    names = dict(re.findall(r'^(n\d+)\["([^"]+)"\]$', chart, flags=re.MULTILINE))
    found = set()
    for source, arrow, target in re.findall(r"^(n\d+) (-->|-\.->) (n\d+)$", chart, re.M):
        found.add(f"{names[source]} {'->' if arrow == '-->' else '~>'} {names[target]}")
    return found


@pytest.fixture
async def shop(store: Store) -> CatalogGraph:
    await load_yaml(store, SHOP)
    return await build_graph(store)


async def test_links_between_failing_services_are_drawn(shop: CatalogGraph) -> None:
    failing = ["payments-api", "checkout", "klarna"]

    chart = impact_flowchart(shop, walk_dependencies(shop, failing, "up"), failing)

    assert links(chart) == {
        "checkout -> payments-api",
        "payments-api ~> klarna",
        "web -> checkout",
        "web -> payments-api",
    }


async def test_a_link_the_walk_did_not_go_along_is_drawn_too(shop: CatalogGraph) -> None:
    chart = impact_flowchart(shop, walk_dependencies(shop, ["klarna"], "up"), ["klarna"])

    # The walk reaches web through checkout or payments-api; both of its links show.
    assert {"web -> checkout", "web -> payments-api", "checkout -> payments-api"} <= links(chart)


async def test_inc_2044_links_checkout_to_payments_api(demo_store: Store) -> None:
    demo = await build_graph(demo_store)
    failing = ["payments-api", "checkout", "klarna"]

    chart = impact_flowchart(demo, walk_dependencies(demo, failing, "up"), failing)

    assert "checkout -> payments-api" in links(chart)
    assert "payments-api ~> klarna" in links(chart)
