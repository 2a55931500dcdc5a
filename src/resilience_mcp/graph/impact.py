"""Impact: from failing services (or an incident) to everything broken, who feels it, and
who can act.

The walk goes up the dependency graph from the failing services: a service that needs one
of them through hard links only goes down with it, one that needs it through a soft link
somewhere is degraded. The features those services implement are down or degraded in
turn; the flags on those features and services are the levers (kill switches first); the
customers entitled to an affected feature and served where the failure is feel it; the
owners of the affected services, and who is on call for them now, are whom to call.

Narrowed to an environment, the failure counts where it is and in the cells below it,
except a cell that runs its own copy of every failing service (a dedicated tenant cell
with its own stack is not hit by a failure in the shared cell above it). Customers served
from an environment above count too, unless the failure is in a tenant's own cell. A
service known to run elsewhere only is not affected.

The likely culprits are the changes in the window before the failure: deployments of the
failing services and changes of the flags on what is affected, where the failure is. A
change made in an environment above counts only for what a cell shares with it
(`change_scope`): a deployment to prod-eu is no suspect in a tenant cell below it that runs
its own copy of the service.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, Literal, NamedTuple

from sqlalchemy import select as select_rows
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col, func, select

from resilience_mcp import models as m
from resilience_mcp.errors import InvalidInputError, NotFoundError
from resilience_mcp.graph.cards import DEPLOYMENT_COLUMNS, flag_state_text, owner_summary
from resilience_mcp.graph.cards import resolve_entity as resolve_name
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.graph.changes import ChangeScope, change_scope
from resilience_mcp.graph.features import flag_order, resolve_environment, resolve_flag
from resilience_mcp.graph.incidents import SUMMARY_COLUMNS
from resilience_mcp.graph.mermaid import impact_flowchart
from resilience_mcp.graph.owners import find_owner
from resilience_mcp.graph.walk import Walk, walk_dependencies
from resilience_mcp.models.catalog import IncidentBrief
from resilience_mcp.models.common import Link, ListCut, PageInfo
from resilience_mcp.models.flags import FlagChangeView
from resilience_mcp.models.impact import (
    NAMED,
    AffectedCustomer,
    CustomerImpactAnswer,
    FlagLever,
    ImpactAnswer,
    ImpactedFeature,
    ImpactedService,
    OwnerToCall,
    PastIncident,
    RecentDeployment,
)
from resilience_mcp.store import Store

__all__ = [
    "PLAN_ORDER",
    "RECENT_DEPLOYS",
    "Impact",
    "compute_customer_impact",
    "compute_impact",
    "find_impact",
    "plan_rank",
    "service_owner",
]

RECENT_DEPLOYS = timedelta(hours=24)
PLAN_ORDER = ("enterprise", "business", "pro", "free")
# How many names a list inside one item (a feature's services, a customer's features) shows.
INNER = 5
# Owners carry their on-call details, so fewer of them fit in an answer.
OWNERS = 5


def plan_rank(plan: str | None) -> int:
    """enterprise 0, business 1, pro 2, free 3, anything else (or nothing) 4."""
    return PLAN_ORDER.index(plan) if plan in PLAN_ORDER else len(PLAN_ORDER)


def service_owner(graph: CatalogGraph, service: str) -> str | None:
    """A service's owner, direct or inherited, remembered for the life of the graph."""
    owners: dict[str, str | None] = graph.derived.setdefault("service_owner", {})
    if service not in owners:
        owners[service] = find_owner(graph, "Service", service).owner
    return owners[service]


@dataclass
class FeatureHit:
    """An affected feature: down when a failing or down service implements it."""

    down: bool
    depth: int
    reported: bool
    services: list[str] = field(default_factory=list)

    def rank(self, name: str) -> tuple[bool, int, bool, str]:
        """Named as broken first, then nearest the failure, down before degraded."""
        return (not self.reported, self.depth, not self.down, name)


