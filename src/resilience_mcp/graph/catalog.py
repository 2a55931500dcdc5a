"""An in-memory view of the catalog: the entities, their links, and the dependency graph.

Built from the store in one pass (a handful of whole-table reads of `store.GRAPH_TABLES`),
kept by `GraphCache` until the store's graph version moves, and never rebuilt per call.
Flag states change far more often than the rest: when only the flag version moved, the
cache reloads just them (`store.FLAG_TABLES`) into a copy of the graph it holds. What the
syncs last confirmed (a row per source and kind, moved by every successful sync) has a
version of its own, and is reloaded the same way when only that moved.
History (deployments, incidents, flag changes, measurements) stays in the store and is
queried where needed: writing it moves only the catalog version, so it rebuilds nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import networkx as nx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from resilience_mcp import models as m
from resilience_mcp.graph.names import NameIndex
from resilience_mcp.graph.provenance import Confirmation, load_confirmations, read_confirmations
from resilience_mcp.store import GraphVersions, Store, VersionWatch

__all__ = ["LOOKUP_KINDS", "CatalogGraph", "GraphCache", "build_graph", "load_flag_states"]

logger = logging.getLogger(__name__)

T = TypeVar("T", bound=SQLModel)

# The kinds a bare name is looked up in, most asked-about first.
LOOKUP_KINDS = (
    "Service",
    "Team",
    "System",
    "Domain",
    "Feature",
    "FeatureFlag",
    "Person",
    "Customer",
    "Environment",
    "OnCall",
)


@dataclass
class CatalogGraph:
    # The store's graph version it was built at (`Store.graph_version`).
    version: int
    # The store's flag version its `flag_states` were read at (`Store.flag_version`).
    flag_version: int = 0
    # The store's confirm version its `confirmations` were read at.
    confirm_version: int = 0
    services: dict[str, m.Service] = field(default_factory=dict)
    teams: dict[str, m.Team] = field(default_factory=dict)
    people: dict[str, m.Person] = field(default_factory=dict)
    systems: dict[str, m.System] = field(default_factory=dict)
    domains: dict[str, m.Domain] = field(default_factory=dict)
    environments: dict[str, m.Environment] = field(default_factory=dict)
    features: dict[str, m.Feature] = field(default_factory=dict)
    flags: dict[str, m.FeatureFlag] = field(default_factory=dict)
    customers: dict[str, m.Customer] = field(default_factory=dict)
    rotations: dict[str, m.OnCallRotation] = field(default_factory=dict)
    # The catalog's own scorecards (the shipped ones are not rows).
    scorecards: dict[str, m.Scorecard] = field(default_factory=dict)

    # Edges point from the dependent service to what it depends on.
    dependencies: nx.DiGraph = field(default_factory=nx.DiGraph)
    team_members: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    person_teams: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    team_children: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    instances: dict[str, dict[str, m.ServiceInstance]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    env_children: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    feature_services: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    service_features: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    flag_states: dict[str, dict[str, m.FlagState]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    feature_flags: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    service_flags: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    flag_by_key: dict[str, str] = field(default_factory=dict)
    customer_features: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    feature_customers: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    customer_environments: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    environment_customers: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    team_rotations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    overrides: dict[str, list[m.OnCallOverride]] = field(default_factory=lambda: defaultdict(list))
    system_services: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    names: NameIndex = field(default_factory=NameIndex)
    # What each source last confirmed, by (source, kind), for the freshness of its facts
    # (`graph.provenance.last_confirmed`); filled by `GraphCache`.
    confirmations: dict[tuple[str, str], Confirmation] = field(default_factory=dict)
    # Values computed from this graph on first use (indexes, rankings), dropped with it.
    # None may depend on `flag_states`: a copy with reloaded states shares them.
    derived: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def versions(self) -> GraphVersions:
        """The store's versions this graph was read at."""
        return GraphVersions(self.version, self.flag_version, self.confirm_version)

    def entities(self, kind: str) -> dict[str, Any]:
        """The entities of one kind by name."""
        by_kind: dict[str, dict[str, Any]] = {
            "Service": self.services,
            "Team": self.teams,
            "Person": self.people,
            "System": self.systems,
            "Domain": self.domains,
            "Environment": self.environments,
            "Feature": self.features,
            "FeatureFlag": self.flags,
            "Customer": self.customers,
            "OnCall": self.rotations,
        }
        return by_kind.get(kind, {})

    def tiers(self) -> dict[str, int]:
        """Each service's tier, 9 (the least critical) when it has none; kept with the graph,
        since rankings read the tier of every service a walk reaches."""
        tiers: dict[str, int] | None = self.derived.get("tiers")
        if tiers is None:
            tiers = {name: service.tier or 9 for name, service in self.services.items()}
            self.derived["tiers"] = tiers
        return tiers

    def environment_scope(self, environment: str) -> set[str]:
        """An environment and every tenant or cell below it."""
        scope, todo = set(), [environment]
        while todo:
            env = todo.pop()
            if env not in scope:
                scope.add(env)
                todo.extend(self.env_children.get(env, ()))
        return scope

    def environment_lineage(self, environment: str) -> list[str]:
        """An environment and the environments above it, nearest first."""
        chain, env = [], environment
        while env and env not in chain:
            chain.append(env)
            parent = self.environments.get(env)
            env = parent.parent if parent and parent.parent else ""
        return chain


