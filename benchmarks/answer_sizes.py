"""How big each read tool's answer is, in tokens (approximate), with its default arguments.

    .venv/bin/python -m benchmarks.answer_sizes                     # the demo catalog
    .venv/bin/python -m benchmarks.answer_sizes --synthetic large   # and a synthetic one

Each read tool is called once through an in-process MCP client with only the arguments it
needs (its defaults otherwise), the way an agent first calls it, and again with
detail="full". Three counts are printed: the text an agent shows, the whole answer a client
receives (text plus structured content), and the whole answer with detail="full". Tokens
are approximate: the larger of characters / 4 and the number of words and runs of
punctuation, which is close to what BPE tokenizers give for English and JSON.
An answer over BUDGET_TOKENS is marked.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.types import CallToolResult, TextContent, Tool
from sqlalchemy import func
from sqlmodel import col, select

from resilience_mcp import models as m
from resilience_mcp.catalog import DEMO_ANCHOR, load_demo
from resilience_mcp.server import ServerConfig, build_server
from resilience_mcp.store import Store

__all__ = [
    "BUDGET_TOKENS",
    "DEMO_SAMPLES",
    "AnswerSize",
    "Samples",
    "approx_tokens",
    "measure",
    "sample_arguments",
]

BUDGET_TOKENS = 4000
# A word, or a run of punctuation such as `":"` or `"},{"`, which BPE tokenizers merge.
_PIECES = re.compile(r"\w+|[^\w\s]+")


def approx_tokens(text: str) -> int:
    return max(-(-len(text) // 4), len(_PIECES.findall(text)))


@dataclass(frozen=True)
class Samples:
    """Names that exist in a catalog, to call tools with."""

    service: str
    upstream: str  # a service that depends on `service`, for path questions
    team: str
    feature: str
    flag: str
    incident: str
    environment: str
    text: str


DEMO_SAMPLES = Samples(
    service="payments-api",
    upstream="web-storefront",
    team="team-payments",
    feature="card-payments",
    flag="saved-cards-network-tokens",
    incident="INC-2049",
    environment="prod-eu",
    text="card declines up on saved Mastercard cards, do_not_honor from issuers",
)


def _calls(s: Samples) -> dict[str, dict[str, Any]]:
    """Arguments for tools whose needs cannot be told from their parameter names alone."""
    return {
        "search_catalog": {"query": s.service.split("-")[0]},
        "get_feature": {"name": s.feature},
        "get_flag_history": {"key": s.flag},
        "get_scorecard": {"name": s.service},
        "get_reliability": {"name": s.service},
        "find_similar_rca": {"text": s.text},
        "impact_of_incident": {"incident": s.incident},
        "get_customer_impact": {"services": [s.service]},
        "explain_dependency": {"source": s.upstream, "target": s.service},
        "get_dependencies": {"name": s.service},
    }


def _by_parameter(s: Samples) -> dict[str, Any]:
    """Values for a required parameter, by its name, for every other tool."""
    return {
        "name": s.service,
        "service": s.service,
        "services": [s.service],
        "key": s.incident,
        "incident": s.incident,
        "team": s.team,
        "feature": s.feature,
        "flag": s.flag,
        "environment": s.environment,
        "query": s.text,
        "text": s.text,
    }


def sample_arguments(tool: Tool, samples: Samples = DEMO_SAMPLES) -> dict[str, Any]:
    """The arguments to call `tool` with; KeyError names a required parameter with no sample."""
    explicit = _calls(samples).get(tool.name)
    if explicit is not None:
        return explicit
    values = _by_parameter(samples)
    required = tool.input_schema.get("required", [])
    missing = [p for p in required if p not in values]
    if missing:
        raise KeyError(f"{tool.name} needs {', '.join(missing)}; add a sample for it")
    return {p: values[p] for p in required}


@dataclass(frozen=True)
class AnswerSize:
    tool: str
    arguments: dict[str, Any]
    error: str | None
    text_tokens: int
    total_tokens: int
    # The same call with detail="full".
    full_tokens: int = 0

    @property
    def over_budget(self) -> bool:
        return self.total_tokens > BUDGET_TOKENS


def size_of(tool: str, arguments: dict[str, Any], result: CallToolResult) -> AnswerSize:
    text = "\n".join(b.text for b in result.content if isinstance(b, TextContent))
    structured = json.dumps(result.structured_content or {}, separators=(",", ":"))
    return AnswerSize(
        tool=tool,
        arguments=arguments,
        error=text if result.is_error else None,
        text_tokens=approx_tokens(text),
        total_tokens=approx_tokens(text) + approx_tokens(structured),
    )


def read_tools(tools: Iterable[Tool]) -> list[Tool]:
    return sorted(
        (t for t in tools if t.annotations and t.annotations.read_only_hint), key=lambda t: t.name
    )


async def measure(client: Client, samples: Samples) -> list[AnswerSize]:
    """Calls every read tool the client offers once and sizes its answer."""
    sizes = []
    for tool in read_tools((await client.list_tools()).tools):
        try:
            arguments = sample_arguments(tool, samples)
        except KeyError as exc:
            sizes.append(AnswerSize(tool.name, {}, str(exc), 0, 0))
            continue
        result = await client.call_tool(tool.name, arguments)
        full = await client.call_tool(tool.name, {**arguments, "detail": "full"})
        size = size_of(tool.name, arguments, result)
        full_tokens = size_of(tool.name, arguments, full).total_tokens
        sizes.append(dataclasses.replace(size, full_tokens=full_tokens))
    return sizes


async def synthetic_samples(store: Store) -> Samples:
    """Names from a loaded synthetic catalog, chosen for big answers: the service with the
    most dependents, its owner, the newest incident."""
    async with store.session() as session:
        target = await session.execute(
            select(m.Dependency.target)
            .group_by(col(m.Dependency.target))
            .order_by(func.count().desc())
            .limit(1)
        )
        service = target.scalar_one()
        upstream = await session.execute(
            select(m.Dependency.source).where(col(m.Dependency.target) == service).limit(1)
        )
        owner = await session.execute(select(m.Service.owner).where(col(m.Service.name) == service))
        feature = await session.execute(select(m.Feature.name).limit(1))
        flag = await session.execute(select(m.FeatureFlag.key).limit(1))
        incident = await session.execute(
            select(m.Incident.name).order_by(col(m.Incident.started_at).desc()).limit(1)
        )
    return Samples(
        service=service,
        upstream=upstream.scalar_one(),
        team=owner.scalar_one() or "",
        feature=feature.scalar_one(),
        flag=flag.scalar_one(),
        incident=incident.scalar_one_or_none() or "none",
        environment="prod-us",
        text=f"timeouts and 5xx errors on {service} after a deploy",
    )


async def run(label: str, db_url: str, samples: Samples) -> list[AnswerSize]:
    config = ServerConfig(db_url=db_url, toolsets=("all",), clock=lambda: DEMO_ANCHOR)
    async with Client(build_server(config)) as client:
        sizes = await measure(client, samples)
    print_table(label, sizes)
    return sizes


def print_table(label: str, sizes: list[AnswerSize]) -> None:
    print(f"\n{label}: answer sizes in tokens (approximate), budget {BUDGET_TOKENS}")
    print(f"{'tool':<28} {'text':>7} {'whole':>7} {'full':>7}  note")
    for size in sizes:
        note = "OVER BUDGET" if size.over_budget else ""
        if size.error:
            note = f"error: {size.error[:90]}"
        row = f"{size.tool:<28} {size.text_tokens:>7} {size.total_tokens:>7} {size.full_tokens:>7}"
        print(f"{row}  {note}")
    largest = max(sizes, key=lambda s: s.total_tokens, default=None)
    if largest is not None:
        print(f"largest: {largest.tool} at {largest.total_tokens} tokens")


async def demo(folder: Path) -> None:
    url = f"sqlite+aiosqlite:///{folder / 'demo.db'}"
    store = await Store.open(url)
    try:
        await load_demo(store, now=DEMO_ANCHOR)
    finally:
        await store.close()
    await run("demo catalog", url, DEMO_SAMPLES)


async def synthetic(folder: Path, size: str, incidents: int, deployments: int) -> None:
    from benchmarks.synthetic import load_synthetic

    url = f"sqlite+aiosqlite:///{folder / f'{size}.db'}"
    store = await Store.open(url)
    try:
        await load_synthetic(store, size, incidents=incidents, deployments=deployments)
        samples = await synthetic_samples(store)
    finally:
        await store.close()
    print(f"\nsynthetic {size}: samples {samples}")
    await run(f"synthetic {size} catalog", url, samples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--synthetic", choices=("small", "medium", "large"), default=None)
    parser.add_argument("--incidents", type=int, default=5_000)
    parser.add_argument("--deployments", type=int, default=20_000)
    parser.add_argument("--no-demo", action="store_true", help="skip the demo catalog")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="answer-sizes-"))
    steps: list[Callable[[], Any]] = []
    if not args.no_demo:
        steps.append(lambda: demo(folder))
    if args.synthetic:
        size = args.synthetic
        steps.append(lambda: synthetic(folder, size, args.incidents, args.deployments))
    try:
        for step in steps:
            asyncio.run(step())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
