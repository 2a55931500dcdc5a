"""Fixtures of the reliability tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from resilience_mcp.store import Store


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    """An empty store on SQLite, for tests whose subject does not depend on the backend."""
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}")
    try:
        yield opened
    finally:
        await opened.close()
