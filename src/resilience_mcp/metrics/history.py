"""The deployment and incident history DORA is computed from, as sorted arrays of times.

`DoraHistory` holds, for a scope, what each shipped production deployment, each commit
pair, each change failure and each incident contributes, keyed by time (seconds since the
epoch), so any window inside it is a few binary searches away.

Two ways build one. `build_history` works from plain facts and is the reference the tests
reason about. `load_history` asks the store: the database counts deployments per day and
computes lead times itself, sending back one number per commit; change failures are looked
up by name and by commit through their indexes, so only failed deployments come back; the
few deployments that list several commits are read whole. Nothing is read as an ORM object.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Float, Integer, String, and_, case, cast, extract, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from resilience_mcp import models as m
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.metrics.scope import Scope, production_environments
from resilience_mcp.store import Store

__all__ = [
    "SHIPPED",
    "DeploymentFact",
    "DoraHistory",
    "IncidentFact",
    "build_history",
    "load_history",
]

logger = logging.getLogger(__name__)

# Deployments that reached their environment; failed and in-progress ones never did.
SHIPPED = ("success", "rolled_back")
CHUNK = 500


@dataclass(frozen=True, slots=True)
class DeploymentFact:
    name: str
    service: str
    environment: str | None
    deploy_time: datetime
    status: str = "success"
    # (sha, commit time) for every commit the deployment shipped.
    commits: tuple[tuple[str, datetime | None], ...] = ()


@dataclass(frozen=True, slots=True)
class IncidentFact:
    name: str
    started_at: datetime
    restored_at: datetime | None = None
    root_cause_commit: str | None = None
    # Deployments the incident names as suspects.
    suspects: tuple[str, ...] = ()


@dataclass
class DoraHistory:
    """Parallel lists, each group sorted by its first list (epoch seconds)."""

    deployed: list[float] = field(default_factory=list)
    lead_at: list[float] = field(default_factory=list)
    lead_minutes: list[float] = field(default_factory=list)
    dropped_at: list[float] = field(default_factory=list)
    # A change failure: "linked" (an incident names it) or "rolled_back", and the minutes
    # from the deployment to recovery (None while not recovered).
    failure_at: list[float] = field(default_factory=list)
    failure_kind: list[str] = field(default_factory=list)
    failure_recovery: list[float | None] = field(default_factory=list)
    incident_at: list[float] = field(default_factory=list)
    restore_minutes: list[float | None] = field(default_factory=list)

    def add_pair(self, at: float, minutes: float | None) -> None:
        """One (deployment, commit) pair; pairs at zero or below, or without a time, drop."""
        if minutes is not None and minutes > 0:
            self.lead_at.append(at)
            self.lead_minutes.append(minutes)
        else:
            self.dropped_at.append(at)

    def add_failure(self, at: float, kind: str, recovery: float | None) -> None:
        self.failure_at.append(at)
        self.failure_kind.append(kind)
        self.failure_recovery.append(recovery)

    def sorted(self) -> DoraHistory:
        self.deployed.sort()
        self.dropped_at.sort()
        self.lead_at, self.lead_minutes = _sort_by(self.lead_at, self.lead_minutes)
        order = sorted(range(len(self.failure_at)), key=self.failure_at.__getitem__)
        self.failure_at = [self.failure_at[i] for i in order]
        self.failure_kind = [self.failure_kind[i] for i in order]
        self.failure_recovery = [self.failure_recovery[i] for i in order]
        self.incident_at, self.restore_minutes = _sort_by(self.incident_at, self.restore_minutes)
        return self


def _sort_by(keys: list[float], values: list[Any]) -> tuple[list[float], list[Any]]:
    pairs = sorted(zip(keys, values, strict=True), key=lambda p: p[0])
    return [k for k, _ in pairs], [v for _, v in pairs]


def _recovery(at: float, restored: Iterable[float | None]) -> float | None:
    """Minutes until every incident a deployment caused was restored; None while one is open."""
    times = list(restored)
    if not times or any(t is None for t in times):
        return None
    return max(0.0, (max(t for t in times if t is not None) - at) / 60)


def _restore(started: float, restored: float | None, first_deployed: float | None) -> float | None:
    """From the earlier of the start and the root cause's first deployment, to restoration."""
    if restored is None:
        return None
    start = started if first_deployed is None else min(started, first_deployed)
    return (restored - start) / 60


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