async def build_graph(store: Store) -> CatalogGraph:
    """Read the catalog from the store into a `CatalogGraph`."""
    started = time.perf_counter()
    version, flag_version, confirm_version = await store.graph_versions()
    async with store.session() as session:

        async def rows(table: type[T]) -> list[T]:
            return await _rows(session, table)

        async def plain(table: type[SQLModel]) -> list[Any]:
            # Link rows read once by `_link` and not kept: the row itself serves, unbuilt.
            result = await session.execute(select(table.__table__))  # type: ignore[attr-defined]
            return list(result)

        graph = CatalogGraph(
            version=version, flag_version=flag_version, confirm_version=confirm_version
        )
        graph.confirmations = await read_confirmations(session)
        graph.services = _by_name(await rows(m.Service))
        graph.teams = _by_name(await rows(m.Team))
        graph.people = _by_name(await rows(m.Person))
        graph.systems = _by_name(await rows(m.System))
        graph.domains = _by_name(await rows(m.Domain))
        graph.environments = _by_name(await rows(m.Environment))
        graph.features = _by_name(await rows(m.Feature))
        graph.flags = _by_name(await rows(m.FeatureFlag))
        graph.customers = _by_name(await rows(m.Customer))
        graph.rotations = _by_name(await rows(m.OnCallRotation))
        graph.scorecards = _by_name(await rows(m.Scorecard))
        links: dict[type[SQLModel], list[Any]] = {
            table: await rows(table) for table in (m.ServiceInstance, m.FlagState, m.OnCallOverride)
        }
        for table in (
            m.Dependency,
            m.TeamMember,
            m.FeatureService,
            m.CustomerFeature,
            m.CustomerEnvironment,
        ):
            links[table] = await plain(table)
    _link(graph, links)
    logger.debug(
        "built catalog graph v%d: %d services, %d edges in %.0f ms",
        version,
        len(graph.services),
        graph.dependencies.number_of_edges(),
        (time.perf_counter() - started) * 1000,
    )
    return graph


async def load_flag_states(store: Store) -> dict[str, dict[str, m.FlagState]]:
    """Every flag's state by environment, as `CatalogGraph.flag_states` holds them."""
    async with store.session() as session:
        return _flag_states(await _rows(session, m.FlagState))


async def _rows(session: AsyncSession, table: type[T]) -> list[T]:
    result = await session.execute(select(table.__table__))  # type: ignore[attr-defined]
    keys = list(result.keys())
    return [cast(T, table.model_construct(**dict(zip(keys, row, strict=True)))) for row in result]


def _flag_states(rows: Iterable[m.FlagState]) -> dict[str, dict[str, m.FlagState]]:
    states: dict[str, dict[str, m.FlagState]] = defaultdict(dict)
    for state in rows:
        states[state.flag][state.environment] = state
    return states


def _by_name(rows: Iterable[Any]) -> dict[str, Any]:
    return {row.name: row for row in rows}


