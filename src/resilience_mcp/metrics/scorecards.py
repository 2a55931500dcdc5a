"""Scorecards: rules kept as data, evaluated by code, grouped into levels.

A scorecard is a catalog document of kind Scorecard (the shipped defaults live in
`data/scorecards`; one in the catalog with the same name replaces a default). Each rule
names a check from a fixed vocabulary (`models.metrics.CHECKS`) with parameters; the check
is a function here, never an expression to evaluate. An entity reaches a level when every
rule of that level and of every level below passes; the next step is the failing rules of
the level above.

Evaluating thousands of entities reads the store a handful of times: the facts the rules
need (SLOs, overdue tasks, restoration times) are gathered in bulk first, then each entity
is checked in memory.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlmodel import col

from resilience_mcp import models as m
from resilience_mcp.catalog.files import read_documents
from resilience_mcp.catalog.kinds import parse_duration
from resilience_mcp.catalog.loader import parse_documents
from resilience_mcp.catalog.shipped import shipped_dir
from resilience_mcp.errors import CatalogLoadError, InvalidInputError, NotFoundError
from resilience_mcp.graph.cards import resolve_entity
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.graph.names import NameIndex
from resilience_mcp.graph.owners import Ownership, find_on_call, find_owner
from resilience_mcp.metrics.reliability import load_incident_records
from resilience_mcp.metrics.scope import mean, minutes_between, team_services
from resilience_mcp.metrics.slo import compute_slo_statuses, load_slos
from resilience_mcp.models.common import PageInfo
from resilience_mcp.models.metrics import (
    LEVELS,
    Level,
    RuleResult,
    ScorecardAnswer,
    ScorecardFailure,
    ScorecardFailuresAnswer,
    ScorecardResult,
    ScorecardRule,
    SLOStatus,
    entity_field,
)
from resilience_mcp.store import Store, chunks

__all__ = [
    "OPEN_TASK_STATUSES",
    "ScorecardDefinition",
    "ScorecardFacts",
    "evaluate_scorecard",
    "gather_facts",
    "get_scorecard",
    "list_scorecard_failures",
    "list_scorecards",
    "shipped_scorecards",
]

logger = logging.getLogger(__name__)

OPEN_TASK_STATUSES = ("open", "in_progress")


@dataclass(frozen=True)
class ScorecardDefinition:
    name: str
    title: str | None
    applies_to: str
    rules: tuple[ScorecardRule, ...]

    @functools.cached_property
    def levels(self) -> tuple[Level, ...]:
        """The levels this scorecard has rules for, lowest first."""
        return tuple(lvl for lvl in LEVELS if any(r.level == lvl for r in self.rules))


@functools.cache
def shipped_scorecards() -> tuple[ScorecardDefinition, ...]:
    """The scorecards in the package's `data/scorecards` folder."""
    folder = shipped_dir("data") / "scorecards"
    documents, issues = read_documents([folder])
    entities, problems, _ = parse_documents(documents)
    if issues or problems:
        raise CatalogLoadError([*issues, *problems])
    return tuple(
        _definition(e.parsed.name, e.parsed.columns)
        for e in entities
        if e.parsed.kind == "Scorecard"
    )


def _definition(name: str, columns: dict[str, Any]) -> ScorecardDefinition:
    return ScorecardDefinition(
        name=name,
        title=columns.get("title"),
        applies_to=str(columns.get("applies_to") or "Service"),
        rules=tuple(ScorecardRule.model_validate(r) for r in columns.get("rules") or []),
    )


def list_scorecards(graph: CatalogGraph) -> list[ScorecardDefinition]:
    """The shipped scorecards, each replaced by a catalog scorecard of the same name."""
    cards = {card.name: card for card in shipped_scorecards()}
    for row in graph.scorecards.values():
        cards[row.name] = _definition(
            row.name, {"title": row.title, "applies_to": row.applies_to, "rules": row.rules}
        )
    return sorted(cards.values(), key=lambda c: c.name)


# Facts the checks read


@dataclass(frozen=True)
class OverdueTask:
    name: str
    owner: str | None
    priority: str
    due: datetime

    def text(self) -> str:
        return f"{self.name} ({self.priority}, due {self.due:%Y-%m-%d})"