@dataclass
class Impact:
    """What a failure reaches, before it is cut into pages."""

    failing: list[str]
    walk: Walk
    # Where the failure counts; None when it was not narrowed to an environment.
    affected_envs: set[str] | None
    environment: str | None = None
    notes: list[str] = field(default_factory=list)
    # Failing services, then the reached ones nearest first.
    ranked: list[str] = field(default_factory=list)
    # Affected features, in rank order.
    features: dict[str, FeatureHit] = field(default_factory=dict)
    # Affected customers' names, enterprise first, then by weight: of the thousands a
    # shared service's outage reaches, most are only counted.
    customers: list[str] = field(default_factory=list)

    def status(self, service: str) -> Literal["failing", "down", "degraded"]:
        if service in self.failing:
            return "failing"
        return "down" if self.walk.is_hard(service) else "degraded"

    def services(self) -> list[str]:
        """Failing services first, then the reached ones nearest first."""
        return self.ranked


# The impact of failing services


def find_impact(
    graph: CatalogGraph,
    failing: Sequence[str],
    environments: Sequence[str] = (),
    *,
    reported_features: Iterable[str] = (),
) -> Impact:
    """Walk up from `failing` (service names), narrowed to `environments` when given."""
    affected, running = _environment_scope(graph, failing, environments)

    def runs_there(service: str) -> bool:
        where = graph.instances.get(service)
        return running is None or not where or not running.isdisjoint(where)

    walk = walk_dependencies(graph, failing, "up", allowed=runs_there)
    impact = Impact(failing=list(walk.starts), walk=walk, affected_envs=affected)
    impact.ranked = [*impact.failing, *walk.ranked(graph.tiers())]
    impact.features = _features(graph, impact, reported_features)
    impact.customers = _customers(graph, impact)
    return impact


def _environment_scope(
    graph: CatalogGraph, failing: Sequence[str], environments: Sequence[str]
) -> tuple[set[str] | None, set[str] | None]:
    """Where customers feel the failure, and where a service must run to be affected."""
    if not environments:
        return None, None
    affected: set[str] = set()
    running: set[str] = set()
    for env in environments:
        below = graph.environment_scope(env)
        above = graph.environment_lineage(env)
        running |= below | set(above)
        affected.add(env)
        affected.update(cell for cell in below - {env} if not _isolated(graph, failing, env, cell))
        entity = graph.environments.get(env)
        if entity is None or not entity.tenant:
            affected.update(above[1:])
    return affected, running


def _isolated(graph: CatalogGraph, failing: Sequence[str], env: str, cell: str) -> bool:
    """A cell runs its own copy of every failing service, apart from the one above it."""
    for service in failing:
        where = graph.instances.get(service, {})
        if env not in where or cell not in where:
            return False
    return bool(failing)


def _features(
    graph: CatalogGraph, impact: Impact, reported: Iterable[str]
) -> dict[str, FeatureHit]:
    named = {f for f in reported if f in graph.features}
    found: dict[str, FeatureHit] = {f: FeatureHit(True, 0, True) for f in sorted(named)}
    for service in impact.services():
        broken = impact.status(service) != "degraded"
        for feature in graph.service_features.get(service, ()):
            hit = found.setdefault(
                feature, FeatureHit(broken, impact.walk.depth(service), feature in named)
            )
            hit.down = hit.down or broken
            hit.services.append(service)
    return dict(sorted(found.items(), key=lambda item: item[1].rank(item[0])))


def _customers(graph: CatalogGraph, impact: Impact) -> list[str]:
    """Customers entitled to an affected feature and served where the failure is."""
    entitled: set[str] = set().union(
        *(graph.feature_customers.get(feature, ()) for feature in impact.features)
    )
    affected = impact.affected_envs
    if affected is not None:
        served = graph.customer_environments
        # A customer whose environments are not recorded is taken as served everywhere.
        entitled = {
            name
            for name in entitled
            if not (where := served.get(name)) or not where.isdisjoint(affected)
        }
    facts = _customer_facts(graph)
    return sorted(entitled, key=lambda name: facts[name].place)


