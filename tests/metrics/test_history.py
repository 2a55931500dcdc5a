"""The history read from the store in SQL agrees with the one built from plain facts."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlmodel import select

from resilience_mcp import models as m
from resilience_mcp.graph import build_graph
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.metrics.dora import DoraSummary, compute_dora
from resilience_mcp.metrics.history import (
    SHIPPED,
    DeploymentFact,
    IncidentFact,
    build_history,
    load_history,
)
from resilience_mcp.metrics.scope import Scope, get_scope, production_environments
from resilience_mcp.models.metrics import ScopeKind
from resilience_mcp.store import Store
from tests.metrics.sample import NOW, SINCE, load_sample

pytestmark = pytest.mark.anyio

# svc-b ships a deployment that lists three commits (one is its head commit, one has no
# time), and INC-3's root cause is the second listed one.
LISTED = {
    "apiVersion": "resilience/v1",
    "kind": "Deployment",
    "metadata": {"name": "d10"},
    "spec": {
        "service": "svc-b",
        "environment": "prod",
        "commit": "c-head",
        "commitTime": "2026-02-25T20:00:00Z",
        "deployTime": "2026-02-25T22:00:00Z",
        "commits": [
            {"sha": "c-head", "time": "2026-02-25T20:00:00Z"},
            {"sha": "c-listed", "time": "2026-02-25T21:00:00Z"},
            {"sha": "c-untimed"},
        ],
    },
}
CAUSED = {
    "apiVersion": "resilience/v1",
    "kind": "Incident",
    "metadata": {"name": "INC-4"},
    "spec": {
        "services": ["svc-b"],
        "status": "resolved",
        "rootCauseCommit": "c-listed",
        "startedAt": "2026-02-27T00:00:00Z",
        "resolvedAt": "2026-02-27T02:00:00Z",
    },
}


def parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def commits_of(d: m.Deployment) -> tuple[tuple[str, datetime | None], ...]:
    found: dict[str, datetime | None] = {d.commit: d.commit_time} if d.commit else {}
    for listed in d.commits:
        if found.get(listed["sha"]) is None:
            found[listed["sha"]] = parse_time(listed.get("time"))
    return tuple(found.items())


async def facts(
    store: Store, graph: CatalogGraph, scope: Scope
) -> tuple[list[DeploymentFact], list[IncidentFact], list[IncidentFact]]:
    """The sample's facts read the plainest way there is: whole rows, filtered in Python."""
    environments = production_environments(graph)
    async with store.session() as session:
        deployments = (await session.execute(select(m.Deployment))).scalars().all()
        incidents = (await session.execute(select(m.Incident))).scalars().all()
        links = (await session.execute(select(m.IncidentLink))).scalars().all()

    def in_scope(service: str) -> bool:
        return scope.services is None or service in scope.services

    shipped = [
        DeploymentFact(d.name, d.service, d.environment, d.deploy_time, d.status, commits_of(d))
        for d in deployments
        if d.status in SHIPPED
        and (environments is None or d.environment in environments)
        and in_scope(d.service)
        and SINCE <= d.deploy_time < NOW
    ]
    linked = [
        IncidentFact(
            i.name,
            i.started_at,
            i.mitigated_at or i.resolved_at,
            i.root_cause_commit,
            tuple(k.target for k in links if k.incident == i.name and k.kind == "deployment"),
        )
        for i in incidents
    ]
    touched = {(k.incident, k.target) for k in links if k.kind == "service"}
    scoped = [
        f
        for f in linked
        if SINCE <= f.started_at < NOW
        and any((f.name, s) in touched for s in graph.services if in_scope(s))
    ]
    return shipped, linked, scoped


@pytest.mark.parametrize(
    ("kind", "name"), [("organisation", None), ("service", "svc-b"), ("team", "team-a")]
)
async def test_the_store_and_the_facts_give_the_same_four_keys(
    store: Store, kind: ScopeKind, name: str | None
) -> None:
    await load_sample(store, LISTED, CAUSED)
    graph = await build_graph(store)
    scope = get_scope(graph, kind, name)

    from_store = compute_dora(await load_history(store, graph, scope, SINCE, NOW), SINCE, NOW)
    from_facts = compute_dora(build_history(*await facts(store, graph, scope)), SINCE, NOW)

    assert from_store == from_facts


async def test_a_deployment_listing_its_commits_gives_a_pair_for_each(store: Store) -> None:
    await load_sample(store, LISTED, CAUSED)
    graph = await build_graph(store)
    scope = get_scope(graph, "service", "svc-b")

    summary: DoraSummary = compute_dora(
        await load_history(store, graph, scope, SINCE, NOW), SINCE, NOW
    )

    # d9 (30 min), then d10's head (120) and listed commit (60); its untimed one drops.
    assert (summary.lead_time.pairs, summary.lead_time.dropped) == (3, 1)
    assert summary.lead_time.median_minutes == 60.0
    # INC-4's root cause shipped in d10's list: d10 failed, and recovered when INC-4 did.
    assert summary.change_failure_rate.linked_to_incidents == 1
    assert summary.failed_deployment_recovery.median_minutes == 28 * 60.0
