"""What changed: deployments, flag changes and catalog edits on one timeline, newest first.

Asked about services, the timeline also holds the changes to everything they depend on, at
any depth: each entry carries the dependency path from the service asked about to the
service that changed (or that reads the flag that changed). The window defaults to the 24
hours before now; an environment narrows it to that environment and the tenant cells below
it, plus changes made to every environment at once, plus changes made above it to what it
shares with the environment above: a service it runs no copy of its own of, a flag it has
no state of its own for (`change_scope`). Catalog edits (a service's owner, tier,
lifecycle or dependencies, as a load or sync changed them) hold for every environment.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, TypeVar

from sqlalchemy import and_, or_
from sqlmodel import SQLModel, col

from resilience_mcp import models as m
from resilience_mcp.errors import InvalidInputError
from resilience_mcp.graph.cards import DEPLOYMENT_COLUMNS, resolve_entity
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.graph.features import RECENT, note_correction, resolve_environment
from resilience_mcp.models.common import PageInfo
from resilience_mcp.models.flags import ChangeEntry, ChangeTimeline
from resilience_mcp.store import Store, counted_page, counted_rows

__all__ = [
    "ChangeScope",
    "change_scope",
    "dependency_paths",
    "list_recent_changes",
    "parse_moment",
]

T = TypeVar("T", bound=SQLModel)

_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(w|d|h|m)\s*$", re.IGNORECASE)
_UNIT_HOURS = {"w": 168.0, "d": 24.0, "h": 1.0, "m": 1 / 60}


def parse_moment(value: str | None, now: datetime, *, field: str) -> datetime | None:
    """An ISO 8601 time (UTC when it names no zone), or a duration back from now: 24h, 7d."""
    if value is None or not value.strip():
        return None
    if match := _AGO.match(value):
        hours = float(match.group(1)) * _UNIT_HOURS[match.group(2).lower()]
        return now - timedelta(hours=hours)
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInputError(
            f"The {field} value {value!r} is neither a time such as 2026-12-01T09:00:00Z nor "
            "a duration back from now such as 6h or 7d; give one of those."
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class ChangeScope:
    """Where a change must be made to reach some environments: in one of them (`own`), in
    every environment at once (no environment), or in an environment above one of them
    (`inherited`), to a thing no environment on the way down has a copy of its own of."""

    own: frozenset[str]
    # An environment above -> the things whose changes there stop at a nearer copy.
    inherited: Mapping[str, frozenset[str]]

    def covers(self, environment: str | None, name: str) -> bool:
        """Whether a change to `name` made in `environment` reaches the environments."""
        if environment is None or environment in self.own:
            return True
        stopped = self.inherited.get(environment)
        return stopped is not None and name not in stopped

    def clause(self, environment: Any, name: Any) -> Any:
        """`covers` as a SQL condition on an environment column and a name column."""
        whole = sorted(self.own | {env for env, stopped in self.inherited.items() if not stopped})
        parts = [environment.is_(None), environment.in_(whole)]
        parts += [
            and_(environment == env, name.not_in(sorted(stopped)))
            for env, stopped in sorted(self.inherited.items())
            if stopped
        ]
        return or_(*parts)


def change_scope(
    graph: CatalogGraph,
    environments: Iterable[str],
    copies: Mapping[str, Mapping[str, object]],
    names: Collection[str] | None = None,
) -> ChangeScope:
    """Where changes reach `environments` from. `copies` says, per name, the environments
    that have their own copy of it: `graph.instances` for services (where each runs),
    `graph.flag_states` for flags (where each has a state of its own). A change made above
    an environment reaches it only for a name no environment on the way has a copy of; one
    with no copy recorded anywhere is taken as shared. `names` limits the exceptions to
    those asked about (all names in `copies` when None)."""
    own = frozenset(environments)
    candidates = list(copies) if names is None else list(names)
    inherited: dict[str, frozenset[str]] = {}
    for env in own:
        stopped: set[str] = set()
        for below, above in pairwise(graph.environment_lineage(env)):
            stopped |= {n for n in candidates if below in copies.get(n, {})}
            if above in own:
                continue
            # Reached from any of the environments is reached: what all of them stop.
            found = inherited.get(above)
            inherited[above] = frozenset(stopped if found is None else found & stopped)
    return ChangeScope(own=own, inherited=inherited)


def dependency_paths(graph: CatalogGraph, services: Iterable[str]) -> dict[str, list[str]]:
    """Every service the given ones depend on, at any depth, with the shortest path to it.

    Each given service maps to a path of itself alone. Breadth first, so the path found
    first is a shortest one; neighbours in name order, so the answer does not vary.
    """
    paths = {service: [service] for service in services}
    queue = deque(paths)
    while queue:
        node = queue.popleft()
        if node not in graph.dependencies:
            continue
        for target in sorted(graph.dependencies.successors(node)):
            if target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    return paths


def _flag_paths(graph: CatalogGraph, paths: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each flag read by a service in reach, with the shortest path to a service reading it.

    A flag that names no services belongs to the services of its feature.
    """
    found: dict[str, list[str]] = {}
    for flag in graph.flags.values():
        readers = flag.services or sorted(graph.feature_services.get(flag.feature or "", ()))
        reached = [paths[s] for s in readers if s in paths]
        if reached:
            found[flag.name] = min(reached, key=lambda path: (len(path), path))
    return found


