"""What the HTTP tests share: tokens, clients in process or over a socket, probe tools."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server import MCPServer
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, TextContent
from starlette.applications import Starlette
from starlette.types import ASGIApp

from resilience_mcp.models.common import Answer, Card
from resilience_mcp.server.auth import TokenBook, token_line
from resilience_mcp.server.tooling import READ, WRITE, answer

IN_PROCESS_URL = "http://127.0.0.1:8000"
START_TIMEOUT = 60.0
READ_TOKEN = "rmcp_test-read-token"
WRITE_TOKEN = "rmcp_test-write-token"
TOKENS_TEXT = "\n".join(
    [
        token_line("chat-bot", "read", READ_TOKEN),
        token_line("ops-agent", "read,write", WRITE_TOKEN),
    ]
)
TOKENS = TokenBook.parse(TOKENS_TEXT, "tests")


class WhoAmI(Answer):
    """The probe's answer; it draws its own card, link included."""

    client: str | None

    def text(self) -> str:
        return f"caller: {self.client or 'none'}\nsecond line"

    def card(self) -> Card:
        return Card(title=f"caller {self.client}", lines=[], links=["https://example.com/me"])


def add_probe_tools(server: MCPServer[Any]) -> MCPServer[Any]:
    """A read tool that says who called, and a write-annotated one, for the transport tests."""

    @server.tool(title="Who am I", annotations=READ)
    async def whoami(ctx: Context[Any]) -> Annotated[CallToolResult, WhoAmI]:
        """Says which client's token made this call."""
        token = get_access_token()
        return answer(WhoAmI(client=token.client_id if token else None))

    @server.tool(title="Touch", annotations=WRITE)
    async def touch(ctx: Context[Any]) -> str:
        """A write-annotated probe that changes nothing."""
        return "touched"

    return server


def http_client(
    app: ASGIApp | None = None,
    *,
    token: str | None = None,
    base_url: str = IN_PROCESS_URL,
    headers: dict[str, str] | None = None,
) -> httpx2.AsyncClient:
    """A client of `app` in process, or of `base_url` over the network when app is None."""
    sent = dict(headers or {})
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    transport = httpx2.ASGITransport(app=app) if app is not None else None
    return httpx2.AsyncClient(transport=transport, base_url=base_url, headers=sent)


@asynccontextmanager
async def mcp_client(
    app: ASGIApp | None,
    *,
    token: str | None = None,
    mode: str = "auto",
    base_url: str = IN_PROCESS_URL,
) -> AsyncIterator[Client]:
    async with (
        http_client(app, token=token, base_url=base_url) as http,
        Client(streamable_http_client(f"{base_url}/mcp", http_client=http), mode=mode) as client,
    ):
        yield client


@asynccontextmanager
async def started(app: Starlette) -> AsyncIterator[Starlette]:
    """Runs the app's lifespan, as a server would around its requests."""
    async with app.router.lifespan_context(app):
        yield app


def copy_of_demo(template: Path, folder: Path) -> str:
    """A copy of the demo database in `folder`, as a URL."""
    shutil.copy(template, folder / "demo.db")
    return f"sqlite+aiosqlite:///{folder / 'demo.db'}"


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_healthy(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Polls /healthz until it answers; gives up when the process exits or time runs out."""
    attempts = int(START_TIMEOUT / 0.2)
    for _ in range(attempts):
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx2.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        try:
            process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue
    pytest.fail(f"the server did not become healthy in {START_TIMEOUT:g}s:\n{log.read_text()}")
