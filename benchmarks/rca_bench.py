"""How fast find_similar_rca answers on a large store: 100,000 incidents by default.

    python -m benchmarks.rca_bench                      # SQLite, 100,000 incidents
    python -m benchmarks.rca_bench --backend both       # and PostgreSQL (RESILIENCE_MCP_BENCH_PG)
    python -m benchmarks.rca_bench --incidents 20000 --queries 100

Incidents, postmortems, timelines, remediation tasks and service links are generated from
templates (symptoms, causes, services, and a long tail of rarer words, so the index has a
realistic vocabulary) and written in bulk, straight into the tables: the full-text triggers
index them as they land, as they would any write. A catalog of services with dependencies
is loaded first, so the ranking's structure part has a graph to walk. Then three kinds of
query are timed in-process: alert text, alert text with services, and an incident key.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import create_async_engine

from resilience_mcp import models as m
from resilience_mcp.catalog import load_documents
from resilience_mcp.catalog.files import Document
from resilience_mcp.fulltext import rebuild_fulltext
from resilience_mcp.graph import CatalogGraph, build_graph
from resilience_mcp.search.incidents import find_similar_rca
from resilience_mcp.store import Store

__all__ = ["generate_incidents", "main", "measure"]

NOW = datetime(2026, 12, 1, tzinfo=UTC)
PG_URL = os.environ.get("RESILIENCE_MCP_BENCH_PG", "postgresql+asyncpg://postgres@127.0.0.1/test")
SERVICES = 400
CHUNK = 2000

SYMPTOMS = [
    "connection pool exhausted on {svc}",
    "5xx error rate above 5% on {svc}",
    "p99 latency spike on {svc}",
    "{svc} disk full",
    "{svc} pods OOMKilled and restarting",
    "TLS certificate expired for {svc}",
    "DNS resolution failures from {svc}",
    "consumer lag growing on {svc}",
    "replication lag on {svc}",
    "deadlock detected in {svc}",
    "timeouts calling {svc}",
    "{svc} returning 503 to checkout",
    "CPU throttling on {svc}",
    "{svc} queue backlog",
    "cache hit ratio dropped on {svc}",
    "login failures after token refresh in {svc}",
]
CAUSES = [
    "deployment of {svc} {version} changed {setting}",
    "configuration change raised {setting} on {svc}",
    "traffic surge from a marketing campaign overloaded {svc}",
    "node failure in {zone} took down {svc} replicas",
    "expired TLS certificate on {svc} was not renewed",
    "a feature flag ramp sent all traffic to {svc}",
    "schema migration locked a table used by {svc}",
    "third-party provider outage behind {svc}",
    "memory leak in {svc} {version}",
    "maintenance failover of {svc} pinned clients to an old endpoint",
    "retry storm between {svc} and its dependencies",
    "clock skew on {zone} hosts broke token validation in {svc}",
]
SETTINGS = ["maximum-pool-size", "timeout", "retries", "heap size", "replicas", "rate limit"]
ZONES = ["us-east-1a", "us-east-1b", "eu-west-1a", "eu-west-1c", "ap-south-1a"]
SYLLABLES = ["ka", "lo", "mi", "ner", "sul", "tor", "vex", "qua", "zen", "bri", "dol", "fan"]


def _vocabulary(rng: random.Random, size: int = 5000) -> list[str]:
    words = {"".join(rng.choices(SYLLABLES, k=rng.randint(2, 4))) for _ in range(size * 2)}
    return sorted(words)[:size]


def _services() -> list[dict[str, Any]]:
    rng = random.Random(11)
    names = [f"svc-{n:03d}" for n in range(SERVICES)]
    documents = []
    for n, name in enumerate(names):
        below = names[n + 1 :]
        targets = rng.sample(below, k=min(3, len(below)))
        documents.append(
            {
                "apiVersion": "resilience/v1",
                "kind": "Service",
                "metadata": {"name": name},
                "spec": {"dependsOn": [f"service:{t}" for t in targets]},
            }
        )
    return documents


def generate_incidents(count: int, seed: int = 7) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Rows for each table, `CHUNK` incidents at a time."""
    rng = random.Random(seed)
    vocabulary = _vocabulary(rng)
    # A long tail: a few filler words are common, most are rare.
    weights = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(vocabulary))))
    start = NOW - timedelta(days=5 * 365)
    for first in range(0, count, CHUNK):
        rows: dict[str, list[dict[str, Any]]] = {
            "incident": [],
            "postmortem": [],
            "timeline_entry": [],
            "incident_link": [],
            "remediation_task": [],
        }
        for n in range(first, min(first + CHUNK, count)):
            _one(rng, n, vocabulary, weights, start, rows)
        yield rows