@dataclass
class ScorecardFacts:
    """What the rules of some scorecards need to know, gathered once."""

    graph: CatalogGraph
    now: datetime
    slos_by_service: dict[str, list[SLOStatus]] = field(default_factory=dict)
    overdue_by_service: dict[str, list[OverdueTask]] = field(default_factory=dict)
    overdue_by_team: dict[str, list[OverdueTask]] = field(default_factory=dict)
    restores: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    _owners: dict[tuple[str, str], Ownership] = field(default_factory=dict)
    _rotations: dict[str, str | None] = field(default_factory=dict)

    def owner(self, kind: str, name: str) -> Ownership:
        key = (kind, name)
        if key not in self._owners:
            self._owners[key] = find_owner(self.graph, kind, name)
        return self._owners[key]

    def rotation_team(self, team: str, *, parents: bool) -> str | None:
        """The team whose rotation has someone on call: this one, or with `parents` the
        nearest parent that has one."""
        key = f"{team}|{parents}"
        if key not in self._rotations:
            current: str | None = team
            seen: set[str] = set()
            found: str | None = None
            while current and current not in seen and found is None:
                seen.add(current)
                if find_on_call(self.graph, current, self.now):
                    found = current
                parent = self.graph.teams.get(current)
                current = parent.parent if parent and parents else None
            self._rotations[key] = found
        return self._rotations[key]


async def gather_facts(
    store: Store,
    graph: CatalogGraph,
    now: datetime,
    cards: Sequence[ScorecardDefinition],
    services: frozenset[str] | None = None,
) -> ScorecardFacts:
    """Read, in bulk, what the rules of `cards` need about `services` (None: all)."""
    facts = ScorecardFacts(graph=graph, now=now)
    checks = {rule.check for card in cards for rule in card.rules}
    if checks & {"has_slo", "slo_budget_left"}:
        statuses = await compute_slo_statuses(store, await load_slos(store, services), now)
        by_service: dict[str, list[SLOStatus]] = defaultdict(list)
        for status in statuses:
            if status.service:
                by_service[status.service].append(status)
        facts.slos_by_service = dict(by_service)
    if "no_overdue_remediation" in checks:
        await _gather_overdue(store, now, facts, services)
    windows = {
        str(rule.params.get("window", "90d"))
        for card in cards
        for rule in card.rules
        if rule.check == "mttr_under"
    }
    for window in windows:
        facts.restores[window] = await _restores(store, now, window, services)
    return facts


async def _gather_overdue(
    store: Store, now: datetime, facts: ScorecardFacts, services: frozenset[str] | None
) -> None:
    """Open tasks past their due date, by owning team and by the services of their incident;
    with `services`, only the tasks whose incident touches one of them."""
    t, pm = m.RemediationTask, m.Postmortem
    query = select(
        col(t.name),
        col(t.owner),
        col(t.priority),
        col(t.due_date),
        col(t.incident),
        col(t.postmortem),
    ).where(
        col(t.status).in_(OPEN_TASK_STATUSES),
        col(t.due_date).is_not(None),
        col(t.due_date) < now,
    )
    if services is not None:
        touching = select(col(m.IncidentLink.incident)).where(
            col(m.IncidentLink.kind) == "service", col(m.IncidentLink.target).in_(services)
        )
        reviewed = select(col(pm.name)).where(col(pm.incident).in_(touching))
        query = query.where(
            or_(
                col(t.incident).in_(touching),
                and_(col(t.incident).is_(None), col(t.postmortem).in_(reviewed)),
            )
        )
    async with store.session() as session:
        rows = list(await session.execute(query))
        # A task filed against a postmortem concerns the postmortem's incident.
        postmortems = sorted({r[5] for r in rows if r[4] is None and r[5]})
        incident_of: dict[str, str] = {}
        for chunk in chunks(postmortems):
            pairs = await session.execute(
                select(col(pm.name), col(pm.incident)).where(col(pm.name).in_(chunk))
            )
            incident_of.update({name: inc for name, inc in pairs if inc})

    def incident(row: Any) -> str | None:
        return row[4] or incident_of.get(row[5] or "")

    touched = await _incident_services(store, {i for r in rows if (i := incident(r))})
    for row in rows:
        task = OverdueTask(row[0], row[1], row[2], row[3] or now)
        if task.owner:
            facts.overdue_by_team.setdefault(task.owner, []).append(task)
        for service in touched.get(incident(row) or "", ()):
            facts.overdue_by_service.setdefault(service, []).append(task)


async def _incident_services(store: Store, incidents: set[str]) -> dict[str, set[str]]:
    link = m.IncidentLink
    services: dict[str, set[str]] = defaultdict(set)
    async with store.session() as session:
        for chunk in chunks(sorted(incidents)):
            pairs = await session.execute(
                select(col(link.incident), col(link.target)).where(
                    col(link.kind) == "service", col(link.incident).in_(chunk)
                )
            )
            for key, service in pairs:
                services[key].add(service)
    return services


