"""The owner answer and the service card: what an agent asks first about anything."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import select as select_rows
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col, func, select

from resilience_mcp import models as m
from resilience_mcp.errors import NotFoundError
from resilience_mcp.graph.catalog import LOOKUP_KINDS, CatalogGraph
from resilience_mcp.graph.incidents import SUMMARY_COLUMNS
from resilience_mcp.graph.names import Resolved
from resilience_mcp.graph.owners import find_on_call, find_owner
from resilience_mcp.graph.provenance import Confirmations, entity_source, last_confirmed
from resilience_mcp.models.catalog import (
    DependencyEdge,
    DeploymentBrief,
    FlagBrief,
    IncidentBrief,
    OwnerAnswer,
    Provenance,
    RunningIn,
    ServiceCard,
)
from resilience_mcp.models.common import (
    FactSource,
    Link,
    ListCut,
    OnCallNow,
    OwnerSummary,
    PersonSummary,
)
from resilience_mcp.models.kinds import canonical_kind
from resilience_mcp.store import Store

__all__ = [
    "OPEN_STATUSES",
    "STALE_AFTER",
    "fact_source",
    "flag_state_text",
    "get_owner",
    "get_service",
    "owner_summary",
    "person_summary",
    "resolve_entity",
]

OPEN_STATUSES = ("investigating", "identified", "monitoring", "mitigated")
# Synced facts older than this are flagged stale, unless the server says otherwise.
STALE_AFTER = timedelta(days=7)
# Kinds whose entities live in the store's history rather than the graph.
HISTORY_KINDS: dict[str, type[m.Entity]] = {
    "Incident": m.Incident,
    "Deployment": m.Deployment,
    "Postmortem": m.Postmortem,
    "RemediationTask": m.RemediationTask,
}


def person_summary(graph: CatalogGraph, name: str) -> PersonSummary:
    person = graph.people.get(name)
    if person is None:
        return PersonSummary(name=name)
    return PersonSummary(name=name, title=person.title, email=person.email, handle=person.handle)


def owner_summary(
    graph: CatalogGraph,
    kind: str,
    name: str,
    at: datetime,
    *,
    stale_after: timedelta = STALE_AFTER,
) -> OwnerSummary:
    """The owner of `kind:name` with how it was inherited, who is on call at `at`, and
    where both facts came from (stale when synced longer than `stale_after` ago)."""
    summary = _owner_summary(graph, kind, name, at)
    _add_sources(graph, summary, at, stale_after)
    return summary


def fact_source(
    entity: m.Entity | None, at: datetime, stale_after: timedelta, confirmations: Confirmations
) -> FactSource | None:
    """Where an entity's facts came from, and whether a synced one has gone stale."""
    if entity is None:
        return None
    return entity_source(entity, at, stale_after, confirmations)


def _add_sources(
    graph: CatalogGraph, summary: OwnerSummary, at: datetime, stale_after: timedelta
) -> None:
    if summary.owner is None or not summary.path:
        return
    # The last entity walked is the one that names the owner.
    kind, _, name = summary.path[-1].partition(":")
    confirmations = graph.confirmations
    entity = graph.entities(kind).get(name)
    summary.owner_source = fact_source(entity, at, stale_after, confirmations)
    rotations = [
        graph.rotations[c.rotation] for c in summary.on_call if c.rotation in graph.rotations
    ]
    if rotations:
        oldest = min(rotations, key=lambda r: last_confirmed(r, confirmations))
        summary.on_call_source = fact_source(oldest, at, stale_after, confirmations)


