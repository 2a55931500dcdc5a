"""Optimistic concurrency for versioned rows (incidents, remediation tasks).

An update names the version it read and changes the row only if it is still that version,
bumping it; a writer that lost the race changes nothing and is told to re-read. So two
agents updating one incident never overwrite each other silently. An update that named no
version asked for no such check: it holds the row first (`hold_row`), and should it still
lose a race (a name matched loosely is held only once found), `RaceLost` sends it round
again, planned on what the winner wrote.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from resilience_mcp import models as m
from resilience_mcp.errors import ConflictError
from resilience_mcp.store import LOCK_ONLY

__all__ = [
    "RaceLost",
    "Versioned",
    "check_version",
    "compare_and_set",
    "hold_row",
    "value_text",
]

Versioned = m.Incident | m.RemediationTask


class RaceLost(ConflictError):
    """Another writer changed the row between this update's read and its write."""


def check_version(row: Versioned, kind: str, expected: int | None, reread: str) -> None:
    """Refuse an update made against a version the caller no longer has."""
    if expected is not None and expected != row.version:
        raise ConflictError(
            f"{kind} {row.name} is at version {row.version}, not {expected}: someone changed "
            f"it since you read it. Re-read it with {reread}, check the change still makes "
            "sense, and retry with the new version."
        )


async def compare_and_set(
    session: AsyncSession,
    table: type[Versioned],
    row: Versioned,
    values: dict[str, Any],
    *,
    kind: str,
    reread: str,
) -> int:
    """Write `values` if the row is still at the version read; returns the new version."""
    read = row.version
    statement = (
        update(table)
        .where(col(table.name) == row.name, col(table.version) == read)
        .values(**values, version=read + 1)
        # The row object keeps what was read; the caller describes the change from it.
        .execution_options(synchronize_session=False)
    )
    result = cast(CursorResult[Any], await session.execute(statement))
    if result.rowcount != 1:
        raise RaceLost(
            f"{kind} {row.name} was changed by another caller while this update was being "
            f"made (it is no longer version {read}); nothing was written. Re-read it with "
            f"{reread} and retry."
        )
    return read + 1


async def hold_row(session: AsyncSession, table: type[Versioned], name: str) -> None:
    """Hold the row named exactly `name` (if there is one) until commit, before anything
    is read, so that updates naming no version queue behind each other instead of racing
    and planning again. A no-op update is the lock both engines honour; on SQLite it takes
    the write lock before the transaction has read anything, so it waits its turn rather
    than finding its snapshot stale."""
    await session.execute(
        update(table)
        .where(col(table.name) == name)
        .values(name=col(table.name))
        .execution_options(synchronize_session=False, **{LOCK_ONLY: True})
    )


def value_text(value: Any) -> str | None:
    """A column value as a change list shows it."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, list):
        return "; ".join(str(item) for item in value)
    return str(value)
