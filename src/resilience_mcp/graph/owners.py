"""Who owns what, inherited along the graph, and who is on call at a given time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from resilience_mcp.graph.catalog import CatalogGraph

__all__ = ["OnCallShift", "Ownership", "find_on_call", "find_owner"]


@dataclass(frozen=True)
class Ownership:
    """The owner of an entity and how it was found.

    `path` lists the entities walked, as `kind:name`, from the one asked about to the one
    that names the owner; a direct owner has a path of one.
    """

    owner: str | None
    owner_kind: str | None
    path: list[str] = field(default_factory=list)

    @property
    def inherited(self) -> bool:
        return len(self.path) > 1


@dataclass(frozen=True)
class OnCallShift:
    rotation: str
    team: str
    person: str
    start: datetime
    end: datetime
    is_override: bool = False


def _owner_kind(graph: CatalogGraph, owner: str) -> str:
    return "Team" if owner in graph.teams or owner not in graph.people else "Person"


def find_owner(graph: CatalogGraph, kind: str, name: str) -> Ownership:
    """The owner of `kind:name`: its own, else inherited (service, system, domain)."""
    path: list[str] = []
    owner = _walk(graph, kind, name, path, seen=set())
    if owner is None:
        return Ownership(None, None, path)
    return Ownership(owner, _owner_kind(graph, owner), path)


def _walk(graph: CatalogGraph, kind: str, name: str, path: list[str], seen: set[str]) -> str | None:
    ref = f"{kind}:{name}"
    if ref in seen:
        return None
    seen.add(ref)
    path.append(ref)
    if kind == "Team":
        return name if name in graph.teams else None
    if kind == "Person":
        teams = sorted(graph.person_teams.get(name, ()))
        return _first_of(graph, "Team", teams, path, seen)
    if kind == "OnCall":
        rotation = graph.rotations.get(name)
        return _first_of(graph, "Team", [rotation.team] if rotation else [], path, seen)

    entity = graph.entities(kind).get(name)
    if entity is None:
        path.pop()
        return None
    if owner := getattr(entity, "owner", None):
        return str(owner)
    if kind == "Service":
        return _first_of(graph, "System", [entity.system] if entity.system else [], path, seen)
    if kind == "System":
        return _first_of(graph, "Domain", [entity.domain] if entity.domain else [], path, seen)
    if kind == "FeatureFlag":
        parents = [("Feature", entity.feature)] if entity.feature else []
        parents += [("Service", s) for s in _by_tier(graph, entity.services)]
        return _first_pairs(graph, parents, path, seen)
    if kind == "Feature":
        services = _by_tier(graph, graph.feature_services.get(name, ()))
        return _first_of(graph, "Service", services, path, seen)
    return None


def _first_of(
    graph: CatalogGraph, kind: str, names: list[str], path: list[str], seen: set[str]
) -> str | None:
    return _first_pairs(graph, [(kind, n) for n in names], path, seen)


def _first_pairs(
    graph: CatalogGraph, pairs: list[tuple[str, str]], path: list[str], seen: set[str]
) -> str | None:
    for kind, name in pairs:
        mark = len(path)
        if (owner := _walk(graph, kind, name, path, seen)) is not None:
            return owner
        del path[mark:]
    return None


def _by_tier(graph: CatalogGraph, names: Iterable[str]) -> list[str]:
    """Services most critical first: their owner speaks for what they implement."""
    tiers = graph.tiers()
    return sorted(names, key=lambda name: (tiers.get(name, 9), name))


def find_on_call(graph: CatalogGraph, team: str, at: datetime) -> list[OnCallShift]:
    """Who is on call for `team` at `at`: one shift per rotation, overrides first."""
    shifts = []
    for rotation_name in sorted(graph.team_rotations.get(team, ())):
        rotation = graph.rotations[rotation_name]
        override = next(
            (
                o
                for o in sorted(graph.overrides.get(rotation_name, ()), key=lambda o: o.start)
                if o.start <= at < o.end
            ),
            None,
        )
        if override is not None:
            shifts.append(
                OnCallShift(
                    rotation_name, team, override.person, override.start, override.end, True
                )
            )
            continue
        if not rotation.members or at < rotation.start:
            continue
        length = timedelta(hours=rotation.shift_hours)
        index = int((at - rotation.start) / length)
        start = rotation.start + index * length
        person = rotation.members[index % len(rotation.members)]
        shifts.append(OnCallShift(rotation_name, team, person, start, start + length))
    return shifts
