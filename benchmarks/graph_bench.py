"""How fast the catalog loads, the graph builds and impact answers, on a synthetic catalog.

    .venv/bin/python -m benchmarks.graph_bench --size large
    .venv/bin/python -m benchmarks.graph_bench --size large --db /tmp/large.db   # keep it
    .venv/bin/python -m benchmarks.graph_bench --size medium --deployments 20000 --incidents 5000

Prints one table: generating and loading the catalog (skipped when --db already holds it),
building the graph (wall and CPU time; CPU time is the steadier figure on a shared
machine), peak memory, and the latency of impact_of_incident and get_dependencies over
--samples random services: in process (the domain functions, as a tool calls them) and
through an in-memory MCP client (fewer samples; protocol and validation included).
Targets on large: impact p50 under 5 ms, graph build under 2 s, under 500 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp import Client

from benchmarks.synthetic import ANCHOR, SIZES, documents
from resilience_mcp.catalog.loader import load_documents
from resilience_mcp.graph.catalog import CatalogGraph, build_graph
from resilience_mcp.graph.impact import compute_impact, find_impact
from resilience_mcp.graph.risk import count_dependents
from resilience_mcp.graph.walk import edge_index, get_dependencies
from resilience_mcp.server import ServerConfig, build_server
from resilience_mcp.store import Store

__all__ = ["main", "run"]


@dataclass
class Row:
    what: str
    value: str
    note: str = ""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def latency_rows(
    what: str, measured: tuple[list[float], float], target_ms: float | None = None
) -> Row:
    seconds, cpu = measured
    p50, p99 = percentile(seconds, 0.5) * 1000, percentile(seconds, 0.99) * 1000
    note = f"CPU {cpu * 1000:.2f} ms a call"
    if target_ms is not None:
        note += f"; target p50 < {target_ms:g} ms"
    return Row(what, f"p50 {p50:.2f} ms, p99 {p99:.2f} ms", note)


async def timed(calls: list[Callable[[], Awaitable[Any]]]) -> tuple[list[float], float]:
    """Wall time of each call, and the CPU time of all of them (steadier when shared)."""
    spent = []
    cpu = time.process_time()
    for call in calls:
        started = time.perf_counter()
        await call()
        spent.append(time.perf_counter() - started)
    return spent, (time.process_time() - cpu) / max(1, len(calls))


async def load_catalog(store: Store, args: argparse.Namespace, rows: list[Row]) -> None:
    """Generate and load the catalog, unless the store already holds services."""
    if await store.catalog_version() > 0:
        rows.append(Row("load", "skipped", "the database already holds a catalog"))
        return
    started = time.perf_counter()
    docs = documents(
        args.size, seed=args.seed, deployments=args.deployments, incidents=args.incidents
    )
    rows.append(
        Row(
            "generate documents",
            f"{time.perf_counter() - started:.2f} s",
            f"{len(docs):,} documents",
        )
    )
    started, cpu = time.perf_counter(), time.process_time()
    await load_documents(store, docs, source=f"synthetic:{args.size}")
    rows.append(
        Row(
            "load_documents",
            f"{time.perf_counter() - started:.1f} s",
            f"CPU {time.process_time() - cpu:.1f} s",
        )
    )


def rss_mb() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def build(store: Store, rows: list[Row]) -> CatalogGraph:
    before = rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    graph = await build_graph(store)
    rows.append(
        Row(
            "graph build",
            f"{time.perf_counter() - started:.2f} s",
            f"CPU {time.process_time() - cpu:.2f} s; target < 2 s",
        )
    )
    rows.append(
        Row(
            "peak RSS after the build",
            f"{rss_mb():.0f} MB",
            f"{before:.0f} MB before it (the load, when there was one); target < 500 MB",
        )
    )
    # A second build, traced: what building the graph allocates, temporaries included.
    tracemalloc.start()
    await build_graph(store)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rows.append(Row("graph build, allocations at peak", f"{peak / 2**20:.0f} MB", "tracemalloc"))
    rows.append(
        Row(
            "graph",
            f"{len(graph.services):,} services, {graph.dependencies.number_of_edges():,} edges",
            f"{len(graph.features):,} features, {len(graph.flags):,} flags, "
            f"{len(graph.customers):,} customers",
        )
    )
    started = time.perf_counter()
    edge_index(graph)
    rows.append(
        Row(
            "edge index, on first use",
            f"{(time.perf_counter() - started) * 1000:.0f} ms",
            "once per graph version; every walk uses it",
        )
    )
    started = time.perf_counter()
    count_dependents(graph)
    rows.append(
        Row(
            "dependent counts, on first use",
            f"{(time.perf_counter() - started) * 1000:.0f} ms",
            "once per graph version; find_risks uses them",
        )
    )
    return graph


async def in_process(
    store: Store, graph: CatalogGraph, services: list[str], rows: list[Row]
) -> None:
    impact = await timed(
        [lambda s=s: compute_impact(store, graph, ANCHOR, services=[s]) for s in services]  # type: ignore[misc]
    )
    rows.append(latency_rows("impact_of_incident (in process)", impact, 5))

    async def graph_part(name: str) -> None:
        find_impact(graph, [name])

    walk_only = await timed([lambda s=s: graph_part(s) for s in services])  # type: ignore[misc]
    rows.append(latency_rows("  of which the walk (find_impact)", walk_only))

    async def dependencies(name: str, direction: str) -> None:
        get_dependencies(graph, name, direction)  # type: ignore[arg-type]

    down = await timed([lambda s=s: dependencies(s, "down") for s in services])  # type: ignore[misc]
    up = await timed([lambda s=s: dependencies(s, "up") for s in services])  # type: ignore[misc]
    rows.append(latency_rows("get_dependencies down (in process)", down))
    rows.append(latency_rows("get_dependencies up (in process)", up))


async def through_mcp(db_url: str, services: list[str], rows: list[Row]) -> None:
    config = ServerConfig(db_url=db_url, clock=lambda: ANCHOR)
    async with Client(build_server(config)) as client:
        impact = await timed(
            [
                lambda s=s: client.call_tool("impact_of_incident", {"services": [s]})  # type: ignore[misc]
                for s in services
            ]
        )
        down = await timed(
            [
                lambda s=s: client.call_tool("get_dependencies", {"name": s})  # type: ignore[misc]
                for s in services
            ]
        )
    rows.append(latency_rows("impact_of_incident (MCP client)", impact))
    rows.append(latency_rows("get_dependencies down (MCP client)", down))


async def run(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    scratch = None
    path = Path(args.db) if args.db else None
    if path is None:
        scratch = tempfile.TemporaryDirectory(prefix="graph-bench-")
        path = Path(scratch.name) / "catalog.db"
    db_url = f"sqlite+aiosqlite:///{path}"
    store = await Store.open(db_url)
    try:
        await load_catalog(store, args, rows)
        graph = await build(store, rows)
        rng = random.Random(args.seed)
        services = rng.choices(sorted(graph.services), k=args.samples)
        await in_process(store, graph, services, rows)
    finally:
        await store.close()
    await through_mcp(db_url, services[: args.mcp_samples], rows)
    rows.append(
        Row(
            "peak RSS at the end",
            f"{rss_mb():.0f} MB",
            "three graphs by then: the bench's, the traced one, the MCP server's",
        )
    )
    if scratch is not None:
        scratch.cleanup()
    return rows


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    size = SIZES[args.size]
    print(
        f"synthetic {args.size}: {size.services:,} services, seed {args.seed}, "
        f"{args.deployments:,} deployments, {args.incidents:,} incidents, "
        f"{args.samples} samples ({args.mcp_samples} through MCP)"
    )
    width = max(len(r.what) for r in rows)
    value_width = max(len(r.value) for r in rows)
    for row in rows:
        print(f"  {row.what:<{width}}  {row.value:<{value_width}}  {row.note}".rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.graph_bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="large")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--samples", type=int, default=1000, help="services to time in process")
    parser.add_argument("--mcp-samples", type=int, default=200, help="of those, through MCP")
    parser.add_argument("--deployments", type=int, default=20_000)
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument(
        "--db", help="a SQLite file to load into, or to reuse when it has a catalog"
    )
    args = parser.parse_args(argv)
    print_table(asyncio.run(run(args)), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
