"""What a store holds, compared whole: every row of every table, and the catalog version."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlmodel import SQLModel

from resilience_mcp.store import Store

__all__ = ["row_counts", "snapshot"]


async def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order, keyed by table name."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    async with store.session() as session:
        for table in SQLModel.metadata.sorted_tables:
            found = (await session.execute(select(table))).all()
            rows[table.name] = sorted((tuple(row) for row in found), key=repr)
    return rows


async def row_counts(store: Store) -> dict[str, int]:
    """How many rows each table holds."""
    return {name: len(rows) for name, rows in (await snapshot(store)).items()}
