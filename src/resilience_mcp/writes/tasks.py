"""Remediation tasks: creating the follow-up work an incident taught, and tracking it."""

from __future__ import annotations

import re
from dataclasses import dataclass
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
    Corrections,
    check_name,
    find_row,
    parse_time,
    resolve_name,
)
from resilience_mcp.writes.versioning import (
    check_version,
    compare_and_set,
    hold_row,
    value_text,
)

__all__ = [
    "PRIORITIES",
    "TASK_STATUSES",
    "TaskChange",
    "TaskDraft",
    "create_remediation_task",
    "update_remediation_task",
]

PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
TASK_STATUSES = ("open", "in_progress", "done", "wontfix")
# A task in one of these is finished; it gets a completion time.
_CLOSED = ("done", "wontfix")
REREAD = "get_incident (its tasks) or list_remediation_tasks"


@dataclass(frozen=True)
class TaskDraft:
    title: str
    owner: str
    priority: str = "P3"
    incident: str | None = None
    postmortem: str | None = None
    due_date: str | None = None
    description: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class TaskChange:
    """What to change on a task; None leaves a value as it is."""

    name: str
    expected_version: int | None = None
    status: str | None = None
    priority: str | None = None
    owner: str | None = None
    due_date: str | None = None
    title: str | None = None
    description: str | None = None

    def asks_nothing(self) -> bool:
        asked = (self.status, self.priority, self.owner, self.due_date, self.title)
        return all(value is None for value in (*asked, self.description))


async def create_remediation_task(
    store: Store, graph: CatalogGraph, request: WriteRequest, draft: TaskDraft
) -> WriteAnswer:
    """Open a remediation task owned by a team, linked to its incident and postmortem."""
    return await perform_write(
        store, request, lambda session, apply: _create(session, graph, request, draft, apply)
    )


async def update_remediation_task(
    store: Store, graph: CatalogGraph, request: WriteRequest, change: TaskChange
) -> WriteAnswer:
    """Move a task along (status, priority, owner, due date, text)."""
    return await perform_write(
        store, request, lambda session, apply: _update(session, graph, request, change, apply)
    )


async def _create(
    session: AsyncSession,
    graph: CatalogGraph,
    request: WriteRequest,
    draft: TaskDraft,
    apply: bool,
) -> WriteAnswer:
    corrected: Corrections = []
    owner = resolve_name(graph, draft.owner, "Team", corrected)
    incident, postmortem = await _origin(session, draft, corrected)
    name = await _new_name(session, draft, incident)
    task = m.RemediationTask(
        name=name,
        title=draft.title,
        description=draft.description,
        postmortem=postmortem,
        incident=incident,
        owner=owner,
        priority=draft.priority,
        status="open",
        due_date=parse_time(draft.due_date, "due_date"),
        source="mcp",
        synced_at=request.at,
        version=1,
    )
    if apply:
        session.add(task)

    shown = ("title", "owner", "priority", "status", "incident", "postmortem", "due_date")
    changes = [
        FieldChange(field=k, after=value_text(getattr(task, k)))
        for k in (*shown, "description")
        if getattr(task, k) is not None
    ]
    verb = "Would create" if request.dry_run else "Created"
    return request.answer(
        "RemediationTask",
        name,
        f"{verb} remediation task {name} ({draft.priority}, owner {owner}): {draft.title}.",
        created=True,
        version=1,
        changes=changes,
        corrected=corrected,
    )


async def _origin(
    session: AsyncSession, draft: TaskDraft, corrected: Corrections
) -> tuple[str | None, str | None]:
    """The incident and postmortem a task comes from; a postmortem implies its incident."""
    incident = postmortem = None
    if draft.incident is not None:
        incident = (await find_row(session, m.Incident, draft.incident, corrected)).name
    if draft.postmortem is not None:
        row = await find_row(session, m.Postmortem, draft.postmortem, corrected)
        postmortem = row.name
        if incident is None:
            incident = row.incident
        elif row.incident not in (None, incident):
            raise InvalidInputError(
                f"Postmortem {row.name} is about incident {row.incident}, not {incident}; "
                "give the matching pair, or only the postmortem."
            )
    return incident, postmortem


async def _new_name(session: AsyncSession, draft: TaskDraft, incident: str | None) -> str:
    """The name asked for if free, else `rt-<incident number>-<words of the title>`."""
    result = await session.execute(select(m.RemediationTask.name))
    taken = {normalise_name(name) for name in result.scalars().all()}
    if draft.name is not None:
        check_name(draft.name, "task name")
        if normalise_name(draft.name) in taken:
            raise ConflictError(
                f"A remediation task named {draft.name!r} already exists. Update it with "
                "update_remediation_task, or leave name out to get a new one."
            )
        return draft.name

    words = re.findall(r"[a-z0-9]+", draft.title.lower())[:5]
    number = re.sub(r"\D", "", incident or "")
    base = "-".join(["rt", *([number] if number else []), *words])[:80].rstrip("-")
    name, suffix = base, 2
    while normalise_name(name) in taken:
        name, suffix = f"{base}-{suffix}", suffix + 1
    return name


async def _update(
    session: AsyncSession,
    graph: CatalogGraph,
    request: WriteRequest,
    change: TaskChange,
    apply: bool,
) -> WriteAnswer:
    if change.asks_nothing():
        raise InvalidInputError(
            "Nothing to update: give at least one of status, priority, owner, due_date, "
            "title or description."
        )
    corrected: Corrections = []
    if apply and change.expected_version is None:
        await hold_row(session, m.RemediationTask, change.name)
    task = await find_row(session, m.RemediationTask, change.name, corrected)
    check_version(task, "Remediation task", change.expected_version, REREAD)
    values = _new_values(task, change, graph, request, corrected)

    changes = [
        FieldChange(field=k, before=value_text(getattr(task, k)), after=value_text(v))
        for k, v in values.items()
    ]
    version = task.version
    if apply and values:
        version = await compare_and_set(
            session, m.RemediationTask, task, values, kind="Remediation task", reread=REREAD
        )

    status = values.get("status", task.status)
    verb = "Would update" if request.dry_run else "Updated"
    headline = f"{verb} remediation task {task.name} ({status})"
    if not values:
        headline = f"Remediation task {task.name} is already as asked; nothing to change"
    return request.answer(
        "RemediationTask",
        task.name,
        f"{headline}; version {version}.",
        version=version,
        changes=changes,
        corrected=corrected,
    )


def _new_values(
    task: m.RemediationTask,
    change: TaskChange,
    graph: CatalogGraph,
    request: WriteRequest,
    corrected: Corrections,
) -> dict[str, Any]:
    owner = resolve_name(graph, change.owner, "Team", corrected) if change.owner else None
    asked: dict[str, Any] = {
        "status": change.status,
        "priority": change.priority,
        "owner": owner,
        "due_date": parse_time(change.due_date, "due_date"),
        "title": change.title,
        "description": change.description,
    }
    values = {
        name: value
        for name, value in asked.items()
        if value is not None and value != getattr(task, name)
    }
    # Closing stamps the completion time; reopening clears it.
    if "status" in values:
        closed = values["status"] in _CLOSED
        if closed and task.completed_at is None:
            values["completed_at"] = request.at
        elif not closed and task.completed_at is not None:
            values["completed_at"] = None
    return values
