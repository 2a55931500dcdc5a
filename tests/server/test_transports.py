"""The server as users run it: `resilience-mcp serve` over stdio as a subprocess, and
`serve --http` under a real uvicorn on a loopback port."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult

from resilience_mcp.cli import main
from resilience_mcp.server.auth import token_line
from tests.server.http_support import (
    READ_TOKEN,
    WRITE_TOKEN,
    copy_of_demo,
    free_port,
    http_client,
    mcp_client,
    text_of,
    wait_until_healthy,
)

pytestmark = pytest.mark.anyio

MODES = [pytest.param("auto", id="default-era"), pytest.param("legacy", id="legacy-era")]
CLI = [sys.executable, "-m", "resilience_mcp.cli"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
async def test_over_stdio_a_subprocess_answers_a_read_tool(demo_db: str, mode: str) -> None:
    params = StdioServerParameters(command=CLI[0], args=[*CLI[1:], "-q", "serve", "--db", demo_db])

    async with Client(params, mode=mode) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("get_owner", {"name": "payments-api"})
        prompt = await client.get_prompt("postmortem_draft", {"incident": "INC-2040"})
        page = await client.read_resource("catalog://team/team-payments")

    assert {"get_owner", "get_service", "search_catalog"} <= tools
    assert result.structured_content is not None
    assert result.structured_content["owner"]["owner"] == "team-payments"
    assert prompt.messages
    assert "payments-api" in getattr(page.contents[0], "text", "")


@dataclass(frozen=True)
class Served:
    url: str
    log: Path


@pytest.fixture(scope="module")
def served(demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`serve --http` with writes on, a read token from a file and a write token from the
    environment, on a free loopback port; stopped at the end of the module."""
    folder = tmp_path_factory.mktemp("served")
    db = copy_of_demo(demo_template, folder)
    tokens = folder / "tokens"
    tokens.write_text(token_line("chat-bot", "read", READ_TOKEN) + "\n")
    env = {**os.environ, "RESILIENCE_MCP_TOKENS": token_line("ops-agent", "write", WRITE_TOKEN)}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["serve", "--http", "--port", str(port), "--db", db, "--toolsets", "all"]
    args += ["--enable-writes", "--tokens-file", str(tokens), "--max-body-bytes", "100000"]
    log = folder / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen([*CLI, *args], env=env, stdout=output, stderr=output)
    try:
        wait_until_healthy(process, url, log)
        yield Served(url, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
async def test_a_real_server_answers_401_without_a_token(served: Served) -> None:
    async with http_client(base_url=served.url) as http:
        response = await http.post("/mcp", json={})

    assert response.status_code == 401


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
async def test_a_real_server_answers_a_read_token(served: Served, mode: str) -> None:
    async with mcp_client(None, token=READ_TOKEN, mode=mode, base_url=served.url) as client:
        result = await client.call_tool("get_owner", {"name": "payments-api"})

    assert result.structured_content is not None
    assert result.structured_content["owner"]["owner"] == "team-payments"


@pytest.mark.slow
async def test_a_real_server_refuses_a_write_to_a_read_token_and_audits_a_write_token(
    served: Served,
) -> None:
    arguments = {
        "title": "Checkout latency in prod-us",
        "severity": "SEV3",
        "services": ["checkout"],
        "idempotency_key": "transport-test-0001",
    }
    async with mcp_client(None, token=READ_TOKEN, base_url=served.url) as reader:
        refused = await reader.call_tool("declare_incident", arguments)
    async with mcp_client(None, token=WRITE_TOKEN, base_url=served.url) as writer:
        declared = await writer.call_tool("declare_incident", arguments)
        audit = await writer.call_tool("get_audit_log", {"tool": "declare_incident"})

    assert refused.is_error
    assert "needs a token with the 'write' scope" in text_of(refused)
    assert not declared.is_error, text_of(declared)
    assert audit.structured_content is not None
    actors = {(e["actor"], e["outcome"]) for e in audit.structured_content["entries"]}
    assert ("ops-agent", "ok") in actors
    assert ("chat-bot", "denied") in actors


@pytest.mark.slow
async def test_a_real_server_limits_bodies_and_checks_the_host(served: Served) -> None:
    async with http_client(base_url=served.url, token=READ_TOKEN) as http:
        oversized = await http.post(
            "/mcp", content=b"x" * 200_000, headers={"content-type": "application/json"}
        )
        foreign = await http.post("/mcp", json={}, headers={"host": "evil.example.com"})
        card = await http.post("/cards/get_service", json={"name": "payments-api"})

    assert oversized.status_code == 413
    assert foreign.status_code == 421
    assert card.status_code == 200
    assert card.json()["title"].startswith("payments-api")


def test_serve_refuses_a_public_address_without_tokens(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RESILIENCE_MCP_TOKENS", raising=False)
    monkeypatch.delenv("RESILIENCE_MCP_TOKENS_FILE", raising=False)

    status = main(["serve", "--http", "--host", "0.0.0.0", "--tokens-file", os.devnull])

    assert status == 1
    assert "Refusing to listen on 0.0.0.0 without authentication" in capsys.readouterr().err


async def call_once(served: Served, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    """One call on a connection of its own, as a client retrying after a lost answer makes."""
    async with mcp_client(None, token=WRITE_TOKEN, base_url=served.url) as client:
        return await client.call_tool(tool, arguments)


def content(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return dict(result.structured_content)


@pytest.mark.slow
async def test_a_real_server_acts_once_on_a_write_retried_with_its_idempotency_key(
    served: Served,
) -> None:
    key = "transport-retry-0001"
    arguments = {"title": "Cart merge fails after login", "severity": "SEV4", "services": ["cart"]}
    arguments |= {"idempotency_key": key}

    # A retry sent while the first call is still in flight, and one sent after both.
    first, overlapping = await asyncio.gather(
        call_once(served, "declare_incident", arguments),
        call_once(served, "declare_incident", arguments),
    )
    late = await call_once(served, "declare_incident", arguments)
    audit = content(await call_once(served, "get_audit_log", {"limit": 100}))
    incidents = content(await call_once(served, "list_incidents", {"service": "cart"}))

    answers = [content(result) for result in (first, overlapping, late)]
    assert len({a["name"] for a in answers}) == 1
    assert sorted(a["replayed"] for a in answers) == [False, True, True]
    outcomes = [e["outcome"] for e in audit["entries"] if e["idempotency_key"] == key]
    assert sorted(outcomes) == ["ok", "replayed", "replayed"]
    titles = [i["title"] for i in incidents["incidents"]]
    assert titles.count("Cart merge fails after login") == 1


@pytest.mark.slow
async def test_a_real_server_lets_one_of_two_concurrent_updates_win_and_loses_neither(
    served: Served,
) -> None:
    version = content(await call_once(served, "get_incident", {"key": "INC-2049"}))["version"]
    before = content(await call_once(served, "get_audit_log", {"tool": "update_incident"}))
    notes = ["agent one: declines come from two issuers", "agent two: raising to SEV1"]

    results = await asyncio.gather(
        *(
            call_once(
                served,
                "update_incident",
                {"key": "INC-2049", "expected_version": version, "note": note},
            )
            for note in notes
        )
    )
    record = content(await call_once(served, "get_incident", {"key": "INC-2049"}))
    audit = content(
        await call_once(served, "get_audit_log", {"tool": "update_incident", "detail": "full"})
    )

    [loser] = [i for i, result in enumerate(results) if result.is_error]
    winner = 1 - loser
    assert "Re-read it with get_incident" in text_of(results[loser])
    assert content(results[winner])["version"] == record["version"] == version + 1
    timeline = [entry["text"] for entry in record["timeline"]]
    assert notes[winner] in timeline
    assert notes[loser] not in timeline
    # Both calls are in the audit log; the refused one with its arguments, to apply again.
    seen = {e["id"] for e in before["entries"]}
    new = {e["outcome"]: e for e in audit["entries"] if e["id"] not in seen}
    assert sorted(new) == ["conflict", "ok"]
    assert new["conflict"]["arguments"]["note"] == notes[loser]
