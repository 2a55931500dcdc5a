"""get_owner, get_service and search_catalog through an in-process MCP client."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

pytestmark = pytest.mark.anyio


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def error_text(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    return " ".join(getattr(block, "text", "") for block in result.content)


async def test_get_owner_names_the_team_its_channel_and_who_is_on_call(demo_client: Client) -> None:
    owner = await call(demo_client, "get_owner", name="payments-api")

    assert owner["owner"]["owner"] == "team-payments"
    assert owner["owner"]["chat_channel"] == "#team-payments"
    assert [c["person"]["name"] for c in owner["owner"]["on_call"]] == ["hannah-becker"]
    assert {m["name"] for m in owner["members"]} >= {"hannah-becker", "priya-nair"}


async def test_get_owner_of_an_incident_is_the_owner_of_the_service_it_names_first(
    demo_client: Client,
) -> None:
    owner = await call(demo_client, "get_owner", name="inc-2049")

    assert owner["name"] == "INC-2049"
    assert owner["owner"]["owner"] == "team-payments"
    assert owner["owner"]["inherited_from"] == "Service:payments-api"


async def test_get_owner_forgives_a_typo_and_says_what_it_took(demo_client: Client) -> None:
    owner = await call(demo_client, "get_owner", name="Paymnts API")

    assert (owner["name"], owner["corrected_from"]) == ("payments-api", "Paymnts API")


async def test_get_owner_of_an_unknown_name_lists_the_closest(demo_client: Client) -> None:
    text = await error_text(demo_client, "get_owner", name="payments")

    assert "No entity is named 'payments'" in text
    assert "payments-api" in text


async def test_the_service_card_has_neighbours_environments_flags_and_open_incidents(
    demo_client: Client,
) -> None:
    card = await call(demo_client, "get_service", name="checkout")

    assert card["tier"] == 1
    assert {d["service"] for d in card["depends_on"]} >= {"payments-api", "cart"}
    assert [d["service"] for d in card["dependents"]] == ["web-storefront"]
    assert {e["environment"] for e in card["environments"]} >= {"prod-us", "prod-eu"}
    # Kill switches lead the flag list.
    assert card["flags"][0]["purpose"] == "kill-switch"
    assert "INC-2049" in [i["key"] for i in card["open_incidents"]]
    assert card["recent_deployments"]


async def test_the_service_card_text_is_short_and_names_the_owner(demo_client: Client) -> None:
    result = await demo_client.call_tool("get_service", {"name": "payments-api"})
    text = result.content[0].text  # type: ignore[union-attr]

    assert text.startswith("payments-api: tier 1")
    assert "team-payments" in text
    assert len(text) < 2000


async def test_get_service_refuses_a_team_name(demo_client: Client) -> None:
    text = await error_text(demo_client, "get_service", name="team-payments")

    assert "No service is named" in text


async def test_search_finds_by_title_and_tag_and_ranks_exact_names_first(
    demo_client: Client,
) -> None:
    found = await call(demo_client, "search_catalog", query="payments api")

    assert found["results"][0]["name"] == "payments-api"


async def test_search_pages_with_a_cursor(demo_client: Client) -> None:
    first = await call(demo_client, "search_catalog", query="payments", limit=2)
    second = await call(
        demo_client,
        "search_catalog",
        query="payments",
        limit=2,
        cursor=first["page"]["next_cursor"],
    )

    assert first["page"]["truncated"]
    assert first["page"]["total"] > 2
    assert not {r["name"] for r in first["results"]} & {r["name"] for r in second["results"]}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"query": "!!!"}, "no words"),
        ({"query": "payments", "kind": "Spaceship"}, "not a kind"),
        ({"query": "payments", "cursor": "abc"}, "cursor"),
    ],
)
async def test_search_explains_bad_input(
    demo_client: Client, arguments: dict[str, Any], message: str
) -> None:
    assert message in await error_text(demo_client, "search_catalog", **arguments)