def _one(
    rng: random.Random,
    n: int,
    vocabulary: list[str],
    weights: list[float],
    start: datetime,
    rows: dict[str, list[dict[str, Any]]],
) -> None:
    key = f"INC-{n + 1:06d}"
    services = [f"svc-{s:03d}" for s in rng.sample(range(SERVICES), k=rng.randint(1, 3))]
    fill = {
        "svc": services[0],
        "version": f"{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}",
        "setting": rng.choice(SETTINGS),
        "zone": rng.choice(ZONES),
    }
    symptom = rng.choice(SYMPTOMS).format(**fill)
    cause = rng.choice(CAUSES).format(**fill)

    def filler(k: int) -> str:
        return " ".join(rng.choices(vocabulary, cum_weights=weights, k=k))

    started = start + timedelta(minutes=rng.randint(0, 5 * 365 * 24 * 60))
    resolved = started + timedelta(minutes=rng.randint(10, 600))
    rows["incident"].append(
        {
            "name": key,
            "title": symptom.capitalize(),
            "summary": f"{symptom}; {filler(25)}.",
            "trigger": cause,
            "severity": f"SEV{rng.randint(1, 4)}",
            "status": "resolved",
            "started_at": started,
            "detected_at": started + timedelta(minutes=5),
            "resolved_at": resolved,
            "source": "bench",
            "synced_at": NOW,
            "version": 1,
            "tags": [],
            "links": [],
            "annotations": {},
        }
    )
    rows["postmortem"].append(
        {
            "name": f"{key}-pm",
            "incident": key,
            "summary": f"{symptom}. {filler(30)}.",
            "root_cause": f"{cause}. {filler(40)}.",
            "contributing_factors": [filler(12), filler(12)],
            "resolution": f"Rolled back and restarted {services[0]}; {filler(10)}.",
            "lessons": [filler(10)],
            "source": "bench",
            "synced_at": NOW,
            "tags": [],
            "links": [],
            "annotations": {},
        }
    )
    for step, what in enumerate((symptom, f"paged on-call; {filler(8)}", "resolved")):
        rows["timeline_entry"].append(
            {
                "owner_ref": f"Incident:{key}",
                "incident": key,
                "at": started + timedelta(minutes=10 * step),
                "kind": ("detection", "action", "resolution")[step],
                "text": what,
            }
        )
    for service in services:
        rows["incident_link"].append(
            {
                "owner_ref": f"Incident:{key}",
                "incident": key,
                "kind": "service",
                "target": service,
            }
        )
    for task in range(2):
        rows["remediation_task"].append(
            {
                "name": f"{key}-task-{task}",
                "postmortem": f"{key}-pm",
                "incident": key,
                "title": f"Alert on {fill['setting']} for {services[0]}; {filler(4)}",
                "priority": f"P{rng.randint(1, 4)}",
                "status": rng.choice(["open", "in_progress", "done", "done"]),
                "due_date": resolved + timedelta(days=30),
                "source": "bench",
                "synced_at": NOW,
                "version": 1,
                "tags": [],
                "links": [],
                "annotations": {},
            }
        )


TABLES: dict[str, Any] = {
    "incident": m.Incident,
    "postmortem": m.Postmortem,
    "timeline_entry": m.TimelineEntry,
    "incident_link": m.IncidentLink,
    "remediation_task": m.RemediationTask,
}
# Rows that name an incident go in before it, so each incident is indexed once, on arrival.
ORDER = ("postmortem", "timeline_entry", "incident_link", "remediation_task", "incident")


async def fill(store: Store, count: int) -> float:
    """Write `count` generated incidents; the seconds it took."""
    started = time.perf_counter()
    await load_documents(
        store, [Document("bench", n, d) for n, d in enumerate(_services())], source="bench"
    )
    done = 0
    for rows in generate_incidents(count):
        async with store.engine.begin() as conn:
            if not store.is_sqlite:
                # PostgreSQL indexes the whole set at the end instead of row by row: the
                # session skips triggers (as a restore would), then the index is rebuilt.
                await conn.execute(text("SET LOCAL session_replication_role = replica"))
            for table in ORDER:
                await conn.execute(insert(TABLES[table]), rows[table])
        done += len(rows["incident"])
        print(f"\r  {done:,} incidents written", end="", flush=True)
    print()
    async with store.engine.begin() as conn:
        if not store.is_sqlite:
            await rebuild_fulltext(conn)
        await bump_version_on(conn)
    return time.perf_counter() - started


