"""`resilience-mcp doctor`: finds what is broken in a store, says how to fix it, and exits
non-zero when something must be fixed."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from resilience_mcp.cli import main
from resilience_mcp.doctor import check_store, diagnose
from resilience_mcp.store import Store
from tests.support import load_yaml

pytestmark = pytest.mark.anyio

NOW = datetime.now(UTC)
SMALL = """\
apiVersion: resilience/v1
kind: Team
metadata: {name: team-payments}
spec: {members: [ann]}
---
apiVersion: resilience/v1
kind: Person
metadata: {name: ann}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: payments-db}
spec: {owner: team-payments}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: payments-api}
spec: {owner: team-payments, dependsOn: [payments-db]}
"""


def sqlite_file(url: str) -> str:
    return url.removeprefix("sqlite+aiosqlite:///")


async def execute(store: Store, *statements: str) -> None:
    async with store.engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    return main(["-q", "doctor", *argv]), capsys.readouterr().out


async def test_a_sound_store_has_nothing_to_fix_on_either_backend(store: Store) -> None:
    await load_yaml(store, SMALL)

    report = await check_store(store, now=NOW)

    assert report.findings == []
    assert report.ok
    assert "nothing to fix" in report.summary()


async def test_a_deleted_team_shows_as_dangling_owners_and_orphan_members(store: Store) -> None:
    await load_yaml(store, SMALL)
    await execute(store, "DELETE FROM team WHERE name = 'team-payments'")

    report = await check_store(store, now=NOW)

    messages = [finding.message for finding in report.errors]
    assert any("service.owner" in m and "'team-payments'" in m for m in messages)
    assert any("team_member" in m for m in messages)
    owners = next(f for f in report.errors if "service.owner" in f.message)
    assert set(owners.examples) == {
        "payments-api -> 'team-payments'",
        "payments-db -> 'team-payments'",
    }
    assert not report.ok


async def test_a_deleted_service_shows_as_a_dangling_dependency_target(store: Store) -> None:
    await load_yaml(store, SMALL)
    await execute(store, "DELETE FROM service WHERE name = 'payments-db'")

    report = await check_store(store, now=NOW)

    target = next(f for f in report.errors if "dependency.target" in f.message)
    assert target.examples == ("Service:payments-api -> 'payments-db'",)


async def test_rows_left_by_a_deleted_entity_are_orphans(store: Store) -> None:
    await load_yaml(store, SMALL)
    await execute(store, "DELETE FROM service WHERE name = 'payments-api'")

    report = await check_store(store, now=NOW)

    orphans = next(f for f in report.errors if "belong to entities" in f.message)
    assert orphans.examples == ("Service:payments-api (1 row(s))",)


async def test_data_no_load_confirmed_lately_is_a_warning_not_an_error(store: Store) -> None:
    await load_yaml(store, SMALL, source="backstage")

    report = await check_store(store, now=NOW + timedelta(days=30), stale_after=timedelta(days=7))

    (stale,) = report.findings
    assert stale.severity == "warning"
    assert "4 entities from source 'backstage'" in stale.message
    assert report.ok


def team(name: str) -> str:
    return f"apiVersion: resilience/v1\nkind: Team\nmetadata: {{name: {name}}}\n"


DEPLOYMENT = """\
apiVersion: resilience/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  {{service: payments-api, version: 1.2.3, deployTime: 2026-11-30T10:00:00Z, status: success}}
"""
INCIDENT = """\
apiVersion: resilience/v1
kind: Incident
metadata: {{name: {name}, title: Payments down}}
spec:
  {{severity: SEV2, status: resolved, startedAt: 2026-11-30T09:00:00Z, services: [payments-api]}}
"""


async def test_only_facts_a_sync_confirms_again_can_be_stale(store: Store) -> None:
    await load_yaml(store, SMALL, source="backstage")
    # Facts no sync confirms again: loaded by hand or from files, the demo's, written
    # through the write tools, and history (deployments and incidents, pushed by a
    # webhook or synced while they were recent).
    for source in ("local", "demo", "mcp", "files:/srv/catalog"):
        await load_yaml(store, team(f"team-{source.split(':')[0]}"), source=source)
    await load_yaml(store, DEPLOYMENT.format(name="payments-api-deploy-7"), source="github")
    await load_yaml(store, DEPLOYMENT.format(name="payments-api-deploy-8"), source="webhook")
    await load_yaml(store, INCIDENT.format(name="INC-0001"), source="webhook")
    await load_yaml(store, INCIDENT.format(name="INC-0002"), source="pagerduty")

    report = await check_store(store, now=NOW + timedelta(days=30), stale_after=timedelta(days=7))

    (stale,) = report.findings
    assert stale.message.startswith("4 entities from source 'backstage'")
    assert set(stale.examples) == {"1 Team", "1 Person", "2 Service"}
    assert "mcp" not in report.summary()


async def test_an_incident_missing_from_the_full_text_index_is_found(demo_store: Store) -> None:
    await execute(demo_store, "DELETE FROM incident_fts_key WHERE incident = 'INC-2049'")

    report = await check_store(demo_store, now=NOW)

    assert [f.message for f in report.errors] == ["1 of 11 incident(s) have no search document"]


def test_the_command_prints_each_problem_with_its_fix_and_exits_one(
    capsys: pytest.CaptureFixture[str], demo_db: str
) -> None:
    with sqlite3.connect(sqlite_file(demo_db)) as conn:
        conn.execute("DELETE FROM environment WHERE name = 'prod-eu'")

    code, out = run(capsys, "--db", sqlite_file(demo_db))

    assert code == 1
    assert "error    references:" in out
    assert "'prod-eu'" in out
    assert "fix: Load the missing environment entities" in out
    assert "ok       integrity:" in out


def test_the_command_exits_zero_on_a_sound_store(
    capsys: pytest.CaptureFixture[str], demo_db: str
) -> None:
    code, out = run(capsys, "--db", sqlite_file(demo_db), "--full")

    assert code == 0
    assert "PRAGMA integrity_check found no problems" in out
    assert out.rstrip().endswith("nothing to fix")


def test_a_missing_database_is_reported_and_not_created(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.db"

    code, out = run(capsys, "--db", str(missing))

    assert code == 1
    assert f"there is no database file at {missing}" in out
    assert not missing.exists()


def damage_file(path: Path, damage: str) -> None:
    if damage == "text":
        path.write_text("this is not a database\n" * 100)
        return
    with sqlite3.connect(path) as conn:
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        index = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'ix_deployment_service_time'"
        ).fetchone()[0]
    # One index page wiped: the tables still read, the integrity check sees it. Pages
    # scribbled all over: even opening the database fails.
    pages = [index] if damage == "index" else range(8, path.stat().st_size // size, 7)
    data = bytearray(path.read_bytes())
    for page in pages:
        data[(page - 1) * size : page * size] = b"\xa5" * size
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "phrase"),
    [
        ("text", "not a SQLite database"),
        ("pages", "damaged"),
        ("index", "quick_check reports problems"),
        ("schema", "schema version 99"),
    ],
)
async def test_a_damaged_database_is_an_error(demo_db: str, damage: str, phrase: str) -> None:
    if damage == "schema":
        store = await Store.open(demo_db)
        await execute(store, "UPDATE catalog_meta SET value = '99' WHERE key = 'schema_version'")
        await store.close()
    else:
        damage_file(Path(sqlite_file(demo_db)), damage)

    report = await diagnose(demo_db, now=NOW)

    assert not report.ok
    assert phrase in report.summary()