class _CustomerFacts(NamedTuple):
    place: int  # in every list of customers: by plan, then weight, then name
    plan: str
    weight: float


def _customer_facts(graph: CatalogGraph) -> dict[str, _CustomerFacts]:
    """What lists and counts of customers read of each, kept with the graph: an outage of
    a shared service reaches thousands of customers."""
    facts: dict[str, _CustomerFacts] | None = graph.derived.get("customer_facts")
    if facts is None:
        ranked = sorted(
            graph.customers.values(), key=lambda c: (plan_rank(c.plan), -c.weight, c.name)
        )
        facts = {
            c.name: _CustomerFacts(place, c.plan or "unknown", c.weight)
            for place, c in enumerate(ranked)
        }
        graph.derived["customer_facts"] = facts
    return facts


def _customer_models(
    graph: CatalogGraph, impact: Impact, names: list[str]
) -> list[AffectedCustomer]:
    """The customers shown, each with its affected features in rank order (the most
    telling first) and the environments where it feels the failure."""
    rank = {feature: place for place, feature in enumerate(impact.features)}
    affected = impact.affected_envs
    shown = []
    for name in names:
        customer = graph.customers[name]
        features = sorted(
            (f for f in graph.customer_features.get(name, ()) if f in rank), key=rank.__getitem__
        )
        served = graph.customer_environments.get(name, set())
        where = served & affected if affected else served
        shown.append(
            AffectedCustomer(
                name=name,
                title=customer.title,
                plan=customer.plan,
                weight=customer.weight,
                status="down" if any(impact.features[f].down for f in features) else "degraded",
                features=features[:INNER],
                environments=sorted(where)[:INNER],
            )
        )
    return shown


def _by_plan(graph: CatalogGraph, names: list[str]) -> dict[str, int]:
    facts = _customer_facts(graph)
    counts = Counter(facts[name].plan for name in names)
    return dict(sorted(counts.items(), key=lambda item: (plan_rank(item[0]), item[0])))


def _weight(graph: CatalogGraph, names: list[str]) -> float:
    facts = _customer_facts(graph)
    return sum(facts[name].weight for name in names)


# The answer of impact_of_incident


async def compute_impact(
    store: Store,
    graph: CatalogGraph,
    now: datetime,
    *,
    incident: str | None = None,
    services: Sequence[str] = (),
    environment: str | None = None,
    limit: int = 10,
    since: timedelta = RECENT_DEPLOYS,
    diagram: bool = False,
) -> ImpactAnswer:
    """Everything a failure reaches, from an incident key and/or failing services."""
    if not incident and not services:
        raise InvalidInputError(
            "Name an incident key or at least one failing service; impact starts from one."
        )
    notes: list[str] = []
    failing = _resolve_services(graph, services, notes)
    found = await _load_incident(store, incident) if incident else None
    envs = [_resolve_environment(graph, environment, notes)] if environment else []
    if found is not None:
        failing = list(dict.fromkeys([*found.services, *failing]))
        envs = envs or [e for e in found.environments if e in graph.environments]

    impact = find_impact(graph, failing, envs, reported_features=found.features if found else ())
    impact.environment = envs[0] if len(envs) == 1 else None
    levers = _rank_levers(graph, impact, found.flags if found else [])
    gone = [s for s in failing if s not in graph.services]
    if gone:
        notes.append(f"Not in the catalog any more, so left out: {', '.join(gone)}.")
    # An incident's likely culprits shipped in the window before it started (or since);
    # what came before it is what it started with.
    start, end, before = now - since, now, now
    if found is not None:
        start = found.row.started_at - since
        end = min(now, found.row.resolved_at or now)
        before = found.row.started_at
    async with store.session() as session:
        # Plain row reads: the Core connection skips the ORM's per-statement work.
        conn = await session.connection()
        deployments = await _recent_deployments(conn, impact, found, start, end, limit, graph)
        flipped = await _recent_flag_changes(conn, graph, impact, levers, start, end)
        past = await _past_incidents(conn, impact, found, before, limit)
    answer = _shape(graph, impact, now, limit, notes + impact.notes, found, envs, levers)
    answer.deployments, answer.deployments_page = deployments
    answer.deployments_since = start
    answer.flag_changes = flipped[:limit]
    answer.flag_changes_page = ListCut.of(len(flipped), len(answer.flag_changes))
    # Newest first, so the first change met of each flag is its last.
    last_changed: dict[str, datetime] = {}
    for change in flipped:
        last_changed.setdefault(change.flag, change.at)
    for lever in answer.flags:
        lever.changed_at = last_changed.get(lever.name)
    answer.past_incidents, answer.past_incidents_page = past
    if diagram:
        answer.diagram = impact_flowchart(graph, impact.walk, impact.failing)
    return answer


