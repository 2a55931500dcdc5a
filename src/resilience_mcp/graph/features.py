"""Features and their flags: the feature card, flag listings with state, and flag history.

A flag "touches" a service when the service reads it or implements the feature it
controls. Its state is kept per environment; a tenant cell with no state of its own
follows the nearest environment above it. A flag changed within the recent window (24
hours unless asked otherwise) is marked, because a flip is a change like a deployment.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice

from sqlalchemy import and_, or_
from sqlmodel import col, select

from resilience_mcp import models as m
from resilience_mcp.errors import InvalidInputError, NotFoundError
from resilience_mcp.graph.cards import OPEN_STATUSES, flag_state_text, owner_summary, resolve_entity
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.graph.names import Resolved, normalise_name
from resilience_mcp.graph.owners import find_owner
from resilience_mcp.graph.provenance import STALE_AFTER, add_state_sources
from resilience_mcp.models.catalog import IncidentBrief
from resilience_mcp.models.common import ListCut, PageInfo
from resilience_mcp.models.flags import (
    CustomerBrief,
    Entitlements,
    FeatureCard,
    FlagChangeView,
    FlagHistory,
    FlagListAnswer,
    FlagStateView,
    FlagSummary,
    ServiceBrief,
)
from resilience_mcp.store import Store, counted_page

__all__ = [
    "PURPOSES",
    "RECENT",
    "FlagOrder",
    "flag_change_view",
    "flag_order",
    "flags_touching_service",
    "get_feature",
    "get_flag_history",
    "list_feature_flags",
    "note_correction",
    "resolve_environment",
    "resolve_flag",
]

RECENT = timedelta(hours=24)
PURPOSES = ("kill-switch", "release", "experiment", "permission", "ops")
_PURPOSE_ALIASES = {
    "killswitch": "kill-switch",
    "kill": "kill-switch",
    "operational": "ops",
    "operations": "ops",
    "permissioning": "permission",
}
_STATE_ALIASES = {"on": "on", "enabled": "on", "true": "on", "off": "off", "disabled": "off"}
_PLAN_ORDER = ("enterprise", "business", "pro", "free")


def resolve_flag(graph: CatalogGraph, text: str) -> Resolved:
    """A flag by its key or its name, forgiving case, separators and small typos."""
    if (name := graph.flag_by_key.get(text.strip())) is not None:
        return Resolved(name, "FeatureFlag")
    # Keys are often camelCase: paymentFailure is meant by payment_failure too.
    loose = {_loose(key): name for key, name in graph.flag_by_key.items()}
    if (name := loose.get(_loose(text))) is not None:
        return Resolved(name, "FeatureFlag")
    try:
        return resolve_entity(graph, text, ("FeatureFlag",))
    except NotFoundError as missed:
        close = difflib.get_close_matches(_loose(text), list(loose), n=1, cutoff=0.86)
        if close:
            return Resolved(loose[close[0]], "FeatureFlag", corrected_from=text)
        suggestions = missed.suggestions or _sharing_words(graph, text)
        raise NotFoundError("flag", text, suggestions) from None


def _loose(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.lower())


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", text).lower()))


def _sharing_words(graph: CatalogGraph, text: str, limit: int = 5) -> list[str]:
    """Flags whose key or name shares a word with `text`, most shared first."""
    asked = _words(text)
    scored = [
        (len(asked & (_words(flag.key) | _words(flag.name))), flag.name)
        for flag in graph.flags.values()
    ]
    return [name for shared, name in sorted(scored, key=lambda s: (-s[0], s[1])) if shared][:limit]


def resolve_environment(graph: CatalogGraph, text: str) -> Resolved:
    """An environment by name, or the tenant cell that serves a tenant (`acme`)."""
    if not graph.names.has("Environment", text):
        wanted = normalise_name(text)
        cells = sorted(
            env.name
            for env in graph.environments.values()
            if env.tenant and normalise_name(env.tenant) == wanted
        )
        if cells:
            return Resolved(cells[0], "Environment", corrected_from=text)
    return resolve_entity(graph, text, ("Environment",))


def flags_touching_service(graph: CatalogGraph, service: str) -> set[str]:
    """The flags a service reads, and those controlling the features it implements."""
    features = graph.service_features.get(service, ())
    return set(graph.service_flags.get(service, ())).union(
        *(graph.feature_flags.get(f, ()) for f in features)
    )


def flag_change_view(graph: CatalogGraph, row: m.FlagChange) -> FlagChangeView:
    flag = graph.flags.get(row.flag)
    return FlagChangeView(
        flag=row.flag,
        key=flag.key if flag else row.flag,
        environment=row.environment,
        at=row.at,
        by=row.by,
        from_state=row.from_state,
        to_state=row.to_state,
        reason=row.reason,
    )


def _state_view(
    graph: CatalogGraph, environment: str, state: m.FlagState, inherited_from: str | None = None
) -> FlagStateView:
    env = graph.environments.get(environment)
    return FlagStateView(
        environment=environment,
        tenant=env.tenant if env else None,
        state=flag_state_text(state),
        enabled=state.enabled,
        rollout=state.rollout,
        variant=state.variant,
        targeting=state.targeting,
        inherited_from=inherited_from,
    )


@dataclass(frozen=True)
class _Where:
    """Where states are asked for: an environment, the cells below it, the ones above it."""

    environment: str
    scope: set[str]
    above: list[str]

    @classmethod
    def of(cls, graph: CatalogGraph, environment: str | None) -> _Where | None:
        if environment is None:
            return None
        lineage = graph.environment_lineage(environment)
        return cls(environment, graph.environment_scope(environment), lineage[1:])


# A state as it applies: the environment shown, the row, and where it was read from when
# the environment has none of its own.
_Scoped = tuple[str, m.FlagState, str | None]


def _scoped_states(graph: CatalogGraph, flag: str, where: _Where | None) -> list[_Scoped]:
    """The flag's states: all of them, or those in an environment and the cells below it."""
    states = graph.flag_states.get(flag, {})
    if where is None:
        return [(env, st, None) for env, st in sorted(states.items())]

    first = where.environment
    chosen: list[_Scoped] = [
        (env, st, None)
        for env, st in sorted(states.items(), key=lambda item: (item[0] != first, item[0]))
        if env in where.scope
    ]
    if first not in states:
        # A cell with no state of its own gets what the environment above it has.
        above = next((env for env in where.above if env in states), None)
        if above is not None:
            chosen.insert(0, (first, states[above], above))
    return chosen


