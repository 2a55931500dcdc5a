"""Where synced facts came from and how fresh they are, for the answers that show them.

A fact synced from another system (PagerDuty, Backstage, flagd) carries the source that
wrote it and when that source last confirmed it; one older than the allowed age is
marked stale, so an agent knows to check the system itself. Facts written by hand never
go stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlmodel import col, select

from resilience_mcp.models.common import FactSource, is_synced_source
from resilience_mcp.models.connectors import SyncedFlagState
from resilience_mcp.models.flags import FlagSummary
from resilience_mcp.store import Store

__all__ = ["STALE_AFTER", "add_state_sources", "fact_source_at"]

# How old a synced fact may be before it is marked stale, unless the operator says.
STALE_AFTER = timedelta(hours=24 * 7)


def fact_source_at(
    source: str,
    synced_at: datetime,
    at: datetime,
    stale_after: timedelta,
    external_id: str | None = None,
) -> FactSource:
    """A fact's source, its id there, and its age at `at`; stale when it is synced and
    older than allowed."""
    age = max((at - synced_at).total_seconds(), 0.0)
    stale = is_synced_source(source) and age > stale_after.total_seconds()
    return FactSource(
        source=source, synced_at=synced_at, age_seconds=age, stale=stale, external_id=external_id
    )


async def add_state_sources(
    store: Store, flags: Sequence[FlagSummary], at: datetime, stale_after: timedelta
) -> None:
    """Mark each shown flag state a flag system keeps with where and when it was synced.

    A state read from the environment above (a tenant cell's) takes that one's source."""
    names = sorted({flag.name for flag in flags})
    if not names:
        return
    async with store.session() as session:
        rows = await session.execute(
            select(SyncedFlagState).where(col(SyncedFlagState.flag).in_(names))
        )
        synced = {(row.flag, row.environment): row for row in rows.scalars().all()}
    for flag in flags:
        for state in flag.states:
            row = synced.get((flag.name, state.inherited_from or state.environment))
            if row is not None:
                state.source = fact_source_at(row.source, row.synced_at, at, stale_after)
