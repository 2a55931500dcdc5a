"""The scale benchmarks in one command: synthetic catalogs, each read tool's latency beside a
no-op tool in process, over stdio and over HTTP, and the large-history measurements.

    .venv/bin/python -m benchmarks.run                           # small, medium, large, extras
    .venv/bin/python -m benchmarks.run --sizes small,medium --no-extras
    .venv/bin/python -m benchmarks.run --quick                   # small only: a smoke run

For each size, a child process generates the catalog (a fixed seed), loads it into a SQLite
file and builds the graph, so that its peak memory is that size's alone. Then every read
tool is called with names from that catalog: through an in-memory MCP client, through a
real MCP client over stdio to `resilience-mcp serve`, and over streamable HTTP to
`resilience-mcp serve --http` on a free loopback port. `noop`, a tool that does nothing
(offered only when RESILIENCE_MCP_BENCH_NOOP=1, see server/app.py), is timed the same way
in the same run: it is the floor the protocol sets, and each tool's p50 is shown as a
multiple of it. Beside impact, a recursive SQL query over the dependency table asks the
same question. The extras run the existing benchmarks in child processes: find_similar_rca
over 100,000 incidents, find_similar_rca against TF-IDF on the public postmortem sets, and
DORA over 200,000 deployments. Tables go to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy import text

from benchmarks.answer_sizes import read_tools, sample_arguments, synthetic_samples
from benchmarks.synthetic import SIZES, documents
from resilience_mcp.catalog.loader import load_documents
from resilience_mcp.graph import build_graph
from resilience_mcp.graph.impact import find_impact
from resilience_mcp.server import ServerConfig, build_server
from resilience_mcp.server.app import BENCH_NOOP_ENV, add_noop_tool
from resilience_mcp.server.state import KEPT_ANSWERS
from resilience_mcp.store import Store

__all__ = [
    "HISTORY",
    "Loaded",
    "ToolTimes",
    "http_server",
    "load_size",
    "main",
    "measure_size",
    "percentile",
]

logger = logging.getLogger("benchmarks.run")

CLI = [sys.executable, "-m", "resilience_mcp.cli", "-q", "serve"]
# Deployments and incidents loaded with each size's catalog.
HISTORY = {"small": (500, 200), "medium": (5_000, 2_000), "large": (20_000, 10_000)}
START_TIMEOUT = 120.0
NOOP = "noop"


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# Loading, in a child process


@dataclass(frozen=True)
class Loaded:
    size: str
    services: int
    documents: int
    generate_s: float
    load_s: float
    graph_s: float
    peak_rss_mb: float


def load_size(size: str, path: str, seed: int) -> Loaded:
    """Generate and load one catalog into the SQLite file `path`, then build its graph."""
    return asyncio.run(_load(size, path, seed))


async def _load(size: str, path: str, seed: int) -> Loaded:
    deployments, incidents = HISTORY[size]
    started = time.perf_counter()
    docs = documents(size, seed=seed, deployments=deployments, incidents=incidents)
    generated = time.perf_counter() - started

    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    try:
        started = time.perf_counter()
        await load_documents(store, docs, source=f"synthetic:{size}")
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        graph = await build_graph(store)
        built = time.perf_counter() - started
    finally:
        await store.close()
    return Loaded(size, len(graph.services), len(docs), generated, loaded, built, rss_mb())


def load_in_child(size: str, path: Path, seed: int) -> Loaded:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(load_size, size, str(path), seed).result()


# Timing tools through a client


@dataclass
class ToolTimes:
    """Each tool's call times, in milliseconds, through one transport."""

    transport: str
    times: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    # In process: how long the SDK client's check of each answer against the tool's output
    # schema takes (it runs on every call, in the caller's process).
    checks: dict[str, float] = field(default_factory=dict)

    def p50(self, tool: str) -> float:
        return statistics.median(self.times[tool])

    def p99(self, tool: str) -> float:
        return percentile(self.times[tool], 0.99)

    def ratio(self, tool: str) -> float:
        return self.p50(tool) / self.p50(NOOP)


async def time_calls(
    client: Client, transport: str, calls: dict[str, dict[str, Any]], samples: int
) -> ToolTimes:
    """Two untimed calls of each tool, then `samples` timed; noop first and last, pooled."""
    result = ToolTimes(transport)
    schemas = {t.name: t.output_schema for t in (await client.list_tools()).tools}
    order = [NOOP, *calls, NOOP]
    for tool in order:
        arguments = calls.get(tool, {})
        for _ in range(2):
            await client.call_tool(tool, arguments)
        for _ in range(samples):
            started = time.perf_counter()
            answer = await client.call_tool(tool, arguments)
            result.times.setdefault(tool, []).append((time.perf_counter() - started) * 1000)
            if answer.is_error:
                result.errors[tool] = result.errors.get(tool, 0) + 1
        if transport == "in-process" and answer.structured_content is not None:
            result.checks[tool] = schema_check_ms(schemas.get(tool), answer.structured_content)
    return result