async def _restores(
    store: Store, now: datetime, window: str, services: frozenset[str] | None
) -> dict[str, list[float]]:
    """Minutes to restore each incident of the window, by the services it touched."""
    start = now - parse_duration(window)
    records = await load_incident_records(store, services, start, now)
    restores: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if record.restored_at is None:
            continue
        for service in record.services:
            restores[service].append(minutes_between(record.started_at, record.restored_at))
    return dict(restores)


# The checks


Check = Callable[[ScorecardFacts, str, Any, dict[str, Any]], tuple[bool, str]]


def _has_owner(facts: ScorecardFacts, kind: str, entity: Any, params: dict[str, Any]) -> Any:
    found = facts.owner(kind, entity.name)
    if found.owner is None:
        return False, "no owner, neither its own nor inherited"
    if params.get("direct") and found.inherited:
        return False, f"its owner {found.owner} is inherited from {found.path[-1]}"
    how = f" (inherited from {found.path[-1]})" if found.inherited else ""
    return True, f"owned by {found.owner}{how}"


def _owner_has_on_call(
    facts: ScorecardFacts, kind: str, entity: Any, params: dict[str, Any]
) -> Any:
    owner = facts.owner(kind, entity.name).owner
    if owner is None:
        return False, "no owner, so nobody to page"
    if owner not in facts.graph.teams:
        return False, f"owned by {owner}, a person rather than a team with a rotation"
    parents = bool(params.get("parents"))
    team = facts.rotation_team(owner, parents=parents)
    if team is None:
        also = " (nor does a parent team)" if parents else ""
        return False, f"{owner} has no on-call rotation of its own{also}"
    via = "" if team == owner else f" through {team}"
    return True, f"{owner} is covered by an on-call rotation{via}"


def _has_field(facts: ScorecardFacts, kind: str, entity: Any, params: dict[str, Any]) -> Any:
    column = entity_field(kind, str(params["field"]))
    value = getattr(entity, column) if column else None
    if value in (None, "", [], {}):
        return False, f"no {params['field']}"
    return True, f"{params['field']} set"


def _has_slo(facts: ScorecardFacts, kind: str, entity: Any, params: dict[str, Any]) -> Any:
    wanted = int(params.get("min", 1))
    found = len(facts.slos_by_service.get(entity.name, ()))
    if found < wanted:
        return False, f"{found} SLO(s), needs {wanted}"
    return True, f"{found} SLO(s)"


def _kill_switch_per_feature(
    facts: ScorecardFacts, kind: str, entity: Any, params: dict[str, Any]
) -> Any:
    graph = facts.graph
    features = sorted(graph.service_features.get(entity.name, ()))
    if not features:
        return True, "implements no features"
    missing = [
        f
        for f in features
        if not any(
            graph.flags[flag].purpose == "kill-switch"
            for flag in graph.feature_flags.get(f, ())
            if flag in graph.flags
        )
    ]
    if missing:
        return False, f"no kill switch for {', '.join(missing)}"
    return True, f"a kill switch for each of {len(features)} feature(s)"


def _no_overdue_remediation(
    facts: ScorecardFacts, kind: str, entity: Any, params: dict[str, Any]
) -> Any:
    if kind == "Team":
        tasks = facts.overdue_by_team.get(entity.name, [])
    else:
        tasks = facts.overdue_by_service.get(entity.name, [])
        if not params.get("any_owner"):
            # A service answers for the tasks its own team owes, not for other teams' work.
            owner = facts.owner(kind, entity.name).owner
            tasks = [t for t in tasks if t.owner in (None, owner)]
    if tasks:
        shown = ", ".join(t.text() for t in tasks[:3])
        more = f" and {len(tasks) - 3} more" if len(tasks) > 3 else ""
        return False, f"overdue: {shown}{more}"
    return True, "no overdue remediation task"


def _mttr_under(facts: ScorecardFacts, kind: str, entity: Any, params: dict[str, Any]) -> Any:
    window = str(params.get("window", "90d"))
    restores = facts.restores.get(window, {}).get(entity.name, [])
    limit = float(params["hours"]) * 60
    average = mean(restores)
    if average is None:
        return True, f"no restored incident in {window}"
    hours = average / 60
    verdict = average < limit
    return verdict, f"MTTR {hours:.1f} h over {len(restores)} incident(s) in {window}"