def _owner_summary(graph: CatalogGraph, kind: str, name: str, at: datetime) -> OwnerSummary:
    found = find_owner(graph, kind, name)
    if found.owner is None:
        return OwnerSummary(owner=None, path=found.path)
    summary = OwnerSummary(
        owner=found.owner,
        owner_kind=found.owner_kind,
        inherited=found.inherited,
        inherited_from=found.path[-1] if found.inherited else None,
        path=found.path,
    )
    team = graph.teams.get(found.owner)
    if team is None:
        person = graph.people.get(found.owner)
        summary.title = person.title if person else None
        if person is None:
            # Named, but neither a team nor a person of the catalog (a Backstage owner
            # loaded unresolved): no kind, and the answer says so.
            summary.owner_kind = None
        return summary
    summary.title = team.title
    summary.chat_channel = team.chat_channel
    summary.escalation = team.escalation or team.email
    # A team without a rotation of its own escalates to the nearest parent that has one.
    current: str | None = team.name
    seen: set[str] = set()
    while current and current not in seen:
        seen.add(current)
        shifts = find_on_call(graph, current, at)
        if shifts:
            summary.on_call = [
                OnCallNow(
                    rotation=s.rotation,
                    team=s.team,
                    person=person_summary(graph, s.person),
                    shift_start=s.start,
                    shift_end=s.end,
                    is_override=s.is_override,
                )
                for s in shifts
            ]
            summary.on_call_from = None if current == team.name else current
            break
        parent = graph.teams.get(current)
        current = parent.parent if parent else None
    return summary


def resolve_entity(
    graph: CatalogGraph, name: str, kinds: tuple[str, ...] | None = None
) -> Resolved:
    """A catalog entity by forgiving name, of one of `kinds` when given (else of any kind);
    `kind:name` narrows the kinds."""
    if ":" in name:
        prefix, rest = name.split(":", 1)
        kind = canonical_kind(prefix)
        if kind is not None:
            if kinds is not None and kind not in kinds:
                # `team:payments` asked of a service lookup names no service at all.
                raise NotFoundError(kinds[0] if len(kinds) == 1 else "entity", name)
            return graph.names.resolve(rest, [kind])
    return graph.names.resolve(name, kinds or LOOKUP_KINDS)


async def get_owner(
    store: Store,
    graph: CatalogGraph,
    name: str,
    at: datetime,
    *,
    limit: int = 20,
    stale_after: timedelta = STALE_AFTER,
) -> OwnerAnswer:
    """Who owns `name` (any kind, or an incident, deployment, postmortem or task key)."""
    try:
        resolved = resolve_entity(graph, name)
    except NotFoundError:
        history = await _owner_from_history(store, graph, name)
        if history is None:
            raise
        resolved = history

    summary = owner_summary(graph, resolved.kind, resolved.name, at)
    if resolved.kind in HISTORY_KINDS:
        summary = await _history_owner(store, graph, resolved, at)
    _add_sources(graph, summary, at, stale_after)

    members = sorted(graph.team_members.get(summary.owner or "", ()))
    team = graph.teams.get(summary.owner or "")
    return OwnerAnswer(
        name=resolved.name,
        kind=resolved.kind,
        corrected_from=resolved.corrected_from,
        owner=summary,
        parent_team=team.parent if team else None,
        members=[person_summary(graph, p) for p in members[:limit]],
        members_page=ListCut.of(len(members), min(limit, len(members))),
        links=_entity_links(graph, resolved.kind, resolved.name),
    )


def _entity_links(graph: CatalogGraph, kind: str, name: str) -> list[Link]:
    """A service's runbook, repository and dashboards, then the links its catalog entry
    declares; for other kinds, the declared links alone."""
    entity = graph.entities(kind).get(name)
    if entity is None:
        return []
    links: list[Link] = []
    if isinstance(entity, m.Service):
        named = [("runbook", entity.runbook), ("repository", entity.repository)]
        named += [("dashboard", url) for url in entity.dashboards]
        links = [Link(url=url, title=title) for title, url in named if url]
    seen = {link.url for link in links}
    return links + [link for link in Link.all_of(entity.links) if link.url not in seen]


async def _owner_from_history(store: Store, graph: CatalogGraph, name: str) -> Resolved | None:
    async with store.session() as session:
        for kind, table in HISTORY_KINDS.items():
            # Keys are typed in any case: inc-2041 finds INC-2041.
            found = await session.execute(
                select(table.name).where(func.lower(col(table.name)) == name.strip().lower())
            )
            if (key := found.scalars().first()) is not None:
                return Resolved(key, kind)
    return None