def _resolve_services(graph: CatalogGraph, names: Iterable[str], notes: list[str]) -> list[str]:
    resolved = []
    for name in names:
        found = resolve_name(graph, name, ("Service",))
        if found.corrected_from:
            notes.append(f"{found.corrected_from!r} was taken for {found.name}.")
        resolved.append(found.name)
    return list(dict.fromkeys(resolved))


def _resolve_environment(graph: CatalogGraph, name: str, notes: list[str]) -> str:
    found = resolve_environment(graph, name)
    if found.corrected_from:
        notes.append(f"{found.corrected_from!r} was taken for environment {found.name}.")
    return found.name


@dataclass
class _Incident:
    row: m.Incident
    services: list[str]
    environments: list[str]
    features: list[str]
    flags: list[str]
    deployments: list[str]


async def _load_incident(store: Store, key: str) -> _Incident:
    async with store.session() as session:
        row = None
        for candidate in dict.fromkeys([key.strip(), key.strip().upper(), key.strip().lower()]):
            if (row := await session.get(m.Incident, candidate)) is not None:
                break
        if row is None:
            raise NotFoundError("incident", key, await _recent_keys(session))
        links = await session.execute(
            select(m.IncidentLink.kind, m.IncidentLink.target)
            .where(col(m.IncidentLink.incident) == row.name)
            .order_by(col(m.IncidentLink.id))
        )
        by_kind: dict[str, list[str]] = {}
        for kind, target in links.all():
            by_kind.setdefault(kind, []).append(target)
    return _Incident(
        row=row,
        **{
            field_name: list(dict.fromkeys(by_kind.get(kind, [])))
            for field_name, kind in (
                ("services", "service"),
                ("environments", "environment"),
                ("features", "feature"),
                ("flags", "flag"),
                ("deployments", "deployment"),
            )
        },
    )


async def _recent_keys(session: AsyncSession) -> list[str]:
    rows = await session.execute(
        select(m.Incident.name).order_by(col(m.Incident.started_at).desc()).limit(5)
    )
    return list(rows.scalars().all())


