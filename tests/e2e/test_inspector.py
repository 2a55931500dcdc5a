"""End to end with an independent client: the MCP Inspector's command line (TypeScript),
over stdio and over HTTP: list tools, call a read tool, get a prompt, read a resource.

The Inspector is found at $RESILIENCE_MCP_INSPECTOR, else in .ci/node/ where `.ci/run`
installs it (`npm install --prefix .ci/node @modelcontextprotocol/inspector@2.12.0`).
Without it these tests are skipped, unless RESILIENCE_MCP_E2E=required (as CI sets it),
when they fail instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from resilience_mcp.server.auth import token_line
from tests.server.http_support import copy_of_demo, free_port, wait_until_healthy

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
INSTALLED = ROOT / ".ci" / "node" / "node_modules" / ".bin" / "mcp-inspector"
TOKEN = "rmcp_inspector-e2e-token"
# Generous: each call starts a Node process, and over stdio our server too.
CALL_TIMEOUT = 120


@pytest.fixture(scope="module")
def inspector() -> Path:
    path = Path(os.environ.get("RESILIENCE_MCP_INSPECTOR") or INSTALLED)
    if path.is_file() and os.access(path, os.X_OK):
        return path
    reason = f"the MCP Inspector is not installed at {path}; .ci/run installs it"
    if os.environ.get("RESILIENCE_MCP_E2E") == "required":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inspector")


@pytest.fixture(scope="module")
def db(demo_template: Path, folder: Path) -> str:
    return copy_of_demo(demo_template, folder)


Run = Callable[..., dict[str, Any]]


def runner(inspector: Path, folder: Path, target: list[str]) -> Run:
    """Runs one Inspector call against `target` and returns its JSON result."""
    # The Inspector keeps a catalog and a storage folder under HOME: keep them in `folder`.
    env = {**os.environ, "HOME": str(folder), "MCP_CATALOG_PATH": str(folder / "catalog.json")}

    def run(*options: str) -> dict[str, Any]:
        command = [str(inspector), "--cli", "--format", "json", "--connect-timeout", "90000"]
        done = subprocess.run(
            [*command, *target, *options],
            capture_output=True,
            env=env,
            timeout=CALL_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
        answer: dict[str, Any] = json.loads(done.stdout)
        result: dict[str, Any] = answer["result"]
        return result

    return run


@pytest.fixture(scope="module")
def over_stdio(inspector: Path, folder: Path, db: str) -> Run:
    script = Path(sys.executable).with_name("resilience-mcp")
    if not script.is_file():
        pytest.skip(f"the console script {script} is not installed")
    return runner(inspector, folder, [str(script), "serve", "--db", db, "--toolsets", "all"])


@pytest.fixture(scope="module")
def over_http(inspector: Path, folder: Path, db: str) -> Iterator[Run]:
    tokens = folder / "tokens"
    tokens.write_text(token_line("inspector", "read", TOKEN) + "\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["serve", "--http", "--port", str(port), "--db", db, "--toolsets", "all"]
    log = folder / "http-server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "resilience_mcp.cli", *args, "--tokens-file", str(tokens)],
            stdout=output,
            stderr=output,
        )
    try:
        wait_until_healthy(process, url, log)
        yield runner(
            inspector, folder, [f"{url}/mcp", "--header", f"Authorization: Bearer {TOKEN}"]
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(params=["stdio", "http"])
def run(request: pytest.FixtureRequest) -> Run:
    fixture: Run = request.getfixturevalue(f"over_{request.param}")
    return fixture


def test_the_inspector_lists_the_tools_and_finds_their_schemas_portable(run: Run) -> None:
    result = run("--method", "tools/list", "--strict")

    names = {tool["name"] for tool in result["tools"]}
    assert {"get_owner", "get_service", "search_catalog"} <= names


def test_the_inspector_calls_a_read_tool(run: Run) -> None:
    result = run(
        "--method", "tools/call", "--tool-name", "get_owner", "--tool-arg", "name=payments-api"
    )

    assert not result.get("isError")
    assert result["structuredContent"]["owner"]["owner"] == "team-payments"
    assert "team-payments" in result["content"][0]["text"]


def test_the_inspector_gets_a_prompt(run: Run) -> None:
    result = run(
        "--method",
        "prompts/get",
        "--prompt-name",
        "postmortem_draft",
        "--prompt-args",
        "incident=INC-2040",
    )

    text = result["messages"][0]["content"]["text"]
    assert "Draft a blameless postmortem for INC-2040." in text


def test_the_inspector_reads_a_resource(run: Run) -> None:
    result = run("--method", "resources/read", "--uri", "catalog://service/payments-api")

    content = result["contents"][0]
    assert content["mimeType"] == "text/markdown"
    assert content["text"].startswith("# payments-api: Payments API")
