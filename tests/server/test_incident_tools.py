"""The incident tools through an in-process MCP client on the demo catalog."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent

from resilience_mcp.models.incidents import IncidentRecord
from resilience_mcp.server import build_server
from resilience_mcp.store import Store
from tests.support import demo_config, load_yaml

pytestmark = pytest.mark.anyio

TOOLS = {
    "find_similar_rca",
    "get_incident",
    "list_incidents",
    "list_remediation_tasks",
    "find_recurring_incidents",
}
FLAT = {"string", "integer", "number", "boolean", "array", "null"}


def text(result: CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, TextContent))


async def call(client: Client, tool: str, /, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    # Default answers stay well under ~4,000 tokens (about four characters each).
    size = len(text(result)) + len(json.dumps(result.structured_content))
    assert size < 16_000, (tool, size)
    return result.structured_content


async def refused(client: Client, tool: str, /, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    return text(result)


async def test_the_tools_are_listed_read_only_with_flat_inputs(demo_client: Client) -> None:
    tools = {t.name: t for t in (await demo_client.list_tools()).tools if t.name in TOOLS}

    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint
        assert "$defs" not in tool.input_schema
        for spec in tool.input_schema["properties"].values():
            kinds = {s.get("type") for s in spec.get("anyOf", [spec])}
            assert kinds <= FLAT, (tool.name, spec)


async def test_find_similar_rca_answers_with_evidence_and_tasks(demo_client: Client) -> None:
    found = await call(
        demo_client,
        "find_similar_rca",
        text="payments-db: remaining connection slots are reserved; checkout 503",
        services=["payments-api"],
    )
    first = found["results"][0]

    assert first["key"] in {"INC-2031", "INC-2046"}
    assert "payments-api" in first["why"]["shared_services"]
    assert first["root_cause"]
    assert any(t["overdue"] for r in found["results"] for t in r["tasks"])


class SameMeaning:
    """An embedder to which every text means the same: each cosine is 1."""

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        return [[1.0, 0.0] for _ in texts]


async def test_find_similar_rca_on_a_semantic_server_says_how_close_in_meaning(
    demo_db: str,
) -> None:
    config = demo_config(demo_db, semantic=True, embedder=SameMeaning())
    async with Client(build_server(config)) as client:
        found = await call(client, "find_similar_rca", text="checkout is slow", limit=3)
        result = await client.call_tool("find_similar_rca", {"text": "checkout is slow"})

    assert [r["why"]["similar_meaning"] for r in found["results"]] == [1.0, 1.0, 1.0]
    assert "similar meaning 1.00" in text(result)


async def test_find_similar_rca_by_incident_key(demo_client: Client) -> None:
    found = await call(demo_client, "find_similar_rca", incident="INC-2046", limit=3)

    assert found["incident"] == "INC-2046"
    assert found["results"][0]["key"] == "INC-2031"
    assert len(found["results"]) == 3


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"text": "   "}, "The text is empty"),
        ({"text": "?!* ()"}, "no words to search for"),
        ({}, "Give text"),
        ({"incident": "INC-0000"}, "No incident is named 'INC-0000'"),
    ],
    ids=["blank", "no-words", "nothing", "unknown-incident"],
)
async def test_find_similar_rca_refuses_what_it_cannot_use(
    demo_client: Client, arguments: dict[str, Any], message: str
) -> None:
    assert message in await refused(demo_client, "find_similar_rca", **arguments)


async def test_get_incident_gives_the_whole_record(demo_client: Client) -> None:
    record = await call(demo_client, "get_incident", key="inc-2031")

    assert record["key"] == "INC-2031"
    assert record["minutes_to_detect"] == 5.0
    assert record["postmortem"]["name"] == "pm-inc-2031"
    assert record["timeline"][0]["kind"] == "change"
    assert {t["name"] for t in record["tasks"]} >= {"rt-2031-pgbouncer"}
    assert "payments-db" in record["services"]


async def test_list_incidents_narrows_by_status_service_and_time(demo_client: Client) -> None:
    open_ones = await call(demo_client, "list_incidents", status="open")
    on_db = await call(demo_client, "list_incidents", service="payments-db", since="2026-11-01")

    assert {i["key"] for i in open_ones["incidents"]} >= {"INC-2049"}
    assert all(i["status"] != "resolved" for i in open_ones["incidents"])
    assert [i["key"] for i in on_db["incidents"]] == ["INC-2046"]


async def test_list_incidents_pages_with_a_cursor(demo_client: Client) -> None:
    first = await call(demo_client, "list_incidents", limit=4)
    second = await call(demo_client, "list_incidents", limit=4, cursor=first["page"]["next_cursor"])

    assert first["page"]["truncated"]
    keys = [i["key"] for i in first["incidents"] + second["incidents"]]
    assert len(keys) == len(set(keys)) == 8


async def test_list_remediation_tasks_puts_overdue_first(demo_client: Client) -> None:
    tasks = await call(demo_client, "list_remediation_tasks", status="unfinished")
    overdue = await call(demo_client, "list_remediation_tasks", overdue=True, team="team-payments")

    flags = [t["overdue"] for t in tasks["tasks"]]
    assert flags == sorted(flags, reverse=True)
    assert tasks["overdue"] == sum(flags)
    assert [t["name"] for t in overdue["tasks"]] == ["rt-2031-pgbouncer"]


async def test_find_recurring_incidents_groups_the_repeat(demo_client: Client) -> None:
    found = await call(demo_client, "find_recurring_incidents")
    first = found["groups"][0]

    assert first["reason"] == "root cause"
    assert [i["key"] for i in first["incidents"]] == ["INC-2046", "INC-2031"]


async def test_find_recurring_incidents_pages_with_a_cursor_without_overlap(
    demo_client: Client,
) -> None:
    first = await call(demo_client, "find_recurring_incidents", limit=3)
    second = await call(
        demo_client, "find_recurring_incidents", limit=3, cursor=first["page"]["next_cursor"]
    )
    whole = await call(demo_client, "find_recurring_incidents", limit=6)

    def groups(answer: dict[str, Any]) -> list[tuple[str, str]]:
        return [(g["reason"], g["label"]) for g in answer["groups"]]

    assert first["page"]["next_cursor"] == "3"
    assert len(set(groups(first)) | set(groups(second))) == 6
    assert groups(first) + groups(second) == groups(whole)
    assert second["page"] == {**whole["page"], "returned": 3}


async def test_get_incident_answers_the_links_of_its_record(
    demo_client: Client, demo_store: Store
) -> None:
    await load_yaml(demo_store, LINKED_INCIDENT)

    record = await call(demo_client, "get_incident", key="INC-3001")

    assert record["links"] == [
        {"url": "https://acme.pagerduty.com/incidents/Q1", "title": "PagerDuty"},
        {"url": "https://status.example.com/incidents/7"},
    ]
    card = IncidentRecord.model_validate(record).card()
    assert card.links == [link["url"] for link in record["links"]]


LINKED_INCIDENT = """
apiVersion: resilience/v1
kind: Incident
metadata:
  name: INC-3001
  title: Checkout slow
  links:
    - {url: https://acme.pagerduty.com/incidents/Q1, title: PagerDuty}
    - {url: https://status.example.com/incidents/7}
spec:
  severity: SEV3
  status: investigating
  startedAt: 2026-12-01T10:00:00Z
  services: [checkout]
"""


async def test_a_bad_time_is_refused_with_the_forms_that_work(demo_client: Client) -> None:
    message = await refused(demo_client, "list_incidents", since="last tuesday")

    assert "7d" in message