def _shape(
    graph: CatalogGraph,
    impact: Impact,
    now: datetime,
    limit: int,
    notes: list[str],
    incident: _Incident | None,
    envs: list[str],
    ranking: _Levers,
) -> ImpactAnswer:
    """The answer, with only each list's first `limit` items built."""
    ranked = impact.services()
    levers, levers_total = _levers(graph, ranking, envs, limit)
    owners_shown = min(limit, OWNERS)
    owners, owners_total = _owners(graph, impact, now, owners_shown)
    customers = impact.customers
    if incident is not None and incident.row.status == "resolved":
        notes.append(f"{incident.row.name} is resolved; this is the impact it had.")
    return ImpactAnswer(
        incident=_incident_brief(incident.row) if incident else None,
        failing=impact.failing,
        environment=impact.environment,
        environments=sorted(impact.affected_envs or ()),
        notes=notes,
        runbooks=_runbooks(graph, impact.failing),
        services=[_impacted(graph, impact, s) for s in ranked[:limit]],
        services_page=ListCut.of(len(ranked), min(limit, len(ranked))),
        down=len(impact.walk.hard_depth) - len(impact.failing),
        degraded=len(impact.walk.soft_depth),
        features=_feature_list(graph, impact, limit),
        features_page=ListCut.of(len(impact.features), min(limit, len(impact.features))),
        flags=levers,
        flags_page=ListCut.of(levers_total, len(levers)),
        customers=_customer_models(graph, impact, customers[:limit]),
        customers_page=ListCut.of(len(customers), min(limit, len(customers))),
        customers_by_plan=_by_plan(graph, customers),
        customers_weight=_weight(graph, customers),
        owners=owners,
        owners_page=ListCut.of(owners_total, len(owners)),
        deployments=[],
        deployments_page=ListCut.of(0, 0),
        deployments_since=now,
        flag_changes=[],
        flag_changes_page=ListCut.of(0, 0),
        past_incidents=[],
        past_incidents_page=ListCut.of(0, 0),
    )


def _runbooks(graph: CatalogGraph, failing: list[str]) -> list[Link]:
    services = [graph.services.get(name) for name in failing]
    return [Link(url=s.runbook, title=s.name) for s in services if s is not None and s.runbook]


def _incident_brief(row: m.Incident) -> IncidentBrief:
    return IncidentBrief(
        key=row.name,
        title=row.title,
        severity=row.severity,
        status=row.status,
        started_at=row.started_at,
        resolved_at=row.resolved_at,
    )


def _impacted(graph: CatalogGraph, impact: Impact, service: str) -> ImpactedService:
    svc = graph.services.get(service)
    return ImpactedService(
        name=service,
        status=impact.status(service),
        depth=impact.walk.depth(service),
        path=impact.walk.path(service),
        tier=svc.tier if svc else None,
        owner=service_owner(graph, service),
    )


def _feature_list(graph: CatalogGraph, impact: Impact, limit: int) -> list[ImpactedFeature]:
    return [
        ImpactedFeature(
            name=name,
            title=graph.features[name].title if name in graph.features else None,
            status="down" if hit.down else "degraded",
            depth=hit.depth,
            services=hit.services[:INNER],
            reported=hit.reported,
        )
        for name, hit in islice(impact.features.items(), limit)
    ]


@dataclass
class _Levers:
    """The flags on affected features and services, ranked, with what made each one (the
    feature it controls or the service that reads it, said in words only when shown) and
    the affected services that read it."""

    ranked: list[str]
    found_by: dict[str, tuple[str, str]]
    named: set[str]
    readers: dict[str, list[str]]
    impact: Impact

    def why(self, flag: str) -> str:
        kind, name = self.found_by.get(flag, ("", ""))
        if kind == "feature":
            state = "down" if self.impact.features[name].down else "degraded"
            reason = f"controls feature {name} ({state})"
        elif kind == "service":
            reason = f"read by {name} ({self.impact.status(name)})"
        else:
            reason = "not on an affected feature"
        return f"{NAMED}; {reason}" if flag in self.named else reason


def _rank_levers(graph: CatalogGraph, impact: Impact, named: Sequence[str]) -> _Levers:
    """Kill switches first, then the flags the incident names, then by how telling the
    feature or service they relate to is."""
    rank: dict[str, tuple[int, int]] = {}
    found_by: dict[str, tuple[str, str]] = {}
    readers: dict[str, list[str]] = {}
    for position, feature in enumerate(impact.features):
        for flag in graph.feature_flags.get(feature, ()):
            if flag not in rank:
                rank[flag] = (0, position)
                found_by[flag] = ("feature", feature)
    for position, service in enumerate(impact.services()):
        for flag in graph.service_flags.get(service, ()):
            readers.setdefault(flag, []).append(service)
            if flag not in rank:
                rank[flag] = (1, position)
                found_by[flag] = ("service", service)
    known = {flag for flag in named if flag in graph.flags}
    for flag in known:
        rank[flag] = (-1, 0)
    order = flag_order(graph)
    ranked = sorted(
        (f for f in rank if f in order.rank),
        key=lambda f: (order.rank[f], rank[f], order.key[f]),
    )
    return _Levers(ranked, found_by, known, readers, impact)