def _flag_states(graph: CatalogGraph, flag: str, where: _Where | None) -> list[FlagStateView]:
    return [_state_view(graph, *scoped) for scoped in _scoped_states(graph, flag, where)]


async def _recent_changes(
    store: Store,
    graph: CatalogGraph,
    since: datetime,
    until: datetime,
    scope: set[str] | None,
    flags: Sequence[str] | None = None,
) -> dict[str, FlagChangeView]:
    """The newest change of each flag (of `flags`, or every flag) within the window (and the
    environments in scope)."""
    query = select(m.FlagChange).where(col(m.FlagChange.at) >= since, col(m.FlagChange.at) <= until)
    if flags is not None:
        query = query.where(col(m.FlagChange.flag).in_(flags))
    if scope is not None:
        query = query.where(
            or_(col(m.FlagChange.environment).in_(scope), col(m.FlagChange.environment).is_(None))
        )
    async with store.session() as session:
        rows = (await session.execute(query.order_by(col(m.FlagChange.at)))).scalars().all()
    return {row.flag: flag_change_view(graph, row) for row in rows}


def _summary(
    graph: CatalogGraph,
    flag: m.FeatureFlag,
    states: list[FlagStateView],
    recent: dict[str, FlagChangeView],
) -> FlagSummary:
    owner = find_owner(graph, "FeatureFlag", flag.name)
    return FlagSummary(
        name=flag.name,
        key=flag.key,
        title=flag.title,
        purpose=flag.purpose,
        feature=flag.feature,
        services=sorted(flag.services),
        owner=owner.owner,
        owner_inherited=owner.inherited,
        states=states,
        changed_recently=flag.name in recent,
        last_change=recent.get(flag.name),
    )


def _in_order(
    graph: CatalogGraph, names: Collection[str], recent: dict[str, FlagChangeView]
) -> Iterator[str]:
    """The flags named, as lists show them: kill switches first, then what changed
    recently, then by key. Lazy over every flag, so a page reads only as far as it shows."""
    order = flag_order(graph)
    if len(names) < len(graph.flags) // 8:
        # A few flags (a feature's, a service's): sorting them beats walking every flag.
        yield from sorted(names, key=lambda n: (order.rank[n], n not in recent, order.key[n]))
        return
    every = len(names) == len(graph.flags)
    for rank, group in enumerate((order.kill, order.other)):
        changed = [n for n in recent if order.rank.get(n) == rank and (every or n in names)]
        yield from sorted(changed, key=order.key.__getitem__)
        yield from (n for n in group if n not in recent and (every or n in names))


@dataclass(frozen=True)
class FlagOrder:
    """The kill switches and the other flags, each by key, with each flag's group (0 for a
    kill switch) and key. Kept with the graph: lists of flags (and of the flags an outage
    reaches) would read thousands of rows on every call."""

    kill: list[str]
    other: list[str]
    rank: dict[str, int]
    key: dict[str, str]