def schema_check_ms(
    schema: dict[str, Any] | None, content: dict[str, Any], repeat: int = 5
) -> float:
    """The median time to check `content` against `schema` as the SDK's client does."""
    if schema is None:
        return 0.0
    validator = validator_for(schema)(schema)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        best_match(validator.iter_errors(content))
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def tool_calls(client: Client, url: str) -> dict[str, dict[str, Any]]:
    """Every read tool but noop, with arguments naming things in the catalog at `url`."""
    store = await Store.open(url)
    try:
        samples = await synthetic_samples(store)
    finally:
        await store.close()
    calls = {}
    for tool in read_tools((await client.list_tools()).tools):
        if tool.name == NOOP:
            continue
        try:
            calls[tool.name] = sample_arguments(tool, samples)
        except KeyError as exc:
            logger.warning("skipped: %s", exc)
    return calls


async def in_process(url: str, samples: int) -> tuple[dict[str, dict[str, Any]], ToolTimes]:
    server = build_server(ServerConfig(db_url=url, toolsets=("all",)))
    add_noop_tool(server)
    async with Client(server) as client:
        calls = await tool_calls(client, url)
        return calls, await time_calls(client, "in-process", calls, samples)


async def computed_afresh(url: str, calls: dict[str, dict[str, Any]], samples: int) -> ToolTimes:
    """The tools whose answers are kept (`KEPT_ANSWERS`), with nothing kept: what the first
    call after a write costs."""
    server = build_server(ServerConfig(db_url=url, toolsets=("all",), answer_ttl_seconds=0))
    add_noop_tool(server)
    kept = {tool: arguments for tool, arguments in calls.items() if tool in KEPT_ANSWERS}
    async with Client(server) as client:
        return await time_calls(client, "afresh", kept, samples)


async def over_stdio(url: str, calls: dict[str, dict[str, Any]], samples: int) -> ToolTimes:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")}
    env[BENCH_NOOP_ENV] = "1"
    args = [*CLI[1:], "--db", url, "--toolsets", "all", "--no-sync"]
    params = StdioServerParameters(command=sys.executable, args=args, env=env)
    async with Client(params) as client:
        return await time_calls(client, "stdio", calls, samples)


async def over_http(
    url: str, calls: dict[str, dict[str, Any]], samples: int, folder: Path
) -> ToolTimes:
    with http_server(url, folder / "http.log") as base:
        async with http_client(base) as client:
            return await time_calls(client, "http", calls, samples)


