"""MTTR, MTBF and the flakiest components of a scope.

A failure is an incident: it starts at `started_at` and is restored at `mitigated_at`
(service back for users) or, when no mitigation was recorded, at `resolved_at`. Times an
incident lacks are read from its timeline (`find_milestones`), by entry kind first and by
the words of the entry second.

MTBF is the mean operating time between the starts of consecutive failures: for each
pair, from the restoration of everything that was down to the start of the next failure,
never below zero when failures overlap. The first interval (window start to the first
failure) and the open interval (last restoration to window end) are censored, since the
failure before the window and the one after it are unseen, so they are left out of the
mean; with fewer than two failures there is no MTBF, and the longest failure-free stretch
seen is given as a lower bound instead.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlmodel import col

from resilience_mcp import models as m
from resilience_mcp.graph.cards import resolve_entity
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.graph.owners import find_owner
from resilience_mcp.metrics.scope import (
    Scope,
    mean,
    median,
    minutes_between,
    resolve_window,
    services_of,
)
from resilience_mcp.metrics.slo import compute_slo_statuses, load_slos
from resilience_mcp.models.catalog import IncidentBrief
from resilience_mcp.models.common import ListCut
from resilience_mcp.models.metrics import (
    DurationStats,
    FlakyComponent,
    Mtbf,
    ReliabilityAnswer,
    ScopeKind,
    SLOStatus,
)
from resilience_mcp.store import Store, chunks

__all__ = [
    "ORGANISATION",
    "UNRESTORED_STATUSES",
    "Failure",
    "IncidentRecord",
    "Milestones",
    "TimelinePoint",
    "compute_mtbf",
    "duration_stats",
    "find_milestones",
    "get_reliability",
    "load_incident_records",
    "rank_flakiest",
]

# Names that stand for the whole organisation in `get_reliability`.
ORGANISATION = {"organisation", "organization", "org", "all", "*"}
# Statuses of an incident whose service is not back yet.
UNRESTORED_STATUSES = ("investigating", "identified")
_SCOPE_KINDS: dict[str, ScopeKind] = {
    "Service": "service",
    "Team": "team",
    "System": "system",
    "Domain": "domain",
}
_SLO_ORDER = {"exhausted": 0, "at_risk": 1, "healthy": 2, "no_data": 3}


# Timelines


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    at: datetime
    text: str
    kind: str | None = None


@dataclass(frozen=True)
class Milestones:
    started: datetime | None = None
    detected: datetime | None = None
    acknowledged: datetime | None = None
    restored: datetime | None = None
    resolved: datetime | None = None


# Words that mark an entry as the moment of detection, acknowledgement, restoration or
# resolution when the entry has no kind saying so. Matched at word starts, lower case.
_CUES = {
    "detected": re.compile(
        r"\b(detect|alert|report|notif|noticed|discover|witness|informed|paged|escalat)"
    ),
    "acknowledged": re.compile(r"\b(acknowledg|ack\b|investigation (started|commenced))"),
    "restored": re.compile(
        r"\b(recover|restored|back to normal|operational|working as intended|resolved|"
        r"mitigat|fix applied|fixed|works\b|confirmed working|working again|now fine)"
    ),
    "resolved": re.compile(r"\b(resolved|closed|resolution)"),
}
_KINDS = {
    "detected": ("detection", "detected", "alert"),
    "acknowledged": ("acknowledgement", "acknowledged", "ack"),
    "restored": ("mitigation", "mitigated", "recovery", "restored"),
    "resolved": ("resolution", "resolved"),
}


def find_milestones(points: Sequence[TimelinePoint]) -> Milestones:
    """When an incident started, was detected, acknowledged, restored and resolved.

    The start is the first entry. Each other moment is the first entry of its kind, else
    the first whose words say so; restoration is looked for from detection on, and stands
    in for resolution (and the other way round) when only one is found.
    """
    ordered = sorted(points, key=lambda p: p.at)
    if not ordered:
        return Milestones()
    found: dict[str, datetime | None] = {}
    for moment in _CUES:
        since = found.get("detected") if moment in ("restored", "resolved") else None
        found[moment] = _first(ordered, moment, since)
    restored = found["restored"] or found["resolved"]
    resolved = found["resolved"] or found["restored"]
    return Milestones(
        started=ordered[0].at,
        detected=found["detected"],
        acknowledged=found["acknowledged"],
        restored=restored,
        resolved=resolved,
    )


def _first(points: Sequence[TimelinePoint], moment: str, since: datetime | None) -> datetime | None:
    candidates = [p for p in points if since is None or p.at >= since]
    for point in candidates:
        if point.kind and point.kind.lower() in _KINDS[moment]:
            return point.at
    for point in candidates:
        if _CUES[moment].search(point.text.lower()):
            return point.at
    return None


# Incidents


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    name: str
    title: str | None
    severity: str
    status: str
    started_at: datetime
    detected_at: datetime | None = None
    acknowledged_at: datetime | None = None
    restored_at: datetime | None = None
    resolved_at: datetime | None = None
    services: tuple[str, ...] = ()

    def brief(self) -> IncidentBrief:
        return IncidentBrief(
            key=self.name,
            title=self.title,
            severity=self.severity,
            status=self.status,
            started_at=self.started_at,
            resolved_at=self.resolved_at,
        )


@dataclass(frozen=True, slots=True)
class Failure:
    started_at: datetime
    restored_at: datetime | None


def duration_stats(values: Iterable[float | None]) -> DurationStats:
    known = [v for v in values if v is not None and v >= 0]
    return DurationStats(count=len(known), mean_minutes=mean(known), median_minutes=median(known))


def _minutes(start: datetime | None, end: datetime | None) -> float | None:
    return minutes_between(start, end) if start and end else None


def compute_mtbf(failures: Sequence[Failure], start: datetime, end: datetime) -> Mtbf:
    """MTBF over `[start, end)` of the failures that started in it (see the module notes)."""
    ordered = sorted(
        (f for f in failures if start <= f.started_at < end), key=lambda f: f.started_at
    )
    window_hours = (end - start).total_seconds() / 3600

    intervals: list[float] = []
    downtime = 0.0
    down_until: datetime | None = None
    for failure in ordered:
        restored = min(failure.restored_at or end, end)
        if down_until is not None:
            intervals.append(max(0.0, (failure.started_at - down_until).total_seconds() / 3600))
        # Downtime counts once where failures overlap.
        begin = max(failure.started_at, down_until or failure.started_at)
        downtime += max(0.0, (restored - begin).total_seconds() / 3600)
        down_until = max(restored, down_until or restored)

    at_least: float | None = None
    if len(ordered) == 0:
        at_least = window_hours
    elif len(ordered) == 1:
        first = (ordered[0].started_at - start).total_seconds() / 3600
        last = (end - (down_until or end)).total_seconds() / 3600
        at_least = max(first, last)
    return Mtbf(
        failures=len(ordered),
        intervals=len(intervals),
        mtbf_hours=mean(intervals),
        at_least_hours=at_least,
        operating_hours=max(0.0, window_hours - downtime),
        downtime_hours=downtime,
    )


def rank_flakiest(
    graph: CatalogGraph,
    incidents: Sequence[IncidentRecord],
    services: Iterable[str],
    start: datetime,
    end: datetime,
) -> list[FlakyComponent]:
    """Services with failures, most failures first, then shortest MTBF, then most downtime."""
    by_service: dict[str, list[IncidentRecord]] = defaultdict(list)
    wanted = set(services)
    for incident in incidents:
        for service in incident.services:
            if service in wanted:
                by_service[service].append(incident)

    ranked = []
    for service, failures in by_service.items():
        mtbf = compute_mtbf([Failure(i.started_at, i.restored_at) for i in failures], start, end)
        svc = graph.services.get(service)
        restore = duration_stats(_minutes(i.started_at, i.restored_at) for i in failures)
        ranked.append(
            FlakyComponent(
                service=service,
                tier=svc.tier if svc else None,
                owner=find_owner(graph, "Service", service).owner,
                failures=mtbf.failures,
                mtbf_hours=mtbf.mtbf_hours,
                at_least_hours=mtbf.at_least_hours,
                downtime_hours=mtbf.downtime_hours,
                restore_median_minutes=restore.median_minutes,
            )
        )
    never = float("inf")
    ranked.sort(
        key=lambda f: (
            -f.failures,
            f.mtbf_hours if f.mtbf_hours is not None else never,
            -f.downtime_hours,
            f.service,
        )
    )
    return ranked


# Reading the store


async def load_incident_records(
    store: Store, services: frozenset[str] | None, start: datetime, end: datetime
) -> list[IncidentRecord]:
    """Incidents that started in `[start, end)` touching `services` (None: all), with the
    services each touched and any missing times filled in from its timeline."""
    i, link = m.Incident, m.IncidentLink
    columns = (
        col(i.name),
        col(i.title),
        col(i.severity),
        col(i.status),
        col(i.started_at),
        col(i.detected_at),
        col(i.acknowledged_at),
        col(i.mitigated_at),
        col(i.resolved_at),
    )
    rows: dict[str, tuple[object, ...]] = {}
    async with store.session() as session:
        window = (col(i.started_at) >= start, col(i.started_at) < end)
        batches: Iterable[Sequence[str] | None] = (
            [None] if services is None else chunks(sorted(services))
        )
        for chunk in batches:
            stmt = select(*columns).where(*window)
            if chunk is not None:
                touching = select(col(link.incident)).where(
                    col(link.kind) == "service", col(link.target).in_(chunk)
                )
                stmt = stmt.where(col(i.name).in_(touching))
            for row in await session.execute(stmt):
                rows[row[0]] = tuple(row)

        touched: dict[str, list[str]] = defaultdict(list)
        for chunk in chunks(sorted(rows)):
            found = await session.execute(
                select(col(link.incident), col(link.target)).where(
                    col(link.kind) == "service", col(link.incident).in_(chunk)
                )
            )
            for incident, service in found:
                touched[incident].append(service)

    records = [_record(row, touched.get(str(row[0]), [])) for row in rows.values()]
    return await _fill_from_timelines(store, records)


def _record(row: tuple[object, ...], services: list[str]) -> IncidentRecord:
    name, title, severity, status, started, detected, acked, mitigated, resolved = row
    assert isinstance(started, datetime)
    return IncidentRecord(
        name=str(name),
        title=title if isinstance(title, str) else None,
        severity=str(severity),
        status=str(status),
        started_at=started,
        detected_at=detected if isinstance(detected, datetime) else None,
        acknowledged_at=acked if isinstance(acked, datetime) else None,
        restored_at=_as_time(mitigated) or _as_time(resolved),
        resolved_at=_as_time(resolved),
        services=tuple(sorted(set(services))),
    )


def _as_time(value: object) -> datetime | None:
    return value if isinstance(value, datetime) else None


async def _fill_from_timelines(store: Store, records: list[IncidentRecord]) -> list[IncidentRecord]:
    """Times an incident record lacks, read from its timeline entries."""
    gaps = [
        r.name
        for r in records
        if r.detected_at is None or r.acknowledged_at is None or r.restored_at is None
    ]
    if not gaps:
        return records
    t = m.TimelineEntry
    points: dict[str, list[TimelinePoint]] = defaultdict(list)
    async with store.session() as session:
        for chunk in chunks(gaps):
            found = await session.execute(
                select(col(t.incident), col(t.at), col(t.text), col(t.kind)).where(
                    col(t.incident).in_(chunk)
                )
            )
            for incident, at, text, kind in found:
                points[incident].append(TimelinePoint(at, text, kind))

    filled = []
    for record in records:
        if record.name not in points:
            filled.append(record)
            continue
        seen = find_milestones(points[record.name])
        # An incident still being worked on has not been restored, whatever its words say.
        restored = None if record.status in UNRESTORED_STATUSES else seen.restored
        filled.append(
            replace(
                record,
                detected_at=record.detected_at or seen.detected,
                acknowledged_at=record.acknowledged_at or seen.acknowledged,
                restored_at=record.restored_at or restored,
            )
        )
    return filled


# The answer


def find_scope(graph: CatalogGraph, name: str) -> Scope:
    """A service, team, system or domain by forgiving name, or the whole organisation."""
    if name.strip().lower() in ORGANISATION:
        return Scope("organisation", None, None)
    resolved = resolve_entity(graph, name, tuple(_SCOPE_KINDS))
    services = frozenset(services_of(graph, resolved.kind, resolved.name))
    return Scope(_SCOPE_KINDS[resolved.kind], resolved.name, services, resolved.corrected_from)


async def get_reliability(
    store: Store,
    graph: CatalogGraph,
    name: str,
    now: datetime,
    *,
    since: str | None = None,
    limit: int = 10,
) -> ReliabilityAnswer:
    """MTTR, MTBF, incidents, flakiest services and SLO state of one scope since `since`."""
    scope = find_scope(graph, name)
    start, end = resolve_window(since, None, now)
    incidents = await load_incident_records(store, scope.services, start, end)
    services = sorted(graph.services) if scope.services is None else sorted(scope.services)

    mtbf = compute_mtbf([Failure(i.started_at, i.restored_at) for i in incidents], start, end)
    flakiest = rank_flakiest(graph, incidents, services, start, end)
    slos = await _scope_slos(store, graph, scope, now)
    recent = sorted(incidents, key=lambda i: i.started_at, reverse=True)[:5]

    return ReliabilityAnswer(
        name=scope.name or "organisation",
        kind="Organisation" if scope.services is None else scope.kind.capitalize(),
        corrected_from=scope.corrected_from,
        services=len(services),
        since=start,
        until=end,
        incidents=len(incidents),
        open_incidents=sum(1 for i in incidents if i.restored_at is None),
        by_severity=dict(sorted(Counter(i.severity for i in incidents).items())),
        time_to_restore=duration_stats(_minutes(i.started_at, i.restored_at) for i in incidents),
        time_to_detect=duration_stats(_minutes(i.started_at, i.detected_at) for i in incidents),
        time_to_acknowledge=duration_stats(
            _minutes(i.detected_at or i.started_at, i.acknowledged_at) for i in incidents
        ),
        time_to_resolve=duration_stats(_minutes(i.started_at, i.resolved_at) for i in incidents),
        mtbf=mtbf,
        flakiest=flakiest[:limit],
        flakiest_page=ListCut.of(len(flakiest), min(limit, len(flakiest))),
        slos=slos[:5],
        slos_page=ListCut.of(len(slos), min(5, len(slos))),
        recent_incidents=[i.brief() for i in recent],
    )


async def _scope_slos(
    store: Store, graph: CatalogGraph, scope: Scope, now: datetime
) -> list[SLOStatus]:
    slos = await load_slos(store, scope.services)
    statuses = await compute_slo_statuses(store, slos, now)
    return sorted(statuses, key=lambda s: (_SLO_ORDER[s.status], s.budget_remaining or 0, s.name))