def _levers(
    graph: CatalogGraph, levers: _Levers, envs: Sequence[str], limit: int
) -> tuple[list[FlagLever], int]:
    """The first `limit` levers, and how many in all."""
    shown = [
        FlagLever(
            name=flag,
            key=graph.flags[flag].key,
            purpose=graph.flags[flag].purpose,
            kill_switch=graph.flags[flag].purpose == "kill-switch",
            feature=graph.flags[flag].feature,
            services=levers.readers.get(flag, [])[:INNER],
            states=_states(graph, flag, envs),
            why=levers.why(flag),
        )
        for flag in levers.ranked[:limit]
    ]
    return shown, len(levers.ranked)


def _states(graph: CatalogGraph, flag: str, envs: Sequence[str]) -> dict[str, str]:
    """The flag's state in each environment asked about (inherited from above when it has
    none of its own) and the cells below; every state when none was asked about."""
    states = graph.flag_states.get(flag, {})
    if not envs:
        return {env: flag_state_text(st) for env, st in sorted(states.items())}
    shown: dict[str, str] = {}
    for env in envs:
        own = next((e for e in graph.environment_lineage(env) if e in states), None)
        if own is not None:
            shown[env] = flag_state_text(states[own]) + ("" if own == env else f" (from {own})")
        for cell in sorted(graph.environment_scope(env) - {env}):
            if cell in states:
                shown[cell] = flag_state_text(states[cell])
    return shown


def _owners(
    graph: CatalogGraph, impact: Impact, now: datetime, shown: int
) -> tuple[list[OwnerToCall], int]:
    """Owners of the affected services, those of failing services first, the unowned last:
    the first `shown` with who is on call, and how many owners in all."""
    groups: dict[str | None, list[str]] = {}
    for service in impact.services():
        groups.setdefault(service_owner(graph, service), []).append(service)
    failing = set(impact.failing)
    # Groups were made in ranked order, so their position says who is nearest the failure.
    position = {owner: i for i, owner in enumerate(groups)}
    order = sorted(groups, key=lambda o: (o is None, failing.isdisjoint(groups[o]), position[o]))
    owners = [
        OwnerToCall(
            owner=owner_summary(graph, "Service", groups[owner][0], now),
            services=groups[owner][:INNER],
            services_total=len(groups[owner]),
            owns_failing=not failing.isdisjoint(groups[owner]),
        )
        for owner in order[:shown]
    ]
    return owners, len(order)


# The columns a flag change is shown with (a deployment's are DEPLOYMENT_COLUMNS, an
# incident's SUMMARY_COLUMNS); wide text and JSON stay behind.
_FLAG_CHANGE_COLUMNS = (
    col(m.FlagChange.flag),
    col(m.FlagChange.environment),
    col(m.FlagChange.at),
    col(m.FlagChange.by),
    col(m.FlagChange.from_state),
    col(m.FlagChange.to_state),
    col(m.FlagChange.reason),
)


