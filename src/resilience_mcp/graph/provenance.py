"""Where synced facts came from and how fresh they are, for the answers that show them.

A fact synced from another system (PagerDuty, Backstage, flagd) carries the source that
wrote it and when that source last confirmed it; one older than the allowed age is
marked stale, so an agent knows to check the system itself. Facts written by hand never
go stale.

A sync that finds an entity unchanged does not rewrite it: it confirms what its source
holds in one row per kind (`SourceConfirmation`, see `catalog.confirmations`). When an
entity was last confirmed is therefore the later of its own `synced_at` and, while its
source still holds it, that source's last confirmation (`last_confirmed`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from resilience_mcp import models as m
from resilience_mcp.models.common import FactSource, is_synced_source
from resilience_mcp.models.connectors import SyncedFlagState
from resilience_mcp.models.flags import FlagSummary
from resilience_mcp.store import Store

__all__ = [
    "STALE_AFTER",
    "Confirmation",
    "Confirmations",
    "add_state_sources",
    "entity_source",
    "fact_source_at",
    "last_confirmed",
    "load_confirmations",
    "read_confirmations",
]

# How old a synced fact may be before it is marked stale, unless the operator says.
STALE_AFTER = timedelta(hours=24 * 7)

_KINDS = {table: kind for kind, table in m.KIND_TABLES.items()}


class Confirmation(NamedTuple):
    """What a source holds of one kind (its entities synced from `held_since` on), and
    when a sync last confirmed them."""

    held_since: datetime
    confirmed_at: datetime


# By (source, kind).
Confirmations = Mapping[tuple[str, str], Confirmation]


async def read_confirmations(session: AsyncSession) -> dict[tuple[str, str], Confirmation]:
    """Every source's confirmations, by (source, kind)."""
    table = m.SourceConfirmation
    rows = await session.execute(
        select(table.source, table.kind, table.held_since, table.confirmed_at)
    )
    return {(source, kind): Confirmation(since, at) for source, kind, since, at in rows.all()}


async def load_confirmations(store: Store) -> dict[tuple[str, str], Confirmation]:
    async with store.session() as session:
        return await read_confirmations(session)


def last_confirmed(entity: m.Entity, confirmations: Confirmations) -> datetime:
    """When `entity`'s source last confirmed it: its own `synced_at`, or the source's last
    confirmation of its kind when that is later and the source still holds it."""
    kind = _KINDS.get(type(entity))
    held = confirmations.get((entity.source, kind)) if kind else None
    if held is None or entity.synced_at < held.held_since:
        return entity.synced_at
    return max(entity.synced_at, held.confirmed_at)


def entity_source(
    entity: m.Entity, at: datetime, stale_after: timedelta, confirmations: Confirmations
) -> FactSource:
    """Where an entity's facts came from, its id there, and how fresh they are at `at`."""
    synced_at = last_confirmed(entity, confirmations)
    return fact_source_at(entity.source, synced_at, at, stale_after, entity.external_id)


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