def _link(graph: CatalogGraph, links: dict[type[SQLModel], list[Any]]) -> None:
    deps = graph.dependencies
    deps.add_nodes_from(graph.services)
    for dep in links[m.Dependency]:
        if dep.source == dep.target:
            continue
        existing = deps.get_edge_data(dep.source, dep.target)
        # The same edge declared twice counts as hard if either says so.
        hard = dep.hard or bool(existing and existing["hard"])
        deps.add_edge(dep.source, dep.target, kind=dep.kind, hard=hard, description=dep.description)

    for member in links[m.TeamMember]:
        graph.team_members[member.team].add(member.person)
        graph.person_teams[member.person].add(member.team)
    for team in graph.teams.values():
        if team.parent:
            graph.team_children[team.parent].add(team.name)
    for inst in links[m.ServiceInstance]:
        graph.instances[inst.service][inst.environment] = inst
    for env in graph.environments.values():
        if env.parent:
            graph.env_children[env.parent].add(env.name)
    for svc in graph.services.values():
        if svc.system:
            graph.system_services[svc.system].add(svc.name)

    for fs in links[m.FeatureService]:
        graph.feature_services[fs.feature].add(fs.service)
        graph.service_features[fs.service].add(fs.feature)
    for flag in graph.flags.values():
        graph.flag_by_key[flag.key] = flag.name
        if flag.feature:
            graph.feature_flags[flag.feature].add(flag.name)
        for service in flag.services:
            graph.service_flags[service].add(flag.name)
    graph.flag_states = _flag_states(links[m.FlagState])

    for cf in links[m.CustomerFeature]:
        graph.customer_features[cf.customer].add(cf.feature)
        graph.feature_customers[cf.feature].add(cf.customer)
    for ce in links[m.CustomerEnvironment]:
        graph.customer_environments[ce.customer].add(ce.environment)
        graph.environment_customers[ce.environment].add(ce.customer)

    for rotation in graph.rotations.values():
        graph.team_rotations[rotation.team].append(rotation.name)
    for override in links[m.OnCallOverride]:
        graph.overrides[override.rotation].append(override)

    for kind in LOOKUP_KINDS:
        graph.names.add(kind, graph.entities(kind))


# From this many services up, a graph once built is kept out of the cyclic garbage
# collector's full passes (`gc.freeze`). Those passes walk every object the process holds:
# with a graph of 10,000 services, half a million objects, each one paused whichever call
# it fell in for about 190 ms, a few calls in a hundred.
FREEZE_FROM_SERVICES = 1_000


class GraphCache:
    """The current `CatalogGraph`: rebuilt when the store's graph version moves, given
    fresh flag states when only the flag version does."""

    def __init__(
        self,
        store: Store,
        watch: VersionWatch | None = None,
        freeze_from: int = FREEZE_FROM_SERVICES,
    ) -> None:
        self.store = store
        # How the store's versions are learned; by default, read on every `get`.
        self.watch = watch or VersionWatch(store)
        self.freeze_from = freeze_from
        self._graph: CatalogGraph | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> CatalogGraph:
        versions = (await self.watch.current()).graph
        graph = self._graph
        if graph is not None and graph.versions == versions:
            return graph
        async with self._lock:
            graph = self._graph
            if graph is None or graph.version != versions.graph:
                self._graph = graph = await build_graph(self.store)
                self._freeze(graph)
                return graph
            if graph.flag_version != versions.flags:
                graph = await _with_fresh_flag_states(self.store, graph)
            if graph.confirm_version != versions.confirmations:
                graph = await _with_fresh_confirmations(self.store, graph)
            self._graph = graph
            return graph

    def invalidate(self) -> None:
        self._graph = None

    def _freeze(self, graph: CatalogGraph) -> None:
        """Keep a large new graph, and all else alive now, out of full collections. What an
        earlier freeze kept is let back first and collected, so that a graph replaced,
        whose views hold cycles, is freed: one full pass a rebuild, not a few a hundred
        calls."""
        if len(graph.services) < self.freeze_from:
            return
        started = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        logger.info(
            "kept %d objects out of garbage collection in %.2f s",
            gc.get_freeze_count(),
            time.perf_counter() - started,
        )


async def _with_fresh_confirmations(store: Store, graph: CatalogGraph) -> CatalogGraph:
    """A copy of `graph` with what the syncs last confirmed, read now (a copy, as for flag
    states)."""
    confirm_version = await store.confirm_version()
    confirmations = await load_confirmations(store)
    return dataclasses.replace(graph, confirm_version=confirm_version, confirmations=confirmations)


async def _with_fresh_flag_states(store: Store, graph: CatalogGraph) -> CatalogGraph:
    """A copy of `graph` with the flag states read now. A copy, so that a call still
    reading the old graph sees one consistent catalog; the rest is shared, unchanged."""
    flag_version = await store.flag_version()
    states = await load_flag_states(store)
    logger.debug("reloaded flag states at flag version %d", flag_version)
    return dataclasses.replace(graph, flag_version=flag_version, flag_states=states)