async def _recent_deployments(
    conn: AsyncConnection,
    impact: Impact,
    incident: _Incident | None,
    since: datetime,
    now: datetime,
    limit: int,
    graph: CatalogGraph,
) -> tuple[list[RecentDeployment], ListCut]:
    """Deployments of the failing services in the window, where the failure is, the
    incident's suspects first."""
    if not impact.failing:
        return [], ListCut.of(0, 0)
    where = [
        col(m.Deployment.service).in_(impact.failing),
        col(m.Deployment.deploy_time) >= since,
        col(m.Deployment.deploy_time) <= now,
    ]
    scope: ChangeScope | None = None
    if impact.affected_envs is not None:
        scope = change_scope(graph, impact.affected_envs, graph.instances, impact.failing)
        where.append(scope.clause(col(m.Deployment.environment), col(m.Deployment.service)))
    # One round trip: the page and, on each row, how many matched in all.
    rows = await conn.execute(
        select_rows(*DEPLOYMENT_COLUMNS, func.count().over())
        .where(*where)
        .order_by(col(m.Deployment.deploy_time).desc(), col(m.Deployment.name))
        .limit(limit)
    )
    page: list[Any] = list(rows.all())
    total = int(page[0][-1]) if page else 0
    recent = [_deployment(row) for row in page]

    suspects: list[RecentDeployment] = []
    if incident is not None and incident.deployments:
        found = await conn.execute(
            select_rows(*DEPLOYMENT_COLUMNS).where(col(m.Deployment.name).in_(incident.deployments))
        )
        suspects = [_deployment(row, suspected=True) for row in found.all()]
        suspects.sort(key=lambda d: d.deploy_time, reverse=True)
    named = {d.name for d in suspects}
    # Suspects outside the window are shown too, and counted on top of it.
    outside = sum(1 for d in suspects if not _in_window(d, impact, since, now, scope))
    shown = [*suspects, *(d for d in recent if d.name not in named)][:limit]
    return shown, ListCut.of(total + outside, len(shown))


def _deployment(row: Any, *, suspected: bool = False) -> RecentDeployment:
    name, service, environment, version, status, deploy_time, author, commit = row[:8]
    return RecentDeployment(
        name=name,
        service=service,
        environment=environment,
        version=version,
        status=status,
        deploy_time=deploy_time,
        author=author,
        commit=commit,
        suspected=suspected,
    )


def _in_window(
    deployment: RecentDeployment,
    impact: Impact,
    since: datetime,
    now: datetime,
    scope: ChangeScope | None,
) -> bool:
    env_ok = scope is None or scope.covers(deployment.environment, deployment.service)
    timely = since <= deployment.deploy_time <= now
    return deployment.service in impact.failing and timely and env_ok


async def _recent_flag_changes(
    conn: AsyncConnection,
    graph: CatalogGraph,
    impact: Impact,
    levers: _Levers,
    since: datetime,
    until: datetime,
) -> list[FlagChangeView]:
    """Every change of a lever in the window, where the failure is, newest first.

    A window holds few flag changes beside the levers of a wide failure, so they are read
    whole and matched here rather than naming every lever in the query."""
    if not levers.ranked:
        return []
    scope = None
    if impact.affected_envs is not None:
        scope = change_scope(graph, impact.affected_envs, graph.flag_states, levers.ranked)
    rows = await conn.execute(
        select_rows(*_FLAG_CHANGE_COLUMNS)
        .where(col(m.FlagChange.at) >= since, col(m.FlagChange.at) <= until)
        .order_by(col(m.FlagChange.at).desc(), col(m.FlagChange.flag), col(m.FlagChange.id).desc())
    )
    wanted = set(levers.ranked)
    return [
        FlagChangeView(
            flag=flag,
            key=graph.flags[flag].key,
            environment=environment,
            at=at,
            by=by,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
        )
        for flag, environment, at, by, from_state, to_state, reason in rows.all()
        if flag in wanted and (scope is None or scope.covers(environment, flag))
    ]


