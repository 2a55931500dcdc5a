"""How long the flag, feature and "what changed" questions take on a large catalog.

    .venv/bin/python -m benchmarks.metrics_bench --size large --keep /tmp/large.db  # build once
    .venv/bin/python -m benchmarks.flags_bench /tmp/large.db

Opens a synthetic catalog already stored (a SQLite file, or a database URL), picks the
service with the most services below it among a sample, the service with the most flags,
and the feature with the most flags, then calls each domain function the flag tools call
`--repeat` times, printing the best and the median with what the answer held, so a fast
wrong answer shows. The clock stands at the synthetic catalog's anchor.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from benchmarks.synthetic import ANCHOR
from resilience_mcp.graph import build_graph
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.graph.changes import dependency_paths, list_recent_changes
from resilience_mcp.graph.features import (
    flags_touching_service,
    get_feature,
    get_flag_history,
    list_feature_flags,
)
from resilience_mcp.store import Store


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database", help="a SQLite file or a database URL holding a catalog")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measurement")
    return parser.parse_args()


async def _timed(repeat: int, run: Callable[[], Awaitable[Any]]) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await run()
        times.append(time.perf_counter() - started)
    return times, result


def _row(name: str, times: list[float], detail: str) -> None:
    best, middle = min(times) * 1000, statistics.median(times) * 1000
    print(f"{name:<44} {best:>8.1f} {middle:>8.1f}   {detail}", flush=True)


def _deepest(graph: CatalogGraph, sample: int = 200) -> str:
    """Among the first services by name, the one with the most services below it."""
    names = sorted(graph.services)[:: max(1, len(graph.services) // sample)]
    return max(names, key=lambda s: (len(dependency_paths(graph, [s])), s))


async def _measure(store: Store, graph: CatalogGraph, repeat: int) -> None:
    service = _deepest(graph)
    flagged = max(graph.services, key=lambda s: (len(flags_touching_service(graph, s)), s))
    feature = max(graph.features, key=lambda f: (len(graph.feature_flags.get(f, ())), f))
    flag = sorted(graph.feature_flags[feature])[0]
    week = ANCHOR - timedelta(days=7)
    print(f"service {service}, flagged service {flagged}, feature {feature}, flag {flag}\n")
    print(f"{'measurement':<44} {'best ms':>8} {'median':>8}   answer")

    async def paths() -> dict[str, list[str]]:
        return dependency_paths(graph, [service])

    times, reached = await _timed(repeat, paths)
    _row("dependency paths below one service", times, f"{len(reached) - 1} services")

    calls: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("recent changes, one service, 24 h", lambda: _changes(store, graph, [service])),
        ("recent changes, one service, 7 d", lambda: _changes(store, graph, [service], week)),
        ("recent changes, everything, 24 h", lambda: _changes(store, graph, [])),
        ("flags of one service", lambda: list_feature_flags(store, graph, ANCHOR, service=flagged)),
        ("every flag, kill switches first", lambda: list_feature_flags(store, graph, ANCHOR)),
        ("feature card", lambda: get_feature(store, graph, feature, ANCHOR)),
        ("flag history", lambda: get_flag_history(store, graph, flag)),
    ]
    for name, call in calls:
        times, result = await _timed(repeat, call)
        page = getattr(result, "page", None) or getattr(result, "flags_page", None)
        _row(name, times, f"{page.returned} of {page.total}" if page else "")


async def _changes(
    store: Store, graph: CatalogGraph, services: list[str], since: Any = None
) -> Any:
    return await list_recent_changes(store, graph, ANCHOR, services=services, since=since)


async def _run(args: argparse.Namespace) -> None:
    url = args.database if "://" in args.database else f"sqlite+aiosqlite:///{args.database}"
    store = await Store.open(url, create=False)
    try:
        started = time.perf_counter()
        graph = await build_graph(store)
        print(
            f"graph built in {time.perf_counter() - started:.1f} s: {len(graph.services)} "
            f"services, {len(graph.flags)} flags",
            flush=True,
        )
        await _measure(store, graph, args.repeat)
    finally:
        await store.close()


def main() -> None:
    asyncio.run(_run(_arguments()))


if __name__ == "__main__":
    main()
