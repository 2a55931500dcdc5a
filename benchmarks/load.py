"""A bounded load test: read tools over HTTP from 50 concurrent clients on the medium catalog,
then the same with writes mixed in.

    .venv/bin/python -m benchmarks.load                         # medium, 50 clients, 1,000 calls
    .venv/bin/python -m benchmarks.load --size small --clients 5 --requests 50

One `resilience-mcp serve --http` on a free loopback port, on a SQLite file holding the
synthetic catalog, with bearer tokens and writes enabled. Each client has its own HTTP
connection and MCP client, and takes the next call from a shared, fixed list until the list
is empty or the time cap is reached. The read phase cycles through every read tool with names
from the catalog; the mixed phase makes every fifth call a write (set_feature_flag or
update_incident), each with an idempotency key of its own. Errors (an error result or an
exception) must be zero. The table goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp import Client

from benchmarks.answer_sizes import synthetic_samples
from benchmarks.run import http_client, http_server, load_in_child, percentile, tool_calls
from resilience_mcp.server.auth import token_line
from resilience_mcp.store import Store

__all__ = [
    "READ_TOKEN",
    "WRITE_TOKEN",
    "Call",
    "PhaseResult",
    "main",
    "mixed_calls",
    "prepare",
    "run_phase",
]

logger = logging.getLogger("benchmarks.load")

READ_TOKEN = "rmcp_load-read-token"
WRITE_TOKEN = "rmcp_load-write-token"
WRITE_EVERY = 5


@dataclass(frozen=True)
class Call:
    tool: str
    arguments: dict[str, Any]
    token: str


@dataclass
class PhaseResult:
    name: str
    clients: int
    planned: int
    seconds: float = 0.0
    times: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    capped: bool = False

    @property
    def done(self) -> int:
        return len(self.times)


async def _worker(base: str, queue: asyncio.Queue[Call], result: PhaseResult) -> None:
    """One client: its own connections, calls taken from the queue until it is empty."""
    async with AsyncExitStack() as stack:
        clients: dict[str, Client] = {}
        while not queue.empty():
            call = queue.get_nowait()
            if call.token not in clients:
                clients[call.token] = await stack.enter_async_context(http_client(base, call.token))
            started = time.perf_counter()
            try:
                answer = await clients[call.token].call_tool(call.tool, call.arguments)
                if answer.is_error:
                    result.errors.append(f"{call.tool}: {answer.content}")
            except Exception as exc:  # every failure counts, whatever its kind
                result.errors.append(f"{call.tool}: {exc!r}")
            result.times.append((time.perf_counter() - started) * 1000)


async def run_phase(
    name: str, base: str, calls: Sequence[Call], clients: int, cap: float
) -> PhaseResult:
    """Run `calls` from `clients` concurrent clients, stopping at `cap` seconds."""
    queue: asyncio.Queue[Call] = asyncio.Queue()
    for call in calls:
        queue.put_nowait(call)
    result = PhaseResult(name, clients, len(calls))
    started = time.perf_counter()
    workers = [asyncio.create_task(_worker(base, queue, result)) for _ in range(clients)]
    try:
        async with asyncio.timeout(cap):
            await asyncio.gather(*workers)
    except TimeoutError:
        result.capped = True
    result.seconds = time.perf_counter() - started
    return result


def read_calls(reads: dict[str, dict[str, Any]], count: int) -> list[Call]:
    cycle = itertools.cycle(sorted(reads.items()))
    return [Call(tool, arguments, READ_TOKEN) for tool, arguments in itertools.islice(cycle, count)]


def mixed_calls(
    reads: dict[str, dict[str, Any]], count: int, flag: str, environment: str, incident: str
) -> list[Call]:
    """Reads with every WRITE_EVERY-th call a write, each with an idempotency key of its own."""
    calls = read_calls(reads, count)
    for index in range(0, count, WRITE_EVERY):
        key = f"load-{uuid.uuid4().hex}"
        if (index // WRITE_EVERY) % 2:
            arguments = {"key": incident, "note": f"load test note {index}"}
            tool = "update_incident"
        else:
            arguments = {"flag": flag, "environment": environment, "enabled": index % 4 == 0}
            arguments["reason"] = f"load test write {index}"
            tool = "set_feature_flag"
        calls[index] = Call(tool, arguments | {"idempotency_key": key}, WRITE_TOKEN)
    return calls


async def prepare(base: str, url: str) -> tuple[dict[str, dict[str, Any]], Any, str]:
    """The read calls, the catalog's sample names, and an open incident to write notes on."""
    store = await Store.open(url)
    try:
        samples = await synthetic_samples(store)
    finally:
        await store.close()
    async with http_client(base, WRITE_TOKEN) as client:
        reads = await tool_calls(client, url)
        declared = await client.call_tool(
            "declare_incident",
            {"title": "Load test incident", "severity": "SEV3", "services": [samples.service]},
        )
    if declared.is_error or declared.structured_content is None:
        raise RuntimeError(f"could not declare the load test's incident: {declared.content}")
    return reads, samples, str(declared.structured_content["name"])


async def _run(args: argparse.Namespace, folder: Path) -> list[PhaseResult]:
    path = folder / f"{args.size}.db"
    logger.warning("%s: generating and loading", args.size)
    load_in_child(args.size, path, args.seed)
    url = f"sqlite+aiosqlite:///{path}"
    tokens = folder / "tokens"
    tokens.write_text(
        token_line("load-reader", "read", READ_TOKEN)
        + "\n"
        + token_line("load-writer", "read,write", WRITE_TOKEN)
        + "\n"
    )
    extra = ("--enable-writes", "--tokens-file", str(tokens))
    with http_server(url, folder / "server.log", *extra) as base:
        reads, samples, incident = await prepare(base, url)
        reads.pop("noop", None)
        logger.warning("reads: %d calls from %d clients", args.requests, args.clients)
        only_reads = read_calls(reads, args.requests)
        first = await run_phase("reads", base, only_reads, args.clients, args.cap)
        mixed = mixed_calls(reads, args.requests, samples.flag, samples.environment, incident)
        logger.warning("reads and writes: %d calls", args.requests)
        second = await run_phase("reads + 20% writes", base, mixed, args.clients, args.cap)
    return [first, second]


def print_table(results: list[PhaseResult], size: str) -> None:
    print(f"\n## load test, synthetic {size}, HTTP on 127.0.0.1\n")
    print(
        "| phase | clients | calls done / planned | seconds | calls/s | p50 ms | p99 ms | errors |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        capped = " (time cap)" if r.capped else ""
        rate = r.done / r.seconds if r.seconds else 0.0
        p50 = statistics.median(r.times) if r.times else 0.0
        p99 = percentile(r.times, 0.99) if r.times else 0.0
        print(
            f"| {r.name} | {r.clients} | {r.done} / {r.planned}{capped} | {r.seconds:.1f} | "
            f"{rate:.1f} | {p50:.0f} | {p99:.0f} | {len(r.errors)} |"
        )
    for r in results:
        for error in r.errors[:5]:
            print(f"error in {r.name}: {error[:300]}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__)
    parser.add_argument("--size", default="medium", choices=("small", "medium", "large"))
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=1000, help="calls in each phase")
    parser.add_argument("--cap", type=float, default=300.0, help="seconds at most per phase")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(message)s")

    with tempfile.TemporaryDirectory(prefix="bench-load-") as scratch:
        results = asyncio.run(_run(args, Path(scratch)))
    print_table(results, args.size)
    return 1 if any(r.errors or r.capped for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
