"""The database: engine, sessions, schema and the catalog version.

SQLite (through aiosqlite) is the embedded default, one file in WAL mode. PostgreSQL
(through asyncpg) is the shared store several replicas use. Both take the same code.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel, col, select

from resilience_mcp.errors import StoreError
from resilience_mcp.models import CatalogMeta, CatalogState, utcnow

__all__ = ["SCHEMA_VERSION", "Store", "default_db_url"]

logger = logging.getLogger(__name__)

# Bump when a table changes shape; `Store.open` refuses a database of another version.
SCHEMA_VERSION = 1

ENV_DB = "RESILIENCE_MCP_DB"


def _data_home() -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))


def default_db_url() -> str:
    """`RESILIENCE_MCP_DB` if set, else a SQLite file in the user's data directory."""
    if url := os.environ.get(ENV_DB):
        return url
    return f"sqlite+aiosqlite:///{_data_home() / 'resilience-mcp' / 'catalog.db'}"


def _normalise_url(url: str) -> str:
    """Accept plain driver names and bare paths, as people type them."""
    if "://" not in url:
        return f"sqlite+aiosqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


class Store:
    """An open database. Create with `Store.open(url)`; close with `await store.close()`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @classmethod
    async def open(cls, url: str | None = None, *, create: bool = True) -> Store:
        """Open (and by default create) the database at `url`."""
        url = _normalise_url(url or default_db_url())
        store = cls(_make_engine(url))
        try:
            await store._prepare(create=create)
        except SQLAlchemyError as exc:
            await store.close()
            safe = make_url(url).render_as_string(hide_password=True)
            raise StoreError(
                f"Cannot open the database at {safe}: {exc.__class__.__name__}: {exc.args[0]}. "
                "Check the URL given by --db or RESILIENCE_MCP_DB and that the server runs."
            ) from exc
        except BaseException:
            await store.close()
            raise
        logger.info("opened %s store", store.dialect)
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; writes go through `transaction`."""
        async with AsyncSession(self.engine, expire_on_commit=False) as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits together, bumping the catalog version, or not at all."""
        async with (
            AsyncSession(self.engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session
            await bump_version(session)

    async def catalog_version(self) -> int:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(CatalogState.version).where(col(CatalogState.id) == 1)
            )
            return int(result.scalar_one_or_none() or 0)

    async def _prepare(self, *, create: bool) -> None:
        async with self.engine.begin() as conn:
            if create:
                await conn.run_sync(SQLModel.metadata.create_all)
            found = await conn.execute(
                select(CatalogMeta.value).where(col(CatalogMeta.key) == "schema_version")
            )
            version = found.scalar_one_or_none()
            if version is None:
                await conn.execute(
                    CatalogMeta.__table__.insert().values(  # type: ignore[attr-defined]
                        key="schema_version", value=str(SCHEMA_VERSION)
                    )
                )
                await conn.execute(
                    CatalogState.__table__.insert().values(  # type: ignore[attr-defined]
                        id=1, version=0, changed_at=utcnow()
                    )
                )
            elif int(version) != SCHEMA_VERSION:
                raise StoreError(
                    f"The database has schema version {version}, this release uses "
                    f"{SCHEMA_VERSION}. Export the catalog with the release that wrote it "
                    "and load it into a new database."
                )


async def bump_version(session: AsyncSession) -> None:
    """Mark the catalog changed; one atomic statement, so concurrent writers never collide."""
    await session.execute(
        update(CatalogState)
        .where(col(CatalogState.id) == 1)
        .values(version=col(CatalogState.version) + 1, changed_at=utcnow())
    )


def _make_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # `?search_path=schema` keeps the catalog in its own schema of a shared database.
        connect_args: dict[str, Any] = {}
        if schema := parsed.query.get("search_path"):
            parsed = parsed.difference_update_query(["search_path"])
            connect_args["server_settings"] = {"search_path": str(schema)}
        return create_async_engine(
            parsed, pool_pre_ping=True, pool_size=10, max_overflow=10, connect_args=connect_args
        )

    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or parsed.query.get("mode") == "memory"
    kwargs: dict[str, Any] = {"connect_args": {"timeout": 10}}
    if in_memory:
        kwargs["poolclass"] = StaticPool
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=OFF")
    cursor.close()


async def execute_text(store: Store, sql: str, **params: Any) -> list[Any]:
    """Run raw SQL (for engine-specific pieces such as full-text search)."""
    async with store.engine.connect() as conn:
        result = await conn.execute(text(sql), params)
        return list(result.fetchall())