# A real HTTP server


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def http_server(
    db_url: str, log: Path, *extra: str, env: dict[str, str] | None = None
) -> Iterator[str]:
    """`serve --http` on a free loopback port, with noop; yields its base URL, then stops it."""
    port = free_port()
    args = [*CLI, "--http", "--port", str(port), "--db", db_url, "--toolsets", "all", "--no-sync"]
    child_env = os.environ | {BENCH_NOOP_ENV: "1"} | (env or {})
    with log.open("wb") as output:
        process = subprocess.Popen([*args, *extra], stdout=output, stderr=output, env=child_env)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(process, base, log)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_healthy(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx2.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        try:
            process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue
    raise RuntimeError(f"the server was not healthy within {START_TIMEOUT:g} s")


@asynccontextmanager
async def http_client(base: str, token: str | None = None) -> AsyncIterator[Client]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    timeout = httpx2.Timeout(120.0)
    async with (
        httpx2.AsyncClient(base_url=base, headers=headers, timeout=timeout) as http,
        Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client,
    ):
        yield client


# Impact beside a recursive SQL query

# Every service that depends on :name, directly or not; UNION drops repeats, so cycles end.
DEPENDENTS_SQL = """
WITH RECURSIVE up(name) AS (
    SELECT source FROM dependency WHERE target = :name
    UNION
    SELECT d.source FROM dependency d JOIN up ON d.target = up.name
)
SELECT count(*) FROM up WHERE name != :name
"""


@dataclass(frozen=True)
class Versus:
    graph_ms: list[float]
    sql_ms: list[float]
    agree: int


async def impact_versus_sql(url: str, count: int) -> Versus:
    """The graph's impact walk and the recursive query, for the `count` most-needed services."""
    store = await Store.open(url)
    try:
        graph = await build_graph(store)
        async with store.session() as session:
            top = await session.execute(
                text("SELECT target FROM dependency GROUP BY target ORDER BY count(*) DESC, target")
            )
            names = [row[0] for row in top.fetchall()[:count]]
            graph_ms, sql_ms, agree = [], [], 0
            for name in names:
                started = time.perf_counter()
                reached = len(set(find_impact(graph, [name]).ranked) - {name})
                graph_ms.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                counted = (await session.execute(text(DEPENDENTS_SQL), {"name": name})).scalar()
                sql_ms.append((time.perf_counter() - started) * 1000)
                agree += reached == counted
    finally:
        await store.close()
    return Versus(graph_ms, sql_ms, agree)


# One size


@dataclass
class SizeResult:
    loaded: Loaded
    timings: list[ToolTimes]
    versus: Versus
    afresh: ToolTimes


async def measure_size(
    size: str, folder: Path, *, seed: int, samples: int, transports: Sequence[str]
) -> SizeResult:
    path = folder / f"{size}.db"
    logger.warning("%s: generating and loading", size)
    loaded = load_in_child(size, path, seed)
    url = f"sqlite+aiosqlite:///{path}"

    logger.warning("%s: timing tools in process", size)
    calls, first = await in_process(url, samples)
    timings = [first]
    if "stdio" in transports:
        logger.warning("%s: timing tools over stdio", size)
        timings.append(await over_stdio(url, calls, samples))
    if "http" in transports:
        logger.warning("%s: timing tools over HTTP", size)
        timings.append(await over_http(url, calls, samples, folder))
    versus = await impact_versus_sql(url, min(samples, 50))
    logger.warning("%s: timing kept answers computed afresh", size)
    afresh = await computed_afresh(url, calls, min(samples, 10))
    return SizeResult(loaded, timings, versus, afresh)


def print_size(result: SizeResult) -> None:
    loaded = result.loaded
    print(
        f"\n## {loaded.size}: {loaded.services:,} services, {loaded.documents:,} documents\n"
        f"generate {loaded.generate_s:.1f} s, load {loaded.load_s:.1f} s, "
        f"graph build {loaded.graph_s:.2f} s, peak RSS {loaded.peak_rss_mb:.0f} MB\n"
    )
    header = ["tool"]
    for timing in result.timings:
        header += [f"{timing.transport} p50 ms", "p99 ms", "x noop"]
        if timing.checks:
            header.append("of which schema check ms")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for tool in result.timings[0].times:
        cells = [tool]
        for timing in result.timings:
            errors = timing.errors.get(tool, 0)
            mark = f" ({errors} errors)" if errors else ""
            cells += [f"{timing.p50(tool):.2f}{mark}", f"{timing.p99(tool):.2f}"]
            cells.append(f"{timing.ratio(tool):.1f}")
            if timing.checks:
                cells.append(f"{timing.checks.get(tool, 0.0):.2f}")
        print("| " + " | ".join(cells) + " |")
    afresh = result.afresh
    print(
        "\nKept answers computed afresh (answer_ttl_seconds=0), in process: "
        + "; ".join(
            f"{tool} p50 {afresh.p50(tool):.1f} ms, p99 {afresh.p99(tool):.1f} ms"
            for tool in afresh.times
            if tool != NOOP
        )
    )
    versus = result.versus
    print(
        f"\nimpact walk (find_impact) p50 {statistics.median(versus.graph_ms):.2f} ms, "
        f"p99 {percentile(versus.graph_ms, 0.99):.2f} ms; recursive SQL over dependency p50 "
        f"{statistics.median(versus.sql_ms):.2f} ms, p99 {percentile(versus.sql_ms, 0.99):.2f} ms; "
        f"same count of dependents for {versus.agree} of {len(versus.sql_ms)} services",
        flush=True,
    )


# The existing large-history benchmarks

EXTRAS = [
    ("find_similar_rca over 100,000 incidents", ["benchmarks.rca_bench", "--incidents", "100000"]),
    ("find_similar_rca against TF-IDF, public postmortem sets", ["benchmarks.rca_eval"]),
    ("DORA over 200,000 deployments, scorecards of 10,000 services", ["benchmarks.metrics_bench"]),
]
EXTRA_TIMEOUT = 3600.0


def run_extras() -> None:
    for title, module in EXTRAS:
        print(f"\n## {title}\n\n    python -m {' '.join(module)}\n", flush=True)
        try:
            subprocess.run([sys.executable, "-m", *module], timeout=EXTRA_TIMEOUT, check=True)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            print(f"failed: {exc}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--sizes", default="small,medium,large", help="comma-separated sizes")
    parser.add_argument("--quick", action="store_true", help="small only, fewer calls, no extras")
    parser.add_argument("--samples", type=int, default=30, help="timed calls of each tool")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--transports", default="in-process,stdio,http")
    parser.add_argument("--no-extras", action="store_true", help="skip the large-history runs")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(message)s")

    sizes = ["small"] if args.quick else [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {', '.join(unknown)}; choose from {', '.join(SIZES)}")
    samples = min(args.samples, 10) if args.quick else args.samples
    transports = args.transports.split(",")

    print(f"# resilience-mcp benchmarks, seed {args.seed}, {samples} timed calls a tool")
    with tempfile.TemporaryDirectory(prefix="bench-run-") as scratch:
        for size in sizes:
            result = asyncio.run(
                measure_size(
                    size, Path(scratch), seed=args.seed, samples=samples, transports=transports
                )
            )
            print_size(result)
    if not (args.quick or args.no_extras):
        run_extras()
    return 0


if __name__ == "__main__":
    sys.exit(main())
