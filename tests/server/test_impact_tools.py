"""impact_of_incident, get_dependencies, get_customer_impact, explain_dependency and
find_risks through an in-process MCP client on the demo catalog."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client

pytestmark = pytest.mark.anyio


async def call(client: Client, tool: str, **arguments: Any) -> tuple[dict[str, Any], str]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content, getattr(result.content[0], "text", "")


async def error_text(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    return " ".join(getattr(block, "text", "") for block in result.content)


async def test_one_call_says_what_an_incident_breaks_who_feels_it_and_whom_to_call(
    demo_client: Client,
) -> None:
    impact, text = await call(demo_client, "impact_of_incident", incident="INC-2049")

    assert impact["incident"]["key"] == "INC-2049"
    assert (impact["down"], impact["degraded"]) == (2, 1)
    assert impact["flags"][0]["key"] == "payments-3ds-kill-switch"
    assert impact["customers"][0]["name"] == "initech"
    assert impact["owners"][0]["owner"]["on_call"][0]["person"]["name"] == "hannah-becker"
    assert impact["deployments"][0]["suspected"] is True
    assert "kill switches: payments-3ds-kill-switch" in text
    assert "call: team-payments" in text


async def test_the_default_impact_answer_stays_within_the_token_budget(
    demo_client: Client,
) -> None:
    impact, text = await call(demo_client, "impact_of_incident", incident="INC-2033")

    # About four characters a token for English and JSON alike.
    assert (len(json.dumps(impact)) + len(text)) / 4 < 4000
    assert impact["owners_page"]["truncated"]


async def test_impact_of_failing_services_narrowed_to_a_tenant(demo_client: Client) -> None:
    impact, _ = await call(
        demo_client, "impact_of_incident", services=["search-api"], environment="acme"
    )

    assert impact["environment"] == "prod-eu-acme"
    assert [c["name"] for c in impact["customers"]] == ["acme"]
    assert impact["notes"] == ["'acme' was taken for environment prod-eu-acme."]


async def test_a_diagram_comes_as_a_mermaid_block_when_asked(demo_client: Client) -> None:
    impact, text = await call(
        demo_client, "impact_of_incident", services=["payments-db"], diagram=True
    )

    assert impact["diagram"].startswith("flowchart LR")
    assert "```mermaid\nflowchart LR" in text


async def test_impact_needs_an_incident_or_a_service(demo_client: Client) -> None:
    text = await error_text(demo_client, "impact_of_incident")

    assert "Name an incident key or at least one failing service" in text


async def test_an_unknown_incident_lists_the_latest_keys(demo_client: Client) -> None:
    text = await error_text(demo_client, "impact_of_incident", incident="INC-0")

    assert "No incident is named 'INC-0'. Closest names: INC-2049" in text


async def test_dependents_of_the_payments_database_to_any_depth(demo_client: Client) -> None:
    first, text = await call(
        demo_client, "get_dependencies", name="payments-db", direction="up", limit=3
    )
    every, _ = await call(demo_client, "get_dependencies", name="payments-db", direction="up")

    # Nearest first, hard before soft, then tier 1 before tier 2.
    assert [n["name"] for n in first["nodes"]] == ["ledger", "payments-api", "gift-cards"]
    assert first["page"]["next_cursor"] == "3"
    assert text.startswith("payments-db is needed by")
    by_name = {n["name"]: n for n in every["nodes"]}
    assert by_name["checkout"]["path"] == ["payments-db", "payments-api", "checkout"]
    assert by_name["fraud-check"]["hard"] is False


async def test_a_depth_and_hard_links_only_narrow_the_walk(demo_client: Client) -> None:
    answer, _ = await call(
        demo_client, "get_dependencies", name="checkout", depth=1, include_soft=False
    )

    assert all(n["hard"] and n["depth"] == 1 for n in answer["nodes"])
    assert answer["soft"] == 0


async def test_customer_impact_of_a_flag_starts_from_its_feature_and_readers(
    demo_client: Client,
) -> None:
    answer, text = await call(
        demo_client, "get_customer_impact", flag="bnpl-klarna", environment="prod-eu-acme"
    )

    assert answer["started_from"] == "flag bnpl-klarna"
    assert [c["name"] for c in answer["customers"]] == ["acme"]
    assert text.startswith("Customers affected by flag bnpl-klarna in prod-eu-acme: 1")


async def test_customer_impact_pages_with_a_cursor(demo_client: Client) -> None:
    first, _ = await call(demo_client, "get_customer_impact", feature="checkout", limit=5)
    second, _ = await call(
        demo_client, "get_customer_impact", feature="checkout", limit=5, cursor="5"
    )

    names = [c["name"] for c in first["customers"] + second["customers"]]
    assert len(names) == len(set(names)) == 10
    assert first["page"]["total"] == 12


async def test_explain_dependency_gives_each_link_with_its_kind(demo_client: Client) -> None:
    answer, text = await call(
        demo_client, "explain_dependency", source="web-storefront", target="payments-db"
    )

    assert [(lk["source"], lk["kind"]) for lk in answer["links"]] == [
        ("web-storefront", "sync"),
        ("checkout", "sync"),
        ("payments-api", "data"),
    ]
    assert "(hard)" in text


@pytest.mark.parametrize(
    ("kind", "first"),
    [
        ("single_points_of_failure", ["event-bus"]),
        ("most_dependents", ["event-bus"]),
        ("cycles", ["pricing", "promotions"]),
        ("unowned", ["reviews-service"]),
    ],
)
async def test_find_risks_lists_the_worst_first(
    demo_client: Client, kind: str, first: list[str]
) -> None:
    answer, _ = await call(demo_client, "find_risks", kind=kind, limit=3)

    assert answer["items"][0]["services"] == first


async def test_find_risks_refuses_an_unknown_kind(demo_client: Client) -> None:
    text = await error_text(demo_client, "find_risks", kind="fragile")

    assert "single_points_of_failure" in text
