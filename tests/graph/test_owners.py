"""Ownership inherited along the graph, and who is on call at a given time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from resilience_mcp.catalog import DEMO_ANCHOR
from resilience_mcp.graph import CatalogGraph, build_graph, find_on_call, find_owner
from resilience_mcp.graph.cards import owner_summary
from resilience_mcp.store import Store
from tests.support import load_yaml

pytestmark = pytest.mark.anyio


@pytest.fixture
async def graph(demo_store: Store) -> CatalogGraph:
    return await build_graph(demo_store)


@pytest.mark.parametrize(
    ("kind", "name", "owner", "path"),
    [
        ("Service", "payments-api", "team-payments", ["Service:payments-api"]),
        (
            "Service",
            "gift-cards",
            "team-payments",
            ["Service:gift-cards", "System:checkout-payments"],
        ),
        ("Team", "team-data", "team-data", ["Team:team-data"]),
        (
            "Person",
            "hannah-becker",
            "team-payments",
            ["Person:hannah-becker", "Team:team-payments"],
        ),
    ],
)
async def test_owners_are_direct_or_inherited_with_the_path(
    graph: CatalogGraph, kind: str, name: str, owner: str, path: list[str]
) -> None:
    found = find_owner(graph, kind, name)

    assert (found.owner, found.path) == (owner, path)
    assert found.inherited == (len(path) > 1)


async def test_a_service_with_no_owner_and_no_system_has_no_owner(graph: CatalogGraph) -> None:
    found = find_owner(graph, "Service", "reviews-service")

    assert found.owner is None


SMALL = """
apiVersion: resilience/v1
kind: Team
metadata: {name: platform}
---
apiVersion: resilience/v1
kind: Domain
metadata: {name: commerce}
spec: {owner: platform}
---
apiVersion: resilience/v1
kind: System
metadata: {name: shop}
spec: {domain: commerce}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: basket}
spec: {system: shop, tier: 2}
---
apiVersion: resilience/v1
kind: Feature
metadata: {name: wishlist}
spec: {services: [basket]}
---
apiVersion: resilience/v1
kind: FeatureFlag
metadata: {name: wishlist-on}
spec: {feature: wishlist}
"""


async def test_ownership_is_inherited_along_flag_feature_service_system_domain(
    store: Store,
) -> None:
    await load_yaml(store, SMALL)
    graph = await build_graph(store)

    found = find_owner(graph, "FeatureFlag", "wishlist-on")

    assert found.owner == "platform"
    assert found.path == [
        "FeatureFlag:wishlist-on",
        "Feature:wishlist",
        "Service:basket",
        "System:shop",
        "Domain:commerce",
    ]


async def test_the_rotation_gives_the_member_whose_shift_covers_the_time(
    graph: CatalogGraph,
) -> None:
    # 84-hour shifts from 2026-09-07T09:00Z: the 25th shift (index 24) is the fifth member's.
    [shift] = find_on_call(graph, "team-payments", DEMO_ANCHOR)

    assert shift.person == "hannah-becker"
    assert shift.start == DEMO_ANCHOR.replace(day=30, month=11, hour=9)
    assert shift.end - shift.start == timedelta(hours=84)
    assert not shift.is_override


async def test_an_override_wins_while_it_lasts(graph: CatalogGraph) -> None:
    [during] = find_on_call(graph, "team-identity", DEMO_ANCHOR)
    [after] = find_on_call(graph, "team-identity", DEMO_ANCHOR + timedelta(days=1))

    assert (during.person, during.is_override) == ("fatima-benali", True)
    assert not after.is_override


async def test_a_team_without_a_rotation_escalates_to_its_parents(graph: CatalogGraph) -> None:
    summary = owner_summary(graph, "Team", "team-data", DEMO_ANCHOR)

    assert summary.on_call_from == "team-platform"
    assert [c.person.name for c in summary.on_call] == ["dev-raman"]


async def test_nobody_is_on_call_before_a_rotation_starts(graph: CatalogGraph) -> None:
    assert find_on_call(graph, "team-payments", DEMO_ANCHOR - timedelta(days=365)) == []


async def test_the_owner_line_says_whose_rotation_answers_when_it_is_a_parents(
    graph: CatalogGraph,
) -> None:
    escalated = owner_summary(graph, "Service", "ml-feature-store", DEMO_ANCHOR)
    own = owner_summary(graph, "Service", "payments-api", DEMO_ANCHOR)

    assert escalated.line() == (
        "team-data; #team-data-ml; on call: Dev Raman "
        "(from team-platform's rotation; team-data has none)"
    )
    assert own.line() == "team-payments; #team-payments; on call: Hannah Becker"
