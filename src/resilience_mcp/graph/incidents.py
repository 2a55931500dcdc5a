"""Reading incidents: one in full, filtered lists, and the remediation work they left.

Incidents, postmortems and tasks are history, so they are read from the store on each call;
the catalog graph only resolves the names an agent types (services, teams).
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, bindparam, case, func, or_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col, select

from resilience_mcp import models as m
from resilience_mcp.errors import InvalidInputError, NotFoundError
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.graph.owners import find_owner
from resilience_mcp.graph.provenance import (
    STALE_AFTER,
    Confirmations,
    fact_source_at,
    last_confirmed,
    read_confirmations,
)
from resilience_mcp.models.common import Link, ListCut, PageInfo
from resilience_mcp.models.incidents import (
    IncidentList,
    IncidentRecord,
    IncidentSummary,
    PostmortemDetail,
    TaskBrief,
    TaskList,
    TimelineItem,
)
from resilience_mcp.store import Store, chunks, counted_rows, tallied_rows

__all__ = [
    "INCIDENT_STATUSES",
    "OPEN_INCIDENT_STATUSES",
    "TASK_STATUSES",
    "UNFINISHED_TASK_STATUSES",
    "first_and_latest",
    "get_incident",
    "incident_services",
    "incident_summaries",
    "incident_tasks",
    "list_incidents",
    "list_remediation_tasks",
    "parse_time",
    "resolve_incident",
    "task_brief",
    "team_services",
]

INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "mitigated", "resolved")
OPEN_INCIDENT_STATUSES = INCIDENT_STATUSES[:4]
TASK_STATUSES = ("open", "in_progress", "done", "wontfix")
UNFINISHED_TASK_STATUSES = ("open", "in_progress")

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(w|d|h|m)\s*$", re.IGNORECASE)
_UNIT_HOURS = {"w": 168.0, "d": 24.0, "h": 1.0, "m": 1 / 60}


def parse_time(value: str, now: datetime, *, name: str) -> datetime:
    """An ISO date or time (UTC unless it says otherwise), or a span back from now: `30d`."""
    if match := _RELATIVE.match(value):
        hours = float(match.group(1)) * _UNIT_HOURS[match.group(2).lower()]
        return now - timedelta(hours=hours)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(
            f"{name} {value!r} is not a time; give an ISO date such as 2026-11-01, a time "
            "such as 2026-11-01T09:30Z, or a span back from now such as 7d or 12h."
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=now.tzinfo)


def _overdue(task: m.RemediationTask, now: datetime) -> bool:
    due = task.due_date
    return task.status in UNFINISHED_TASK_STATUSES and due is not None and due < now


def task_brief(task: m.RemediationTask, now: datetime) -> TaskBrief:
    return TaskBrief(
        name=task.name,
        title=task.title,
        status=task.status,
        priority=task.priority,
        owner=task.owner,
        due_date=task.due_date,
        version=task.version,
        completed_at=task.completed_at,
        overdue=_overdue(task, now),
        incident=task.incident,
        postmortem=task.postmortem,
    )


async def resolve_incident(session: AsyncSession, key: str) -> m.Incident:
    """The incident `key` names, forgiving case and separators; NotFoundError lists near keys."""
    wanted = key.strip()
    row = await session.get(m.Incident, wanted)
    if row is not None:
        return row
    found = await session.execute(
        select(m.Incident).where(func.lower(col(m.Incident.name)) == wanted.lower())
    )
    if (row := found.scalars().first()) is not None:
        return row

    # `inc 2031`, `INC_2031` and `2031` all name INC-2031 when only one key fits.
    digits = "".join(re.findall(r"\d+", wanted))
    near = await _keys_like(session, digits) if digits else []
    fits = [n for n in near if re.sub(r"\D", "", n) == digits]
    if len(fits) == 1:
        loaded = await session.get(m.Incident, fits[0])
        if loaded is not None:
            return loaded
    raise NotFoundError("Incident", key, await _near_keys(session, wanted, near))


async def _keys_like(session: AsyncSession, digits: str) -> list[str]:
    result = await session.execute(
        select(m.Incident.name).where(col(m.Incident.name).contains(digits)).limit(50)
    )
    return list(result.scalars().all())


async def _near_keys(session: AsyncSession, wanted: str, near: list[str]) -> list[str]:
    """Keys like the one asked for: sharing its digits but the last, else the latest ones."""
    digits = "".join(re.findall(r"\d+", wanted))
    if not near and len(digits) > 1:
        near = await _keys_like(session, digits[:-1])
    if near:
        close = difflib.get_close_matches(wanted.upper(), [n.upper() for n in near], n=5, cutoff=0)
        return [n for c in close for n in near if n.upper() == c][:5]
    latest = await session.execute(
        select(m.Incident.name).order_by(col(m.Incident.started_at).desc()).limit(5)
    )
    return list(latest.scalars().all())


async def incident_services(
    session: AsyncSession | AsyncConnection, keys: Sequence[str]
) -> dict[str, list[str]]:
    """The services each incident touched, by incident key."""
    found: dict[str, set[str]] = defaultdict(set)
    for chunk in chunks(keys):
        # The kind is checked here, not in SQL, so the engine looks rows up by incident
        # (an index on kind alone would have it read every service link).
        rows = await session.execute(
            select(m.IncidentLink.incident, m.IncidentLink.kind, m.IncidentLink.target).where(
                col(m.IncidentLink.incident).in_(chunk)
            )
        )
        for incident, kind, target in rows:
            if kind == "service":
                found[incident].add(target)
    return {key: sorted(found.get(key, ())) for key in keys}


# What a listing shows of an incident. Read alone, a page of them skips decoding the rest
# (JSON columns, the other times).
SUMMARY_COLUMNS = (
    col(m.Incident.name),
    col(m.Incident.title),
    col(m.Incident.severity),
    col(m.Incident.status),
    col(m.Incident.started_at),
    col(m.Incident.resolved_at),
)


class IncidentHead(Protocol):
    """An incident as `SUMMARY_COLUMNS` reads it, or a whole one."""

    @property
    def name(self) -> str: ...
    @property
    def title(self) -> str | None: ...
    @property
    def severity(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def resolved_at(self) -> datetime | None: ...


async def incident_summaries(
    session: AsyncSession, incidents: Sequence[IncidentHead]
) -> list[IncidentSummary]:
    services = await incident_services(session, [i.name for i in incidents])
    return [
        IncidentSummary(
            key=i.name,
            title=i.title,
            severity=i.severity,
            status=i.status,
            started_at=i.started_at,
            resolved_at=i.resolved_at,
            services=services[i.name],
        )
        for i in incidents
    ]


async def get_incident(
    store: Store,
    key: str,
    now: datetime,
    *,
    timeline_limit: int = 50,
    task_limit: int = 20,
    customer_limit: int = 25,
    stale_after: timedelta = STALE_AFTER,
    confirmations: Confirmations | None = None,
) -> IncidentRecord:
    """One incident in full: times, what it touched, timeline, postmortem and tasks, and
    where the record came from (a synced one older than `stale_after` is stale, unless its
    source confirmed it since: `confirmations`, read from the store when not given)."""
    async with store.session() as session:
        incident, postmortem = await _incident_and_postmortem(session, key)
        links = await _links(session, incident.name)
        timeline = await _timeline(session, incident.name)
        tasks = await incident_tasks(session, [incident.name])
        if confirmations is None:
            confirmations = await read_confirmations(session)

    tasks.sort(key=lambda t: (not _overdue(t, now), t.priority, t.due_date or now, t.name))
    customers = links.get("customer", [])
    return IncidentRecord(
        key=incident.name,
        version=incident.version,
        title=incident.title,
        summary=incident.summary,
        severity=incident.severity,
        status=incident.status,
        commander=incident.commander,
        trigger=incident.trigger,
        root_cause_commit=incident.root_cause_commit,
        started_at=incident.started_at,
        detected_at=incident.detected_at,
        acknowledged_at=incident.acknowledged_at,
        mitigated_at=incident.mitigated_at,
        resolved_at=incident.resolved_at,
        minutes_to_detect=_minutes(incident.started_at, incident.detected_at),
        minutes_to_mitigate=_minutes(incident.started_at, incident.mitigated_at),
        minutes_to_resolve=_minutes(incident.started_at, incident.resolved_at),
        services=links.get("service", []),
        environments=links.get("environment", []),
        features=links.get("feature", []),
        flags=links.get("flag", []),
        deployments=links.get("deployment", []),
        customers=customers[:customer_limit],
        customers_page=ListCut.of(len(customers), min(customer_limit, len(customers))),
        timeline=first_and_latest(timeline, timeline_limit),
        timeline_page=ListCut.of(len(timeline), min(timeline_limit, len(timeline))),
        postmortem=postmortem,
        tasks=[task_brief(t, now) for t in tasks[:task_limit]],
        tasks_page=ListCut.of(len(tasks), min(task_limit, len(tasks))),
        links=Link.all_of(incident.links),
        source=fact_source_at(
            incident.source, last_confirmed(incident, confirmations), now, stale_after
        ),
        external_id=incident.external_id,
    )


def _minutes(start: datetime, end: datetime | None) -> float | None:
    if end is None:
        return None
    return round((end - start).total_seconds() / 60, 1)


# Statements get_incident makes on every call, built once: the key is bound at execution.
_LINKS = select(m.IncidentLink.kind, m.IncidentLink.target).where(
    col(m.IncidentLink.incident) == bindparam("key")
)
_TIMELINE = (
    select(m.TimelineEntry)
    .where(col(m.TimelineEntry.incident) == bindparam("key"))
    .order_by(col(m.TimelineEntry.at), col(m.TimelineEntry.id))
)


async def _links(session: AsyncSession, key: str) -> dict[str, list[str]]:
    rows = await session.execute(_LINKS, {"key": key})
    found: dict[str, set[str]] = defaultdict(set)
    for kind, target in rows:
        found[kind].add(target)
    return {kind: sorted(targets) for kind, targets in found.items()}


# Entries kept from the start of a timeline that is too long: how the incident began.
TIMELINE_HEAD = 5


def first_and_latest(timeline: list[TimelineItem], limit: int) -> list[TimelineItem]:
    """A timeline cut to `limit` entries: its first few, then its latest, in order. During
    a long incident the latest entries are the ones to act on."""
    if len(timeline) <= limit:
        return timeline
    head = min(TIMELINE_HEAD, limit // 2)
    return timeline[:head] + timeline[len(timeline) - (limit - head) :]


async def _timeline(session: AsyncSession, key: str) -> list[TimelineItem]:
    rows = await session.execute(_TIMELINE, {"key": key})
    entries = dict.fromkeys((e.at, e.kind, e.text, e.author) for e in rows.scalars().all())
    return [
        TimelineItem(at=at, kind=kind, text=text, author=who) for at, kind, text, who in entries
    ]


# An incident's postmortem: the latest published, when there are several.
_LATEST_POSTMORTEM = (col(m.Postmortem.published_at).desc(), col(m.Postmortem.name))


_WITH_POSTMORTEM = (
    select(m.Incident, m.Postmortem)
    .outerjoin(m.Postmortem, col(m.Postmortem.incident) == col(m.Incident.name))
    .where(col(m.Incident.name) == bindparam("key"))
    .order_by(*_LATEST_POSTMORTEM)
    .limit(1)
)


async def _incident_and_postmortem(
    session: AsyncSession, key: str
) -> tuple[m.Incident, PostmortemDetail | None]:
    """The incident `key` names, with its postmortem: one statement when the key is exact."""
    found = await session.execute(_WITH_POSTMORTEM, {"key": key.strip()})
    if (row := found.first()) is not None:
        return row[0], _postmortem_detail(row[1])
    incident = await resolve_incident(session, key)
    return incident, await _postmortem(session, incident.name)


async def _postmortem(session: AsyncSession, key: str) -> PostmortemDetail | None:
    rows = await session.execute(
        select(m.Postmortem).where(col(m.Postmortem.incident) == key).order_by(*_LATEST_POSTMORTEM)
    )
    return _postmortem_detail(rows.scalars().first())


def _postmortem_detail(pm: m.Postmortem | None) -> PostmortemDetail | None:
    if pm is None:
        return None
    return PostmortemDetail(
        name=pm.name,
        title=pm.title,
        summary=pm.summary,
        trigger=pm.trigger,
        root_cause=pm.root_cause,
        contributing_factors=list(pm.contributing_factors),
        detection=pm.detection,
        resolution=pm.resolution,
        lessons=list(pm.lessons),
        author=pm.author,
        published_at=pm.published_at,
    )


async def incident_tasks(session: AsyncSession, keys: Sequence[str]) -> list[m.RemediationTask]:
    """Tasks that name one of the incidents, directly or through its postmortem."""
    rows = await session.execute(_TASKS, {"keys": list(keys)})
    return list(rows.scalars().all())


_TASKS = select(m.RemediationTask).where(
    or_(
        col(m.RemediationTask.incident).in_(bindparam("keys", expanding=True)),
        col(m.RemediationTask.postmortem).in_(
            select(m.Postmortem.name).where(
                col(m.Postmortem.incident).in_(bindparam("keys", expanding=True))
            )
        ),
    )
)


async def list_incidents(
    store: Store,
    graph: CatalogGraph,
    now: datetime,
    *,
    status: str | None = None,
    severity: str | None = None,
    service: str | None = None,
    team: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> IncidentList:
    """Incidents, newest first, narrowed by status, severity, service, owning team and time."""
    filters = _incident_filters(graph, now, status, severity, service, team, since, until)
    async with store.session() as session:
        order = (col(m.Incident.started_at).desc(), col(m.Incident.name))
        total, rows = await counted_rows(
            session, m.Incident, SUMMARY_COLUMNS, filters, order, limit, offset
        )
        incidents = await incident_summaries(session, rows)
    return IncidentList(incidents=incidents, page=PageInfo.of(total, len(incidents), offset))


def _incident_filters(
    graph: CatalogGraph,
    now: datetime,
    status: str | None,
    severity: str | None,
    service: str | None,
    team: str | None,
    since: str | None,
    until: str | None,
) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = []
    if status:
        filters.append(col(m.Incident.status).in_(_statuses(status)))
    if severity:
        filters.append(col(m.Incident.severity) == _severity(severity))
    if since:
        filters.append(col(m.Incident.started_at) >= parse_time(since, now, name="since"))
    if until:
        filters.append(col(m.Incident.started_at) <= parse_time(until, now, name="until"))
    services: set[str] = set()
    if service:
        services.add(graph.names.resolve(service, ["Service"]).name)
    if team:
        services |= team_services(graph, graph.names.resolve(team, ["Team"]).name)
        if not services:
            return [*filters, col(m.Incident.name).in_([])]
    if services:
        touched = select(m.IncidentLink.incident).where(
            col(m.IncidentLink.kind) == "service", col(m.IncidentLink.target).in_(services)
        )
        filters.append(col(m.Incident.name).in_(touched))
    return filters


def _statuses(status: str) -> tuple[str, ...]:
    wanted = status.strip().lower().replace("-", "_")
    if wanted == "open":
        return OPEN_INCIDENT_STATUSES
    if wanted == "closed":
        return ("resolved",)
    if wanted not in INCIDENT_STATUSES:
        raise InvalidInputError(
            f"Status {status!r} is not an incident status; use open, "
            f"{', '.join(INCIDENT_STATUSES)}."
        )
    return (wanted,)


def _severity(severity: str) -> str:
    digits = re.sub(r"\D", "", severity)
    if not digits or not 1 <= int(digits) <= 5:
        raise InvalidInputError(
            f"Severity {severity!r} is not one this catalog uses; give SEV1 to SEV5 (or 1 to 5)."
        )
    return f"SEV{int(digits)}"


def team_services(graph: CatalogGraph, team: str) -> set[str]:
    """Services the team owns, directly or inherited, including its sub-teams'."""
    teams = _team_and_children(graph, team)
    return {s for s in graph.services if find_owner(graph, "Service", s).owner in teams}