async def _history_owner(
    store: Store, graph: CatalogGraph, resolved: Resolved, at: datetime
) -> OwnerSummary:
    """Deployments, incidents, postmortems and tasks take the owner of what they concern."""
    async with store.session() as session:
        table = HISTORY_KINDS[resolved.kind]
        row: SQLModel | None = await session.get(table, resolved.name)
        ref = f"{resolved.kind}:{resolved.name}"
        parent: tuple[str, str] | None = None
        if isinstance(row, m.RemediationTask) and row.owner:
            summary = owner_summary(graph, "Team", row.owner, at)
            summary.path = [ref, *summary.path]
            return summary
        if isinstance(row, m.Deployment):
            parent = ("Service", row.service)
        elif isinstance(row, m.Postmortem | m.RemediationTask) and row.incident:
            parent = ("Incident", row.incident)
        elif isinstance(row, m.Incident):
            services = await _incident_services(session, row.name)
            parent = ("Service", services[0]) if services else None
    if parent is None:
        return OwnerSummary(owner=None, path=[ref])
    if parent[0] == "Incident":
        summary = await _history_owner(store, graph, Resolved(parent[1], "Incident"), at)
    else:
        summary = owner_summary(graph, parent[0], parent[1], at)
    summary.path = [ref, *summary.path]
    summary.inherited = summary.owner is not None
    summary.inherited_from = summary.inherited_from or (
        summary.path[1] if len(summary.path) > 1 else None
    )
    return summary


async def _incident_services(session: AsyncSession, key: str) -> list[str]:
    """The incident's services in the order it names them; the first is the one that failed."""
    result = await session.execute(
        select(m.IncidentLink.target)
        .where(col(m.IncidentLink.incident) == key, col(m.IncidentLink.kind) == "service")
        .order_by(col(m.IncidentLink.id))
    )
    return list(dict.fromkeys(result.scalars().all()))


def flag_state_text(state: m.FlagState) -> str:
    if not state.enabled:
        return "off"
    if state.variant:
        return f"on ({state.variant})"
    if state.rollout is not None and state.rollout < 100:
        return f"on {state.rollout:g}%"
    return "on"


async def get_service(
    store: Store,
    graph: CatalogGraph,
    name: str,
    at: datetime,
    *,
    limit: int = 15,
    stale_after: timedelta = STALE_AFTER,
) -> ServiceCard:
    """One card for a service: owner, tier, links, neighbours, where it runs, flags, incidents."""
    resolved = resolve_entity(graph, name, ("Service",))
    svc = graph.services[resolved.name]
    deps = graph.dependencies

    def ranked(pairs: Iterable[tuple[str, dict[str, Any]]]) -> tuple[int, list[DependencyEdge]]:
        """How many neighbours, and the first `limit` as edges: hard ones first, then by
        tier and name. A shared service has hundreds; only the shown become models."""
        found = []
        for other, data in pairs:
            node = graph.services.get(other)
            hard = bool(data.get("hard", True))
            found.append((not hard, (node.tier if node else None) or 9, other, data, node))
        found.sort(key=itemgetter(0, 1, 2))
        edges = [
            DependencyEdge(
                service=other,
                kind=str(data.get("kind", "sync")),
                hard=not soft,
                tier=node.tier if node else None,
                type=node.type if node else None,
            )
            for soft, _, other, data, node in found[:limit]
        ]
        return len(found), edges

    down_total, down = ranked((t, d) for _, t, d in deps.out_edges(svc.name, data=True))
    up_total, up = ranked((s, d) for s, _, d in deps.in_edges(svc.name, data=True))
    flag_names = graph.service_flags.get(svc.name, set()).union(
        *(graph.feature_flags.get(f, set()) for f in graph.service_features.get(svc.name, ()))
    )
    flags = sorted(
        (graph.flags[f] for f in flag_names if f in graph.flags),
        key=lambda f: (f.purpose != "kill-switch", f.key),
    )
    system = graph.systems.get(svc.system or "")

    incidents, open_total, deployments = await _service_history(store, svc.name)
    running = sorted(graph.instances.get(svc.name, {}).values(), key=lambda i: i.environment)
    features = sorted(graph.service_features.get(svc.name, ()))
    return ServiceCard(
        name=svc.name,
        corrected_from=resolved.corrected_from,
        title=svc.title,
        description=svc.description,
        type=svc.type,
        tier=svc.tier,
        lifecycle=svc.lifecycle,
        system=svc.system,
        domain=system.domain if system else None,
        owner=owner_summary(graph, "Service", svc.name, at, stale_after=stale_after),
        repository=svc.repository,
        runbook=svc.runbook,
        dashboards=list(svc.dashboards),
        tags=list(svc.tags),
        depends_on=down,
        depends_on_page=ListCut.of(down_total, len(down)),
        dependents=up,
        dependents_page=ListCut.of(up_total, len(up)),
        environments=[
            RunningIn(environment=i.environment, version=i.version, replicas=i.replicas)
            for i in running[:limit]
        ],
        environments_page=ListCut.of(len(running), min(limit, len(running))),
        features=features[:limit],
        features_page=ListCut.of(len(features), min(limit, len(features))),
        flags=[
            FlagBrief(
                name=f.name,
                key=f.key,
                purpose=f.purpose,
                feature=f.feature,
                states={
                    env: flag_state_text(st)
                    for env, st in sorted(graph.flag_states.get(f.name, {}).items())
                },
            )
            for f in flags[:limit]
        ],
        flags_page=ListCut.of(len(flags), min(limit, len(flags))),
        open_incidents=incidents,
        open_incidents_page=ListCut.of(open_total, len(incidents)),
        recent_deployments=deployments,
        provenance=_provenance(svc, at, stale_after, graph.confirmations),
    )