def _slo_budget_left(facts: ScorecardFacts, kind: str, entity: Any, params: dict[str, Any]) -> Any:
    floor = float(params.get("min", 0.0))
    statuses = facts.slos_by_service.get(entity.name, [])
    if not statuses:
        return True, "no SLOs to check"
    short = [s for s in statuses if s.budget_remaining is not None and s.budget_remaining <= floor]
    if short:
        spent = ", ".join(f"{s.name} ({s.budget_remaining:.0%} left)" for s in short)
        return False, f"budget spent: {spent}"
    return True, f"{len(statuses)} SLO(s) within budget"


CHECK_FUNCTIONS: dict[str, Check] = {
    "has_owner": _has_owner,
    "owner_has_on_call": _owner_has_on_call,
    "has_field": _has_field,
    "has_slo": _has_slo,
    "kill_switch_per_feature": _kill_switch_per_feature,
    "no_overdue_remediation": _no_overdue_remediation,
    "mttr_under": _mttr_under,
    "slo_budget_left": _slo_budget_left,
}


# Evaluation


@dataclass(frozen=True, slots=True)
class _Outcome:
    rule: ScorecardRule
    applies: bool
    passed: bool
    detail: str

    def result(self) -> RuleResult:
        return RuleResult(
            rule=self.rule.id,
            title=self.rule.title or self.rule.id,
            level=self.rule.level,
            check=self.rule.check,
            passed=self.passed,
            applies=self.applies,
            detail=self.detail,
            hint=None if self.passed else self.rule.hint,
        )


def _applies(rule: ScorecardRule, kind: str, entity: Any) -> bool:
    for name, allowed in rule.when.items():
        column = entity_field(kind, name)
        value = getattr(entity, column) if column else None
        if isinstance(value, list):
            if not set(value) & set(allowed):
                return False
        elif value not in allowed:
            return False
    return True


def _outcomes(
    card: ScorecardDefinition, kind: str, entity: Any, facts: ScorecardFacts
) -> list[_Outcome]:
    outcomes = []
    for rule in card.rules:
        if not _applies(rule, kind, entity):
            outcomes.append(_Outcome(rule, False, True, "does not apply"))
            continue
        passed, detail = CHECK_FUNCTIONS[rule.check](facts, kind, entity, rule.params)
        outcomes.append(_Outcome(rule, True, bool(passed), str(detail)))
    return outcomes


def _level(
    card: ScorecardDefinition, outcomes: Sequence[_Outcome]
) -> tuple[Level | None, Level | None]:
    """The level reached and the next one, over the levels the scorecard has rules for."""
    reached: Level | None = None
    for lvl in card.levels:
        if not all(o.passed for o in outcomes if o.rule.level == lvl):
            return reached, lvl
        reached = lvl
    return reached, None


def evaluate_scorecard(
    card: ScorecardDefinition, kind: str, entity: Any, facts: ScorecardFacts
) -> ScorecardResult:
    """Every rule of `card` on one entity, the level it reaches and the next step."""
    outcomes = _outcomes(card, kind, entity, facts)
    reached, following = _level(card, outcomes)
    results = [o.result() for o in outcomes]
    failing = [r for r in results if not r.passed]
    return ScorecardResult(
        scorecard=card.name,
        title=card.title,
        level=reached,
        next_level=following,
        passed=sum(1 for o in outcomes if o.applies and o.passed),
        failed=len(failing),
        not_applicable=sum(1 for o in outcomes if not o.applies),
        next_step=[r for r in failing if r.level == following],
        failing=failing,
        rules=results,
    )


def _choose(cards: Sequence[ScorecardDefinition], name: str | None) -> list[ScorecardDefinition]:
    if name is None:
        return list(cards)
    index = NameIndex()
    index.add("Scorecard", [c.name for c in cards])
    try:
        wanted = index.resolve(name, ["Scorecard"]).name
    except NotFoundError as exc:
        # Scorecards are few: name them all when none is close.
        raise NotFoundError("Scorecard", name, exc.suggestions or [c.name for c in cards]) from None
    return [c for c in cards if c.name == wanted]


async def get_scorecard(
    store: Store,
    graph: CatalogGraph,
    name: str,
    now: datetime,
    *,
    scorecard: str | None = None,
) -> ScorecardAnswer:
    """How one entity scores on every scorecard for its kind (or on `scorecard`)."""
    resolved = resolve_entity(graph, name)
    cards = _choose(list_scorecards(graph), scorecard)
    cards = [c for c in cards if c.applies_to == resolved.kind]
    one = frozenset([resolved.name]) if resolved.kind == "Service" else None
    facts = await gather_facts(store, graph, now, cards, one)
    entity = graph.entities(resolved.kind)[resolved.name]
    return ScorecardAnswer(
        name=resolved.name,
        kind=resolved.kind,
        corrected_from=resolved.corrected_from,
        owner=facts.owner(resolved.kind, resolved.name).owner,
        results=[evaluate_scorecard(c, resolved.kind, entity, facts) for c in cards],
    )