async def list_recent_changes(
    store: Store,
    graph: CatalogGraph,
    now: datetime,
    *,
    services: Sequence[str] = (),
    environment: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 20,
    offset: int = 0,
) -> ChangeTimeline:
    """Deployments, flag changes and catalog edits in a window, newest first, through
    dependencies."""
    notes: list[str] = []
    until = until or now
    since = since or until - RECENT
    if since >= until:
        raise InvalidInputError(
            f"The window starts ({since:%Y-%m-%dT%H:%M:%SZ}) after it ends "
            f"({until:%Y-%m-%dT%H:%M:%SZ}); give a since earlier than until."
        )
    asked = [note_correction(resolve_entity(graph, s, ("Service",)), notes).name for s in services]
    asked = list(dict.fromkeys(asked))
    env = (
        note_correction(resolve_environment(graph, environment), notes).name
        if environment
        else None
    )

    paths = dependency_paths(graph, asked) if asked else None
    flag_paths = _flag_paths(graph, paths) if paths is not None else None
    deployed = flagged = None
    if env:
        cells = graph.environment_scope(env)
        deployed = change_scope(graph, cells, graph.instances, paths)
        flagged = change_scope(graph, cells, graph.flag_states, flag_paths)
    window = _Window(since, until, offset + limit, deployed, flagged)
    async with store.session() as session:
        dep_total, deployments = await _deployments(session, window, paths)
        flag_total, flag_changes = await _flag_changes(session, window, flag_paths)
        edit_total, edits = await _catalog_changes(session, window, paths)

    entries = [_deployment_entry(graph, d, paths) for d in deployments]
    entries += [_flag_entry(graph, c, flag_paths) for c in flag_changes]
    entries += [_catalog_entry(c, paths) for c in edits]
    # Stable, and in the order each query gave: a page boundary never drops or repeats one.
    entries.sort(key=lambda e: (-e.at.timestamp(), e.kind, e.name))
    shown = entries[offset : offset + limit]
    return ChangeTimeline(
        services=asked,
        environment=env,
        since=since,
        until=until,
        dependencies_included=len(paths) - len(asked) if paths is not None else 0,
        notes=notes,
        changes=shown,
        page=PageInfo.of(dep_total + flag_total + edit_total, len(shown), offset),
    )


@dataclass(frozen=True)
class _Window:
    """The part of the timeline asked for: a time range, how many rows, and where a
    deployment or a flag change must be made to count (anywhere when None)."""

    since: datetime
    until: datetime
    rows: int
    deployed: ChangeScope | None = None
    flagged: ChangeScope | None = None

    def when(self, at: Any) -> list[Any]:
        return [at >= self.since, at <= self.until]


async def _deployments(
    session: Any, window: _Window, paths: dict[str, list[str]] | None
) -> tuple[int, list[Any]]:
    where = window.when(col(m.Deployment.deploy_time))
    if window.deployed is not None:
        where.append(
            window.deployed.clause(col(m.Deployment.environment), col(m.Deployment.service))
        )
    if paths is not None:
        where.append(col(m.Deployment.service).in_(list(paths)))
    order = (col(m.Deployment.deploy_time).desc(), col(m.Deployment.name))
    return await counted_rows(session, m.Deployment, DEPLOYMENT_COLUMNS, where, order, window.rows)


