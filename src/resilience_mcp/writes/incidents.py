"""Declaring an incident and keeping its record current.

Rows these writes add to an incident (links, timeline entries) carry the owner_ref
`Incident:<key>` a catalog load gives them, so an export and reload keep them as one
record; new incidents have source `mcp`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import select

from resilience_mcp import models as m
from resilience_mcp.errors import ConflictError, InvalidInputError
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.graph.names import normalise_name
from resilience_mcp.models.writes import FieldChange, WriteAnswer
from resilience_mcp.store import Store
from resilience_mcp.writes.audit import WriteRequest, perform_write
from resilience_mcp.writes.lookup import (
    CLOCK_SKEW,
    Corrections,
    check_name,
    find_row,
    parse_time,
    resolve_name,
    resolve_names,
)
from resilience_mcp.writes.versioning import (
    check_version,
    compare_and_set,
    hold_row,
    value_text,
)

__all__ = [
    "INCIDENT_STATUSES",
    "SEVERITIES",
    "TIMELINE_KINDS",
    "IncidentChange",
    "IncidentDraft",
    "declare_incident",
    "incident_ref",
    "update_incident",
]

INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "mitigated", "resolved")
SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4", "SEV5")
TIMELINE_KINDS = ("note", "action", "change", "detection", "mitigation", "resolution")

# Draft fields naming what an incident touched: the link kind each becomes, the kind it names.
_LINKS = (
    ("services", "service", "Service"),
    ("environments", "environment", "Environment"),
    ("features", "feature", "Feature"),
    ("customers", "customer", "Customer"),
    ("flags", "flag", "FeatureFlag"),
)
_KEY = re.compile(r"^(inc-?)(\d+)$", re.IGNORECASE)
REREAD = "get_incident"


@dataclass(frozen=True)
class IncidentDraft:
    """A new incident as a caller describes it; names are checked before use."""

    title: str
    severity: str = "SEV3"
    summary: str | None = None
    key: str | None = None
    commander: str | None = None
    services: Sequence[str] = ()
    environments: Sequence[str] = ()
    features: Sequence[str] = ()
    customers: Sequence[str] = ()
    flags: Sequence[str] = ()
    # ISO 8601 times, as the caller wrote them.
    started_at: str | None = None
    detected_at: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class IncidentChange:
    """What to change on an incident; None leaves a value as it is."""

    key: str
    expected_version: int | None = None
    status: str | None = None
    severity: str | None = None
    title: str | None = None
    summary: str | None = None
    commander: str | None = None
    # ISO 8601 times, as the caller wrote them.
    mitigated_at: str | None = None
    resolved_at: str | None = None
    note: str | None = None
    note_kind: str | None = None

    def asks_nothing(self) -> bool:
        asked = (self.status, self.severity, self.title, self.summary, self.commander)
        times = (self.mitigated_at, self.resolved_at, self.note)
        return all(value is None for value in asked + times)


def incident_ref(key: str) -> str:
    """The owner_ref of rows that belong to incident `key`, as a catalog load writes it."""
    return f"Incident:{key}"


async def declare_incident(
    store: Store, graph: CatalogGraph, request: WriteRequest, draft: IncidentDraft
) -> WriteAnswer:
    """Open a new incident with its links and a first timeline entry."""
    return await perform_write(
        store, request, lambda session, apply: _declare(session, graph, request, draft, apply)
    )


async def update_incident(
    store: Store, graph: CatalogGraph, request: WriteRequest, change: IncidentChange
) -> WriteAnswer:
    """Change an incident's status, severity, times or text, noting it on the timeline."""
    return await perform_write(
        store, request, lambda session, apply: _update(session, graph, request, change, apply)
    )