def _rule_ids(cards: Iterable[ScorecardDefinition]) -> list[str]:
    return sorted({rule.id for card in cards for rule in card.rules})


async def list_scorecard_failures(
    store: Store,
    graph: CatalogGraph,
    now: datetime,
    *,
    rule: str | None = None,
    level: Level | None = None,
    team: str | None = None,
    scorecard: str | None = None,
    limit: int = 25,
    offset: int = 0,
) -> ScorecardFailuresAnswer:
    """Every failing rule across the catalog, most basic first, narrowed as asked."""
    cards = _choose(list_scorecards(graph), scorecard)
    if rule is not None and rule not in _rule_ids(cards):
        raise InvalidInputError(
            f"No scorecard has a rule {rule!r}; the rules are: {', '.join(_rule_ids(cards))}."
        )
    owned: set[str] | None = None
    team_name: str | None = None
    if team is not None:
        team_name = resolve_entity(graph, team, ("Team",)).name
        owned = _team_entities(graph, team_name)

    facts = await gather_facts(store, graph, now, cards)
    failures: list[_Failure] = []
    levels: dict[str, int] = defaultdict(int)
    entities = 0
    for card in cards:
        for entity in graph.entities(card.applies_to).values():
            if owned is not None and f"{card.applies_to}:{entity.name}" not in owned:
                continue
            entities += 1
            outcomes = _outcomes(card, card.applies_to, entity, facts)
            reached, _ = _level(card, outcomes)
            levels[reached or "none"] += 1
            failures += _failures(card, entity, outcomes, rule, level)

    # Models are built for the page only; a large catalog fails thousands of rules.
    failures.sort(key=lambda f: f.order)
    by_rule: dict[str, int] = defaultdict(int)
    for failure in failures:
        by_rule[failure.outcome.rule.id] += 1
    page = [f.model(facts) for f in failures[offset : offset + limit]]
    return ScorecardFailuresAnswer(
        rule=rule,
        level=level,
        team=team_name,
        entities=entities,
        levels={k: levels[k] for k in ("none", *LEVELS) if k in levels},
        by_rule=dict(sorted(by_rule.items(), key=lambda kv: (-kv[1], kv[0]))),
        failures=page,
        page=PageInfo.of(len(failures), len(page), offset),
    )


@dataclass(frozen=True, slots=True)
class _Failure:
    order: tuple[Any, ...]
    card: ScorecardDefinition
    entity: Any
    outcome: _Outcome

    def model(self, facts: ScorecardFacts) -> ScorecardFailure:
        rule = self.outcome.rule
        return ScorecardFailure(
            entity=self.entity.name,
            kind=self.card.applies_to,
            owner=facts.owner(self.card.applies_to, self.entity.name).owner,
            scorecard=self.card.name,
            rule=rule.id,
            title=rule.title or rule.id,
            level=rule.level,
            detail=self.outcome.detail,
        )


def _failures(
    card: ScorecardDefinition,
    entity: Any,
    outcomes: Sequence[_Outcome],
    rule: str | None,
    level: Level | None,
) -> list[_Failure]:
    found = []
    tier = getattr(entity, "tier", None) or 9
    for position, outcome in enumerate(outcomes):
        if outcome.passed or (rule and outcome.rule.id != rule):
            continue
        if level and outcome.rule.level != level:
            continue
        order = (LEVELS.index(outcome.rule.level), tier, entity.name, card.name, position)
        found.append(_Failure(order, card, entity, outcome))
    return found


def _team_entities(graph: CatalogGraph, team: str) -> set[str]:
    """`kind:name` of everything the team (or a team below it) owns, itself included."""
    services = team_services(graph, [team])
    owned = {f"Service:{s}" for s in services}
    teams = {team}
    todo = [team]
    while todo:
        for child in graph.team_children.get(todo.pop(), ()):
            if child not in teams:
                teams.add(child)
                todo.append(child)
    owned |= {f"Team:{t}" for t in teams}
    for kind in ("System", "Domain", "Feature", "FeatureFlag", "OnCall"):
        for name in graph.entities(kind):
            if find_owner(graph, kind, name).owner in teams:
                owned.add(f"{kind}:{name}")
    return owned