# From facts


def build_history(
    deployments: Sequence[DeploymentFact],
    linked_incidents: Sequence[IncidentFact],
    scoped_incidents: Sequence[IncidentFact],
    first_deployed: dict[str, datetime] | None = None,
) -> DoraHistory:
    """The history of shipped production `deployments`, as the definitions say.

    `linked_incidents` may name a deployment (as a suspect, or by a root-cause commit it
    shipped); `scoped_incidents` are those whose restoration counts; `first_deployed` gives
    the first production deployment of a root-cause commit `deployments` may not hold.
    """
    history = DoraHistory()
    by_name: dict[str, list[IncidentFact]] = defaultdict(list)
    by_commit: dict[str, list[IncidentFact]] = defaultdict(list)
    for incident in linked_incidents:
        for suspect in incident.suspects:
            by_name[suspect].append(incident)
        if incident.root_cause_commit:
            by_commit[incident.root_cause_commit].append(incident)
    next_success = _next_successes(deployments)

    for dep in deployments:
        at = dep.deploy_time.timestamp()
        history.deployed.append(at)
        for _, committed in dep.commits:
            history.add_pair(at, None if committed is None else (at - committed.timestamp()) / 60)
        linked = {i.name: i for i in by_name.get(dep.name, [])}
        linked |= {i.name: i for sha, _ in dep.commits for i in by_commit.get(sha, ())}
        if linked:
            restored = (_epoch(i.restored_at) for i in linked.values())
            history.add_failure(at, "linked", _recovery(at, restored))
        elif dep.status == "rolled_back":
            fixed = next_success.get(dep.name)
            history.add_failure(at, "rolled_back", None if fixed is None else (fixed - at) / 60)

    firsts = {sha: t.timestamp() for sha, t in (first_deployed or {}).items()}
    for dep in sorted(deployments, key=lambda d: d.deploy_time, reverse=True):
        firsts |= {sha: dep.deploy_time.timestamp() for sha, _ in dep.commits}
    for incident in scoped_incidents:
        started = incident.started_at.timestamp()
        history.incident_at.append(started)
        history.restore_minutes.append(
            _restore(
                started,
                _epoch(incident.restored_at),
                firsts.get(incident.root_cause_commit or ""),
            )
        )
    return history.sorted()


def _next_successes(deployments: Sequence[DeploymentFact]) -> dict[str, float]:
    """For each rolled-back deployment, when that service next shipped there successfully."""
    ordered = sorted(deployments, key=lambda d: d.deploy_time, reverse=True)
    found: dict[str, float] = {}
    latest: dict[tuple[str, str | None], float] = {}
    for dep in ordered:
        key = (dep.service, dep.environment)
        if dep.status == "rolled_back" and key in latest:
            found[dep.name] = latest[key]
        if dep.status == "success":
            latest[key] = dep.deploy_time.timestamp()
    return found


# From the store


def _epoch_sql(column: Any, dialect: str) -> Any:
    """Seconds since the epoch of a stored (naive UTC) time, computed by the database."""
    if dialect == "sqlite":
        return (func.julianday(column) - 2440587.5) * 86400.0
    return cast(extract("epoch", column), Float)


def _day_sql(column: Any, dialect: str) -> Any:
    """Days since the epoch (the UTC day number) of a stored time."""
    if dialect == "sqlite":
        return cast(func.julianday(column) - 2440587.5, Integer)
    return cast(func.floor(extract("epoch", column) / 86400), Integer)


def _exact(value: Any) -> float:
    """An epoch time from the database, to the millisecond: SQLite's julian days carry
    floating-point dust that would otherwise move a deployment at midnight to the day
    before."""
    return round(float(value), 3)


