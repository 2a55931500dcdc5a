"""What a metric is computed over: a time window, and a set of services.

Windows are half-open, `[since, until)`, in UTC. A scope is one service, the services a
team owns (its sub-teams' too), a system's or a domain's services, or the whole
organisation (no filter at all).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from resilience_mcp.catalog.kinds import parse_duration
from resilience_mcp.errors import InvalidInputError
from resilience_mcp.graph.cards import resolve_entity
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.graph.owners import find_owner
from resilience_mcp.models.metrics import ScopeKind

__all__ = [
    "DEFAULT_WINDOW",
    "Scope",
    "calendar_months",
    "calendar_weeks",
    "get_scope",
    "mean",
    "median",
    "minutes_between",
    "parse_length",
    "parse_when",
    "production_environments",
    "resolve_window",
    "services_of",
    "team_services",
]

DEFAULT_WINDOW = timedelta(days=90)

_SCOPE_KINDS = {"service": "Service", "team": "Team", "system": "System", "domain": "Domain"}


def parse_when(text: str | None, now: datetime, *, field: str) -> datetime | None:
    """An ISO date or time (UTC when it has no zone), or a duration back from now: `30d`."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(
            f"{field} {text!r} is neither a date, a time nor a duration; write 2026-09-01, "
            "2026-09-01T08:00Z or 30d (30 days before now)."
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_length(text: str, *, field: str) -> timedelta:
    """A length of time such as `1h`, `7d` or `PT30M`, which must be positive."""
    try:
        length = parse_duration(text)
    except ValueError:
        length = timedelta(0)
    if length <= timedelta(0):
        raise InvalidInputError(
            f"{field} {text!r} is not a length of time; write 5m, 1h, 1d or 7d."
        )
    return length


def resolve_window(
    since: str | None,
    until: str | None,
    now: datetime,
    default: timedelta = DEFAULT_WINDOW,
) -> tuple[datetime, datetime]:
    """`[since, until)`: until defaults to now, since to `default` before until."""
    end = parse_when(until, now, field="until") or now
    start = parse_when(since, now, field="since") or end - default
    if start >= end:
        raise InvalidInputError(
            f"The window starts ({start:%Y-%m-%dT%H:%MZ}) at or after it ends "
            f"({end:%Y-%m-%dT%H:%MZ}); give a since before until."
        )
    return start, end


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def calendar_weeks(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The calendar weeks (Monday 00:00 UTC to the next) that `[start, end)` touches."""
    first = _midnight(start.date() - timedelta(days=start.weekday()))
    weeks = []
    while first < end:
        weeks.append((first, first + timedelta(days=7)))
        first += timedelta(days=7)
    return weeks


def calendar_months(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The calendar months (UTC) that `[start, end)` touches."""
    first = _midnight(start.date().replace(day=1))
    months = []
    while first < end:
        following = (first + timedelta(days=32)).replace(day=1)
        months.append((first, following))
        first = following
    return months


def minutes_between(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 60.0


def median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def mean(values: Sequence[float]) -> float | None:
    return float(statistics.fmean(values)) if values else None


@dataclass(frozen=True)
class Scope:
    """What to count: `services` None means the whole organisation."""

    kind: ScopeKind
    name: str | None
    services: frozenset[str] | None
    corrected_from: str | None = None

    def size(self, graph: CatalogGraph) -> int:
        return len(graph.services) if self.services is None else len(self.services)


def get_scope(graph: CatalogGraph, scope: ScopeKind, name: str | None) -> Scope:
    """The services of `scope` (service, team, system, domain, organisation) named `name`."""
    if scope == "organisation":
        return Scope("organisation", None, None)
    kind = _SCOPE_KINDS.get(scope)
    if kind is None:
        raise InvalidInputError(
            f"scope {scope!r} is not one of service, team, system, domain or organisation."
        )
    if not name:
        raise InvalidInputError(f"scope {scope} needs a name: which {scope}?")
    resolved = resolve_entity(graph, name, (kind,))
    services = frozenset(services_of(graph, kind, resolved.name))
    return Scope(scope, resolved.name, services, resolved.corrected_from)


def services_of(graph: CatalogGraph, kind: str, name: str) -> set[str]:
    """The services that belong to one service, team, system or domain."""
    if kind == "Service":
        return {name}
    if kind == "Team":
        return team_services(graph, [name])
    if kind == "System":
        return set(graph.system_services.get(name, ()))
    systems = [s.name for s in graph.systems.values() if s.domain == name]
    return set().union(*(graph.system_services.get(s, set()) for s in systems))


def team_services(graph: CatalogGraph, teams: Iterable[str]) -> set[str]:
    """Services whose owner (direct or inherited) is one of `teams` or a team below them."""
    wanted: set[str] = set()
    todo = list(teams)
    while todo:
        team = todo.pop()
        if team not in wanted:
            wanted.add(team)
            todo.extend(graph.team_children.get(team, ()))
    return {s for s in graph.services if find_owner(graph, "Service", s).owner in wanted}


def production_environments(graph: CatalogGraph) -> frozenset[str] | None:
    """Production environments by name; None when the catalog models no environments."""
    if not graph.environments:
        return None
    return frozenset(e.name for e in graph.environments.values() if e.type == "production")
