"""Checking what a model typed before a write uses it: names, keys and times."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from resilience_mcp import models as m
from resilience_mcp.errors import InvalidInputError, NotFoundError
from resilience_mcp.graph.cards import resolve_entity
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.graph.names import NameIndex

__all__ = [
    "CLOCK_SKEW",
    "Corrections",
    "check_name",
    "find_row",
    "parse_time",
    "resolve_name",
    "resolve_names",
]

E = TypeVar("E", bound=m.Entity)

# How far ahead of the server's clock a time given by a caller may be.
CLOCK_SKEW = timedelta(minutes=5)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")

# Near misses taken for a name, as "asked -> used", for the answer to show.
Corrections = list[str]


def resolve_name(graph: CatalogGraph, text: str, kind: str, corrected: Corrections) -> str:
    """The catalog name of one `kind` that `text` names; raises NotFoundError with suggestions.

    Reads forgive typos; a write does not act on a guess. Case and separators are still
    forgiven, and so is a name that only one catalog name extends (`hannah` for
    hannah-becker, a tenant's name for its cell), but a typo is refused with the name it
    was probably meant to be."""
    resolved = resolve_entity(graph, text, (kind,))
    if resolved.kind != kind:
        raise InvalidInputError(f"{text!r} names a {resolved.kind}; give a {kind} here.")
    if resolved.corrected_from is not None:
        if resolved.guessed:
            raise _near_miss(kind, text, resolved.name)
        corrected.append(f"{resolved.corrected_from} -> {resolved.name}")
    return resolved.name


def _near_miss(kind: str, text: str, meant: str) -> InvalidInputError:
    return InvalidInputError(
        f"No {kind} is named {text!r}; the closest is {meant!r}. A write acts only on a "
        f"name as the catalog has it: call again with {meant!r} if that is the one meant."
    )


def resolve_names(
    graph: CatalogGraph, texts: Sequence[str], kind: str, corrected: Corrections
) -> list[str]:
    """Each of `texts` resolved as in `resolve_name`, duplicates dropped, order kept."""
    return list(dict.fromkeys(resolve_name(graph, text, kind, corrected) for text in texts))


# How an agent finds the keys of the kinds that live in history rather than the graph.
_LISTED_BY = {
    m.Incident: ("incident", "List incidents with list_incidents."),
    m.Postmortem: ("postmortem", "Postmortems are listed by get_incident on their incident."),
    m.RemediationTask: ("remediation task", "List tasks with list_remediation_tasks."),
}


async def find_row(session: AsyncSession, table: type[E], text: str, corrected: Corrections) -> E:
    """A row of a history table (incidents, postmortems, tasks) by forgiving key."""
    exact = await session.execute(select(table).where(col(table.name) == text))
    if (row := exact.scalars().first()) is not None:
        return row

    label, hint = _LISTED_BY.get(table, (table.__name__.lower(), None))
    result = await session.execute(select(table.name))
    index = NameIndex()
    index.add(label, result.scalars().all())
    try:
        resolved = index.resolve(text, [label])
    except NotFoundError as exc:
        raise NotFoundError(label, text, exc.suggestions, hint) from None
    if resolved.guessed:
        raise _near_miss(label, text, resolved.name)
    if resolved.corrected_from is not None:
        corrected.append(f"{resolved.corrected_from} -> {resolved.name}")
    found = await session.execute(select(table).where(col(table.name) == resolved.name))
    row = found.scalars().first()
    if row is None:
        raise NotFoundError(label, text, (), hint)
    return row


def check_name(text: str, what: str) -> str:
    """A new entity name as the catalog format allows it: letters, digits, '.', '_', '-'."""
    if not _NAME.match(text):
        raise InvalidInputError(
            f"{text!r} cannot be used as a {what}: use up to 200 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit."
        )
    return text


def parse_time(text: str | None, field: str) -> datetime | None:
    """An ISO 8601 time (UTC when it has no offset), or None when none was given."""
    if text is None or not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(
            f"{field} {text!r} is not a time; write ISO 8601 such as 2026-12-01T09:35:00Z."
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