# Open incidents shown on a service card, newest first.
OPEN_SHOWN = 10


async def _service_history(
    store: Store, service: str
) -> tuple[list[IncidentBrief], int, list[DeploymentBrief]]:
    """The service's newest open incidents, how many are open, and its last deployments."""
    async with store.session() as session:
        found = await session.execute(_OPEN_INCIDENTS, {"service": service})
        open_rows: list[Any] = list(found.all())
        open_total = int(open_rows[0][-1]) if open_rows else 0
        incidents = [
            IncidentBrief(
                key=i.name,
                title=i.title,
                severity=i.severity,
                status=i.status,
                started_at=i.started_at,
                resolved_at=i.resolved_at,
            )
            for i in {row.name: row for row in open_rows}.values()
        ]
        dep_rows = await session.execute(_LAST_DEPLOYMENTS, {"service": service})
        deployments = [deployment_brief(d) for d in dep_rows.all()]
    return incidents, open_total, deployments


# What a card, a timeline or an impact shows of a deployment, in this order: its commits, tags and
# links stay unread. (SQLAlchemy's own `select` takes them: sqlmodel's is typed for four
# columns at most.)
DEPLOYMENT_COLUMNS = (
    col(m.Deployment.name),
    col(m.Deployment.service),
    col(m.Deployment.environment),
    col(m.Deployment.version),
    col(m.Deployment.status),
    col(m.Deployment.deploy_time),
    col(m.Deployment.author),
    col(m.Deployment.commit),
    col(m.Deployment.url),
    col(m.Deployment.description),
)

# A card's history, built once: the service is bound at execution. How many incidents are
# open rides on each row shown (a service has few open at once).
_TOUCHING = (
    select(m.IncidentLink.incident)
    .where(
        col(m.IncidentLink.kind) == "service", col(m.IncidentLink.target) == bindparam("service")
    )
    .scalar_subquery()
)
_OPEN_INCIDENTS = (
    select_rows(*SUMMARY_COLUMNS, func.count().over())
    .where(col(m.Incident.name).in_(_TOUCHING), col(m.Incident.status).in_(OPEN_STATUSES))
    .order_by(col(m.Incident.started_at).desc(), col(m.Incident.name).desc())
    .limit(OPEN_SHOWN)
)
_LAST_DEPLOYMENTS = (
    select_rows(*DEPLOYMENT_COLUMNS)
    .where(col(m.Deployment.service) == bindparam("service"))
    .order_by(col(m.Deployment.deploy_time).desc())
    .limit(5)
)


def deployment_brief(d: Any) -> DeploymentBrief:
    """A deployment, read whole or as `DEPLOYMENT_COLUMNS`, as a card shows it."""
    return DeploymentBrief(
        name=d.name,
        service=d.service,
        environment=d.environment,
        version=d.version,
        status=d.status,
        deploy_time=d.deploy_time,
        author=d.author,
        commit=d.commit,
    )


def _provenance(
    entity: m.Entity, at: datetime, stale_after: timedelta, confirmations: Confirmations
) -> Provenance:
    source = entity_source(entity, at, stale_after, confirmations)
    return Provenance(
        source=entity.source,
        synced_at=source.synced_at,
        stale=source.stale,
        external_id=entity.external_id,
    )
