"""How long the metrics take on a large catalog: DORA for the whole organisation over
200,000 deployments, and the scorecards of 10,000 services.

    .venv/bin/python -m benchmarks.metrics_bench                     # SQLite, in a temp dir
    .venv/bin/python -m benchmarks.metrics_bench --postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test
    .venv/bin/python -m benchmarks.metrics_bench --size medium --deployments 20000   # quicker

The catalog is `benchmarks.synthetic` ("large": 10,000 services) with the history asked
for. Its documents are parsed by the catalog's own codecs and bulk-inserted into the empty
store, skipping the loader's comparison with what a store already holds (loading is
measured elsewhere). `--keep FILE` keeps the SQLite database and reuses it next time. Each
measurement calls the domain function the tool calls (no MCP in between) `--repeat` times
and prints the best and the median, with what the answer held, so a fast wrong answer shows.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import col

from benchmarks.synthetic import ANCHOR, generate
from resilience_mcp import models as m
from resilience_mcp.catalog.files import Document
from resilience_mcp.catalog.kinds import CODECS
from resilience_mcp.catalog.loader import parse_documents
from resilience_mcp.errors import CatalogLoadError
from resilience_mcp.graph import build_graph
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.metrics.dora import compute_dora, get_dora_metrics
from resilience_mcp.metrics.history import load_history
from resilience_mcp.metrics.reliability import get_reliability
from resilience_mcp.metrics.scope import get_scope, resolve_window
from resilience_mcp.metrics.scorecards import get_scorecard, list_scorecard_failures
from resilience_mcp.store import Store

__all__ = ["main", "parse_arguments", "run"]

WINDOW = "181d"  # the synthetic deployments span the 180 days before the anchor


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="large", help="synthetic catalog size (large)")
    parser.add_argument("--deployments", type=int, default=200_000)
    parser.add_argument("--incidents", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement")
    parser.add_argument("--postgres", metavar="URL", help="run on PostgreSQL (a fresh schema)")
    parser.add_argument("--keep", metavar="FILE", type=Path, help="SQLite file to keep and reuse")
    args = parser.parse_args(argv)
    args.keep = args.keep.resolve() if args.keep else None
    return args


@asynccontextmanager
async def _database(postgres: str | None, keep: Path | None) -> AsyncIterator[str]:
    """A URL for a database: a kept or temp SQLite file, or a new PostgreSQL schema."""
    if keep is not None:
        yield f"sqlite+aiosqlite:///{keep}"
        return
    if postgres is None:
        with tempfile.TemporaryDirectory(prefix="metrics-bench-") as folder:
            yield f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(postgres)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{postgres}?search_path={schema}"
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


async def _timed(repeat: int, run: Callable[[], Awaitable[Any]]) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await run()
        times.append(time.perf_counter() - started)
    return times, result


def _row(name: str, times: list[float], detail: str) -> None:
    best, middle = min(times) * 1000, statistics.median(times) * 1000
    print(f"{name:<46} {best:>9.0f} {middle:>9.0f}   {detail}", flush=True)


async def _counts(store: Store) -> str:
    async with store.session() as session:
        deployments = await session.scalar(select(func.count()).select_from(m.Deployment))
        incidents = await session.scalar(select(func.count()).select_from(m.Incident))
        services = await session.scalar(select(func.count()).select_from(m.Service))
        shipped = await session.scalar(
            select(func.count())
            .select_from(m.Deployment)
            .where(col(m.Deployment.status).in_(("success", "rolled_back")))
        )
    return (
        f"{services} services, {deployments} deployments ({shipped} shipped), {incidents} incidents"
    )


async def _biggest_team(store: Store) -> str:
    async with store.session() as session:
        found = await session.execute(
            select(col(m.Service.owner))
            .where(col(m.Service.owner).is_not(None))
            .group_by(col(m.Service.owner))
            .order_by(func.count().desc())
            .limit(1)
        )
        return str(found.scalar_one())


async def _measure(store: Store, graph: CatalogGraph, repeat: int) -> None:
    now = ANCHOR
    print(f"{'measurement':<46} {'best ms':>9} {'median ms':>9}   answer", flush=True)

    times, dora = await _timed(
        repeat, lambda: get_dora_metrics(store, graph, now, scope="organisation", since=WINDOW)
    )
    _row(
        "DORA, organisation, 181 days",
        times,
        f"{dora.deployment_frequency.deployments} deployments, {dora.lead_time.pairs} commits, "
        f"CFR {dora.change_failure_rate.rate:.1%}, {dora.time_to_restore.restored} restored",
    )

    times, default = await _timed(repeat, lambda: get_dora_metrics(store, graph, now))
    _row(
        "DORA, organisation, 90 days (the default)",
        times,
        f"{default.deployment_frequency.deployments} deployments",
    )

    scope = get_scope(graph, "organisation", None)
    start, end = resolve_window(WINDOW, None, now)
    times, history = await _timed(repeat, lambda: load_history(store, graph, scope, start, end))
    _row("  of which: reading the store", times, f"{len(history.deployed)} deployments read")
    times, _ = await _timed(repeat, lambda: _compute(history, start, end))
    _row("  of which: computing the four keys", times, "")

    times, weekly = await _timed(
        repeat,
        lambda: get_dora_metrics(store, graph, now, since=WINDOW, group_by="week", limit=104),
    )
    _row("DORA, organisation, by week", times, f"{len(weekly.periods)} weeks")

    team = await _biggest_team(store)
    times, by_team = await _timed(
        repeat, lambda: get_dora_metrics(store, graph, now, scope="team", name=team, since=WINDOW)
    )
    _row(f"DORA, team {team}", times, f"{by_team.services} services")

    times, failures = await _timed(repeat, lambda: list_scorecard_failures(store, graph, now))
    levels = ", ".join(f"{n} {lvl}" for lvl, n in failures.levels.items())
    _row(
        f"scorecards, all {failures.entities} services",
        times,
        f"{failures.page.total} failing rules; {levels}",
    )

    service = next(iter(graph.services))
    times, card = await _timed(repeat, lambda: get_scorecard(store, graph, service, now))
    _row("scorecard of one service", times, f"{service}: {card.results[0].level}")

    times, reliability = await _timed(
        repeat, lambda: get_reliability(store, graph, "organisation", now, since=WINDOW)
    )
    _row(
        "reliability, organisation (flakiest ranking)",
        times,
        f"{reliability.incidents} incidents, {reliability.flakiest_page.total} services ranked",
    )


async def _compute(history: Any, start: Any, end: Any) -> Any:
    return compute_dora(history, start, end)


async def _bulk_load(store: Store, args: argparse.Namespace) -> None:
    """Parse the synthetic documents with the catalog's codecs and insert their rows."""
    bodies = generate(
        args.size, seed=args.seed, deployments=args.deployments, incidents=args.incidents
    )
    batch: list[Document] = []
    for index, body in enumerate(bodies, start=1):
        batch.append(Document("synthetic", index, body))
        if len(batch) == 20_000:
            await _insert(store, batch)
            batch = []
    await _insert(store, batch)