def _one_commit(column: Any) -> Any:
    """True where a deployment does not list its commits (the list is empty or absent).

    The stored JSON text is compared: cheaper than parsing it on every row, and a list
    written another way is only read whole, which gives the same answer."""
    return or_(column.is_(None), cast(column, String) == "[]")


@dataclass
class _Failed:
    at: float
    rolled_back: bool = False
    fixed_at: float | None = None
    incidents: dict[str, float | None] = field(default_factory=dict)


class _Reader:
    """The queries of `load_history`, for one scope chunk at a time.

    Deployments with one commit are counted per UTC day, and their lead times come back as
    one number each; deployment times are therefore kept to the day (the first day at the
    window's start), so windows inside the history must start and end at midnight.
    """

    def __init__(
        self,
        session: AsyncSession,
        dialect: str,
        environments: frozenset[str] | None,
        start: datetime,
        end: datetime,
    ) -> None:
        self.session = session
        self.dialect = dialect
        self.environments = environments
        self.start, self.end = start, end
        self.failed: dict[str, _Failed] = {}
        # When each commit a deployment listed first shipped, among those read.
        self.listed_firsts: dict[str, float] = {}

    def where(self, services: Sequence[str] | None) -> list[Any]:
        d = m.Deployment
        conditions = [
            col(d.deploy_time) >= self.start,
            col(d.deploy_time) < self.end,
            col(d.status).in_(SHIPPED),
        ]
        if services is not None:
            conditions.append(col(d.service).in_(services))
        if self.environments is not None:
            conditions.append(
                or_(col(d.environment).is_(None), col(d.environment).in_(self.environments))
            )
        return conditions

    def epoch(self, column: Any) -> Any:
        return _epoch_sql(column, self.dialect)

    def day_start(self, day: int) -> float:
        return max(day * 86400.0, self.start.timestamp())

    def leads_text(self, lead: Any) -> Any:
        """The lead times of a group as one comma-separated text, so a day is one row."""
        if self.dialect == "sqlite":
            return func.group_concat(lead)
        return func.string_agg(cast(lead, String), ",")

    async def plain(self, services: Sequence[str] | None, history: DoraHistory) -> int:
        """Deployments with one commit, one row per day: how many shipped, how many pairs
        dropped, and the lead times kept. Returns how many listed deployments there are."""
        d = m.Deployment
        day = _day_sql(col(d.deploy_time), self.dialect)
        lead = (self.epoch(col(d.deploy_time)) - self.epoch(col(d.commit_time))) / 60.0
        one = _one_commit(col(d.commits))
        has_commit = col(d.commit).is_not(None)
        dropped = case((and_(one, has_commit, or_(lead.is_(None), lead <= 0)), 1), else_=0)
        kept = case((and_(one, has_commit, lead > 0), lead))
        stmt = (
            select(
                day,
                func.sum(case((one, 1), else_=0)),
                func.sum(dropped),
                self.leads_text(kept),
                func.sum(case((one, 0), else_=1)),
            )
            .where(*self.where(services))
            .group_by(day)
        )
        listed = 0
        for number, shipped, dropped_pairs, leads, others in await self.session.execute(stmt):
            at = self.day_start(int(number))
            history.deployed.extend([at] * int(shipped or 0))
            history.dropped_at.extend([at] * int(dropped_pairs or 0))
            minutes = [round(float(v), 4) for v in leads.split(",")] if leads else []
            history.lead_at.extend([at] * len(minutes))
            history.lead_minutes.extend(minutes)
            listed += int(others or 0)
        return listed

    async def listed(
        self,
        services: Sequence[str] | None,
        history: DoraHistory,
        root_causes: dict[str, dict[str, float | None]],
    ) -> None:
        """Deployments that list their commits, read whole: one pair per commit."""
        d = m.Deployment
        stmt = select(
            col(d.name),
            self.epoch(col(d.deploy_time)),
            col(d.commit),
            col(d.commit_time),
            col(d.commits),
        ).where(*self.where(services), ~_one_commit(col(d.commits)))
        for name, when, sha, committed, listed in await self.session.execute(stmt):
            at = _exact(when)
            history.deployed.append(at)
            commits = {sha: _epoch(committed)} if sha else {}
            for entry in listed or ():
                if entry.get("sha") and commits.get(entry["sha"]) is None:
                    commits[entry["sha"]] = _iso_epoch(entry.get("time"))
            for committed_at in commits.values():
                history.add_pair(at, None if committed_at is None else (at - committed_at) / 60)
            for found in commits:
                self.listed_firsts[found] = min(at, self.listed_firsts.get(found, at))
                for incident, restored in root_causes.get(found, {}).items():
                    self.failure(name, at).incidents[incident] = restored

    def failure(self, name: str, at: float) -> _Failed:
        return self.failed.setdefault(name, _Failed(at))

    async def linked(
        self,
        services: Sequence[str] | None,
        by_name: dict[str, dict[str, float | None]],
        by_commit: dict[str, dict[str, float | None]],
    ) -> None:
        """Deployments an incident names as suspect, or whose head commit is a root cause.

        Looked up by name and by commit through their indexes, and filtered here: a
        database given the window too may scan the window instead."""
        d = m.Deployment
        wanted = set(services) if services is not None else None
        for key, column in ((by_name, col(d.name)), (by_commit, col(d.commit))):
            for chunk in _chunks(sorted(key)):
                assert chunk is not None
                stmt = select(
                    col(d.name),
                    self.epoch(col(d.deploy_time)),
                    column,
                    col(d.service),
                    col(d.environment),
                    col(d.status),
                ).where(column.in_(chunk))
                for name, when, found, service, env, status in await self.session.execute(stmt):
                    at = _exact(when)
                    if self.counts(at, status, service, env, wanted):
                        self.failure(name, at).incidents.update(key[found])

    def counts(
        self, at: float, status: str, service: str, env: str | None, wanted: set[str] | None
    ) -> bool:
        """Whether a deployment read without the window's conditions meets them."""
        if not self.start.timestamp() <= at < self.end.timestamp() or status not in SHIPPED:
            return False
        if wanted is not None and service not in wanted:
            return False
        return self.environments is None or env is None or env in self.environments

    async def rolled_back(self, services: Sequence[str] | None) -> None:
        """Rolled-back deployments and the next successful deployment of that service there."""
        d = m.Deployment
        later = aliased(m.Deployment)
        fixed = (
            select(self.epoch(col(later.deploy_time)))
            .where(
                col(later.service) == col(d.service),
                col(later.environment).is_not_distinct_from(col(d.environment)),
                col(later.status) == "success",
                col(later.deploy_time) > col(d.deploy_time),
            )
            .order_by(col(later.deploy_time))
            .limit(1)
            .scalar_subquery()
        )
        stmt = select(col(d.name), self.epoch(col(d.deploy_time)), fixed).where(
            *self.where(services), col(d.status) == "rolled_back"
        )
        for name, when, fixed_at in await self.session.execute(stmt):
            failed = self.failure(name, _exact(when))
            failed.rolled_back = True
            failed.fixed_at = None if fixed_at is None else _exact(fixed_at)