async def _declare(
    session: AsyncSession,
    graph: CatalogGraph,
    request: WriteRequest,
    draft: IncidentDraft,
    apply: bool,
) -> WriteAnswer:
    corrected: Corrections = []
    links = [
        (link_kind, target)
        for field_name, link_kind, kind in _LINKS
        for target in resolve_names(graph, getattr(draft, field_name), kind, corrected)
    ]
    commander = (
        resolve_name(graph, draft.commander, "Person", corrected) if draft.commander else None
    )
    key = await _new_key(session, draft.key)
    started = parse_time(draft.started_at, "started_at") or request.at
    detected = parse_time(draft.detected_at, "detected_at") or max(started, request.at)
    _check_times(request.at, started_at=started, detected_at=detected)

    incident = m.Incident(
        name=key,
        title=draft.title,
        severity=draft.severity,
        status="investigating",
        summary=draft.summary,
        commander=commander,
        started_at=started,
        detected_at=detected,
        source="mcp",
        synced_at=request.at,
        version=1,
    )
    rows: list[m.Owned] = [
        m.IncidentLink(owner_ref=incident_ref(key), incident=key, kind=kind, target=target)
        for kind, target in links
    ]
    opening = draft.note or f"Declared {draft.severity}: {draft.title}"
    entry = _entry(key, request, "action", opening)
    rows.append(entry)
    if apply:
        session.add(incident)
        session.add_all(rows)

    verb = "Would declare" if request.dry_run else "Declared"
    return request.answer(
        "Incident",
        key,
        f"{verb} incident {key} ({draft.severity}): {draft.title}",
        created=True,
        version=1,
        changes=_declared(incident, links, entry),
        corrected=corrected,
    )


def _declared(
    incident: m.Incident, links: list[tuple[str, str]], entry: m.TimelineEntry
) -> list[FieldChange]:
    """Every value a declaration writes, as changes from nothing."""
    columns = ("title", "severity", "status", "summary", "commander", "started_at", "detected_at")
    changes = [
        FieldChange(field=name, after=value_text(getattr(incident, name)))
        for name in columns
        if getattr(incident, name) is not None
    ]
    changes += [FieldChange(field=f"link:{kind}", after=target) for kind, target in links]
    changes.append(FieldChange(field="timeline", after=entry.text))
    return changes


async def _new_key(session: AsyncSession, asked: str | None) -> str:
    """The key asked for if it is free, else the next in the catalog's INC-nnnn sequence."""
    result = await session.execute(select(m.Incident.name))
    names = list(result.scalars().all())
    if asked is not None:
        check_name(asked, "incident key")
        taken = {normalise_name(name): name for name in names}
        if (existing := taken.get(normalise_name(asked))) is not None:
            raise ConflictError(
                f"Incident {existing} already exists. Update it with update_incident, or "
                "leave key out to get the next free key."
            )
        return asked

    numbered = [(int(match[2]), match[1]) for name in names if (match := _KEY.match(name))]
    if not numbered:
        return "INC-0001"
    # Keep the spelling the catalog already uses (`inc-2049` or `INC-2049`).
    number, prefix = max(numbered)
    return f"{prefix}{number + 1:04d}"


async def _update(
    session: AsyncSession,
    graph: CatalogGraph,
    request: WriteRequest,
    change: IncidentChange,
    apply: bool,
) -> WriteAnswer:
    if change.asks_nothing():
        raise InvalidInputError(
            "Nothing to update: give at least one of status, severity, title, summary, "
            "commander, mitigated_at, resolved_at or note."
        )
    corrected: Corrections = []
    if apply and change.expected_version is None:
        await hold_row(session, m.Incident, change.key)
    incident = await find_row(session, m.Incident, change.key, corrected)
    check_version(incident, "Incident", change.expected_version, REREAD)
    values = _new_values(incident, change, graph, request, corrected)
    _check_times(
        request.at,
        started_at=incident.started_at,
        mitigated_at=values.get("mitigated_at", incident.mitigated_at),
        resolved_at=values.get("resolved_at", incident.resolved_at),
    )

    changes = [
        FieldChange(field=name, before=value_text(getattr(incident, name)), after=value_text(v))
        for name, v in values.items()
    ]
    entry = _update_entry(incident, change, values, request)
    if entry is not None:
        changes.append(FieldChange(field="timeline", after=entry.text))
    version = incident.version
    if apply and changes:
        version = await compare_and_set(
            session, m.Incident, incident, values, kind="Incident", reread=REREAD
        )
        if entry is not None:
            session.add(entry)

    status = values.get("status", incident.status)
    severity = values.get("severity", incident.severity)
    if not changes:
        headline = f"Incident {incident.name} is already as asked; nothing to change"
    else:
        verb = "Would update" if request.dry_run else "Updated"
        headline = f"{verb} incident {incident.name} ({severity}, {status})"
    return request.answer(
        "Incident",
        incident.name,
        f"{headline}; version {version}.",
        version=version,
        changes=changes,
        corrected=corrected,
    )