async def _insert(store: Store, documents: list[Document]) -> None:
    entities, problems, _ = parse_documents(documents)
    if problems:
        raise CatalogLoadError(problems)
    rows: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for entity in entities:
        parsed = entity.parsed
        table = CODECS[parsed.kind].table
        rows[table].append(table.model_validate(parsed.columns | {"source": "bench"}).model_dump())
        for child in parsed.children:
            rows[child.table].append(child.values | {"owner_ref": f"{parsed.kind}:{parsed.name}"})
    async with store.transaction() as session:
        for table, values in rows.items():
            for first in range(0, len(values), 2_000):
                await session.execute(insert(table), values[first : first + 2_000])


async def run(args: argparse.Namespace) -> None:
    async with _database(args.postgres, args.keep) as url:
        reuse = args.keep is not None and args.keep.exists()
        store = await Store.open(url)
        try:
            started = time.perf_counter()
            if not reuse:
                await _bulk_load(store, args)
                print(f"generated and inserted in {time.perf_counter() - started:.1f} s")
            print(f"{store.dialect}: {await _counts(store)}", flush=True)
            started = time.perf_counter()
            graph = await build_graph(store)
            print(f"graph built in {time.perf_counter() - started:.1f} s\n", flush=True)
            await _measure(store, graph, args.repeat)
        finally:
            await store.close()


def main() -> None:
    asyncio.run(run(parse_arguments()))


if __name__ == "__main__":
    main()