def _iso_epoch(text: Any) -> float | None:
    if not text:
        return None
    value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _chunks(items: Sequence[str] | None) -> Iterable[Sequence[str] | None]:
    if items is None:
        yield None
        return
    for first in range(0, len(items), CHUNK):
        yield items[first : first + CHUNK]


async def _incident_links(
    session: AsyncSession,
) -> tuple[dict[str, dict[str, float | None]], dict[str, dict[str, float | None]]]:
    """Suspect deployment -> {incident: restored} and root-cause commit -> the same."""
    i, link = m.Incident, m.IncidentLink
    suspects = await session.execute(
        select(col(link.target), col(i.name), col(i.mitigated_at), col(i.resolved_at))
        .join(i, col(i.name) == col(link.incident))
        .where(col(link.kind) == "deployment")
    )
    by_name: dict[str, dict[str, float | None]] = defaultdict(dict)
    for target, name, mitigated, resolved in suspects:
        by_name[target][name] = _epoch(mitigated or resolved)
    causes = await session.execute(
        select(
            col(i.root_cause_commit), col(i.name), col(i.mitigated_at), col(i.resolved_at)
        ).where(col(i.root_cause_commit).is_not(None))
    )
    by_commit: dict[str, dict[str, float | None]] = defaultdict(dict)
    for sha, name, mitigated, resolved in causes:
        if sha:
            by_commit[sha][name] = _epoch(mitigated or resolved)
    return dict(by_name), dict(by_commit)