def _team_and_children(graph: CatalogGraph, team: str) -> set[str]:
    found, todo = set(), [team]
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo.extend(graph.team_children.get(current, ()))
    return found


async def list_remediation_tasks(
    store: Store,
    graph: CatalogGraph,
    now: datetime,
    *,
    status: str | None = None,
    team: str | None = None,
    overdue: bool | None = None,
    limit: int = 20,
    offset: int = 0,
) -> TaskList:
    """Remediation tasks, overdue first, then by priority and due date."""
    filters = _task_filters(graph, now, status, team)
    late = and_(
        col(m.RemediationTask.status).in_(UNFINISHED_TASK_STATUSES),
        col(m.RemediationTask.due_date) < now,
    )
    if overdue is True:
        filters.append(late)
    elif overdue is False:
        filters.append(~late | col(m.RemediationTask.due_date).is_(None))
    order = (
        case((late, 0), else_=1),
        col(m.RemediationTask.priority),
        col(m.RemediationTask.due_date),
        col(m.RemediationTask.name),
    )
    async with store.session() as session:
        # The page, how many match and how many of those are late: one statement.
        (total, late_count), rows = await tallied_rows(
            session,
            m.RemediationTask,
            [m.RemediationTask],
            filters,
            order,
            limit,
            offset,
            tallies=(func.count(), func.count(case((late, 1)))),
        )
        tasks = [task_brief(row[0], now) for row in rows]
    return TaskList(tasks=tasks, overdue=late_count, page=PageInfo.of(total, len(tasks), offset))


def _task_filters(
    graph: CatalogGraph, now: datetime, status: str | None, team: str | None
) -> list[Any]:
    filters: list[Any] = []
    if status:
        wanted = status.strip().lower().replace("-", "_")
        if wanted == "unfinished":
            filters.append(col(m.RemediationTask.status).in_(UNFINISHED_TASK_STATUSES))
        elif wanted in TASK_STATUSES:
            filters.append(col(m.RemediationTask.status) == wanted)
        else:
            raise InvalidInputError(
                f"Status {status!r} is not a task status; use unfinished, "
                f"{', '.join(TASK_STATUSES)}."
            )
    if team:
        teams = _team_and_children(graph, graph.names.resolve(team, ["Team"]).name)
        filters.append(col(m.RemediationTask.owner).in_(teams))
    return filters
