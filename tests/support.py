"""Helpers tests share: reference data paths, backends, a fixed clock, server configs."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from resilience_mcp.catalog import DEMO_ANCHOR
from resilience_mcp.catalog.files import Document
from resilience_mcp.catalog.loader import load_documents
from resilience_mcp.server import ServerConfig
from resilience_mcp.store import Store

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "external"
PG_URL = os.environ.get(
    "RESILIENCE_MCP_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data/external; the test is skipped when it is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference data {path} is not available")
    return path


def _postgres_available() -> bool:
    if PG_URL == "off":
        return False

    async def probe() -> bool:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(PG_URL)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        finally:
            await engine.dispose()
        return True

    ok = asyncio.run(probe())
    if not ok and os.environ.get("RESILIENCE_MCP_TEST_PG_REQUIRED") == "1":
        raise RuntimeError(
            f"PostgreSQL is required for this run (RESILIENCE_MCP_TEST_PG_REQUIRED=1) but "
            f"{PG_URL} is not reachable; start it or unset the variable."
        )
    return ok


PG_AVAILABLE = _postgres_available()
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgres",
        id="postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not PG_AVAILABLE, reason="PostgreSQL is not reachable"),
        ],
    ),
]


@asynccontextmanager
async def pg_schema_url() -> AsyncIterator[str]:
    """A URL pointing at a fresh schema, dropped afterwards."""
    from sqlalchemy import text

    schema = f"t_{uuid.uuid4().hex[:12]}"
    from sqlalchemy.ext.asyncio import create_async_engine

    admin = create_async_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?search_path={schema}"
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


# Backends for the tests on the demo catalog: sqlite by default, for speed; CI asks for
# sqlite,postgres. PostgreSQL runs only the tests in PG_DEMO_FOLDERS (under tests/).
DEMO_BACKENDS = tuple(
    name.strip()
    for name in os.environ.get("RESILIENCE_MCP_TEST_BACKENDS", "sqlite").split(",")
    if name.strip()
)
PG_DEMO_FOLDERS = ("server", "graph", "search", "metrics", "writes", "catalog")


def pg_database_url(database: str) -> str:
    """PG_URL pointing at another database on the same server."""
    from sqlalchemy.engine import make_url

    return make_url(PG_URL).set(database=database).render_as_string(hide_password=False)


def pg_admin(sql: str) -> None:
    """Run one statement outside a transaction (CREATE or DROP DATABASE) on PG_URL's server."""
    import asyncpg  # type: ignore[import-untyped]

    dsn = pg_database_url("postgres").replace("postgresql+asyncpg://", "postgresql://", 1)

    async def run() -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run())


@asynccontextmanager
async def backend_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "postgres":
        async with pg_schema_url() as url:
            yield url
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}"


def fixed_clock(at: datetime = DEMO_ANCHOR) -> Callable[[], datetime]:
    return lambda: at


def demo_config(db_url: str, **options: Any) -> ServerConfig:
    """A server over `db_url` whose clock stands at the demo catalog's anchor."""
    return ServerConfig(db_url=db_url, clock=fixed_clock(), **options)


async def load_yaml(store: Store, text: str, *, source: str = "test") -> None:
    """Load catalog documents written inline in a test."""
    bodies = [body for body in yaml.safe_load_all(text) if body is not None]
    documents = [Document("inline.yaml", i, body) for i, body in enumerate(bodies, start=1)]
    await load_documents(store, documents, source=source)
