"""The store: where the default database lives, how it is opened, and its schema version."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import case, func, inspect, text
from sqlmodel import col

from resilience_mcp.errors import StoreError
from resilience_mcp.graph.provenance import read_confirmations
from resilience_mcp.models import AuditRecord
from resilience_mcp.store import (
    SCHEMA_VERSION,
    Store,
    VersionWatch,
    counted_page,
    counted_rows,
    default_db_url,
    tallied_rows,
)

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]


def test_the_default_database_is_a_file_in_the_users_data_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("RESILIENCE_MCP_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))

    url = default_db_url()

    if sys.platform.startswith("linux"):
        assert url == f"sqlite+aiosqlite:///{tmp_path / 'resilience-mcp' / 'catalog.db'}"
    else:
        assert url.startswith("sqlite+aiosqlite:///")


def test_the_environment_names_another_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESILIENCE_MCP_DB", "postgresql+asyncpg://db.example/catalog")

    assert default_db_url() == "postgresql+asyncpg://db.example/catalog"


async def test_a_sqlite_store_is_one_file_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "catalog.db"
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    try:
        async with store.engine.connect() as conn:
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
    finally:
        await store.close()

    assert mode == "wal"
    assert path.is_file()


async def test_a_bare_path_opens_as_a_sqlite_file(tmp_path: Path) -> None:
    store = await Store.open(str(tmp_path / "plain.db"))
    await store.close()

    assert (tmp_path / "plain.db").is_file()


async def test_the_schema_version_is_recorded(db_url: str) -> None:
    store = await Store.open(db_url)
    try:
        async with store.engine.connect() as conn:
            recorded = await conn.execute(
                text("SELECT value FROM catalog_meta WHERE key = 'schema_version'")
            )
            version = recorded.scalar_one()
    finally:
        await store.close()

    assert version == str(SCHEMA_VERSION)


async def test_a_database_of_another_schema_version_is_refused_and_left_alone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE catalog_meta SET value = '999' WHERE key = 'schema_version'")

    with pytest.raises(StoreError, match="schema version 999") as refused:
        await Store.open(f"sqlite+aiosqlite:///{path}")

    assert "Export the catalog" in str(refused.value)
    with sqlite3.connect(path) as conn:
        kept = conn.execute("SELECT value FROM catalog_meta WHERE key = 'schema_version'")
        assert kept.fetchone() == ("999",)


async def test_a_version_2_database_without_the_newer_versions_gets_them_when_opened(
    db_url: str,
) -> None:
    store = await Store.open(db_url)
    try:
        async with store.transaction() as session:
            await session.execute(text("UPDATE service SET tier = 1"))
        async with store.engine.begin() as conn:
            for column in ("flag_version", "confirm_version"):
                await conn.execute(text(f"ALTER TABLE catalog_state DROP COLUMN {column}"))
    finally:
        await store.close()

    reopened = await Store.open(db_url)
    try:
        assert await reopened.graph_versions() == (1, 0, 0)
    finally:
        await reopened.close()


async def test_a_version_2_database_without_the_confirmation_table_gets_it_when_opened(
    db_url: str,
) -> None:
    store = await Store.open(db_url)
    try:
        async with store.engine.begin() as conn:
            await conn.execute(text("DROP TABLE source_confirmation"))
    finally:
        await store.close()

    # As `doctor` opens it: without creating the schema.
    reopened = await Store.open(db_url, create=False)
    try:
        async with reopened.session() as session:
            assert await read_confirmations(session) == {}
    finally:
        await reopened.close()


async def test_a_version_2_database_gets_the_covering_link_index_when_opened(
    db_url: str,
) -> None:
    store = await Store.open(db_url)
    try:
        async with store.engine.begin() as conn:
            await conn.execute(text("DROP INDEX ix_incident_link_kind_target_incident"))
            await conn.execute(
                text("CREATE INDEX ix_incident_link_kind_target ON incident_link (kind, target)")
            )
    finally:
        await store.close()

    reopened = await Store.open(db_url)
    try:
        async with reopened.engine.connect() as conn:
            names = await conn.run_sync(
                lambda sync: {i["name"] for i in inspect(sync).get_indexes("incident_link")}
            )
    finally:
        await reopened.close()
    assert "ix_incident_link_kind_target_incident" in names
    assert "ix_incident_link_kind_target" not in names


@pytest.mark.slow
def test_the_wheel_ships_the_demo_catalog_and_the_prompts(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), "."],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("resilience_mcp-*.whl")

    names = zipfile.ZipFile(wheel).namelist()

    shipped = "resilience_mcp/_shipped/"
    assert f"{shipped}data/catalog/teams.yaml" in names
    assert f"{shipped}data/scorecards/production-readiness.yaml" in names
    prompts = {Path(n).name for n in names if n.startswith(f"{shipped}prompts/")}
    assert prompts == {p.name for p in (ROOT / "prompts").glob("*.md")}


async def _bump(store: Store) -> None:
    # A transaction moves the catalog version, whatever it writes.
    async with store.transaction():
        pass


async def test_a_watch_sees_this_stores_own_commits_at_once(db_url: str) -> None:
    store = await Store.open(db_url)
    try:
        watch = VersionWatch(store, max_age=3600)
        before = await watch.current()
        await _bump(store)
        after = await watch.current()
    finally:
        await store.close()

    assert after.catalog == before.catalog + 1


async def test_a_watch_sees_another_stores_commits_once_its_reading_is_older_than_max_age(
    db_url: str,
) -> None:
    store, other = await Store.open(db_url), await Store.open(db_url)
    try:
        watch = VersionWatch(store, max_age=3600)
        before = await watch.current()
        await _bump(other)
        held = await watch.current()
        watch.max_age = 0
        fresh = await watch.current()
    finally:
        await other.close()
        await store.close()

    assert held == before
    assert fresh.catalog == before.catalog + 1


async def test_a_counted_page_counts_every_match_and_shows_the_page_asked_for(
    store: Store,
) -> None:
    async with store.session() as session:
        session.add_all(AuditRecord(tool="flip" if i % 3 else "declare") for i in range(10))
        await session.commit()
    flips = [col(AuditRecord.tool) == "flip"]
    newest = [col(AuditRecord.id).desc()]

    async with store.session() as session:
        total, first = await counted_page(session, AuditRecord, flips, newest, limit=4)
        _, last = await counted_page(session, AuditRecord, flips, newest, limit=4, offset=4)
        past, beyond = await counted_page(session, AuditRecord, flips, newest, limit=4, offset=9)
        none, empty = await counted_page(
            session, AuditRecord, [col(AuditRecord.tool) == "ack"], newest, limit=4
        )

    assert total == 6
    assert [r.id for r in first] == [9, 8, 6, 5]
    assert [r.id for r in last] == [3, 2]
    assert (past, beyond) == (6, [])
    assert (none, empty) == (0, [])


async def test_counted_rows_read_only_the_columns_asked_for_and_end_each_row_with_the_count(
    store: Store,
) -> None:
    async with store.session() as session:
        session.add_all(AuditRecord(tool="flip", actor=f"bot-{i}") for i in range(3))
        await session.commit()

    async with store.session() as session:
        total, rows = await counted_rows(
            session, AuditRecord, [col(AuditRecord.actor)], [], [col(AuditRecord.id)], 2
        )

    assert total == 3
    assert [tuple(row) for row in rows] == [("bot-0", 3), ("bot-1", 3)]


async def test_tallied_rows_carry_every_tally_on_the_page_and_past_its_end(store: Store) -> None:
    async with store.session() as session:
        session.add_all(AuditRecord(tool="flip" if i % 3 else "declare") for i in range(10))
        await session.commit()
    by_id = [col(AuditRecord.id)]
    tallies = (func.count(), func.count(case((col(AuditRecord.tool) == "declare", 1))))

    async with store.session() as session:
        counts, rows = await tallied_rows(
            session, AuditRecord, [col(AuditRecord.id)], [], by_id, 3, tallies=tallies
        )
        past, beyond = await tallied_rows(
            session, AuditRecord, [col(AuditRecord.id)], [], by_id, 3, 20, tallies=tallies
        )

    assert counts == past == [10, 4]
    assert [tuple(row) for row in rows] == [(1, 10, 4), (2, 10, 4), (3, 10, 4)]
    assert beyond == []
