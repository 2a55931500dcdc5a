"""Crash safety: a process killed with SIGKILL in the middle of writing loses nothing that was
committed and leaves nothing half-written.

A large load is started with the real command line and killed as soon as its progress bar
shows that writing has begun (the bar is drawn when standard error is a terminal, so the
child gets a pseudo-terminal). Concurrent write tools are driven from a child process that
prints each call it saw succeed, and is killed after a number of them. Afterwards the
database opens, passes the integrity check, and holds each load and each write whole or not
at all.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from sqlmodel import col
from sqlmodel import select as sql_select

from resilience_mcp import models as m
from resilience_mcp.catalog import load_catalog
from resilience_mcp.doctor import check_store
from resilience_mcp.store import Store
from tests.reliability.generate import write_catalog
from tests.reliability.snapshot import row_counts

pytestmark = pytest.mark.slow

# Bound on every wait for a child process.
LIMIT = 120.0
REPO = Path(__file__).resolve().parents[2]
PROGRESS = re.compile(rb"\] \d+/\d+")


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "resilience_mcp.cli", *args]


async def load(url: str, folder: Path) -> None:
    store = await Store.open(url)
    try:
        await load_catalog(store, [folder])
    finally:
        await store.close()


def read_until(fd: int, pattern: re.Pattern[bytes], process: subprocess.Popen[bytes]) -> bytes:
    """Read `fd` until `pattern` shows up; fails if the process ends or time runs out first."""
    seen = b""
    deadline = time.monotonic() + LIMIT
    while not pattern.search(seen):
        assert process.poll() is None, f"the child ended first: {seen[-2000:]!r}"
        assert time.monotonic() < deadline, f"no progress within {LIMIT}s: {seen[-2000:]!r}"
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            seen += os.read(fd, 65536)
    return seen


def killed(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGKILL)
    return process.wait(timeout=LIMIT)


async def inspect(url: str) -> tuple[list[str], dict[str, int]]:
    """The doctor's errors and the row count of every table."""
    store = await Store.open(url)
    try:
        report = await check_store(store, now=datetime.now(UTC), full=True)
        return [f.message for f in report.errors], await row_counts(store)
    finally:
        await store.close()


def test_a_load_killed_while_writing_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    url = f"sqlite+aiosqlite:///{db}"
    write_catalog(tmp_path / "base", services=40, prefix="base")
    expected = write_catalog(tmp_path / "big", services=1500, prefix="big")
    anyio.run(load, url, tmp_path / "base")
    _, before = anyio.run(inspect, url)

    leader, follower = pty.openpty()
    process = subprocess.Popen(
        cli("load", str(tmp_path / "big"), "--db", str(db)),
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env=child_env(),
    )
    os.close(follower)
    try:
        read_until(leader, PROGRESS, process)
        code = killed(process)
    finally:
        os.close(leader)

    assert code == -signal.SIGKILL
    errors, after = anyio.run(inspect, url)
    assert errors == []
    assert after == before

    anyio.run(load, url, tmp_path / "big")
    _, full = anyio.run(inspect, url)
    assert full["service"] == before["service"] + expected["Service"]


# Declares incidents from several tasks at once, printing each that succeeded.
WRITER = """
import sys, anyio
from mcp import Client
from resilience_mcp.server import ServerConfig, build_server

async def main(url):
    config = ServerConfig(db_url=url, toolsets=("all",), enable_writes=True)
    async with Client(build_server(config)) as client:
        print("ready", flush=True)

        async def writer(task):
            for i in range(10_000):
                key = f"crash-{task}-{i:05d}"
                args = {"title": f"Crash test {key}", "severity": "SEV3",
                        "services": ["base-service-1"], "note": key, "idempotency_key": key}
                result = await client.call_tool("declare_incident", args)
                if result.is_error:
                    print("error", key, result.content[0].text.replace("\\n", " "), flush=True)
                else:
                    print("ok", key, result.structured_content["name"], flush=True)

        async with anyio.create_task_group() as tasks:
            for task in range(4):
                tasks.start_soon(writer, task)

anyio.run(main, sys.argv[1])
"""
ACKNOWLEDGED = 24


def test_writes_killed_mid_flight_are_each_whole_or_absent(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    url = f"sqlite+aiosqlite:///{db}"
    write_catalog(tmp_path / "base", services=40, prefix="base")
    anyio.run(load, url, tmp_path / "base")

    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=child_env(),
    )
    assert process.stdout is not None
    pattern = re.compile(rb"(?:^ok .*\n(?:.*\n)*?){%d}" % ACKNOWLEDGED, re.MULTILINE)
    with process.stdout:
        output = read_until(process.stdout.fileno(), pattern, process)
        assert killed(process) == -signal.SIGKILL

    acknowledged = dict(
        line.split()[1:3] for line in output.decode().splitlines() if line.startswith("ok ")
    )
    # A declare that loses the race for the next key three times gives up, and says so.
    errors = [
        line
        for line in output.decode().splitlines()
        if line.startswith("error ") and "kept colliding with concurrent writes" not in line
    ]
    doctor_errors, _ = anyio.run(inspect, url)
    incidents, audited = anyio.run(written, url)

    assert doctor_errors == []
    assert errors == []
    # Every call that answered is in the store, with its audit record.
    assert set(acknowledged.values()) <= set(incidents)
    assert set(acknowledged) <= set(audited)
    # Every write in the store is whole: one audit record, its link and its first note.
    assert sorted(audited.values()) == sorted(incidents)
    assert all(parts == Counter({"link": 1, "note": 1}) for parts in incidents.values())


async def written(url: str) -> tuple[dict[str, Counter[str]], dict[str, str]]:
    """The incidents the writer declared, with their parts; and key -> incident per audit."""
    store = await Store.open(url)
    try:
        async with store.session() as session:
            names = (
                await session.execute(
                    sql_select(col(m.Incident.name)).where(
                        col(m.Incident.title).startswith("Crash test")
                    )
                )
            ).scalars()
            incidents: dict[str, Counter[str]] = {name: Counter() for name in names}
            links = await session.execute(sql_select(col(m.IncidentLink.incident)))
            for (incident,) in links.all():
                if incident in incidents:
                    incidents[incident]["link"] += 1
            notes = await session.execute(sql_select(col(m.TimelineEntry.incident)))
            for (incident,) in notes.all():
                if incident in incidents:
                    incidents[incident]["note"] += 1
            records = await session.execute(
                sql_select(m.AuditRecord).where(
                    col(m.AuditRecord.tool) == "declare_incident",
                    col(m.AuditRecord.outcome) == "ok",
                )
            )
            audited = {
                str(r.idempotency_key): str(r.result["name"]) for r in records.scalars().all()
            }
    finally:
        await store.close()
    return incidents, audited
