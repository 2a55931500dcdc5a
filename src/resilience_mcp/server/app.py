"""Building the MCP server: the store opened in its lifespan, tools chosen by toolset."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver.tools import Tool
from starlette.applications import Starlette

from resilience_mcp import __version__
from resilience_mcp.catalog import load_catalog, load_demo
from resilience_mcp.connectors.sync import background_sync
from resilience_mcp.connectors.webhooks import EVENTS_PATH, GITHUB_PATH, webhook_routes
from resilience_mcp.errors import InvalidInputError
from resilience_mcp.search.semantic import SemanticIndex, load_embedder, require_semantic
from resilience_mcp.server.auth import TokenBook
from resilience_mcp.server.http import HttpSettings, build_asgi_app, is_loopback
from resilience_mcp.server.prompts import register_prompts
from resilience_mcp.server.resources import register_resources
from resilience_mcp.server.state import AppState, ServerConfig
from resilience_mcp.server.tooling import READ, harden_tools
from resilience_mcp.server.tools import actions as action_tools
from resilience_mcp.server.tools import catalog as catalog_tools
from resilience_mcp.server.tools import flags as flag_tools
from resilience_mcp.server.tools import impact as impact_tools
from resilience_mcp.server.tools import incidents as incident_tools
from resilience_mcp.server.tools import metrics as metric_tools
from resilience_mcp.server.tools import writes as write_tools
from resilience_mcp.store import Store

__all__ = ["BENCH_NOOP_ENV", "TOOLSETS", "add_noop_tool", "build_http_app", "build_server"]

logger = logging.getLogger(__name__)

Registrar = Callable[[MCPServer[Any], ServerConfig], None]

# The state of each server while it runs, for routes outside MCP (the webhooks).
_RUNNING: weakref.WeakKeyDictionary[MCPServer[Any], AppState] = weakref.WeakKeyDictionary()

# Each toolset is a list of modules' `register` functions. `default` holds the questions
# of an incident; the others are opt-in for clients that cap how many tools they take.
TOOLSETS: dict[str, list[Registrar]] = {
    "default": [
        catalog_tools.register,
        impact_tools.register,
        incident_tools.register,
        flag_tools.register,
    ],
    "metrics": [metric_tools.register],
    "writes": [write_tools.register, action_tools.register],
}

INSTRUCTIONS = """\
A resilience catalog: what the organisation runs (services, owners, dependencies,
environments and tenants, features and their flags, customers, on-call) and what happened
to it (deployments, incidents, postmortems, remediation tasks, SLOs).
Names are forgiving (case, separators, small typos); a miss lists the closest names.
Start an incident with get_owner or get_service on the failing service."""

# Set to 1, every server built in the process also offers `noop`, a tool that does nothing:
# the benchmarks time it beside the real tools, as the floor the protocol sets. Never in
# the default tool list.
BENCH_NOOP_ENV = "RESILIENCE_MCP_BENCH_NOOP"


def build_server(config: ServerConfig | None = None) -> MCPServer[AppState]:
    """A new server for `config`; nothing is opened until a client connects."""
    config = config or ServerConfig()
    unknown = [name for name in config.toolsets if name not in TOOLSETS and name != "all"]
    if unknown:
        raise InvalidInputError(
            f"Unknown toolset(s) {', '.join(unknown)}; choose from "
            f"{', '.join(sorted(TOOLSETS))} or all."
        )
    # Refuse now, not at the first client, when the semantic extra is missing.
    if config.semantic and config.embedder is None:
        require_semantic()

    @asynccontextmanager
    async def lifespan(_server: MCPServer[AppState]) -> AsyncIterator[AppState]:
        async with open_state(config) as state:
            _RUNNING[_server] = state
            try:
                yield state
            finally:
                _RUNNING.pop(_server, None)

    server: MCPServer[AppState] = MCPServer(
        "resilience-mcp",
        title="Resilience catalog",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
    )
    chosen = list(TOOLSETS) if "all" in config.toolsets else list(dict.fromkeys(config.toolsets))
    # Turning writes on is asking for the write tools: no toolset needs naming as well.
    if config.enable_writes and "writes" not in chosen:
        chosen.append("writes")
    for name in chosen:
        for register in TOOLSETS[name]:
            register(server, config)
    register_resources(server)
    offered = {tool.name for tool in _registered_tools(server)}
    register_prompts(server, offered=offered, how_to_offer=_how_to_offer(config))
    if os.environ.get(BENCH_NOOP_ENV) == "1":
        add_noop_tool(server)
    harden_tools(server)
    return server


def _registered_tools(server: MCPServer[Any]) -> list[Tool]:
    # The SDK has no public, synchronous accessor for the tools registered so far.
    return server._tool_manager.list_tools()


@functools.cache
def _tool_catalogue() -> dict[str, tuple[str, bool]]:
    """Every tool by name: the toolset that offers it, and whether it needs writes on."""
    found: dict[str, tuple[str, bool]] = {}
    for enable_writes in (False, True):
        config = ServerConfig(enable_writes=enable_writes)
        for name, registrars in TOOLSETS.items():
            scratch: MCPServer[Any] = MCPServer(name)
            for register in registrars:
                register(scratch, config)
            for tool in _registered_tools(scratch):
                found.setdefault(tool.name, (name, enable_writes))
    return found


def _how_to_offer(config: ServerConfig) -> Callable[[str], str]:
    """For a tool this server does not offer, what the operator does to offer it."""
    asked = [name for name in config.toolsets if name != "all"]

    def how(tool: str) -> str:
        toolset, needs_writes = _tool_catalogue().get(tool, ("", False))
        if needs_writes and not config.enable_writes:
            return "writes are off; the operator turns them on with `--enable-writes`"
        toolsets = ",".join(dict.fromkeys([*asked, toolset]))
        return f"start the server with `--toolsets {toolsets}` to have them"

    return how


def add_noop_tool(server: MCPServer[Any]) -> None:
    """Offer `noop`, which answers at once: what a call costs with none of our code in it."""

    @server.tool(title="No-op", annotations=READ)
    async def noop() -> str:
        """Does nothing; for benchmarks only."""
        return "ok"


def build_http_app(
    config: ServerConfig, settings: HttpSettings | None = None, tokens: TokenBook | None = None
) -> Starlette:
    """The server as an ASGI app for streamable HTTP; refuses what would be unsafe to serve."""
    settings = settings or HttpSettings()
    if not tokens and not is_loopback(settings.host):
        raise InvalidInputError(
            f"Refusing to listen on {settings.host} without authentication; serve on "
            "127.0.0.1, or configure bearer tokens with --tokens-file or RESILIENCE_MCP_TOKENS."
        )
    if not tokens and config.enable_writes:
        raise InvalidInputError(
            "Write tools over HTTP need bearer tokens, so that only a token with the write "
            "scope can use them; configure tokens, or leave writes off."
        )
    server = build_server(config)
    hooks = config.connectors.webhooks if config.connectors else None
    routes = webhook_routes(lambda: _RUNNING.get(server), hooks)
    # Events may be larger than the requests to /mcp: the webhooks' own limit holds there.
    limits = dict.fromkeys((GITHUB_PATH, EVENTS_PATH), hooks.max_body_bytes) if hooks else {}
    return build_asgi_app(server, settings, tokens, routes=routes, body_limits=limits)


@asynccontextmanager
async def open_state(config: ServerConfig) -> AsyncIterator[AppState]:
    """Open the store (a fresh demo database with `demo`) for the life of a server."""
    scratch: Path | None = None
    url = config.db_url
    if config.demo and url is None:
        scratch = Path(tempfile.mkdtemp(prefix="resilience-mcp-demo-"))
        url = f"sqlite+aiosqlite:///{scratch / 'demo.db'}"
    store = await Store.open(url)
    try:
        if config.demo:
            report = await load_demo(store, now=config.clock())
            logger.info("demo catalog ready: %d documents", report.documents)
        if config.load_paths:
            await load_catalog(store, list(config.load_paths))
        state = AppState(store=store, config=config)
        await state.graph()
        if config.semantic:
            state.semantic = SemanticIndex(config.embedder or load_embedder())
            logger.info("semantic ranking of similar incidents on")
        sources = config.connectors if config.background_sync else None
        async with background_sync(store, sources, config.clock) as state.sync:
            yield state
    finally:
        await store.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
