"""Recording what a successful sync confirmed, without rewriting what it left unchanged.

A sync confirms every entity it sees, changed or not. Writing each unchanged entity's
`synced_at` would move the graph version on every run, and so rebuild the graph of every
replica every few minutes. Instead each source keeps a `SourceConfirmation` row per kind:
the entities of that kind it holds are those with its label as `source` and a `synced_at`
from `held_since` on, and `confirmed_at` is when a sync last saw exactly those.

- A sync that sees that same set moves only `confirmed_at`: one row, and the confirm
  version (`store.bump_confirm_version`), which has replicas re-read these rows but
  rebuild nothing.
- A sync that sees another set (an entity new to the source, one it no longer sends, one
  another source wrote last) touches the entities it saw and moves `held_since` to its own
  time. Those it no longer sends (kept by a sync without prune, or kept by a prune because
  something still refers to them) then fall outside, keep their own `synced_at`, and go
  stale in time.

A fact's freshness is the later of its own `synced_at` and, while its source holds it,
the source's `confirmed_at` (`graph.provenance.last_confirmed`). The rows are written in
the load's own transaction: a sync that fails confirms nothing.

Sources that share a label share these rows, as they share what a prune removes: two
sources of one label that send different sets touch their entities on every run.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select

from resilience_mcp import models as m
from resilience_mcp.store import bump_confirm_version, chunks

__all__ = ["Kept", "confirm_source", "touch"]


@dataclass(frozen=True)
class Kept:
    """An entity a load saw but did not rewrite, with the provenance it has in the store."""

    name: str
    source: str | None
    synced_at: datetime


async def confirm_source(
    session: Any,
    source: str,
    seen: Mapping[str, Collection[str]],
    kept: Mapping[str, Sequence[Kept]],
    now: datetime,
) -> bool:
    """Record that `source` holds exactly `seen` (names by kind) at `now`; `kept` are the
    ones of them the load left as they were. Returns whether any entity was touched."""
    table = m.SourceConfirmation
    result = await session.execute(
        select(table.kind, table.held_since).where(col(table.source) == source)
    )
    held_since: dict[str, datetime] = {row.kind: row.held_since for row in result.all()}
    touched = confirmed = False
    for kind in sorted(set(seen) | set(held_since)):
        names = seen.get(kind, ())
        since = held_since.get(kind)
        where = (col(table.source) == source, col(table.kind) == kind)
        if since is not None and await _holds(session, kind, source, since, names, kept, now):
            await session.execute(update(table).where(*where).values(confirmed_at=now))
            confirmed = True
            continue
        if since is None and not names:
            continue
        unwritten = [k.name for k in kept.get(kind, ())]
        await touch(session, m.KIND_TABLES[kind], unwritten, source, now)
        touched = touched or bool(unwritten)
        await _upsert(session, source, kind, {"held_since": now, "confirmed_at": now})
        confirmed = True
    if confirmed:
        await bump_confirm_version(session)
    return touched


async def _upsert(session: Any, source: str, kind: str, values: dict[str, datetime]) -> None:
    """Write the row of `source` and `kind`; replicas syncing one source at once may both
    be first to write it, so an existing row is updated rather than refused."""
    table = m.SourceConfirmation
    dialect = session.get_bind().dialect.name
    upsert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = upsert(table).values(source=source, kind=kind, **values)
    await session.execute(
        statement.on_conflict_do_update(index_elements=["source", "kind"], set_=values)
    )


async def _holds(
    session: Any,
    kind: str,
    source: str,
    since: datetime,
    names: Collection[str],
    kept: Mapping[str, Sequence[Kept]],
    now: datetime,
) -> bool:
    """Whether what `source` holds of `kind` is exactly `names`, now that the load wrote
    the others among them at `now`."""
    if now < since:
        return False
    if any(k.source != source or k.synced_at < since for k in kept.get(kind, ())):
        return False
    entity = m.KIND_TABLES[kind]
    counted = await session.execute(
        select(func.count())
        .select_from(entity)
        .where(col(entity.source) == source, col(entity.synced_at) >= since)
    )
    return int(counted.scalar_one()) == len(names)


async def touch(
    session: Any, table: type[m.Entity], names: Sequence[str], source: str, now: datetime
) -> None:
    """Mark `names` confirmed by `source` at `now`, as they are."""
    for chunk in chunks(names):
        await session.execute(
            update(table).where(col(table.name).in_(chunk)).values(synced_at=now, source=source)
        )