async def _past_incidents(
    conn: AsyncConnection,
    impact: Impact,
    incident: _Incident | None,
    before: datetime,
    limit: int,
) -> tuple[list[PastIncident], ListCut]:
    """Incidents on the failing services that started before `before`, newest first."""
    if not impact.failing:
        return [], ListCut.of(0, 0)
    linked = select(m.IncidentLink.incident).where(
        col(m.IncidentLink.kind) == "service", col(m.IncidentLink.target).in_(impact.failing)
    )
    where = [col(m.Incident.name).in_(linked), col(m.Incident.started_at) < before]
    if incident is not None:
        where.append(col(m.Incident.name) != incident.row.name)
    rows = await conn.execute(
        select_rows(*SUMMARY_COLUMNS, func.count().over())
        .where(*where)
        .order_by(col(m.Incident.started_at).desc(), col(m.Incident.name))
        .limit(limit)
    )
    page = rows.all()
    total = page[0][-1] if page else 0
    # With one failing service, that is the one every incident found shares.
    if len(impact.failing) == 1:
        shared = {row[0]: list(impact.failing) for row in page}
    else:
        shared = await _shared_services(conn, [row[0] for row in page], impact.failing)
    past = [
        PastIncident(
            key=key,
            title=title,
            severity=severity,
            status=status,
            started_at=started_at,
            resolved_at=resolved_at,
            services=shared.get(key, []),
        )
        for key, title, severity, status, started_at, resolved_at, _total in page
    ]
    return past, ListCut.of(total, len(past))


async def _shared_services(
    conn: AsyncConnection, keys: list[str], failing: list[str]
) -> dict[str, list[str]]:
    if not keys:
        return {}
    rows = await conn.execute(
        select(m.IncidentLink.incident, m.IncidentLink.target).where(
            col(m.IncidentLink.incident).in_(keys),
            col(m.IncidentLink.kind) == "service",
            col(m.IncidentLink.target).in_(failing),
        )
    )
    shared: dict[str, set[str]] = {}
    for key, target in rows.all():
        shared.setdefault(key, set()).add(target)
    # In the order the failing services were named, whatever order the rows came in.
    return {key: [s for s in failing if s in found] for key, found in shared.items()}


# The answer of get_customer_impact


def compute_customer_impact(
    graph: CatalogGraph,
    *,
    services: Sequence[str] = (),
    feature: str | None = None,
    flag: str | None = None,
    environment: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> CustomerImpactAnswer:
    """The customers a failure reaches, from services, a feature, or a flag."""
    if not services and not feature and not flag:
        raise InvalidInputError(
            "Name failing services, a feature or a flag; customer impact starts from one."
        )
    notes: list[str] = []
    failing = _resolve_services(graph, services, notes)
    features: list[str] = []
    said = [f"services {', '.join(failing)}"] if failing else []
    if feature:
        found = resolve_name(graph, feature, ("Feature",))
        _note(notes, found.corrected_from, f"feature {found.name}")
        features.append(found.name)
        said.append(f"feature {found.name}")
    if flag:
        found = resolve_flag(graph, flag)
        _note(notes, found.corrected_from, f"flag {found.name}")
        entity = graph.flags[found.name]
        failing = list(dict.fromkeys([*failing, *entity.services]))
        features += [entity.feature] if entity.feature else []
        said.append(f"flag {entity.key}")
        if not entity.feature and not entity.services:
            notes.append(f"The flag {entity.key} names no feature and no service reading it.")
    envs = [_resolve_environment(graph, environment, notes)] if environment else []

    impact = find_impact(graph, failing, envs, reported_features=features)
    page = _customer_models(graph, impact, impact.customers[offset : offset + limit])
    return CustomerImpactAnswer(
        started_from=" and ".join(said),
        failing=impact.failing,
        environment=envs[0] if envs else None,
        environments=sorted(impact.affected_envs or ()),
        notes=notes,
        features=_feature_list(graph, impact, limit),
        features_page=ListCut.of(len(impact.features), min(limit, len(impact.features))),
        customers=page,
        page=PageInfo.of(len(impact.customers), len(page), offset),
        by_plan=_by_plan(graph, impact.customers),
        total_weight=_weight(graph, impact.customers),
    )


def _note(notes: list[str], corrected_from: str | None, taken: str) -> None:
    if corrected_from:
        notes.append(f"{corrected_from!r} was taken for {taken}.")
