"""Fixtures of the reliability tests."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
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


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    """The command line points logging at the test's captured stderr; undo that afterwards,
    so that later tests do not write to a stream that is gone."""
    root, ours = logging.getLogger(), logging.getLogger("resilience_mcp")
    handlers, levels = root.handlers[:], (root.level, ours.level)
    yield
    root.handlers[:] = handlers
    root.setLevel(levels[0])
    ours.setLevel(levels[1])
