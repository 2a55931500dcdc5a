"""Two stateless replicas over HTTP on one PostgreSQL database: a write through one is seen
by reads through the other, graph answers included, within a second and with no restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from resilience_mcp.catalog import load_demo
from resilience_mcp.server.auth import token_line
from resilience_mcp.store import Store
from tests.server.http_support import free_port, mcp_client, wait_until_healthy
from tests.support import PG_AVAILABLE, pg_schema_url

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_AVAILABLE, reason="PostgreSQL is not reachable"),
]

CLI = [sys.executable, "-m", "resilience_mcp.cli"]
TOKEN = "rmcp_replica-test-token"


@contextmanager
def replica(db_url: str, tokens: Path, log: Path) -> Iterator[str]:
    """One `serve --http` process on a free loopback port; yields its base URL."""
    port = free_port()
    args = ["serve", "--http", "--port", str(port), "--db", db_url, "--toolsets", "all"]
    args += ["--enable-writes", "--tokens-file", str(tokens)]
    with log.open("wb") as output:
        process = subprocess.Popen([*CLI, *args], stdout=output, stderr=output, env=os.environ)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(process, url, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    async with pg_schema_url() as url:
        store = await Store.open(url)
        try:
            await load_demo(store)
        finally:
            await store.close()
        tokens = tmp_path / "tokens"
        tokens.write_text(token_line("replica-test", "read,write", TOKEN) + "\n")
        with ExitStack() as stack:
            first = stack.enter_context(replica(url, tokens, tmp_path / "a.log"))
            second = stack.enter_context(replica(url, tokens, tmp_path / "b.log"))
            yield first, second


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def flag_state(flags: dict[str, Any], key: str, environment: str) -> Any:
    [flag] = [f for f in flags["flags"] if f["key"] == key]
    return next(s for s in flag["states"] if s["environment"] == environment)


async def test_a_write_through_one_replica_is_read_through_the_other(
    replicas: tuple[str, str],
) -> None:
    first, second = replicas
    async with (
        mcp_client(None, token=TOKEN, base_url=first) as writer,
        mcp_client(None, token=TOKEN, base_url=second) as reader,
    ):
        # The reader builds its graph before the write, so a stale cache would show.
        before = await call(reader, "list_feature_flags", service="payments-api", limit=50)
        assert flag_state(before, "bnpl-kill-switch", "prod-eu")["enabled"] is False

        await call(
            writer,
            "set_feature_flag",
            flag="bnpl-kill-switch",
            environment="prod-eu",
            enabled=True,
            reason="replica test",
        )
        declared = await call(
            writer,
            "declare_incident",
            title="Checkout errors in prod-eu",
            severity="SEV2",
            services=["payments-api"],
            environments=["prod-eu"],
        )

        written = time.monotonic()
        # A replica reads the store's versions again at most every --version-max-age
        # (0.25 s): read until the write shows, for at most a second.
        while True:
            after = await call(reader, "list_feature_flags", service="payments-api", limit=50)
            card = await call(reader, "get_service", name="payments-api")
            impact = await call(reader, "impact_of_incident", incident=declared["name"])
            seen = flag_state(after, "bnpl-kill-switch", "prod-eu")["enabled"] is True
            if seen or time.monotonic() - written > 1.0:
                break
            await anyio.sleep(0.05)

    assert flag_state(after, "bnpl-kill-switch", "prod-eu")["enabled"] is True
    assert declared["name"] in [i["key"] for i in card["open_incidents"]]
    assert "checkout" in {s["name"] for s in impact["services"]}
