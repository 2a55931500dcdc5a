"""Every tool, called with arguments drawn from its own input schema, answers: a result that
matches its output schema, or an error whose text says what was wrong. Never a protocol
error, a hang, a traceback, a secret or the catch-all "failed unexpectedly".

The tools are listed from the server itself (every toolset, writes on), so a new tool is
fuzzed without touching this file. `RESILIENCE_MCP_FUZZ_EXAMPLES` sets the examples per
tool (25 by default). The server has an action and a flagd source that pushes, both
answered by a small service on loopback, so run_action and set_feature_flag are fuzzed
through to the requests they send.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import jsonschema  # type: ignore[import-untyped]  # no stubs installed
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, example, given, settings
from mcp import Client
from mcp.types import CallToolResult, TextContent, Tool
from sqlmodel import col, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from resilience_mcp import models as m
from resilience_mcp.doctor import check_store
from resilience_mcp.models.connectors import (
    ActionSpec,
    ConnectorSettings,
    PushTarget,
    SourceConfig,
)
from resilience_mcp.server import ServerConfig, build_server
from resilience_mcp.store import Store
from tests.connectors.fakes import on_loopback
from tests.reliability.strategies import arguments
from tests.support import demo_config

EXAMPLES = int(os.environ.get("RESILIENCE_MCP_FUZZ_EXAMPLES", "25"))
# A call that takes longer than this is a hang.
CALL_SECONDS = 30.0
# Names per kind offered to the strategies, so that calls also reach the success paths.
NAMES_PER_KIND = 12

# The connectors: one action, and the environment whose flags flagd serves and takes.
ACTION = "restart-pods"
PUSHED_ENVIRONMENT = "prod-eu"
SECRETS = {
    "FUZZ_OPS_TOKEN": "Bearer fuzz-ops-7d41c9e2b8Kq",
    "FUZZ_FLAGS_TOKEN": "Bearer fuzz-flags-3a9f5e1c07Wm",
}
# How the receiving systems answer, in turn: accepted, refused, failed, throttled.
ACTION_ANSWERS = (202, 200, 500, 429, 422)
PUSH_ANSWERS = (200, 200, 503)
# Calls that reach the connectors' real paths, made besides the drawn ones: each tool's
# fuzzing checks that the receiving system got requests.
CONNECTOR_CALLS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "run_action": (
        "action",
        [
            {"name": ACTION, "inputs": {"service": "payments-api", "replicas": 2}},
            {"name": ACTION, "inputs": {}, "dry_run": True},
            {"name": ACTION, "inputs": {"service": "checkout", "replicas": 0}},
            {"name": ACTION, "inputs": {"service": "x"}, "idempotency_key": "fuzz-restart-01"},
            {"name": ACTION, "inputs": {"note": "\u202e" + "9" * 700}},
        ],
    ),
    "set_feature_flag": (
        "push",
        [
            {
                "flag": "payments-3ds-kill-switch",
                "environment": PUSHED_ENVIRONMENT,
                "reason": "INC-1: 3DS failing",
                "enabled": True,
            },
            {
                "flag": "payments-psp-failover",
                "environment": PUSHED_ENVIRONMENT,
                "reason": "INC-2: stripe down",
                "variant": "adyen",
            },
            {
                "flag": "recommendations-ranker-v2",
                "environment": PUSHED_ENVIRONMENT,
                "reason": "roll the ranker back",
                "enabled": True,
                "rollout": 12.5,
            },
            {
                "flag": "checkout-one-page",
                "environment": PUSHED_ENVIRONMENT,
                "reason": "preview only",
                "enabled": False,
                "dry_run": True,
            },
        ],
    ),
}


def _tool_names() -> list[str]:
    server = build_server(ServerConfig(toolsets=("all",), enable_writes=True))
    return sorted(tool.name for tool in anyio.run(server.list_tools))


TOOLS = _tool_names()


@dataclass
class Remote:
    """The systems the connectors talk to: an action's receiver, and a flag service that
    serves its flag definitions and takes new ones. Each answers in turn as the *_ANSWERS
    say, and the action's receiver echoes the caller's token, which must never show."""

    definitions: dict[str, Any]
    hits: Counter[str] = field(default_factory=Counter)

    async def action(self, request: Request) -> Response:
        self.hits["action"] += 1
        status = ACTION_ANSWERS[self.hits["action"] % len(ACTION_ANSWERS)]
        echo = {"accepted": status < 300, "caller": request.headers.get("authorization")}
        return JSONResponse(echo, status_code=status)

    async def serve(self, request: Request) -> Response:
        self.hits["read"] += 1
        return JSONResponse(self.definitions)

    async def take(self, request: Request) -> Response:
        self.hits["push"] += 1
        status = PUSH_ANSWERS[self.hits["push"] % len(PUSH_ANSWERS)]
        if status < 300:
            self.definitions = await request.json()
        return JSONResponse({"accepted": status < 300}, status_code=status)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/hooks/restart", self.action, methods=["POST"]),
                Route("/flags.json", self.serve, methods=["GET"]),
                Route("/admin/flags", self.take, methods=["PUT"]),
            ]
        )


@dataclass
class Fuzzing:
    portal: BlockingPortal
    client: Client
    tools: dict[str, Tool]
    names: list[str]
    url: str
    remote: Remote


@pytest.fixture(scope="module")
def fuzzing(demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzing]:
    """One server with every tool, writes on and connectors configured, over a private copy
    of the demo catalog."""
    path = tmp_path_factory.mktemp("fuzz") / "demo.db"
    shutil.copy(demo_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    with (
        pytest.MonkeyPatch.context() as patch,
        start_blocking_portal("asyncio") as portal,
    ):
        for variable, secret in SECRETS.items():
            patch.setenv(variable, secret)
        remote = Remote(portal.call(_flag_definitions, url))
        with portal.wrap_async_context_manager(on_loopback(remote.app())) as base:
            config = demo_config(
                url, toolsets=("all",), enable_writes=True, connectors=_connectors(base)
            )
            with portal.wrap_async_context_manager(Client(build_server(config))) as client:
                tools = {tool.name: tool for tool in portal.call(client.list_tools).tools}
                names = [*portal.call(_catalog_names, url), ACTION]
                yield Fuzzing(portal, client, tools, names, url, remote)


def _connectors(base: str) -> ConnectorSettings:
    action = ActionSpec(
        name=ACTION,
        description="Restart a service's pods.",
        url=f"{base}/hooks/restart",
        headers={"Authorization": "FUZZ_OPS_TOKEN"},
        input_schema={
            "type": "object",
            "properties": {
                "service": {"type": "string", "minLength": 1},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
            },
        },
        timeout_seconds=5,
    )
    flagd = SourceConfig(
        name="flagd-eu",
        type="flagd",
        url=f"{base}/flags.json",
        environment=PUSHED_ENVIRONMENT,
        push=PushTarget(url=f"{base}/admin/flags", headers={"Authorization": "FUZZ_FLAGS_TOKEN"}),
    )
    return ConnectorSettings(sources=[flagd], actions=[action])


async def _flag_definitions(url: str) -> dict[str, Any]:
    """The demo's flags as flagd serves them: their variants, else on and off."""
    store = await Store.open(url)
    try:
        async with store.session() as session:
            flags = (await session.execute(select(m.FeatureFlag))).scalars().all()
    finally:
        await store.close()
    definitions: dict[str, Any] = {}
    for flag in flags:
        variants = dict(flag.variants) or {"on": True, "off": False}
        default = "off" if "off" in variants else next(iter(variants))
        definitions[flag.key] = {
            "state": "ENABLED",
            "variants": variants,
            "defaultVariant": default,
        }
    return {"flags": definitions}


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
    shown = text + json.dumps(result.structured_content)
    tokens = [secret.split()[-1] for secret in SECRETS.values()]
    assert not [t[:12] for t in tokens if t[:12] in shown], where
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
    reached, calls = CONNECTOR_CALLS.get(tool, ("", []))
    before = fuzzing.remote.hits[reached]

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

    for args in calls:
        call = example(args=args)(call)
    call()

    if reached:
        assert fuzzing.remote.hits[reached] > before, f"{tool} never reached the {reached}"

    if not (described.annotations and described.annotations.read_only_hint):
        # Whatever the calls wrote, the catalog is still whole.
        assert fuzzing.portal.call(_doctor_errors, fuzzing.url) == []
