"""Every tool, called with arguments drawn from its own input schema, answers: a result that
matches its output schema, or an error whose text says what was wrong. Never a protocol
error, a hang, a traceback or the catch-all "failed unexpectedly".

The tools are listed from the server itself (every toolset, writes on), so a new tool is
fuzzed without touching this file. `RESILIENCE_MCP_FUZZ_EXAMPLES` sets the examples per
tool (25 by default).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import jsonschema  # type: ignore[import-untyped]  # no stubs installed
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from mcp import Client
from mcp.types import CallToolResult, TextContent, Tool
from sqlmodel import col, select

from resilience_mcp import models as m
from resilience_mcp.doctor import check_store
from resilience_mcp.server import ServerConfig, build_server
from resilience_mcp.store import Store
from tests.reliability.strategies import arguments
from tests.support import demo_config

EXAMPLES = int(os.environ.get("RESILIENCE_MCP_FUZZ_EXAMPLES", "25"))
# A call that takes longer than this is a hang.
CALL_SECONDS = 30.0
# Names per kind offered to the strategies, so that calls also reach the success paths.
NAMES_PER_KIND = 12


def _tool_names() -> list[str]:
    server = build_server(ServerConfig(toolsets=("all",), enable_writes=True))
    return sorted(tool.name for tool in anyio.run(server.list_tools))


TOOLS = _tool_names()


@dataclass
class Fuzzing:
    portal: BlockingPortal
    client: Client
    tools: dict[str, Tool]
    names: list[str]
    url: str


@pytest.fixture(scope="module")
def fuzzing(demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzing]:
    """One server with every tool, writes on, over a private copy of the demo catalog."""
    path = tmp_path_factory.mktemp("fuzz") / "demo.db"
    shutil.copy(demo_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    config = demo_config(url, toolsets=("all",), enable_writes=True)
    with (
        start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(Client(build_server(config))) as client,
    ):
        tools = {tool.name: tool for tool in portal.call(client.list_tools).tools}
        names = portal.call(_catalog_names, url)
        yield Fuzzing(portal, client, tools, names, url)


async def _catalog_names(url: str) -> list[str]:
    """Names of every kind, flag keys, and names behind their kind's prefix (`team:x`)."""
    store = await Store.open(url)
    try:
        async with store.session() as session:
            names: list[str] = []
            for kind, table in m.KIND_TABLES.items():
                query = select(col(table.name)).order_by(col(table.name)).limit(NAMES_PER_KIND)
                found = list((await session.execute(query)).scalars().all())
                names += found + [f"{kind.lower()}:{name}" for name in found[:3]]
            keys = select(col(m.FeatureFlag.key)).limit(NAMES_PER_KIND)
            names += (await session.execute(keys)).scalars().all()
    finally:
        await store.close()
    return names


async def _call(client: Client, tool: str, args: dict[str, Any]) -> CallToolResult:
    with anyio.fail_after(CALL_SECONDS):
        return await client.call_tool(tool, args)


async def _doctor_errors(url: str) -> list[str]:
    store = await Store.open(url)
    try:
        report = await check_store(store, now=datetime.now(UTC))
    finally:
        await store.close()
    return [finding.message for finding in report.errors]


def _text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def check_answer(tool: Tool, args: dict[str, Any], result: CallToolResult) -> None:
    """What every answer must be, whatever the arguments were."""
    text = _text(result)
    where = f"{tool.name}({args!r:.400}) answered {text[:600]!r}"
    assert text.strip(), where
    assert "Traceback (most recent call last)" not in text, where
    assert 'File "' not in text, where
    if result.is_error:
        assert "failed unexpectedly" not in text, where
        detail = text.split(f"Error executing tool {tool.name}:", 1)[-1].strip()
        assert len(detail) >= 15, where
        return
    if tool.output_schema is not None:
        assert result.structured_content is not None, where
        jsonschema.validate(result.structured_content, tool.output_schema)


@pytest.mark.parametrize("tool", TOOLS)
def test_a_tool_answers_any_input_with_a_valid_result_or_a_useful_error(
    fuzzing: Fuzzing, tool: str
) -> None:
    described = fuzzing.tools[tool]

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )
    @given(args=arguments(described.input_schema, fuzzing.names))
    def call(args: dict[str, Any]) -> None:
        result = fuzzing.portal.call(_call, fuzzing.client, tool, args)
        check_answer(described, args, result)

    call()

    if not (described.annotations and described.annotations.read_only_hint):
        # Whatever the calls wrote, the catalog is still whole.
        assert fuzzing.portal.call(_doctor_errors, fuzzing.url) == []