async def _flag_changes(
    session: Any, window: _Window, flag_paths: dict[str, list[str]] | None
) -> tuple[int, list[m.FlagChange]]:
    if flag_paths is not None and not flag_paths:
        return 0, []
    where = window.when(col(m.FlagChange.at))
    if window.flagged is not None:
        where.append(window.flagged.clause(col(m.FlagChange.environment), col(m.FlagChange.flag)))
    if flag_paths is not None:
        where.append(col(m.FlagChange.flag).in_(list(flag_paths)))
    order = (col(m.FlagChange.at).desc(), col(m.FlagChange.flag), col(m.FlagChange.id).desc())
    return await _newest(session, m.FlagChange, where, order, window.rows)


async def _catalog_changes(
    session: Any, window: _Window, paths: dict[str, list[str]] | None
) -> tuple[int, list[m.CatalogChange]]:
    where = [*window.when(col(m.CatalogChange.at)), col(m.CatalogChange.kind) == "Service"]
    if paths is not None:
        where.append(col(m.CatalogChange.name).in_(list(paths)))
    order = (col(m.CatalogChange.at).desc(), col(m.CatalogChange.name), col(m.CatalogChange.id))
    return await _newest(session, m.CatalogChange, where, order, window.rows)


async def _newest(
    session: Any, table: type[T], where: Sequence[Any], order: Sequence[Any], rows: int
) -> tuple[int, list[T]]:
    """How many rows of `table` match `where`, and the first `rows` of them in `order`."""
    return await counted_page(session, table, where, order, limit=rows)


def _tenant(graph: CatalogGraph, environment: str | None) -> str | None:
    env = graph.environments.get(environment or "")
    return env.tenant if env else None


def _deployment_entry(
    graph: CatalogGraph, row: Any, paths: dict[str, list[str]] | None
) -> ChangeEntry:
    """A deployment as `DEPLOYMENT_COLUMNS` reads it, on the timeline."""
    where = row.environment or "every environment"
    return ChangeEntry(
        kind="deployment",
        at=row.deploy_time,
        name=row.name,
        service=row.service,
        environment=row.environment,
        tenant=_tenant(graph, row.environment),
        summary=f"deploy {row.service} {row.version or '(no version)'} to {where}: {row.status}",
        by=row.author,
        link=row.url,
        reason=row.description,
        status=row.status,
        path=paths.get(row.service, []) if paths is not None else [],
    )


def _flag_entry(
    graph: CatalogGraph, row: m.FlagChange, flag_paths: dict[str, list[str]] | None
) -> ChangeEntry:
    flag = graph.flags.get(row.flag)
    key = flag.key if flag else row.flag
    path = flag_paths.get(row.flag, []) if flag_paths is not None else []
    service = path[-1] if path else (sorted(flag.services)[0] if flag and flag.services else None)
    where = row.environment or "every environment"
    change = f"{row.from_state or '?'} -> {row.to_state or '?'}"
    links = [link["url"] for link in (flag.links if flag else []) if link.get("url")]
    return ChangeEntry(
        kind="flag",
        at=row.at,
        name=row.flag,
        key=key,
        service=service,
        environment=row.environment,
        tenant=_tenant(graph, row.environment),
        summary=f"flag {key} in {where}: {change}",
        by=row.by,
        before=row.from_state,
        after=row.to_state,
        link=links[0] if links else None,
        reason=row.reason,
        path=path,
    )


def _catalog_entry(row: m.CatalogChange, paths: dict[str, list[str]] | None) -> ChangeEntry:
    return ChangeEntry(
        kind="catalog",
        at=row.at,
        name=row.name,
        field=row.field,
        service=row.name,
        summary=f"{row.field} of {row.name}: {_edit_text(row)}",
        by=row.source,
        before=row.from_value,
        after=row.to_value,
        path=paths.get(row.name, []) if paths is not None else [],
    )


def _edit_text(row: m.CatalogChange) -> str:
    """`team-a -> team-b`; for a list (dependencies), what was added and removed."""
    if row.field != "dependencies":
        return f"{row.from_value or '(none)'} -> {row.to_value or '(none)'}"
    before = set((row.from_value or "").split(", ")) - {""}
    after = set((row.to_value or "").split(", ")) - {""}
    added, removed = sorted(after - before), sorted(before - after)
    parts = [f"+{name}" for name in added] + [f"-{name}" for name in removed]
    return ", ".join(parts) or "changed"