async def _scoped_incidents(
    session: AsyncSession, services: Sequence[str] | None, start: datetime, end: datetime
) -> dict[str, tuple[float, float | None, str | None]]:
    """Incidents that started in the window and touched `services`: start, restore, cause."""
    i, link = m.Incident, m.IncidentLink
    stmt = select(
        col(i.name),
        col(i.started_at),
        col(i.mitigated_at),
        col(i.resolved_at),
        col(i.root_cause_commit),
    ).where(col(i.started_at) >= start, col(i.started_at) < end)
    if services is not None:
        touching = select(col(link.incident)).where(
            col(link.kind) == "service", col(link.target).in_(services)
        )
        stmt = stmt.where(col(i.name).in_(touching))
    return {
        name: (started.timestamp(), _epoch(mitigated or resolved), cause)
        for name, started, mitigated, resolved, cause in await session.execute(stmt)
    }


async def _first_deployed(reader: _Reader, shas: Sequence[str]) -> dict[str, float]:
    """When each commit first reached production as a deployment's head commit."""
    d = m.Deployment
    firsts: dict[str, float] = {}
    for chunk in _chunks(shas):
        assert chunk is not None
        conditions: list[Any] = [col(d.commit).in_(chunk), col(d.status).in_(SHIPPED)]
        if reader.environments is not None:
            conditions.append(
                or_(col(d.environment).is_(None), col(d.environment).in_(reader.environments))
            )
        stmt = (
            select(col(d.commit), func.min(reader.epoch(col(d.deploy_time))))
            .where(*conditions)
            .group_by(col(d.commit))
        )
        for sha, first in await reader.session.execute(stmt):
            firsts[sha] = _exact(first)
    return firsts


async def load_history(
    store: Store, graph: CatalogGraph, scope: Scope, start: datetime, end: datetime
) -> DoraHistory:
    """The history of a scope's production deployments and incidents in `[start, end)`."""
    history = DoraHistory()
    names = sorted(scope.services) if scope.services is not None else None
    incidents: dict[str, tuple[float, float | None, str | None]] = {}
    async with store.session() as session:
        reader = _Reader(session, store.dialect, production_environments(graph), start, end)
        by_name, by_commit = await _incident_links(session)
        for chunk in _chunks(names):
            if await reader.plain(chunk, history):
                await reader.listed(chunk, history, by_commit)
            await reader.linked(chunk, by_name, by_commit)
            await reader.rolled_back(chunk)
            incidents |= await _scoped_incidents(session, chunk, start, end)
        shas = sorted({cause for _, _, cause in incidents.values() if cause})
        firsts = await _first_deployed(reader, shas)
    # A commit only listed (not a head commit) is known from the deployments read.
    for sha, at in reader.listed_firsts.items():
        firsts[sha] = min(at, firsts.get(sha, at))

    for failed in reader.failed.values():
        if failed.incidents:
            history.add_failure(
                failed.at, "linked", _recovery(failed.at, failed.incidents.values())
            )
        elif failed.rolled_back:
            fixed = failed.fixed_at
            history.add_failure(
                failed.at, "rolled_back", None if fixed is None else (fixed - failed.at) / 60
            )
    for started, restored, cause in incidents.values():
        history.incident_at.append(started)
        history.restore_minutes.append(_restore(started, restored, firsts.get(cause or "")))
    logger.debug(
        "dora history: %d deployments, %d failures, %d incidents",
        len(history.deployed),
        len(history.failure_at),
        len(history.incident_at),
    )
    return history.sorted()
