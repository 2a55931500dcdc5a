"""A store on each backend holding a small catalog, and its graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from resilience_mcp.graph import CatalogGraph, build_graph
from resilience_mcp.store import Store
from tests.writes.catalog import load_small_catalog


@pytest.fixture
async def catalog(store: Store, tmp_path: Path) -> Store:
    """The `store` fixture (SQLite and PostgreSQL) with the small catalog loaded."""
    return await load_small_catalog(store, tmp_path)


@pytest.fixture
async def graph(catalog: Store) -> CatalogGraph:
    return await build_graph(catalog)
