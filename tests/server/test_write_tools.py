"""The write tools and the audit log through an in-process MCP client on the demo catalog."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.types import CallToolResult, TextContent
from sqlmodel import col, select

from resilience_mcp import models as m
from resilience_mcp.server import build_server
from resilience_mcp.store import Store
from tests.support import demo_config

pytestmark = pytest.mark.anyio

WRITE_TOOLS = {
    "declare_incident",
    "update_incident",
    "record_postmortem",
    "create_remediation_task",
    "update_remediation_task",
    "set_feature_flag",
}
MODES = [pytest.param("auto", id="default-era"), pytest.param("legacy", id="legacy-era")]
KILL = {"flag": "payments-3ds-kill-switch", "environment": "prod-eu", "enabled": True}


@pytest.fixture(params=MODES)
async def client(demo_db: str, request: pytest.FixtureRequest) -> AsyncIterator[Client]:
    server = build_server(demo_config(demo_db, enable_writes=True, toolsets=("all",)))
    async with Client(server, mode=request.param) as connected:
        yield connected


def text(result: CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, TextContent))


async def call(client: Client, tool: str, /, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return dict(result.structured_content)


async def refused(client: Client, tool: str, /, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    return text(result)


async def rows(store: Store, table: type[Any], *where: Any) -> list[Any]:
    async with store.session() as session:
        return list((await session.execute(select(table).where(*where))).scalars().all())


async def kill_switch_history(store: Store) -> list[m.FlagChange]:
    return await rows(store, m.FlagChange, col(m.FlagChange.reason).startswith("INC-2049"))


async def test_with_writes_off_the_write_tools_are_absent_but_the_audit_log_is_there(
    demo_db: str,
) -> None:
    async with Client(build_server(demo_config(demo_db, toolsets=("all",)))) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}

    assert names & WRITE_TOOLS == set()
    assert "get_audit_log" in names


ADDING = {"declare_incident", "create_remediation_task", "update_incident"}
ADDITIVE = {"declare_incident", "create_remediation_task"}


async def test_write_tools_say_they_change_the_catalog_and_take_dry_run_and_a_key(
    client: Client,
) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools if t.name in WRITE_TOOLS}

    assert set(tools) == WRITE_TOOLS
    for tool in tools.values():
        hints = tool.annotations
        assert hints is not None
        assert hints.read_only_hint is False
        # Without an idempotency key, a retried create makes a second record and a retried
        # incident update appends its note again; updates overwrite what was there.
        assert hints.idempotent_hint is (tool.name not in ADDING)
        assert hints.destructive_hint is (tool.name not in ADDITIVE)
        assert "changes the catalog" in (tool.description or "")
        properties = tool.input_schema["properties"]
        assert properties["dry_run"]["default"] is False
        assert "acts only once" in properties["idempotency_key"]["description"]


async def test_a_declared_incident_is_stored_with_its_links_and_audited_as_local(
    client: Client, demo_store: Store
) -> None:
    done = await call(
        client,
        "declare_incident",
        title="Checkout errors in prod-eu",
        severity="SEV2",
        services=["checkout"],
        environments=["prod-eu"],
        idempotency_key="declare-0001",
    )

    [incident] = await rows(demo_store, m.Incident, col(m.Incident.name) == done["name"])
    assert (incident.title, incident.source, incident.version) == (
        "Checkout errors in prod-eu",
        "mcp",
        1,
    )
    links = await rows(demo_store, m.IncidentLink, col(m.IncidentLink.incident) == done["name"])
    assert {(link.kind, link.target) for link in links} == {
        ("service", "checkout"),
        ("environment", "prod-eu"),
    }
    log = await call(client, "get_audit_log", tool="declare_incident", detail="full")
    [entry] = log["entries"]
    assert (entry["actor"], entry["outcome"], entry["id"]) == ("local", "ok", done["audit_id"])
    assert entry["arguments"]["services"] == ["checkout"]
    assert entry["idempotency_key"] == "declare-0001"


async def test_a_dry_run_shows_the_change_and_writes_nothing(
    client: Client, demo_store: Store
) -> None:
    version = await demo_store.catalog_version()

    preview = await call(client, "set_feature_flag", **KILL, reason="INC-2049 try", dry_run=True)

    assert preview["dry_run"] is True
    assert preview["changes"][0] == {"field": "state", "before": "off", "after": "on"}
    assert await kill_switch_history(demo_store) == []
    assert await demo_store.catalog_version() == version
    log = await call(client, "get_audit_log")
    assert [(e["tool"], e["dry_run"]) for e in log["entries"]] == [("set_feature_flag", True)]


@pytest.mark.parametrize(("since", "found"), [("1h", 1), ("2026-12-01T12:00:01Z", 0), (None, 1)])
async def test_the_audit_log_narrows_by_a_span_or_a_time(
    client: Client, since: str | None, found: int
) -> None:
    await call(client, "set_feature_flag", **KILL, reason="INC-2049", dry_run=True)

    log = await call(client, "get_audit_log", since=since)

    assert log["page"]["total"] == found


async def test_a_bad_since_says_what_to_write(client: Client) -> None:
    assert "ISO 8601" in await refused(client, "get_audit_log", since="yesterday")


async def test_a_retried_write_acts_once_and_says_so(client: Client, demo_store: Store) -> None:
    arguments = KILL | {"reason": "INC-2049 declines", "idempotency_key": "flip-0001"}

    first = await call(client, "set_feature_flag", **arguments)
    result = await client.call_tool("set_feature_flag", arguments)

    assert len(await kill_switch_history(demo_store)) == 1
    assert result.structured_content is not None
    assert result.structured_content["replayed"] is True
    assert result.structured_content["audit_id"] == first["audit_id"]
    assert text(result).startswith("Already done by an earlier call")


async def test_reusing_a_key_for_other_arguments_is_refused(
    client: Client, demo_store: Store
) -> None:
    await call(client, "set_feature_flag", **KILL, reason="INC-2049 a", idempotency_key="k-000001")

    message = await refused(
        client, "set_feature_flag", **KILL, reason="INC-2049 b", idempotency_key="k-000001"
    )

    assert "'k-000001' was already used" in message
    assert [c.reason for c in await kill_switch_history(demo_store)] == ["INC-2049 a"]
    log = await call(client, "get_audit_log", tool="set_feature_flag")
    assert [e["outcome"] for e in log["entries"]] == ["conflict", "ok"]


async def test_an_unknown_name_is_refused_with_the_closest_ones(client: Client) -> None:
    message = await refused(
        client, "declare_incident", title="Broken", severity="SEV3", services=["payments"]
    )

    assert "payments-api" in message


async def test_two_agents_updating_one_incident_get_one_conflict_and_lose_nothing(
    client: Client, demo_store: Store
) -> None:
    results = await asyncio.gather(
        client.call_tool(
            "update_incident", {"key": "INC-2049", "expected_version": 1, "note": "agent one"}
        ),
        client.call_tool(
            "update_incident",
            {"key": "INC-2049", "expected_version": 1, "status": "identified", "note": "two"},
        ),
    )

    [loser] = [r for r in results if r.is_error]
    assert "get_incident" in text(loser)
    [winner] = [r for r in results if not r.is_error]
    assert winner.structured_content is not None
    assert winner.structured_content["version"] == 2
    # The loser re-reads (version 2) and applies its change again.
    retry = {"agent one": {}, "two": {"status": "identified"}}
    lost_note = "two" if "agent one" in text(winner) else "agent one"
    await call(
        client,
        "update_incident",
        key="INC-2049",
        expected_version=2,
        note=lost_note,
        **retry[lost_note],
    )

    [incident] = await rows(demo_store, m.Incident, col(m.Incident.name) == "INC-2049")
    assert (incident.version, incident.status) == (3, "identified")
    timeline = await rows(demo_store, m.TimelineEntry, col(m.TimelineEntry.incident) == "INC-2049")
    texts = " | ".join(entry.text for entry in timeline)
    assert "agent one" in texts
    assert "two" in texts


async def test_the_version_get_incident_gives_is_the_one_update_incident_expects(
    client: Client,
) -> None:
    read = await call(client, "get_incident", key="INC-2049")

    updated = await call(
        client, "update_incident", key="INC-2049", expected_version=read["version"], note="seen"
    )
    stale = await refused(
        client, "update_incident", key="INC-2049", expected_version=read["version"], note="late"
    )
    reread = await call(client, "get_incident", key="INC-2049")

    assert updated["version"] == reread["version"] == read["version"] + 1
    assert f"is at version {reread['version']}, not {read['version']}" in stale
    assert "Re-read it with get_incident" in stale
    assert [t["text"] for t in reread["timeline"]].count("late") == 0


async def test_the_version_a_task_list_gives_is_the_one_update_remediation_task_expects(
    client: Client,
) -> None:
    listed = await call(client, "list_remediation_tasks", status="unfinished", limit=1)
    [task] = listed["tasks"]

    updated = await call(
        client,
        "update_remediation_task",
        name=task["name"],
        expected_version=task["version"],
        status="in_progress" if task["status"] == "open" else "open",
    )
    stale = await refused(
        client,
        "update_remediation_task",
        name=task["name"],
        expected_version=task["version"],
        priority="P1",
    )
    record = await call(client, "get_incident", key=task["incident"])

    [again] = [t for t in record["tasks"] if t["name"] == task["name"]]
    assert updated["version"] == again["version"] == task["version"] + 1
    assert f"is at version {again['version']}, not {task['version']}" in stale


@pytest.mark.parametrize(("scopes", "allowed"), [(["read"], False), (["read", "write"], True)])
async def test_a_token_needs_the_write_scope_and_its_client_is_the_actor(
    demo_db: str, demo_store: Store, scopes: list[str], allowed: bool
) -> None:
    access = AccessToken(token="t0ken-value", client_id="incident-bot", scopes=scopes)
    reset = auth_context_var.set(AuthenticatedUser(access))
    try:
        server = build_server(demo_config(demo_db, enable_writes=True, toolsets=("writes",)))
        async with Client(server) as client:
            result = await client.call_tool("set_feature_flag", KILL | {"reason": "INC-2049"})
    finally:
        auth_context_var.reset(reset)

    assert result.is_error is not allowed
    if not allowed:
        assert "needs a token with the 'write' scope" in text(result)
    [record] = await rows(demo_store, m.AuditRecord)
    assert (record.actor, record.outcome) == ("incident-bot", "ok" if allowed else "denied")