def _new_values(
    incident: m.Incident,
    change: IncidentChange,
    graph: CatalogGraph,
    request: WriteRequest,
    corrected: Corrections,
) -> dict[str, Any]:
    """The columns whose value the change moves, with their new values."""
    commander = (
        resolve_name(graph, change.commander, "Person", corrected) if change.commander else None
    )
    asked: dict[str, Any] = {
        "status": change.status,
        "severity": change.severity,
        "title": change.title,
        "summary": change.summary,
        "commander": commander,
        "mitigated_at": parse_time(change.mitigated_at, "mitigated_at"),
        "resolved_at": parse_time(change.resolved_at, "resolved_at"),
    }
    values = {
        name: value
        for name, value in asked.items()
        if value is not None and value != getattr(incident, name)
    }

    # Reaching a state stamps its time unless one was given or is already there.
    status = values.get("status", incident.status)
    if status == "mitigated" and change.mitigated_at is None and incident.mitigated_at is None:
        values["mitigated_at"] = request.at
    if status == "resolved" and change.resolved_at is None and incident.resolved_at is None:
        values["resolved_at"] = request.at
    if status != "resolved":
        if change.resolved_at is not None:
            raise InvalidInputError(
                f"resolved_at needs status resolved, but incident {incident.name} would be "
                f"{status}. Pass status=resolved with it."
            )
        if incident.resolved_at is not None and "status" in values:
            # Reopened: it is no longer resolved.
            values["resolved_at"] = None
    return values


def _update_entry(
    incident: m.Incident, change: IncidentChange, values: dict[str, Any], request: WriteRequest
) -> m.TimelineEntry | None:
    """The timeline entry an update leaves: what moved, then the caller's note."""
    moved = [
        f"{name.capitalize()} {value_text(getattr(incident, name)) or 'none'} -> "
        f"{value_text(values[name])}."
        for name in ("status", "severity", "commander")
        if name in values
    ]
    if not moved and change.note is None:
        return None
    text = " ".join([*moved, change.note or ""]).strip()
    kind = change.note_kind or {"resolved": "resolution", "mitigated": "mitigation"}.get(
        values.get("status", ""), "action" if moved else "note"
    )
    return _entry(incident.name, request, kind, text)


def _entry(key: str, request: WriteRequest, kind: str, text: str) -> m.TimelineEntry:
    return m.TimelineEntry(
        owner_ref=incident_ref(key),
        incident=key,
        at=request.at,
        kind=kind,
        text=text,
        author=request.actor,
    )


def _check_times(now: datetime, **times: datetime | None) -> None:
    """Times are not in the future and do not go backwards, in the order given."""
    known = [(name, value) for name, value in times.items() if value is not None]
    for name, value in known:
        if value > now + CLOCK_SKEW:
            raise InvalidInputError(
                f"{name} {value_text(value)} is in the future (it is now {value_text(now)})."
            )
    for (first, earlier), (second, later) in pairwise(known):
        if later < earlier:
            raise InvalidInputError(
                f"{second} {value_text(later)} is before {first} {value_text(earlier)}; "
                "incident times must not go backwards."
            )