def flag_order(graph: CatalogGraph) -> FlagOrder:
    """The graph's flags in the order lists show them, made on first use."""
    found: FlagOrder | None = graph.derived.get("flag_order")
    if found is None:
        flags = sorted(graph.flags.values(), key=lambda f: f.key)
        found = FlagOrder(
            kill=[f.name for f in flags if f.purpose == "kill-switch"],
            other=[f.name for f in flags if f.purpose != "kill-switch"],
            rank={f.name: 0 if f.purpose == "kill-switch" else 1 for f in flags},
            key={f.name: f.key for f in flags},
        )
        graph.derived["flag_order"] = found
    return found


def _purpose(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    key = normalise_name(text)
    key = _PURPOSE_ALIASES.get(key.replace("-", ""), key)
    if key not in PURPOSES and key.endswith("es") and key[:-2] in PURPOSES:
        key = key[:-2]
    if key not in PURPOSES and key.endswith("s") and key[:-1] in PURPOSES:
        key = key[:-1]
    if key not in PURPOSES:
        raise InvalidInputError(
            f"The purpose {text!r} is not one flags have; use one of {', '.join(PURPOSES)}."
        )
    return key


def _state(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    state = _STATE_ALIASES.get(text.strip().lower())
    if state is None:
        raise InvalidInputError(f"The state {text!r} is not known; use 'on' or 'off'.")
    return state


def _matches_state(states: list[_Scoped], wanted: str | None) -> bool:
    """'on': on in some environment shown; 'off': off in every one of them."""
    if wanted is None:
        return True
    on = any(state.enabled for _, state, _ in states)
    return on if wanted == "on" else not on


async def list_feature_flags(
    store: Store,
    graph: CatalogGraph,
    now: datetime,
    *,
    service: str | None = None,
    feature: str | None = None,
    environment: str | None = None,
    purpose: str | None = None,
    state: str | None = None,
    limit: int = 10,
    offset: int = 0,
    recent: timedelta = RECENT,
    stale_after: timedelta = STALE_AFTER,
) -> FlagListAnswer:
    """The flags touching a service or feature, with their state, kill switches first;
    a state a flag system keeps says where and when it was synced."""
    notes: list[str] = []
    wanted_purpose, wanted_state = _purpose(purpose), _state(state)
    names: Collection[str] = graph.flags.keys()
    service_name = feature_name = env_name = None
    if service:
        service_name = note_correction(resolve_entity(graph, service, ("Service",)), notes).name
        names = flags_touching_service(graph, service_name)
    if feature:
        feature_name = note_correction(resolve_entity(graph, feature, ("Feature",)), notes).name
        names = {n for n in graph.feature_flags.get(feature_name, ()) if n in names}
    if environment:
        env_name = note_correction(resolve_environment(graph, environment), notes).name

    where = _Where.of(graph, env_name)
    recent_changes = await _recent_changes(
        store, graph, now - recent, now, where.scope if where else None
    )
    # Filter and order on the names; only the page shown is shaped into answers.
    if wanted_purpose or wanted_state is not None:
        names = {
            name
            for name in names
            if (not wanted_purpose or graph.flags[name].purpose == wanted_purpose)
            and (
                wanted_state is None
                or _matches_state(_scoped_states(graph, name, where), wanted_state)
            )
        }
    page = islice(_in_order(graph, names, recent_changes), offset, offset + limit)
    shown = [
        _summary(graph, graph.flags[name], _flag_states(graph, name, where), recent_changes)
        for name in page
    ]
    await add_state_sources(store, shown, now, stale_after)
    return FlagListAnswer(
        service=service_name,
        feature=feature_name,
        environment=env_name,
        purpose=wanted_purpose,
        state=wanted_state,
        notes=notes,
        recent_hours=recent.total_seconds() / 3600,
        flags=shown,
        page=PageInfo.of(len(names), len(shown), offset),
    )


def note_correction(resolved: Resolved, notes: list[str]) -> Resolved:
    """`resolved`, noting in `notes` when a near miss was taken for it."""
    if resolved.corrected_from:
        notes.append(f"Took {resolved.corrected_from!r} for {resolved.kind} {resolved.name}.")
    return resolved


async def get_feature(
    store: Store,
    graph: CatalogGraph,
    name: str,
    now: datetime,
    *,
    limit: int = 10,
    customers: int = 5,
    recent: timedelta = RECENT,
) -> FeatureCard:
    """One card for a feature: services, flags and their states, customers, owner, incidents."""
    resolved = resolve_entity(graph, name, ("Feature",))
    feature = graph.features[resolved.name]

    services = sorted(
        (_service_brief(graph, s) for s in graph.feature_services.get(feature.name, ())),
        key=lambda s: (s.tier or 9, s.name),
    )
    flag_names = sorted(graph.feature_flags.get(feature.name, ()))
    recent_changes = await _recent_changes(store, graph, now - recent, now, None, flag_names)
    flags = [graph.flags[f] for f in _in_order(graph, flag_names, recent_changes)]
    incidents = await _open_incidents(store, feature.name, flag_names)
    return FeatureCard(
        name=feature.name,
        corrected_from=resolved.corrected_from,
        title=feature.title,
        description=feature.description,
        owner=owner_summary(graph, "Feature", feature.name, now),
        services=services[:limit],
        services_page=ListCut.of(len(services), min(limit, len(services))),
        flags=[
            _summary(graph, flag, _flag_states(graph, flag.name, None), recent_changes)
            for flag in flags[:limit]
        ],
        flags_page=ListCut.of(len(flags), min(limit, len(flags))),
        customers=_entitlements(graph, graph.feature_customers.get(feature.name, ()), customers),
        open_incidents=incidents,
    )


def _service_brief(graph: CatalogGraph, name: str) -> ServiceBrief:
    svc = graph.services.get(name)
    if svc is None:
        return ServiceBrief(name=name)
    return ServiceBrief(name=name, title=svc.title, tier=svc.tier, type=svc.type)


def _entitlements(graph: CatalogGraph, names: Iterable[str], top: int) -> Entitlements:
    entitled = [graph.customers[n] for n in names if n in graph.customers]
    plans = Counter(c.plan or "unknown" for c in entitled)

    def plan_rank(plan: str) -> tuple[int, str]:
        rank = _PLAN_ORDER.index(plan) if plan in _PLAN_ORDER else len(_PLAN_ORDER)
        return (rank, plan)

    heaviest = sorted(entitled, key=lambda c: (-c.weight, c.name))[:top]
    return Entitlements(
        total=len(entitled),
        total_weight=sum(c.weight for c in entitled),
        by_plan={plan: plans[plan] for plan in sorted(plans, key=plan_rank)},
        top=[
            CustomerBrief(
                name=c.name,
                title=c.title,
                plan=c.plan,
                weight=c.weight,
                environments=sorted(graph.customer_environments.get(c.name, ())),
            )
            for c in heaviest
        ],
    )


async def _open_incidents(store: Store, feature: str, flags: list[str]) -> list[IncidentBrief]:
    """Open incidents naming the feature, or one of its flags."""
    link = col(m.IncidentLink.kind)
    target = col(m.IncidentLink.target)
    touches = or_(
        and_(link == "feature", target == feature),
        and_(link == "flag", target.in_(flags)),
    )
    linked = select(m.IncidentLink.incident).where(touches)
    async with store.session() as session:
        rows = await session.execute(
            select(m.Incident)
            .where(col(m.Incident.name).in_(linked), col(m.Incident.status).in_(OPEN_STATUSES))
            .order_by(col(m.Incident.started_at).desc(), col(m.Incident.name))
            .limit(10)
        )
        found = rows.scalars().all()
    return [
        IncidentBrief(
            key=i.name,
            title=i.title,
            severity=i.severity,
            status=i.status,
            started_at=i.started_at,
            resolved_at=i.resolved_at,
        )
        for i in found
    ]


async def get_flag_history(
    store: Store,
    graph: CatalogGraph,
    key: str,
    *,
    environment: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> FlagHistory:
    """Every recorded change of one flag, newest first, in one environment or all."""
    resolved = resolve_flag(graph, key)
    flag = graph.flags[resolved.name]
    env = resolve_environment(graph, environment) if environment else None

    where = [col(m.FlagChange.flag) == flag.name]
    if env is not None:
        scope = graph.environment_scope(env.name)
        where.append(
            or_(col(m.FlagChange.environment).in_(scope), col(m.FlagChange.environment).is_(None))
        )
    async with store.session() as session:
        order = (col(m.FlagChange.at).desc(), col(m.FlagChange.id).desc())
        total, rows = await counted_page(
            session, m.FlagChange, where, order, limit=limit, offset=offset
        )
        changes = [flag_change_view(graph, row) for row in rows]
    return FlagHistory(
        name=flag.name,
        key=flag.key,
        corrected_from=resolved.corrected_from,
        title=flag.title,
        purpose=flag.purpose,
        environment=env.name if env else None,
        states=_flag_states(graph, flag.name, _Where.of(graph, env.name if env else None)),
        changes=changes,
        page=PageInfo.of(total, len(changes), offset),
    )
