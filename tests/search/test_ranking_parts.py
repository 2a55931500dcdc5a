"""Each part of the similar-incident score decides an order on its own.

The incidents here say the same words, so text alone cannot tell them apart: the order comes
from where they happened (the service asked about, a dependency of it, its system, or
nowhere near) and from when. Setting a part's weight to zero must lose that order, which
shows the part is really counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from resilience_mcp.graph import build_graph
from resilience_mcp.search.incidents import Weights, find_similar_rca
from resilience_mcp.store import Store
from tests.support import load_yaml

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
SAME_WORDS = "Order consumers stalled; queue depth grew until messages expired"
CATALOG = """\
apiVersion: resilience/v1
kind: System
metadata: {name: orders}
---
apiVersion: resilience/v1
kind: System
metadata: {name: marketing}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: order-worker}
spec: {system: orders, dependencies: [{target: order-queue, hard: true}]}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: order-queue}
spec: {system: orders, type: queue}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: order-audit}
spec: {system: orders}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: newsletter}
spec: {system: marketing}
"""


def incident(key: str, service: str, days_ago: int) -> str:
    started = (NOW - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")
    return (
        "---\napiVersion: resilience/v1\nkind: Incident\n"
        f"metadata: {{name: {key}, title: '{SAME_WORDS}'}}\n"
        f"spec: {{severity: SEV2, status: resolved, startedAt: '{started}', "
        f"services: [{service}]}}\n"
    )


async def ranked(
    store: Store, weights: Weights | None = None, services: Sequence[str] = ()
) -> list[str]:
    graph = await build_graph(store)
    answer = await find_similar_rca(
        store, graph, NOW, text=SAME_WORDS, services=services, weights=weights
    )
    return [hit.key for hit in answer.results]


@pytest.fixture
async def placed(store: Store) -> Store:
    """The same incident on the service asked about, its dependency, its system, elsewhere;
    all on one day, so recency cannot order them."""
    places = {
        "INC-4": "newsletter",
        "INC-3": "order-audit",
        "INC-2": "order-queue",
        "INC-1": "order-worker",
    }
    await load_yaml(store, CATALOG + "".join(incident(k, s, 30) for k, s in places.items()))
    return store


async def test_the_service_asked_about_then_its_dependency_then_its_system_rank_first(
    placed: Store,
) -> None:
    assert await ranked(placed, services=["order-worker"]) == ["INC-1", "INC-2", "INC-3", "INC-4"]


async def test_each_says_how_it_is_linked_to_the_service_asked_about(placed: Store) -> None:
    graph = await build_graph(placed)
    answer = await find_similar_rca(placed, graph, NOW, text=SAME_WORDS, services=["order-worker"])
    why = {hit.key: hit.why for hit in answer.results}

    assert why["INC-1"].shared_services == ["order-worker"]
    assert why["INC-2"].related_services
    assert "order-queue" in why["INC-2"].related_services[0]
    assert why["INC-3"].same_system == ["orders"]
    assert not why["INC-4"].shared_services
    assert not why["INC-4"].related_services
    assert not why["INC-4"].same_system


async def test_a_negative_structure_weight_turns_the_order_around(placed: Store) -> None:
    reversed_order = await ranked(placed, Weights(structure=-1.0), services=["order-worker"])

    assert reversed_order[-1] == "INC-1"


async def test_of_two_alike_incidents_the_newer_ranks_first(store: Store) -> None:
    older = incident("INC-OLD", "newsletter", 300)
    newer = incident("INC-NEW", "order-audit", 3)
    await load_yaml(store, CATALOG + older + newer)

    assert await ranked(store) == ["INC-NEW", "INC-OLD"]
    assert await ranked(store, Weights(recency=-1.0)) == ["INC-OLD", "INC-NEW"]


def described(key: str, summary: str) -> str:
    return (
        "---\napiVersion: resilience/v1\nkind: Incident\n"
        f"metadata: {{name: {key}}}\n"
        f"spec: {{severity: SEV2, status: resolved, startedAt: '2026-11-01T00:00Z', "
        f"summary: '{summary}'}}\n"
    )


async def test_a_kind_of_failure_most_candidates_share_counts_less_than_a_rare_one(
    store: Store,
) -> None:
    # Both kinds are named by the query and each incident has one; only how many of the
    # candidates share each tells them apart (the database one's words even match better).
    databases = [described(f"INC-{n}", "Outage: mysql primary lost") for n in (1, 2, 3)]
    name_server = described("INC-9", "Outage: the nameserver went down again")
    await load_yaml(store, CATALOG + "".join(databases) + name_server)
    graph = await build_graph(store)

    answer = await find_similar_rca(store, graph, NOW, text="outage of a replica and a resolver")

    assert answer.results[0].key == "INC-9"
    assert answer.results[0].why.shared_failure_modes == ["dns"]
