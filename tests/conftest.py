"""Shared fixtures: stores on SQLite and PostgreSQL, the demo catalog, an in-process client.

PostgreSQL runs where it is reachable (`RESILIENCE_MCP_TEST_PG`, default
postgresql+asyncpg://postgres@127.0.0.1:5432/test); each test gets a schema of its own.
Set RESILIENCE_MCP_TEST_PG=off to skip it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from mcp import Client

from resilience_mcp.catalog import DEMO_ANCHOR, load_demo
from resilience_mcp.server import build_server
from resilience_mcp.store import Store
from tests.otel_demo import build_otel_template
from tests.support import (
    BACKENDS,
    DEMO_BACKENDS,
    PG_DEMO_FOLDERS,
    backend_url,
    demo_config,
    pg_admin,
    pg_database_url,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def db_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database on each backend."""
    async with backend_url(backend, tmp_path) as url:
        yield url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """An empty, open store on each backend."""
    opened = await Store.open(db_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo catalog loaded once into a SQLite file, at its own anchor time."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"

    async def build() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{path}")
        try:
            await load_demo(store, now=DEMO_ANCHOR)
        finally:
            await store.close()

    asyncio.run(build())
    return path


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests on the demo catalog run on PostgreSQL too when RESILIENCE_MCP_TEST_BACKENDS asks,
    in the folders of PG_DEMO_FOLDERS."""
    if "demo_backend" not in metafunc.fixturenames or "postgres" not in DEMO_BACKENDS:
        return
    folder = metafunc.definition.path.relative_to(Path(__file__).parent).parts[0]
    if folder in PG_DEMO_FOLDERS:
        chosen = [b for b in BACKENDS if b.values[0] in DEMO_BACKENDS]
        metafunc.parametrize("demo_backend", chosen, indirect=True)


@pytest.fixture
def demo_backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def demo_pg_template() -> Iterator[str]:
    """The demo catalog loaded once into a PostgreSQL database that tests copy."""
    name = f"resilience_demo_tpl_{os.getpid()}"
    pg_admin(f'CREATE DATABASE "{name}"')

    async def build() -> None:
        store = await Store.open(pg_database_url(name))
        try:
            await load_demo(store, now=DEMO_ANCHOR)
        finally:
            await store.close()

    try:
        asyncio.run(build())
        yield name
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def demo_db(demo_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A private copy of the demo database (SQLite, or PostgreSQL when asked), as a URL."""
    if demo_backend == "postgres":
        template = request.getfixturevalue("demo_pg_template")
        name = f"t_{uuid.uuid4().hex[:12]}"
        pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        try:
            yield pg_database_url(name)
        finally:
            pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    path = tmp_path / "demo.db"
    shutil.copy(request.getfixturevalue("demo_template"), path)
    yield f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def demo_store(demo_db: str) -> AsyncIterator[Store]:
    opened = await Store.open(demo_db)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def demo_client(demo_db: str) -> AsyncIterator[Client]:
    """An in-process MCP client on the demo catalog with every read toolset."""
    async with Client(build_server(demo_config(demo_db, toolsets=("all",)))) as client:
        yield client


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)


@pytest.fixture(scope="session")
def otel_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The OpenTelemetry demo's services and flags in three environments, loaded once."""
    return build_otel_template(tmp_path_factory.mktemp("otel") / "otel.db")


@pytest.fixture
async def otel_store(otel_template: Path, tmp_path: Path) -> AsyncIterator[Store]:
    """A private copy of the OpenTelemetry demo catalog (SQLite)."""
    path = tmp_path / "otel.db"
    shutil.copy(otel_template, path)
    opened = await Store.open(f"sqlite+aiosqlite:///{path}")
    try:
        yield opened
    finally:
        await opened.close()