async def _analyze(store: Store) -> None:
    """Fresh planner statistics, as autovacuum keeps them on a live database."""
    async with store.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("ANALYZE"))


async def bump_version_on(conn: Any) -> None:
    await conn.execute(text("UPDATE catalog_state SET version = version + 1 WHERE id = 1"))


async def _count(store: Store) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM incident"))).scalar_one())


def _queries(count: int, seed: int = 99) -> list[tuple[str, dict[str, Any]]]:
    """Alert text, alert text with services, and an incident key, in turn."""
    rng = random.Random(seed)
    asked: list[tuple[str, dict[str, Any]]] = []
    for n in range(count):
        service = f"svc-{rng.randrange(SERVICES):03d}"
        fill = {
            "svc": service,
            "version": "4.2.0",
            "setting": rng.choice(SETTINGS),
            "zone": rng.choice(ZONES),
        }
        alert = (
            f"ALERT {rng.choice(SYMPTOMS).format(**fill)}. "
            f"Recent change: {rng.choice(CAUSES).format(**fill)}. error rate 12% for 10m"
        )
        if n % 3 == 0:
            asked.append(("text", {"text": alert}))
        elif n % 3 == 1:
            asked.append(("text + services", {"text": alert, "services": [service]}))
        else:
            asked.append(("incident key", {"incident": f"INC-{rng.randint(1, 1000):06d}"}))
    return asked


async def measure(store: Store, graph: CatalogGraph, queries: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {}
    for kind, arguments in _queries(queries):
        started = time.perf_counter()
        await find_similar_rca(store, graph, NOW, **arguments)
        timings.setdefault(kind, []).append((time.perf_counter() - started) * 1000)
    return timings


def _report(name: str, count: int, timings: dict[str, list[float]]) -> None:
    every = [t for values in timings.values() for t in values]
    print(f"{name}, {count:,} incidents: find_similar_rca in-process, milliseconds")
    print(f"  {'query':<18} {'n':>4} {'p50':>8} {'p95':>8} {'max':>8}")
    for kind, values in [*timings.items(), ("all", every)]:
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        print(
            f"  {kind:<18} {len(values):>4} {statistics.median(values):>8.1f} "
            f"{p95:>8.1f} {ordered[-1]:>8.1f}"
        )


async def _run(name: str, url: str, count: int, queries: int) -> None:
    store = await Store.open(url)
    try:
        have = await _count(store)
        if 0 < have < count:
            # The generated incidents are numbered from the first: topping up a kept store
            # would write the ones it holds again.
            raise SystemExit(
                f"{name}: the kept store holds {have:,} incidents, fewer than {count:,}; "
                "remove it (or ask for at most that many) and run again."
            )
        if have == 0:
            print(f"{name}: writing {count:,} incidents")
            print(f"  written and indexed in {await fill(store, count):.0f} s")
        if not store.is_sqlite:
            await _analyze(store)
        graph = await build_graph(store)
        await measure(store, graph, 10)  # warm the caches
        _report(name, await _count(store), await measure(store, graph, queries))
    finally:
        await store.close()


async def _postgres(count: int, queries: int, keep: bool) -> None:
    schema = "rca_bench" if keep else f"rca_bench_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    try:
        await _run("PostgreSQL", f"{PG_URL}?search_path={schema}", count, queries)
    finally:
        if not keep:
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep the SQLite file (and the rca_bench schema) here, and reuse it next time",
    )
    args = parser.parse_args(argv)

    async def run() -> None:
        if args.backend in ("sqlite", "both"):
            with tempfile.TemporaryDirectory(prefix="rca-bench-") as scratch:
                path = args.keep or Path(scratch) / "bench.db"
                await _run("SQLite", f"sqlite+aiosqlite:///{path}", args.incidents, args.queries)
        if args.backend in ("postgres", "both"):
            await _postgres(args.incidents, args.queries, keep=args.keep is not None)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
