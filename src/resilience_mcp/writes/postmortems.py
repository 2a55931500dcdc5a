"""Recording an incident's postmortem: created on first call, filled in by later ones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from resilience_mcp import models as m
from resilience_mcp.errors import InvalidInputError
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.models.writes import FieldChange, WriteAnswer
from resilience_mcp.store import Store
from resilience_mcp.writes.audit import WriteRequest, perform_write
from resilience_mcp.writes.lookup import Corrections, find_row, resolve_name
from resilience_mcp.writes.versioning import value_text

__all__ = ["PostmortemDraft", "record_postmortem"]

# The text fields a caller may set, in the order a postmortem reads.
_TEXT_FIELDS = ("title", "summary", "trigger", "root_cause", "detection", "resolution")
_LIST_FIELDS = ("contributing_factors", "lessons")


@dataclass(frozen=True)
class PostmortemDraft:
    """The parts of a postmortem to record; None leaves a part as it is."""

    incident: str
    title: str | None = None
    summary: str | None = None
    trigger: str | None = None
    root_cause: str | None = None
    detection: str | None = None
    resolution: str | None = None
    contributing_factors: Sequence[str] | None = None
    lessons: Sequence[str] | None = None
    author: str | None = None
    publish: bool = False

    def asks_nothing(self) -> bool:
        fields = [getattr(self, name) for name in (*_TEXT_FIELDS, *_LIST_FIELDS, "author")]
        return not self.publish and all(value is None for value in fields)


async def record_postmortem(
    store: Store, graph: CatalogGraph, request: WriteRequest, draft: PostmortemDraft
) -> WriteAnswer:
    """Create the incident's postmortem, or set the given parts of the one it has."""
    return await perform_write(
        store, request, lambda session, apply: _record(session, graph, request, draft, apply)
    )


async def _record(
    session: AsyncSession,
    graph: CatalogGraph,
    request: WriteRequest,
    draft: PostmortemDraft,
    apply: bool,
) -> WriteAnswer:
    if draft.asks_nothing():
        raise InvalidInputError(
            "Nothing to record: give at least one of summary, trigger, root_cause, "
            "contributing_factors, detection, resolution, lessons, title, author or publish."
        )
    corrected: Corrections = []
    incident = await find_row(session, m.Incident, draft.incident, corrected)
    existing = await _existing(session, incident.name)
    values = _asked_values(draft, graph, corrected)
    if draft.publish and (existing is None or existing.published_at is None):
        values["published_at"] = request.at

    if existing is None:
        return _create(session, request, incident, values, corrected, apply)
    moved = {k: v for k, v in values.items() if v != getattr(existing, k)}
    changes = [
        FieldChange(field=k, before=value_text(getattr(existing, k)), after=value_text(v))
        for k, v in moved.items()
    ]
    if apply and moved:
        await session.execute(
            update(m.Postmortem)
            .where(col(m.Postmortem.name) == existing.name)
            .values(**moved)
            .execution_options(synchronize_session=False)
        )
    verb = "Would update" if request.dry_run else "Updated"
    headline = f"{verb} postmortem {existing.name} of incident {incident.name}"
    if not moved:
        headline = f"Postmortem {existing.name} is already as asked; nothing to change"
    return request.answer(
        "Postmortem", existing.name, f"{headline}.", changes=changes, corrected=corrected
    )


def _create(
    session: AsyncSession,
    request: WriteRequest,
    incident: m.Incident,
    values: dict[str, Any],
    corrected: Corrections,
    apply: bool,
) -> WriteAnswer:
    name = f"pm-{incident.name.lower()}"
    values.setdefault("title", f"Postmortem: {incident.title or incident.name}")
    postmortem = m.Postmortem(
        name=name, incident=incident.name, source="mcp", synced_at=request.at, **values
    )
    if apply:
        session.add(postmortem)
    changes = [FieldChange(field="incident", after=incident.name)]
    changes += [FieldChange(field=k, after=value_text(v)) for k, v in values.items()]
    verb = "Would record" if request.dry_run else "Recorded"
    return request.answer(
        "Postmortem",
        name,
        f"{verb} postmortem {name} of incident {incident.name}.",
        created=True,
        changes=changes,
        corrected=corrected,
    )


async def _existing(session: AsyncSession, incident: str) -> m.Postmortem | None:
    """The incident's postmortem, if it has one yet."""
    result = await session.execute(
        select(m.Postmortem)
        .where(col(m.Postmortem.incident) == incident)
        .order_by(col(m.Postmortem.name))
    )
    return result.scalars().first()


def _asked_values(
    draft: PostmortemDraft, graph: CatalogGraph, corrected: Corrections
) -> dict[str, Any]:
    values: dict[str, Any] = {
        name: getattr(draft, name) for name in _TEXT_FIELDS if getattr(draft, name) is not None
    }
    for name in _LIST_FIELDS:
        if (items := getattr(draft, name)) is not None:
            values[name] = [item for item in items if item.strip()]
    if draft.author is not None:
        values["author"] = resolve_name(graph, draft.author, "Person", corrected)
    return values
